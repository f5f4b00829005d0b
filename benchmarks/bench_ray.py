"""What Ray costs: the same collection through the local runner and through ``--ray local``.

Makes its own collection (``--files`` demo-world videos of ``--seconds`` s, 320x240, 10 fps,
h264, kept in benchmarks/_work/ray/ for the next run), captions every ``--clip-length`` s clip
with the shipped ``demo`` checkpoint (6 frames of 32 px a clip: a tiny model, so what is
measured is everything around the model: decoding, batching, moving clips between processes),
first with the local collection runner (``run_collection`` with its defaults: on the CPU it
decodes in a thread beside one inference loop; ``--workers N`` for processes), then on a local
Ray cluster (``ray.init(num_cpus=N)``, this machine's cores by default)
with ``run_on_ray``. Both write JSON sidecars to a scratch folder.

The Ray time includes what every Ray run pays: its model actors start (a new process imports
torch and loads the checkpoint) and its tasks are scheduled; starting the cluster itself
(``ray_init_s``) is not included, as a real cluster is already up. ``ray_first_file_s`` is when
the first file was delivered, ``ray_steady_clips_per_s`` the rate after that.

    python benchmarks/bench_ray.py --json
    python benchmarks/bench_ray.py --files 20 --seconds 60 --clip-length 1 --model-actors 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "ray"


def make_collection(files: int, seconds: float) -> list[Path]:
    """``files`` demo-world videos of ``seconds`` s each (made once, then reused)."""
    import numpy as np

    from videoqa.demo.video import write_scene_video
    from videoqa.demo.world import in_sequence, random_clip_scene

    WORK.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in range(files):
        path = WORK / f"scene{number:03d}_{seconds:g}s.mp4"
        if not path.exists():
            rng = np.random.default_rng(number)
            scenes = [random_clip_scene(rng)[0] for _ in range(max(1, round(seconds / 5)))]
            partial = path.with_suffix(".partial.mp4")
            write_scene_video(partial, in_sequence(scenes, seconds_each=5.0),
                              duration=seconds, fps=10)  # fmt: skip
            partial.rename(path)
        paths.append(path)
    return paths


def timed(outcomes) -> tuple[float, float, int, list]:  # type: ignore[no-untyped-def]
    """(seconds in all, seconds to the first outcome, clips, outcomes)."""
    began = time.perf_counter()
    first = None
    done = []
    for outcome in outcomes:
        if first is None:
            first = time.perf_counter() - began
        if not outcome.ok:
            raise SystemExit(f"bench_ray: {outcome.error}")
        done.append(outcome)
    total = time.perf_counter() - began
    return total, first or total, sum(len(o.report.clips) for o in done), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each file")
    parser.add_argument("--clip-length", type=float, default=1.0)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs of the local Ray cluster")
    parser.add_argument("--model-actors", type=int, default=1)
    parser.add_argument("--decode-tasks", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="clips per model call, both runners [default: the local runner's "
                             "CPU default]")
    parser.add_argument("--workers", type=int, default=None,
                        help="the local runner's decoding processes [default: its own]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import ray
    import torch

    from videoqa.collection import CPU_BATCH_SIZE, default_workers, run_collection
    from videoqa.distributed import RaySettings, run_on_ray
    from videoqa.pipeline import VideoQA

    torch.set_num_threads(1)
    batch_size = args.batch_size or CPU_BATCH_SIZE
    videos = make_collection(args.files, args.seconds)
    qa = VideoQA("demo", caption_model="demo", device="cpu")
    qa.caption_engine  # noqa: B018 - loaded before any clock starts
    options = {"captions": True, "clip_length": args.clip_length, "formats": ("json",)}
    scratch = Path(tempfile.mkdtemp(prefix="bench_ray."))
    try:
        local = timed(run_collection(qa, videos, workers=args.workers, batch_size=batch_size,
                                     output_dir=scratch / "local", **options))  # fmt: skip
        began = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray_init = time.perf_counter() - began
        settings = RaySettings(address="local", model_actors=args.model_actors,
                               decode_tasks=args.decode_tasks, batch_size=batch_size)
        on_ray = timed(run_on_ray(qa, videos, settings=settings, output_dir=scratch / "ray",
                                  **options))  # fmt: skip
        ray.shutdown()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    same_text = _texts(local[3]) == _texts(on_ray[3])
    local_rate = local[2] / local[0]
    ray_rate = on_ray[2] / on_ray[0]
    steady = (on_ray[2] - on_ray[2] / args.files) / max(on_ray[0] - on_ray[1], 1e-9)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"load average {os.getloadavg()[0]:.1f} at the end",
        "python": platform.python_version(),
        "ray": ray.__version__,
        "model": "demo (shipped checkpoint: GIT video, 6 frames of 32 px)",
        "files": args.files,
        "seconds_per_file": args.seconds,
        "clips": local[2],
        "batch_size": batch_size,
        "local_workers": default_workers("cpu", args.files) if args.workers is None
                         else args.workers,
        "ray_cpus": args.cpus,
        "model_actors": args.model_actors,
        "local_runner_s": round(local[0], 2),
        "ray_local_s": round(on_ray[0], 2),
        "ray_init_s": round(ray_init, 2),
        "ray_first_file_s": round(on_ray[1], 2),
        "local_runner_clips_per_s": round(local_rate, 2),
        "ray_local_clips_per_s": round(ray_rate, 2),
        "ray_steady_clips_per_s": round(steady, 2),
        "ratio": round(ray_rate / local_rate, 3),
        "same_captions": same_text,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:26} {value}")
    if not same_text:
        sys.exit("bench_ray: the two runners captioned differently")


def _texts(outcomes: list) -> dict[str, list[str]]:  # type: ignore[type-arg]
    return {o.path: [clip.caption.text for clip in o.report.clips] for o in outcomes}


if __name__ == "__main__":
    main()
