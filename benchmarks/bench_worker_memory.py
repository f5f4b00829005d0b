"""Does the worker's memory stay flat over a long run? And what does a long-lived worker save?

The daemon keeps one worker process (model loaded once) for every file. This runs the real
worker (a separate process, the real pipeline, the sidecar adapter writing JSON/SRT/WebVTT)
over ``--files`` short videos in a row and prints its resident memory after the first file and
after the last: the issue asks for less than 10 % growth over 300 files. It does so twice, in
two fresh processes: as shipped (freed memory handed back with glibc's ``malloc_trim`` after
each file) and with that turned off (``VIDEOQA_MALLOC_TRIM=0``), and prints both.

For comparison it also runs ``--fresh`` files with a fresh worker process per file (a fork of
the preloaded fork server plus a model load: what one ``videoqa process`` per file pays at
least) and prints the time ratio.

    python benchmarks/bench_worker_memory.py                    # tiny random GIT, 300 files
    python benchmarks/bench_worker_memory.py --model demo       # the shipped demo checkpoint
    python benchmarks/bench_worker_memory.py --model /path/to/checkpoint --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))


def run(worker, jobs, settings) -> list:
    """Each job through the worker in turn: ``(outcome, wall time when it ended)`` per file."""
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


def measure(args: argparse.Namespace) -> dict:
    """One variant, in this process: RSS after each file, wall times."""
    from indexed_video import write_indexed_video

    from videoqa.watch.config import FolderSettings
    from videoqa.watch.worker import Worker

    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        model = args.model
        if model is None:
            from tiny_git import save_tiny_git

            model = str(save_tiny_git(root / "tiny-git", frames=3))
        folder = root / "videos"
        folder.mkdir()
        frames = max(1, round(args.seconds * 24))
        write_indexed_video(root / "source.mp4", frames=frames, width=args.size, height=args.size)
        paths = [folder / f"clip-{index:04d}.mp4" for index in range(max(args.files, args.fresh))]
        for path in paths:
            shutil.copyfile(root / "source.mp4", path)
        settings = FolderSettings(
            folder=folder, model=model, caption_model=model, questions=("what is this?",),
            captions=True, threads=args.threads, adapters=("sidecars",),
        )  # fmt: skip

        started = time.perf_counter()
        with Worker(time_limit=600) as worker:
            timed = run(worker, list(enumerate(paths[: args.files])), settings)
        result = {
            "rss_mib": [outcome.rss_bytes / 2**20 for outcome, _ in timed],
            "median_seconds": statistics.median(outcome.seconds for outcome, _ in timed),
            "first_file": timed[0][1] - started,
            "long_lived": (timed[-1][1] - timed[0][1]) / (len(timed) - 1),
        }
        if args.fresh:
            started = time.perf_counter()
            for job_id, path in enumerate(paths[: args.fresh]):
                with Worker(time_limit=600) as worker:
                    run(worker, [(job_id, path)], settings)
            result["fresh"] = (time.perf_counter() - started) / args.fresh
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--fresh", type=int, default=10, help="files for the fresh-worker run")
    parser.add_argument("--model", help="checkpoint (default: a tiny random GIT)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    parser.add_argument("--size", type=int, default=64, help="width and height of each video")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the worker")
    parser.add_argument("--one-variant", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.files < 2:
        parser.error("--files must be at least 2")
    if args.one_variant:
        print(json.dumps(measure(args)))
        return

    results = {}
    for name, trim in (("as shipped (malloc_trim)", "1"), ("without malloc_trim", "0")):
        command = [sys.executable, __file__, "--one-variant", *sys.argv[1:]]
        if trim == "0":
            command += ["--fresh", "0"]
        output = subprocess.run(command, env={**os.environ, "VIDEOQA_MALLOC_TRIM": trim},
                                check=True, capture_output=True, text=True).stdout  # fmt: skip
        results[name] = json.loads(output.strip().splitlines()[-1])

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, no GPU; torch threads "
          f"{args.threads}; model {args.model or 'tiny random GIT'}; "
          f"{args.files} videos of {args.seconds:g} s at {args.size}x{args.size}")  # fmt: skip
    for name, result in results.items():
        rss = result["rss_mib"]
        print(f"{name:26} RSS after file 1 {rss[0]:7.1f} MiB, after file {len(rss)} "
              f"{rss[-1]:7.1f} MiB, max {max(rss):7.1f} MiB: growth {rss[-1] / rss[0] - 1:+.2%} "
              f"(goal < +10%)")  # fmt: skip
    shipped = results["as shipped (malloc_trim)"]
    print(f"median worker time per file: {shipped['median_seconds']:.3f} s; first file "
          f"(fork server start, model load): {shipped['first_file']:.2f} s")  # fmt: skip
    print(f"long-lived worker: {shipped['long_lived']:.3f} s/file; fresh worker per file "
          f"(fork + model load): {shipped['fresh']:.3f} s/file; ratio fresh / long-lived "
          f"{shipped['fresh'] / shipped['long_lived']:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
