"""What Ray costs: the same collection captioned by ``videoqa caption`` and by
``videoqa caption --ray auto`` on a local Ray cluster, each timed as the command a user runs.

Makes its own collection (``--files`` demo-world videos of ``--seconds`` s, 320x240, 10 fps,
h264, kept in benchmarks/_work/ray/ for the next run) and captions every ``--clip-length`` s
clip, writing JSON sidecars to a scratch folder. The model (``--model``):

- ``git-base-vatex`` (default): a randomly initialised GIT of git-base-vatex's architecture
  (6 frames of 224 px a clip), saved once as a checkpoint folder: the compute of the real
  checkpoint, which cannot be downloaded here. What a user's run costs.
- ``demo``: the shipped 6-frame, 32 px checkpoint. The model is next to nothing, so this
  measures what surrounds it: Ray's fixed start and its per-clip plumbing.

Each command is timed from its start to its exit (Python, imports, loading the model, every
file). The local command loads the model in its own process; the Ray command connects to the
cluster, and its model actor (a new process) loads the model. The cluster itself is started
first and not timed (``ray.init(num_cpus=--cpus)`` here, as a real cluster is already up);
the Ray command finds it through ``RAY_ADDRESS``. ``overhead`` is Ray's time over the local
command's, less one; ``ratio`` the clip rates' quotient (Ray over local).

    python benchmarks/bench_ray.py --json
    python benchmarks/bench_ray.py --model demo --seconds 60 --clip-length 1 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "ray"
MODELS = ("git-base-vatex", "demo")


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


def random_checkpoint(name: str) -> Path:
    """A checkpoint folder holding a randomly initialised GIT of ``name``'s architecture
    (saved once): what the model actors and the local command load by path."""
    folder = WORK / "models" / f"random-{name}"
    if (folder / "model.safetensors").exists():
        return folder
    import torch
    from bench_engine import ARCHITECTURES, random_git_engine

    engine = random_git_engine(name, "cpu", torch.float32)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    engine.model.save_pretrained(partial, safe_serialization=True)
    engine.tokenizer.save_pretrained(partial)
    side = ARCHITECTURES[name]["image_size"]
    (partial / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": side}, "crop_size": side})
    )
    partial.rename(folder)
    return folder


def run_command(arguments: list[str], env: dict[str, str]) -> float:
    """Seconds ``python -m videoqa ARGUMENTS`` took; its output goes to a log on failure."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "videoqa", *arguments], env=env,
                          capture_output=True, text=True)  # fmt: skip
    took = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"bench_ray: videoqa {' '.join(arguments[:1])} failed:\n{done.stderr[-3000:]}")
    return took


def captions(folder: Path) -> dict[str, list[str]]:
    """Each sidecar's captions, by video name."""
    found = {}
    for path in sorted(folder.glob("*.videoqa.json")):
        report = json.loads(path.read_text())
        found[path.name] = [clip["caption"]["text"] for clip in report["clips"]]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default=MODELS[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each file")
    parser.add_argument("--clip-length", type=float, default=5.0)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1,
                        help="CPUs of the local Ray cluster")
    parser.add_argument("--model-actors", type=int, default=1)
    parser.add_argument("--decode-tasks", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=4,
                        help="clips per model call, both commands (the local CPU default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import ray

    videos = [str(path) for path in make_collection(args.files, args.seconds)]
    model = "demo" if args.model == "demo" else str(random_checkpoint(args.model))
    common = ["caption", *videos, "--model", model, "--device", "cpu", "-f", "json",
              "--clip-length", str(args.clip_length), "--batch-size", str(args.batch_size)]
    ray_options = ["--ray", "auto", "--model-actors", str(args.model_actors)]
    if args.decode_tasks:
        ray_options += ["--decode-tasks", str(args.decode_tasks)]
    scratch = Path(tempfile.mkdtemp(prefix="bench_ray."))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    try:
        local_s = run_command([*common, "-o", str(scratch / "local")], env)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        # After ray.init, which puts the cluster's token in this process's environment.
        env = dict(os.environ, HF_HUB_OFFLINE="1",
                   RAY_ADDRESS=ray.get_runtime_context().gcs_address)  # fmt: skip
        ray_s = run_command([*common, "-o", str(scratch / "ray"), *ray_options], env)
        ray.shutdown()
        local, on_ray = captions(scratch / "local"), captions(scratch / "ray")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    clips = sum(len(texts) for texts in local.values())
    if len(local) != args.files or clips == 0:
        sys.exit(f"bench_ray: the local command wrote {len(local)} reports, {clips} clips")
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"load average {os.getloadavg()[0]:.1f} at the end",
        "python": platform.python_version(),
        "ray": ray.__version__,
        "model": args.model if args.model == "demo" else f"random {args.model} (full size)",
        "files": args.files,
        "seconds_per_file": args.seconds,
        "clips": clips,
        "batch_size": args.batch_size,
        "ray_cpus": args.cpus,
        "model_actors": args.model_actors,
        "local_runner_s": round(local_s, 2),
        "ray_local_s": round(ray_s, 2),
        "local_runner_clips_per_s": round(clips / local_s, 3),
        "ray_local_clips_per_s": round(clips / ray_s, 3),
        "ratio": round(local_s / ray_s, 3),
        "overhead": round(ray_s / local_s - 1, 3),
        "same_captions": local == on_ray,
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:26} {value}")
    if local != on_ray:
        sys.exit("bench_ray: the two commands captioned differently")


if __name__ == "__main__":
    main()
