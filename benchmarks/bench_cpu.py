"""The engine on the CPU in each format: float32, bfloat16 and int8 (dynamic int8 Linear layers).

Randomly initialised checkpoints of the real architectures (``bench_engine.py``'s:
git-base-vqav2, 480 px, one frame; git-base-vatex, 224 px, 6 frames), one torch thread, timed
in this process's CPU seconds (steady on a shared machine; the load average goes in the JSON).
Per model and format:

* ``questions_clips_per_cpu_s``: clips per CPU-second answering 5 questions (3 tokens each, as
  a random model never emits ``[SEP]``), ``caption_clips_per_cpu_s``: one 15-token caption;
* ``encoder_gflop_per_cpu_s``: the CLIP image encoder alone (the FLOPs of its matrix products,
  counted from the shapes) against ``matmul_gflop_per_cpu_s``, the same run's rate of a
  2048 x 2048 x 2048 product in that format (float32 and bfloat16: ``torch.mm``; int8: a
  dynamically quantised 2048-wide Linear on 2048 rows, input quantisation included), measured
  right before the encoder (the top-level ``matmul_gflop_per_cpu_s`` is the run's first
  measurement): the share of the machine's limit the encoder reaches;
* agreement with float32 on the same clips: the share of (clip, prompt) generations that are
  token for token float32's, and the mean |difference| of their mean log-probabilities
  (float32's own mean log-probability says how near-tied a random model's choices are).

    python benchmarks/bench_cpu.py --json                      # 2 clips per model and format
    python benchmarks/bench_cpu.py --clips 1 --models git-base-vatex --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import ARCHITECTURES, QUESTIONS, random_git_engine  # noqa: E402

from videoqa.engine import Generation, GitEngine, quantize_linear_layers  # noqa: E402

FORMATS = ("float32", "bfloat16", "int8")
VISION = {"hidden": 768, "intermediate": 3072, "layers": 12, "patch": 16}


def cpu_seconds(run: Callable[[], Any]) -> tuple[float, Any]:
    """CPU seconds of this process for ``run()`` (all its threads), and what it returned."""
    start = time.process_time()
    result = run()
    return time.process_time() - start, result


def matmul_rate(form: str, size: int = 2048, repeats: int = 3) -> float:
    """GFLOP per CPU-second of one size^3 matrix product in ``form`` (best of ``repeats``)."""
    torch.manual_seed(0)
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    if form == "int8":
        linear = torch.nn.Sequential(torch.nn.Linear(size, size, bias=False))
        quantize_linear_layers(linear, "matmul")  # type: ignore[arg-type]
        run: Callable[[], Any] = lambda: linear(a)  # noqa: E731
    else:
        dtype = getattr(torch, form)
        a, b = a.to(dtype), b.to(dtype)
        run = lambda: torch.mm(a, b)  # noqa: E731
    with torch.inference_mode():
        run()
        best = min(cpu_seconds(run)[0] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def encoder_gflop(image_size: int) -> float:
    """FLOPs of the CLIP image encoder's matrix products for one image (patch embedding,
    projections, MLP, attention scores and context); layer norms and softmax left out."""
    d, mlp, layers, patch = (VISION[k] for k in ("hidden", "intermediate", "layers", "patch"))
    patches = (image_size // patch) ** 2
    tokens = patches + 1
    per_layer = 4 * tokens * d * d + 2 * tokens * d * mlp + 2 * tokens * tokens * d
    macs = patches * 3 * patch * patch * d + layers * per_layer
    return 2 * macs / 1e9


def engine_in(name: str, form: str) -> GitEngine:
    """The random checkpoint in ``form`` (the same weights in each: seeded)."""
    dtype = torch.bfloat16 if form == "bfloat16" else torch.float32
    engine = random_git_engine(name, "cpu", dtype)
    if form == "int8":
        quantize_linear_layers(engine.model, engine.model_id)
        engine.quantize = "int8"
    return engine


def bench(name: str, form: str, clips: list, args: argparse.Namespace) -> dict[str, Any]:
    engine = engine_in(name, form)
    frames = engine.frames_per_clip or 1
    prompts = engine.question_prompts(QUESTIONS, args.answer_tokens)
    pixels = engine.pixel_values(clips).to(engine.dtype)
    flat = pixels.flatten(0, 1) if engine.frames_per_clip else pixels

    def encoder() -> Any:
        with torch.inference_mode():
            return engine._vision_features(flat)

    def answers() -> list[list[Generation]]:
        cache = engine.encode(clips)
        return engine.generate(cache, prompts, max_new_tokens=args.answer_tokens)

    def captions() -> list[list[Generation]]:
        cache = engine.encode(clips)
        return engine.generate(cache, engine.caption_prompts(), max_new_tokens=args.caption_tokens)

    engine.answer(clips[:1], QUESTIONS[:1], max_new_tokens=1)  # warm up (allocator, kernels)
    # The machine's rate right before the encoder's: on a shared machine it drifts with load.
    matmul = matmul_rate(form)
    encode_s, _ = cpu_seconds(encoder)
    answer_s, answered = cpu_seconds(answers)
    caption_s, captioned = cpu_seconds(captions)
    count = len(clips)
    gflop = encoder_gflop(engine.image_size) * frames * count
    return {
        "encoder_cpu_s_per_clip": encode_s / count,
        "encoder_gflop_per_cpu_s": gflop / encode_s,
        "matmul_gflop_per_cpu_s": matmul,
        "questions_cpu_s_per_clip": answer_s / count,
        "questions_clips_per_cpu_s": count / answer_s,
        "caption_cpu_s_per_clip": caption_s / count,
        "caption_clips_per_cpu_s": count / caption_s,
        "_generations": [g for row in [*answered, *captioned] for g in row],
        "_questions": len(QUESTIONS) * count,
    }


def agreement(mine: list[Generation], reference: list[Generation]) -> dict[str, float]:
    same = [a.token_ids == b.token_ids for a, b in zip(mine, reference, strict=True)]
    delta = [abs(a.score - b.score) for a, b in zip(mine, reference, strict=True)]
    return {"same_tokens": float(np.mean(same)), "mean_abs_delta_logprob": float(np.mean(delta))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2, help="clips per model and format")
    parser.add_argument("--models", default=",".join(ARCHITECTURES), help="comma-separated")
    parser.add_argument("--dtypes", default=",".join(FORMATS), help="formats, comma-separated")
    parser.add_argument("--answer-tokens", type=int, default=3)
    parser.add_argument("--caption-tokens", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    forms = args.dtypes.split(",")
    if forms[0] != "float32" or set(forms) - set(FORMATS):
        parser.error(f"--dtypes: float32 first (the reference), then any of {FORMATS}")

    result: dict[str, Any] = {
        "machine": {
            "cpu": torch.cpu.get_capabilities().get("cpu_name") or platform.processor(),
            "architecture": platform.machine(),
            "cores": os.cpu_count(),
            "avx512_bf16": bool(torch.cpu.get_capabilities().get("avx512_bf16")),
            "amx_bf16": bool(torch.cpu.get_capabilities().get("amx_bf16")),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "loadavg_start": list(os.getloadavg()),
        },
        "clips": args.clips,
        "answer_tokens": args.answer_tokens,
        "caption_tokens": args.caption_tokens,
        "matmul_gflop_per_cpu_s": {form: matmul_rate(form) for form in forms},
        "models": {},
    }
    for form, rate in result["matmul_gflop_per_cpu_s"].items():
        print(f"# matmul 2048^3 {form}: {rate:.0f} GFLOP per CPU-second", file=sys.stderr)
    for name in args.models.split(","):
        shape = ARCHITECTURES[name]
        rng = np.random.default_rng(0)
        side = shape["image_size"]
        size = (side, side * 16 // 9)  # a 16:9 frame at the processor's resize (then cropped)
        clips = [
            [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(shape["frames"] or 1)]
            for _ in range(args.clips)
        ]
        per_form: dict[str, Any] = {}
        for form in forms:
            measured = bench(name, form, clips, args)
            generations = measured.pop("_generations")
            questions = measured.pop("_questions")
            if form != forms[0]:
                reference = per_form[forms[0]]["_generations"]
                measured["agreement_questions"] = agreement(
                    generations[:questions], reference[:questions]
                )
                measured["agreement_captions"] = agreement(
                    generations[questions:], reference[questions:]
                )
                base = per_form[forms[0]]
                measured["caption_speedup"] = (
                    measured["caption_clips_per_cpu_s"] / base["caption_clips_per_cpu_s"]
                )
                measured["questions_speedup"] = (
                    measured["questions_clips_per_cpu_s"] / base["questions_clips_per_cpu_s"]
                )
            measured["encoder_share_of_matmul"] = (
                measured["encoder_gflop_per_cpu_s"] / measured["matmul_gflop_per_cpu_s"]
            )
            if form == forms[0]:  # how sure the reference is: log(1/30522) = -10.3 is uniform
                measured["mean_logprob_questions"] = float(
                    np.mean([g.score for g in generations[:questions]])
                )
                measured["mean_logprob_captions"] = float(
                    np.mean([g.score for g in generations[questions:]])
                )
            measured["_generations"] = generations
            per_form[form] = measured
            print(
                f"# {name} {form}: 5 questions {measured['questions_clips_per_cpu_s']:.3f} "
                f"clips/CPU-s, caption {measured['caption_clips_per_cpu_s']:.3f}, encoder "
                f"{measured['encoder_gflop_per_cpu_s']:.0f} GFLOP/CPU-s "
                f"({measured['encoder_share_of_matmul']:.0%} of matmul)",
                file=sys.stderr,
                flush=True,
            )
        for measured in per_form.values():
            measured.pop("_generations")
        result["models"][name] = per_form
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    if args.json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
