"""What finding shot cuts costs: frames per second of the detection pass against decoding alone.

``--clips shots`` decodes every frame of a video once, at about 256 pixels wide, and compares
each with the one before (PySceneDetect). Per video, best of ``--rounds``:

* ``decode``         ``FrameSampler.frames()`` at the detection size: decoding (and swscale's
                     resize, and the RGB conversion) alone;
* ``content``        ``shots.detect_cuts(detector="content")``: the same decoding plus
                     PySceneDetect's ContentDetector on every frame, as ``--clips shots`` does;
* ``adaptive``       the same with AdaptiveDetector;
* ``sd-opencv``, ``sd-pyav``  PySceneDetect opening the file itself (its OpenCV and PyAV
                     backends, its own downscaling), with ContentDetector: what we chose not to
                     do, for comparison; ``cuts`` says whether it found the same cuts.

Videos: generated ones (demo-world scenes cut hard into each other every few seconds, h264, at
320x240 and 1280x720; made once under ``benchmarks/_work``) and, when present, the clips of
``../shared/media`` (its README says what they are).

    python benchmarks/bench_shots.py
    python benchmarks/bench_shots.py --rounds 3 --json
    python benchmarks/bench_shots.py --video my.mp4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

from videoqa.demo.world import Scene, random_clip_scene, render
from videoqa.media import FrameSampler, probe
from videoqa.shots import DETECTION_INTERPOLATION, detect_cuts, detection_size

WORK = Path(__file__).resolve().parent / "_work"
SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
SHARED_CLIPS = ("nasa_13013.mp4", "flipping_a_pancake.mkv", "h265_video.mp4", "corrupted.mp4")
BACKGROUNDS = ((36, 36, 44), (200, 200, 190), (20, 60, 110), (120, 40, 40), (90, 140, 90))


def generated_video(
    width: int, height: int, seconds: float, *, backgrounds: bool = True, fps: int = 25
) -> tuple[Path, list[float], list[Scene]]:
    """Demo scenes cut hard into each other every 2.5-6 s (the file is made once, then reused):
    the path, where each scene begins (and the end), and the scenes (each played over [0, 1)).

    ``backgrounds``: each scene over its own background colour, as a cut in real footage
    changes most of the picture; else all over the demo world's one (what the demo model knows).
    """
    kind = "colours" if backgrounds else "demo"
    path = WORK / f"shots_{width}x{height}_{seconds:g}s_{kind}.mp4"
    rng = np.random.default_rng(7)
    bounds = [0.0]
    while bounds[-1] < seconds:
        bounds.append(min(seconds, bounds[-1] + float(rng.uniform(2.5, 6.0))))
    scenes = [random_clip_scene(rng, aspect=width / height)[0] for _ in bounds[1:]]
    if backgrounds:
        scenes = [
            dataclasses.replace(scene, background=BACKGROUNDS[k % len(BACKGROUNDS)])
            for k, scene in enumerate(scenes)
        ]
    if path.exists():
        return path, bounds, scenes
    WORK.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * fps)):
            now = index / fps
            shot = max(k for k in range(len(scenes)) if bounds[k] <= now)
            local = (now - bounds[shot]) / (bounds[shot + 1] - bounds[shot])
            frame = av.VideoFrame.from_ndarray(render(scenes[shot], local, width, height), "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    os.replace(partial, path)
    return path, bounds, scenes


def caption_comparison(seconds: float) -> list[dict]:
    """The demo model's captions of a video of demo scenes, fixed 5 s clips against shots.

    A clip whose frames come from one scene has one right caption (``caption_of`` its truth); a
    clip across a cut has none (it shows two scenes). Counts both, and the right ones.
    """
    from videoqa.demo.language import caption_of
    from videoqa.pipeline import VideoQA

    path, bounds, scenes = generated_video(320, 240, seconds, backgrounds=False)
    qa = VideoQA("demo", caption_model="demo", device="cpu")
    rows = []
    modes = {
        "fixed 5 s": {},
        "shots, content": {"clips": "shots"},
        "shots, adaptive": {"clips": "shots", "detector": "adaptive"},
    }
    for name, options in modes.items():
        report = qa.run(path, captions=True, **options)  # type: ignore[arg-type]
        one_scene = right = 0
        for clip in report.clips:
            assert clip.caption is not None
            times = clip.caption.frame_times
            shots = {max(k for k in range(len(scenes)) if bounds[k] <= t) for t in times}
            if len(shots) != 1:
                continue
            (k,) = shots
            local = [(t - bounds[k]) / (bounds[k + 1] - bounds[k]) for t in times]
            one_scene += 1
            right += clip.caption.text == caption_of(scenes[k].truth(local))
        rows.append({"clips": name, "cues": len(report.clips), "one_scene": one_scene,
                     "right": right, "scenes": len(scenes)})  # fmt: skip
    return rows


def best_of(
    rounds: int, run: Callable[[], tuple[int, object]]
) -> tuple[float, float, int, object]:
    """(best wall seconds, best CPU seconds of this process, frames, result) over ``rounds``.

    CPU seconds (every thread's) are the steadier number on a machine shared with other jobs:
    wall time there depends on how many threads a method runs to compete for the cores.
    """
    wall = cpu = float("inf")
    frames, result = 0, None
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        frames, result = run()
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - started_cpu)
    return wall, cpu, frames, result


def decode_only(path: Path) -> tuple[int, None]:
    info = probe(path)
    size = detection_size(info.width, info.height)
    with FrameSampler(path, size=size, interpolation=DETECTION_INTERPOLATION) as sampler:
        return sum(1 for _ in sampler.frames()), None


def ours(path: Path, detector: str) -> tuple[int, tuple[float, ...]]:
    found = detect_cuts(path, detector=detector)
    return found.frames, found.cuts


def scenedetect_itself(path: Path, backend: str) -> tuple[int, tuple[float, ...]]:
    from scenedetect import ContentDetector, SceneManager, open_video

    video = open_video(str(path), backend=backend)
    manager = SceneManager()
    manager.add_detector(ContentDetector())
    frames = manager.detect_scenes(video)
    scenes = manager.get_scene_list()
    return frames, tuple(round(start.seconds, 6) for start, _ in scenes[1:])


def bench_video(path: Path, rounds: int) -> dict:
    info = probe(path)
    small = detection_size(info.width, info.height)
    row: dict = {"video": path.name, "size": f"{info.width}x{info.height}",
                 "stream": info.video_stream, "codec": info.streams[info.video_stream].codec,
                 "detection_size": f"{small[0]}x{small[1]}"}  # fmt: skip
    runs: dict[str, Callable[[], tuple[int, object]]] = {
        "decode": lambda: decode_only(path),
        "content": lambda: ours(path, "content"),
        "adaptive": lambda: ours(path, "adaptive"),
        "sd-opencv": lambda: scenedetect_itself(path, "opencv"),
        "sd-pyav": lambda: scenedetect_itself(path, "pyav"),
    }
    cuts: dict[str, object] = {}
    for name, run in runs.items():
        try:
            seconds, cpu, frames, result = best_of(rounds, run)
        except Exception as error:  # a backend that cannot read the file: say so, go on
            row[name] = {"error": f"{type(error).__name__}: {error}".splitlines()[0][:120]}
            continue
        row[name] = {"frames": frames, "seconds": round(seconds, 4), "cpu_seconds": round(cpu, 4),
                     "fps": round(frames / seconds, 1) if seconds else None,
                     "fps_per_cpu_second": round(frames / cpu, 1) if cpu else None}  # fmt: skip
        if result is not None:
            cuts[name] = result
            row[name]["cuts"] = len(result)  # type: ignore[arg-type]
    row["content_cuts"] = list(cuts.get("content", ()))  # type: ignore[call-overload]
    for name in ("sd-opencv", "sd-pyav"):
        if name in cuts and "content" in cuts:
            same = _same_cuts(cuts["content"], cuts[name], info.fps)  # type: ignore[arg-type]
            row[name]["same_cuts_as_ours"] = same
    return row


def _same_cuts(ours: tuple[float, ...], theirs: tuple[float, ...], fps: float) -> bool:
    """Same number of cuts, each within one frame."""
    frame = 1 / fps if fps > 0 else 0.05
    return len(ours) == len(theirs) and all(
        abs(a - b) <= frame + 1e-6 for a, b in zip(ours, theirs, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, action="append",
                        help="a video to measure (repeatable) [default: generated, shared]")
    parser.add_argument("--rounds", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--captions", action="store_true",
                        help="instead: the demo model's captions, fixed clips against shots")
    args = parser.parse_args()

    if args.captions:
        rows = caption_comparison(60.0)
        if args.json:
            print(json.dumps({"captions": rows}))
        for row in rows:
            print(f"{row['clips']:16} {row['cues']:3} cues, {row['one_scene']:3} show one scene, "
                  f"{row['right']:3} right ({row['scenes']} scenes)")
        return
    generated = [generated_video(320, 240, 60.0), generated_video(1280, 720, 30.0)]
    videos = args.video or [path for path, _, _ in generated]
    if not args.video:
        videos += [SHARED_MEDIA / name for name in SHARED_CLIPS if (SHARED_MEDIA / name).exists()]
    rows = [bench_video(video, args.rounds) for video in videos]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}",
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "python": platform.python_version(),
        "av": av.__version__,
        "rounds": args.rounds,
        "videos": rows,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['machine']}; load {result['load_average']}; best of {args.rounds}")
    names = ("decode", "content", "adaptive", "sd-opencv", "sd-pyav")
    print("frames per second of wall time (frames per CPU-second of this process)")
    header = " ".join(f"{n:>19}" for n in names)
    print(f"{'video':28} {'size':>9} {'frames':>6} {header}  content/decode  cuts")
    for row in rows:
        cells = [
            f"{row[n]['fps']:>8} ({row[n]['fps_per_cpu_second']:>7})" if "fps" in row[n]
            else f"{'failed':>19}"
            for n in names
        ]  # fmt: skip
        both = "fps" in row["content"] and "fps" in row["decode"]
        ratio = row["content"]["fps"] / row["decode"]["fps"] if both else float("nan")
        frames = row["decode"].get("frames", "-")
        same = [row[n].get("same_cuts_as_ours") for n in ("sd-opencv", "sd-pyav")]
        cuts = row["content"].get("cuts", "-")
        print(f"{row['video'][:28]:28} {row['size']:>9} {frames:>6} {' '.join(cells)}"
              f"  {ratio:>14.2f}  {cuts} (same as sd: {same})")


if __name__ == "__main__":
    sys.exit(main())
