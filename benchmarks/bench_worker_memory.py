"""Does the worker's memory stay flat over a long run? And what does a long-lived worker save?

The daemon keeps one worker process (model loaded once) for every file. This runs the real
worker (a separate process, the real pipeline, the sidecar adapter writing JSON/SRT/WebVTT)
over ``--files`` short videos in a row and prints its resident memory after the first file and
after the last: the issue asks for less than 10 % growth over 300 files.

For comparison it then runs ``--fresh`` files with a fresh worker process per file (what a
watcher that starts ``videoqa process`` per file pays) and prints the time ratio.

    python benchmarks/bench_worker_memory.py                    # tiny random GIT, 300 files
    python benchmarks/bench_worker_memory.py --model demo       # the shipped demo checkpoint
    python benchmarks/bench_worker_memory.py --model /path/to/checkpoint --seconds 10
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def make_video(path: Path, seconds: float, size: int) -> None:
    sys.path.insert(0, str(TESTS))
    from indexed_video import write_indexed_video

    write_indexed_video(path, frames=max(1, round(seconds * 24)), width=size, height=size)


def run(worker, jobs, settings) -> list:
    """Each job through the worker in turn; the outcomes, with the wall time after each file."""
    outcomes = []
    for job_id, path in jobs:
        worker.submit(job_id, path, settings)
        outcome = None
        while outcome is None:
            outcome = worker.wait(1.0)
        if not outcome.ok:
            raise SystemExit(f"failed: {outcome.error}")
        outcomes.append((outcome, time.perf_counter()))
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--fresh", type=int, default=10, help="files for the fresh-worker run")
    parser.add_argument("--model", help="checkpoint (default: a tiny random GIT)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    parser.add_argument("--size", type=int, default=64, help="width and height of each video")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the worker")
    args = parser.parse_args()

    from videoqa.watch.config import FolderSettings
    from videoqa.watch.worker import Worker

    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        model = args.model
        if model is None:
            sys.path.insert(0, str(TESTS))
            from tiny_git import save_tiny_git

            model = str(save_tiny_git(root / "tiny-git", frames=3))
        folder = root / "videos"
        folder.mkdir()
        make_video(root / "source.mp4", args.seconds, args.size)
        count = max(args.files, args.fresh)
        paths = [folder / f"clip-{index:04d}.mp4" for index in range(count)]
        for path in paths:
            shutil.copyfile(root / "source.mp4", path)
        settings = FolderSettings(
            folder=folder, model=model, caption_model=model, questions=("what is this?",),
            captions=True, threads=args.threads, adapters=("sidecars",),
        )  # fmt: skip

        started = time.perf_counter()
        with Worker(time_limit=600) as worker:
            timed = run(worker, list(enumerate(paths[: args.files])), settings)
        first_file = timed[0][1] - started
        long_lived = (timed[-1][1] - timed[0][1]) / (len(timed) - 1)
        outcomes = [outcome for outcome, _ in timed]

        started = time.perf_counter()
        for job_id, path in enumerate(paths[: args.fresh]):
            with Worker(time_limit=600) as worker:
                run(worker, [(job_id, path)], settings)
        fresh = time.perf_counter() - started

    rss = [outcome.rss_bytes / 2**20 for outcome in outcomes]
    growth = rss[-1] / rss[0] - 1
    per_file = statistics.median(outcome.seconds for outcome in outcomes)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch threads "
          f"{args.threads}; model {args.model or 'tiny random GIT'}; "
          f"videos {args.seconds:g} s at {args.size}x{args.size}")  # fmt: skip
    print(f"worker RSS after file 1:        {rss[0]:8.1f} MiB")
    print(f"worker RSS after file {len(rss):<4}      {rss[-1]:8.1f} MiB")
    print(f"worker RSS max over the run:    {max(rss):8.1f} MiB")
    print(f"growth after the first file:    {growth:+8.2%}   (goal: < +10%)")
    print(f"median time per file (worker):  {per_file:8.3f} s")
    print(f"first file (fork server start, model load): {first_file:.2f} s")
    print(f"long-lived worker, files 2..{len(timed)}: {long_lived:.3f} s/file (wall)")
    print(f"fresh worker per file (fork + model load):  {fresh / args.fresh:.3f} s/file (wall)")
    print(f"ratio fresh / long-lived: {fresh / args.fresh / long_lived:.1f}x")


if __name__ == "__main__":
    main()
