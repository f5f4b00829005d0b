"""Checks for a machine with a CUDA GPU: half-precision answers, then the benchmark on the GPU.

1. Agreement, on the tiny test checkpoints (image and video) and on the shipped demo model
   when it is there: for float16 and bfloat16, the share of answers and captions that are
   token-for-token those of transformers' ``generate`` in the same precision, and the share
   whose text equals the engine's own float32 answer on the GPU.
2. ``bench_engine.py --device cuda`` (half precision, wall time).

Without CUDA it says so and exits 0, so it can sit in any script. ``--device cpu`` runs part 1
on the CPU (slowly, float16 included) to check the script itself.

    python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --skip-bench --device cpu
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

QUESTIONS = ["what is the color of the car ?", "how many", "what is the man doing", ""]
MAX_NEW_TOKENS = 8


def generate_ids(engine, pixels: torch.Tensor, question: str | None) -> list[int]:
    """transformers' greedy ``generate`` for one clip, prompt ``[CLS]`` + question."""
    tokenizer = engine.tokenizer
    kwargs = {}
    start = 1
    if question is not None:
        ids = [tokenizer.cls_token_id, *tokenizer(question, add_special_tokens=False).input_ids]
        kwargs["input_ids"] = torch.tensor([ids], device=engine.device)
        start = len(ids)
    output = engine.model.generate(
        pixel_values=pixels.to(engine.device, engine.dtype),
        max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        **kwargs,
    )
    return output[0, start:].tolist()


def agreement(folder: str, device: str, clips_count: int) -> None:
    from videoqa.engine import GitEngine

    reference = GitEngine.load(folder, device=device, dtype="float32")
    rng = np.random.default_rng(0)
    frames = reference.frames_per_clip or 1
    clips = [
        [rng.integers(0, 256, (180, 320, 3), dtype=np.uint8) for _ in range(frames)]
        for _ in range(clips_count)
    ]
    full_answers = reference.answer(clips, QUESTIONS, max_new_tokens=MAX_NEW_TOKENS)
    full_captions = reference.caption(clips, max_new_tokens=MAX_NEW_TOKENS)
    pixels = reference.pixel_values(clips)
    for dtype in ("float16", "bfloat16"):
        engine = GitEngine.load(folder, device=device, dtype=dtype)
        prompts = [
            [engine.prompt_start_id, *engine.tokenizer(q, add_special_tokens=False).input_ids]
            for q in QUESTIONS
        ]
        with torch.inference_mode():
            ours = engine.generate(engine.encode(clips), prompts, max_new_tokens=MAX_NEW_TOKENS)
            captions = engine.generate(
                engine.encode(clips), [[engine.bos_token_id]], max_new_tokens=MAX_NEW_TOKENS
            )
        same_as_generate = same_as_float32 = total = 0
        for clip in range(len(clips)):
            for index, question in enumerate([*QUESTIONS, None]):
                mine = ours[clip][index] if question is not None else captions[clip][0]
                expected = generate_ids(engine, pixels[clip : clip + 1], question)
                same_as_generate += list(mine.token_ids) == expected
                full = full_answers[clip][index] if question is not None else full_captions[clip]
                same_as_float32 += engine.decode(mine).text == full.text
                total += 1
        print(
            f"{folder}: {dtype} on {device}: {same_as_generate}/{total} token-for-token as "
            f"generate in {dtype}; {same_as_float32}/{total} texts as float32",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--clips", type=int, default=4)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU here; nothing checked")
        return
    from tiny_git import TINY_VIDEO_FRAMES, save_tiny_git

    import videoqa

    with tempfile.TemporaryDirectory() as scratch:
        folders = [
            str(save_tiny_git(Path(scratch) / "image")),
            str(save_tiny_git(Path(scratch) / "video", frames=TINY_VIDEO_FRAMES)),
        ]
        demo = Path(videoqa.__file__).parent / "demo_model"
        if (demo / "config.json").is_file():
            folders.append(str(demo))
        for folder in folders:
            agreement(folder, args.device, args.clips)
    if not args.skip_bench and args.device == "cuda":
        bench = [sys.executable, str(HERE / "bench_engine.py"), "--device", "cuda"]
        subprocess.run([*bench, "--clips", "8", "--rounds", "2"], check=True)
        subprocess.run([*bench, "--clips", "8", "--rounds", "2", "--dtype", "float32"], check=True)


if __name__ == "__main__":
    main()
