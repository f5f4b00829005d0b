"""Where a clip's time goes in ``VideoQA``: the model against everything around it.

With randomly initialised checkpoints of the real architectures (``bench_engine.py`` builds
them: git-base-vqav2 shape, 480 px, one frame at a time; git-base-vatex shape, 224 px, 6
frames), on a real clip, per clip of 5 s:

* ``pipeline``  ``VideoQA.run``: probe, plan, sample frames at the model's size, run the
                engine, vote (image checkpoints), build the report;
* ``engine``    the engine alone, on the same frames already decoded;
* ``frames``    ``FrameSampler`` alone, the same frames at the same size.

``pipeline / engine`` is the cost of everything that is not the model (1.00x: nothing);
``frames / pipeline`` is the share of decoding.

    python benchmarks/bench_pipeline.py                     # ../shared/media/flipping_a_pancake.mkv
    python benchmarks/bench_pipeline.py --video my.mp4 --end 20
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import QUESTIONS, random_git_engine  # noqa: E402

from videoqa.clips import frame_times_in  # noqa: E402
from videoqa.media import FrameSampler  # noqa: E402
from videoqa.pipeline import VideoQA  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "media" / "flipping_a_pancake.mkv"


def bench(name: str, args: argparse.Namespace) -> dict[str, float]:
    engine = random_git_engine(name, "cpu", torch.float32)
    qa = VideoQA.from_engines(engine, engine)
    questions = QUESTIONS if engine.kind == "image" else ()
    options = {"clip_length": args.clip_length, "end": args.end,
               "max_new_tokens": args.answer_tokens, "caption_max_new_tokens": args.caption_tokens}
    job = qa.plan(args.video, questions=questions, captions=not questions, **options)
    role = job.answering or job.captioning
    times = [
        clip.frame_times if questions
        else frame_times_in(clip.start, clip.end, role.frames_per_clip)
        for clip in job.clips
    ]
    clips = len(job.clips)

    # Warm up the model once (allocator, kernels, lazy imports).
    with FrameSampler(args.video, size=role.frame_size) as sampler:
        warm = [frame.rgb for frame in sampler.sample(times[0])]
    run_engine(engine, [warm], questions, args)

    best = {"pipeline": float("inf"), "engine": float("inf"), "frames": float("inf")}
    for _ in range(args.rounds):
        start = time.perf_counter()
        with FrameSampler(args.video, size=role.frame_size) as sampler:
            frames = [[frame.rgb for frame in sampler.sample(t)] for t in times]
        best["frames"] = min(best["frames"], (time.perf_counter() - start) / clips)

        start = time.perf_counter()
        for clip_frames in frames:
            run_engine(engine, [clip_frames], questions, args)
        best["engine"] = min(best["engine"], (time.perf_counter() - start) / clips)

        start = time.perf_counter()
        qa.run(args.video, questions=questions, captions=not questions, **options)
        best["pipeline"] = min(best["pipeline"], (time.perf_counter() - start) / clips)
    best["clips"] = clips
    best["frames_per_clip"] = role.frames_per_clip
    return best


def run_engine(engine, clips, questions, args) -> None:
    """What the pipeline asks of the engine for these clips (image checkpoints: per frame)."""
    if engine.kind == "image":
        singles = [[frame] for frames in clips for frame in frames]
        engine.answer(singles, questions, max_new_tokens=args.answer_tokens)
    else:
        engine.caption(clips, max_new_tokens=args.caption_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--clip-length", type=float, default=5.0)
    parser.add_argument("--end", type=float, default=10.0, help="seconds of video to use")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, keep the best")
    parser.add_argument("--models", default="git-base-vqav2,git-base-vatex")
    parser.add_argument("--answer-tokens", type=int, default=3)
    parser.add_argument("--caption-tokens", type=int, default=15)
    args = parser.parse_args()
    if not args.video.is_file():
        raise SystemExit(f"bench_pipeline: {args.video}: no such file (use --video)")
    print(f"# {platform.machine()} CPU, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, float32, {args.video.name} to {args.end:g} s, {args.clip_length:g} s clips, "
          f"answers {args.answer_tokens} tokens, captions {args.caption_tokens} tokens")
    print(f"{'model':15} {'task':12} {'frames':>6} {'pipeline s/clip':>15} {'engine':>7} "
          f"{'frames':>7} {'pipeline/engine':>15} {'frames/pipeline':>15}")
    for name in args.models.split(","):
        t = bench(name, args)
        task = "5 questions" if name.endswith("vqav2") else "caption"
        print(f"{name:15} {task:12} {t['frames_per_clip']:6d} {t['pipeline']:15.3f} "
              f"{t['engine']:7.3f} {t['frames']:7.3f} {t['pipeline'] / t['engine']:14.2f}x "
              f"{100 * t['frames'] / t['pipeline']:14.1f}%", flush=True)


if __name__ == "__main__":
    main()
