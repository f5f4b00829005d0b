"""How fast the engine answers, against transformers' ``generate`` once per question, and the floor.

Randomly initialised checkpoints of the real architectures (the weights' values do not change
the compute): git-base-vqav2 (CLIP ViT-B/16 at 480 px, one frame, 901 image tokens) and
git-base-vatex (224 px, 6 frames, 1182 image tokens), both with the 6-layer 768-wide text
decoder and BERT's 30522-token vocabulary.

For each: per-clip latency and clips per second for 1 question, 5 questions and a caption,

* ``ours``      ``GitEngine.answer`` / ``caption`` over all clips in one call;
* ``generate``  ``GitForCausalLM.generate`` once per clip and question, same pixels and prompt;
* ``floor``     one image-encoder pass plus one decoder pass over the image tokens (a forward
                of transformers' model on ``[CLS]`` with ``logits_to_keep=1``): what any
                method must pay per clip to look at it once.

A random model almost never emits ``[SEP]``, so every answer runs to ``--answer-tokens`` (3, a
typical VQA answer) and every caption to ``--caption-tokens`` (15, a typical caption), for ours
and for ``generate`` alike. For an image checkpoint a "clip" here is one frame (the pipeline
answers ``--frames-per-clip`` frames per clip, 3 by default, so multiply).

    python benchmarks/bench_engine.py            # both models, 2 clips each, CPU
    python benchmarks/bench_engine.py --quick    # 1 clip each
    python benchmarks/bench_engine.py --device cuda --clips 8
    python benchmarks/bench_engine.py --models SmolVLM2-256M,SmolVLM2-500M --frames 2

SmolVLM2-256M and -500M (``--models``): the real shapes (SigLIP-B/16 at 512 px, pixel shuffle
4: 64 tokens per frame; SmolLM2-135M / -360M text models, 49280 tokens), random weights, a
byte-level tokenizer with SmolVLM2's special tokens and chat template (tests/tiny_smolvlm.py;
its few hundred ids are what the prompts use), ``--frames`` frames per clip. ``ours`` is
``SmolVLMEngine.generate_ids`` (frames and prefix once per clip), ``generate`` is
``SmolVLMForConditionalGeneration.generate`` once per clip and question on the same prompt;
``floor`` one forward of the whole caption prompt (``logits_to_keep=1``), ``encode`` the
vision tower and connector alone.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

from videoqa.engine import FramePreprocessing, GitEngine

QUESTIONS = [
    "what is the man holding in his hand ?",
    "what color is the car ?",
    "how many people are there ?",
    "is it raining ?",
    "what is the woman doing on the left side of the road ?",
]

ARCHITECTURES = {
    "git-base-vqav2": {"image_size": 480, "frames": None},
    "git-base-vatex": {"image_size": 224, "frames": 6},
}

SMOLVLM_TEXT = {  # SmolLM2-135M and -360M, the text models of SmolVLM2-256M and -500M
    "SmolVLM2-256M": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                      "num_attention_heads": 9, "num_key_value_heads": 3},
    "SmolVLM2-500M": {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                      "num_attention_heads": 15, "num_key_value_heads": 5},
}  # fmt: skip


def bert_like_tokenizer():
    """A WordPiece tokenizer with BERT's special-token ids and a 30522-token vocabulary."""
    from transformers import BertTokenizer

    words = sorted({word for question in QUESTIONS for word in question.split()})
    vocab = [f"[unused{i}]" for i in range(100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab[0] = "[PAD]"
    vocab += words
    vocab += [f"tok{i}" for i in range(30522 - len(vocab))]
    return BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)


def random_git_engine(name: str, device: str, dtype: torch.dtype) -> GitEngine:
    """A randomly initialised GIT of the named architecture, wrapped in our engine."""
    from transformers import GitConfig, GitForCausalLM

    shape = ARCHITECTURES[name]
    config = GitConfig(
        vision_config={
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "image_size": shape["image_size"],
            "patch_size": 16,
        },
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=3072,
        num_image_with_embedding=shape["frames"],
    )
    torch.manual_seed(0)
    model = GitForCausalLM(config).eval().to(device=device, dtype=dtype)
    preprocessing = FramePreprocessing.from_config(
        {"size": {"shortest_edge": shape["image_size"]}}, image_size=shape["image_size"]
    )
    return GitEngine(model, bert_like_tokenizer(), preprocessing, model_id=f"random {name}")


def random_smolvlm_engine(name: str, args: argparse.Namespace, dtype: torch.dtype):
    """A randomly initialised SmolVLM2 of the named size, wrapped in our engine."""
    import sys
    from pathlib import Path

    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    from videoqa.engines.smolvlm import SmolVLMEngine, smolvlm_preprocessing
    from videoqa.preprocess import ModelFacts

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_smolvlm import smolvlm_tokenizer

    tokenizer = smolvlm_tokenizer()
    config = SmolVLMConfig(
        vision_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": 512, "patch_size": 16},
        text_config={"model_type": "llama", "vocab_size": 49280, "rms_norm_eps": 1e-5,
                     "max_position_embeddings": 8192, "rope_theta": 100000.0,
                     "pad_token_id": tokenizer.pad_token_id, **SMOLVLM_TEXT[name]},
        scale_factor=4, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )  # fmt: skip
    model = SmolVLMForConditionalGeneration(config).eval().to(args.device, dtype)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    facts = ModelFacts(name, None, "video", args.frames, 512, smolvlm_preprocessing({}, 512))
    return SmolVLMEngine(model, tokenizer, facts, fps=1.0)


def bench_smolvlm(
    name: str, args: argparse.Namespace, dtype: torch.dtype
) -> list[tuple[str, dict]]:
    engine = random_smolvlm_engine(name, args, dtype)
    model = engine.model
    rng = np.random.default_rng(0)
    clips = [[rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(args.frames)]
             for _ in range(args.clips)]  # fmt: skip
    pixels = engine._pixels(clips, None).to(args.device, dtype)
    times = engine.default_timestamps()
    prompts = {text: torch.tensor([engine.prompt_ids(text, times)], device=args.device)
               for text in [*QUESTIONS, engine.caption_prompt]}  # fmt: skip

    def ours(texts: list[str], tokens: int) -> Callable[[], object]:
        return lambda: engine.generate_ids(pixels, texts, max_new_tokens=tokens)

    def per_question_generate(texts: list[str], tokens: int) -> Callable[[], object]:
        def run() -> None:
            with torch.inference_mode():
                for clip in range(len(clips)):
                    for text in texts:
                        model.generate(input_ids=prompts[text], pixel_values=pixels[clip][None],
                                       attention_mask=torch.ones_like(prompts[text]),
                                       max_new_tokens=tokens, min_new_tokens=tokens,
                                       do_sample=False).tolist()  # fmt: skip

        return run

    def floor() -> None:
        with torch.inference_mode():
            for clip in range(len(clips)):
                model(input_ids=prompts[engine.caption_prompt], pixel_values=pixels[clip][None],
                      logits_to_keep=1)  # fmt: skip

    def encode_only() -> None:
        with torch.inference_mode():
            model.model.get_image_features(pixels)

    engine.generate_ids(pixels[:1], QUESTIONS[:1], max_new_tokens=1)  # warm up
    tasks = (("1 question", QUESTIONS[:1], args.answer_tokens),
             ("5 questions", QUESTIONS, args.answer_tokens),
             ("caption", [engine.caption_prompt], args.caption_tokens))  # fmt: skip
    best: dict[tuple[str, str], float] = {}

    def keep(key: tuple[str, str], seconds: float) -> None:
        best[key] = min(seconds, best.get(key, float("inf")))

    for _ in range(args.rounds):
        keep(("", "floor"), timed(floor, len(clips), args))
        keep(("", "encode"), timed(encode_only, len(clips), args))
        for label, texts, tokens in tasks:
            keep((label, "ours"), timed(ours(texts, tokens), len(clips), args))
            keep((label, "generate"), timed(per_question_generate(texts, tokens), len(clips),
                                            args))  # fmt: skip
    return [(label, {"ours": best[(label, "ours")], "generate": best[(label, "generate")],
                     "floor": best[("", "floor")], "encode": best[("", "encode")]})
            for label, _, _ in tasks]  # fmt: skip


def timed(run: Callable[[], object], clips: int, args: argparse.Namespace) -> float:
    """Seconds per clip by ``args.clock``: wall time, or this process's CPU time."""
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = clock()
    run()
    if args.device == "cuda":
        torch.cuda.synchronize()
    return (clock() - start) / clips


def bench_model(name: str, args: argparse.Namespace, dtype: torch.dtype) -> list[tuple[str, dict]]:
    engine = random_git_engine(name, args.device, dtype)
    model, tokenizer = engine.model, engine.tokenizer
    frames = engine.frames_per_clip or 1
    rng = np.random.default_rng(0)
    height, width = 360, 640  # a 16:9 video; the sampler would have resized to frame_size
    resized_w, resized_h = engine.frame_size(width, height)
    clips = [
        [rng.integers(0, 256, (resized_h, resized_w, 3), dtype=np.uint8) for _ in range(frames)]
        for _ in range(args.clips)
    ]
    pixels = engine.pixel_values(clips).to(args.device, dtype)
    prompts = [
        torch.tensor([[tokenizer.cls_token_id, *tokenizer(q, add_special_tokens=False).input_ids]])
        for q in QUESTIONS
    ]
    cls_only = torch.tensor([[tokenizer.cls_token_id]], device=args.device)

    def ours(questions: list[str]) -> Callable[[], object]:
        if not questions:
            return lambda: engine.caption(clips, max_new_tokens=args.caption_tokens)
        return lambda: engine.answer(clips, questions, max_new_tokens=args.answer_tokens)

    def per_question_generate(count: int) -> Callable[[], object]:
        def run() -> None:
            with torch.inference_mode():
                for clip in range(len(clips)):
                    clip_pixels = pixels[clip : clip + 1]
                    if count == 0:
                        model.generate(
                            pixel_values=clip_pixels,
                            max_new_tokens=args.caption_tokens,
                            min_new_tokens=args.caption_tokens,
                            do_sample=False,
                        ).tolist()
                    for prompt in prompts[:count]:
                        model.generate(
                            pixel_values=clip_pixels,
                            input_ids=prompt.to(args.device),
                            max_new_tokens=args.answer_tokens,
                            min_new_tokens=args.answer_tokens,
                            do_sample=False,
                        ).tolist()

        return run

    def floor() -> None:
        with torch.inference_mode():
            for clip in range(len(clips)):
                model(input_ids=cls_only, pixel_values=pixels[clip : clip + 1], logits_to_keep=1)

    def encode_only() -> None:
        engine.encode(clips)

    # Warm up every path once on one clip (allocator, kernels, lazy imports).
    engine.answer(clips[:1], QUESTIONS[:1], max_new_tokens=1)
    with torch.inference_mode():
        model.generate(
            pixel_values=pixels[:1], input_ids=prompts[0].to(args.device), max_new_tokens=1
        )

    # Rounds interleave every measurement; the best of the rounds is kept (others share the CPU).
    tasks = (("1 question", 1), ("5 questions", 5), ("caption", 0))
    best: dict[tuple[str, str], float] = {}

    def keep(key: tuple[str, str], seconds: float) -> None:
        best[key] = min(seconds, best.get(key, float("inf")))

    for _ in range(args.rounds):
        keep(("", "floor"), timed(floor, len(clips), args))
        keep(("", "encode"), timed(encode_only, len(clips), args))
        for label, count in tasks:
            keep((label, "ours"), timed(ours(QUESTIONS[:count]), len(clips), args))
            keep((label, "generate"), timed(per_question_generate(count), len(clips), args))
    return [
        (
            label,
            {
                "ours": best[(label, "ours")],
                "generate": best[(label, "generate")],
                "floor": best[("", "floor")],
                "encode": best[("", "encode")],
            },
        )
        for label, _ in tasks
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"]
    )
    parser.add_argument("--clips", type=int, default=2, help="clips per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, keep the best")
    parser.add_argument("--quick", action="store_true", help="one clip, one round")
    parser.add_argument("--models", default=",".join(ARCHITECTURES),
                        help=f"comma-separated, of {', '.join([*ARCHITECTURES, *SMOLVLM_TEXT])}")
    parser.add_argument("--frames", type=int, default=8, help="SmolVLM2: frames per clip")
    parser.add_argument("--answer-tokens", type=int, default=3)
    parser.add_argument("--caption-tokens", type=int, default=15)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: see --clock)"
    )
    parser.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu: process CPU time, steady on a shared machine with one thread (CPU default); "
        "wall: elapsed time (CUDA default)",
    )
    args = parser.parse_args()
    if args.quick:
        args.clips, args.rounds = 1, 1
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_engine: --device cuda but torch sees no CUDA GPU")
    if args.clock is None:
        args.clock = "wall" if args.device == "cuda" else "cpu"
    torch.set_num_threads(args.threads)
    dtype = {
        "auto": torch.float16 if args.device == "cuda" else torch.float32,
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }[args.dtype]
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.machine()} CPU"
    print(
        f"# {where}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), {dtype}, "
        f"{args.clock} time, best of {args.rounds} round(s), "
        f"{args.clips} clip(s) per measurement, answers {args.answer_tokens} tokens, "
        f"captions {args.caption_tokens} tokens"
    )
    print(
        f"{'model':15} {'task':11} {'ours s/clip':>11} {'clips/s':>7} {'generate':>8} "
        f"{'floor':>6} {'encode':>6} {'generate/ours':>13} {'ours/floor':>10} {'ours/encode':>11}"
    )
    for name in args.models.split(","):
        bench = bench_smolvlm if name in SMOLVLM_TEXT else bench_model
        for label, t in bench(name, args, dtype):
            print(
                f"{name:15} {label:11} {t['ours']:11.3f} {1 / t['ours']:7.3f} {t['generate']:8.3f} "
                f"{t['floor']:6.3f} {t['encode']:6.3f} {t['generate'] / t['ours']:12.2f}x "
                f"{t['ours'] / t['floor']:9.2f}x {t['ours'] / t['encode']:10.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
