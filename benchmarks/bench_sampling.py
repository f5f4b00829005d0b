"""Frame sampling speed: videoqa's FrameSampler against the usual alternatives, in one run.

Generates (once, into benchmarks/_work/) 640x360 30 fps h264 videos with B-frames, one with
2 s GOPs and one with 10 s GOPs. Every frame carries its index in a strip of bands at the top
(tests/indexed_video.py) over moving texture below, so each method's frames are checked for
exactness too. Two patterns:

  clips   6 frames per 5 s clip across the whole video (videoqa.clips.plan_clips)
  random  10 frames at random times, five different sets, each on a freshly opened file

Methods, each delivering RGB frames at the model's input size (224x224):
  videoqa        FrameSampler(size=(224, 224)): seek/read ahead, resize inside swscale
  videoqa-deinterlaced  the same with deinterlace="on": every decoded frame through FFmpeg's
                 bwdif (what an interlaced file costs; these videos are progressive)
  read_video_pyav  the transformers GIT docs example: decode from the start, keep the wanted
                 indices (FFmpeg threading on, for fairness), then cv2.resize
  opencv         cv2.VideoCapture, CAP_PROP_POS_MSEC per time, then cv2.resize
  torchcodec     VideoDecoder(seek_mode="exact").get_frames_played_at, then cv2.resize
                 (skipped when torchcodec does not import)

Prints wall seconds and CPU seconds (all threads; each the best of --repeat, the methods taking
turns; a method that needs over 10 s for a pattern runs once), requested frames per second,
each method's time as a ratio of ours ("x ours" above 1: slower than videoqa), exact frames,
and decoded frames against the minimum (for each target the frames from its keyframe up to it,
counted once where targets share them).

    python benchmarks/bench_sampling.py            # 2-minute videos, best of 3
    python benchmarks/bench_sampling.py --quick    # 40-second videos, one repeat
    python benchmarks/bench_sampling.py --methods videoqa,videoqa-deinterlaced
"""

from __future__ import annotations

import argparse
import bisect
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from indexed_video import index_image, read_index  # noqa: E402

from videoqa.clips import plan_clips  # noqa: E402
from videoqa.media import FrameSampler  # noqa: E402

WORK = Path(__file__).resolve().parent / "_work"
WIDTH, HEIGHT, RATE = 640, 360, 30
STRIP = 96  # rows at the top that show the frame index
BITS = 14
MODEL_SIZE = (224, 224)
SLOW_SECONDS = 10.0  # a method slower than this in one run is not repeated


# -- videos ---------------------------------------------------------------------------------------


def make_video(path: Path, seconds: int, gop_seconds: int) -> None:
    """h264 with B-frames, fixed GOPs, an index strip over a scrolling texture."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (1024, 1024), np.uint8), (0, 0), 3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    keyint = gop_seconds * RATE
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {
            "preset": "veryfast",
            "crf": "23",
            "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=3:b-adapt=0",
        }
        stream.codec_context.thread_count = 0
        for index in range(seconds * RATE):
            grey = np.empty((HEIGHT, WIDTH), np.uint8)
            grey[:STRIP] = index_image(index, WIDTH, STRIP, BITS)
            y, x = (3 * index) % 512, (5 * index) % 384
            grey[STRIP:] = texture[y : y + HEIGHT - STRIP, x : x + WIDTH]
            rgb = np.repeat(grey[:, :, None], 3, axis=2)
            rgb[STRIP:, :, 0] = np.roll(grey[STRIP:], index % 64, axis=1)  # colour and motion
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    tmp.rename(path)


def keyframe_indices(path: Path) -> list[int]:
    """Frame indices of the keyframes, from the packets (no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = 1 / (stream.average_rate * stream.time_base)
        return sorted(
            round(packet.pts / step)
            for packet in container.demux(stream)
            if packet.is_keyframe and packet.pts is not None
        )


def frame_index(seconds: float) -> int:
    """The frame shown at ``seconds`` in these constant-rate files."""
    return int(seconds * RATE + 1e-6)


def minimum_decodes(keyframes: Sequence[int], times: Sequence[float]) -> int:
    needed: set[int] = set()
    for seconds in times:
        index = frame_index(seconds)
        keyframe = keyframes[bisect.bisect_right(keyframes, index) - 1]
        needed.update(range(keyframe, index + 1))
    return len(needed)


def shown_index(rgb: np.ndarray) -> int:
    strip = rgb[: int(rgb.shape[0] * STRIP / HEIGHT) - 1]
    try:
        return read_index(strip, BITS)
    except AssertionError:
        return -1


# -- methods: each takes (path, times) and returns (RGB frames at MODEL_SIZE, decoded or None) ----


def with_videoqa(path: Path, times: Sequence[float]) -> tuple[list[np.ndarray], int | None]:
    with FrameSampler(path, size=MODEL_SIZE) as sampler:
        frames = sampler.sample(times)
        return [frame.rgb for frame in frames], sampler.decoded_frames


def with_videoqa_deinterlaced(
    path: Path, times: Sequence[float]
) -> tuple[list[np.ndarray], int | None]:
    with FrameSampler(path, size=MODEL_SIZE, deinterlace="on") as sampler:
        frames = sampler.sample(times)
        return [frame.rgb for frame in frames], sampler.decoded_frames


def _model_size(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, MODEL_SIZE, interpolation=cv2.INTER_CUBIC)


def with_read_video_pyav(path: Path, times: Sequence[float]) -> tuple[list[np.ndarray], int]:
    """The transformers GIT docs' read_video_pyav, given the indices of all times at once."""
    indices = [frame_index(t) for t in times]
    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    decoded = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        end_index = max(indices)
        for i, frame in enumerate(container.decode(video=0)):
            decoded += 1
            if i > end_index:
                break
            if i in wanted:
                found[i] = _model_size(frame.to_ndarray(format="rgb24"))
    return [found[i] for i in indices], decoded


def with_opencv(path: Path, times: Sequence[float]) -> tuple[list[np.ndarray], None]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        for seconds in times:
            capture.set(cv2.CAP_PROP_POS_MSEC, seconds * 1000)
            ok, bgr = capture.read()
            if not ok:
                frames.append(np.zeros((*MODEL_SIZE[::-1], 3), np.uint8))
                continue
            frames.append(_model_size(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    finally:
        capture.release()
    return frames, None


def torchcodec_method() -> Callable | None:
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as error:  # not installed, or its FFmpeg libraries are missing
        print(f"torchcodec: skipped ({type(error).__name__}: {str(error).splitlines()[0][:90]})")
        return None

    def with_torchcodec(path: Path, times: Sequence[float]) -> tuple[list[np.ndarray], None]:
        decoder = VideoDecoder(
            str(path), seek_mode="exact", num_ffmpeg_threads=0, dimension_order="NHWC"
        )
        batch = decoder.get_frames_played_at(seconds=list(times))
        return [_model_size(rgb) for rgb in batch.data.numpy()], None

    return with_torchcodec


# -- running --------------------------------------------------------------------------------------


def measure(methods: dict[str, Callable], path: Path, time_sets: list[list[float]], repeat: int):
    """Best wall time of each method; methods take turns so that load from other processes
    on the machine falls on all of them alike."""
    best = dict.fromkeys(methods, float("inf"))
    best_cpu = dict.fromkeys(methods, float("inf"))
    outcome = {}
    for round_number in range(repeat):
        for name, method in methods.items():
            if round_number and best[name] > SLOW_SECONDS:
                continue  # one run says enough; repeats would only stretch the benchmark
            started, started_cpu = time.perf_counter(), time.process_time()
            results = [method(path, times) for times in time_sets]
            best[name] = min(best[name], time.perf_counter() - started)
            best_cpu[name] = min(best_cpu[name], time.process_time() - started_cpu)
            exact = sum(
                shown_index(rgb) == frame_index(t)
                for (frames, _), times in zip(results, time_sets, strict=True)
                for rgb, t in zip(frames, times, strict=True)
            )
            decoded = [d for _, d in results]
            outcome[name] = (exact, None if None in decoded else sum(decoded))
    return {name: (best[name], best_cpu[name], *outcome[name]) for name in methods}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 s videos, one repeat")
    parser.add_argument("--seconds", type=int, default=None, help="video length")
    parser.add_argument("--repeat", type=int, default=None, help="best of N runs")
    parser.add_argument(
        "--methods", default=None, help="comma-separated methods to run [default: all]"
    )
    args = parser.parse_args()
    seconds = args.seconds or (40 if args.quick else 120)
    repeat = args.repeat or (1 if args.quick else 3)

    methods: dict[str, Callable] = {
        "videoqa": with_videoqa,
        "videoqa-deinterlaced": with_videoqa_deinterlaced,
        "read_video_pyav": with_read_video_pyav,
        "opencv": with_opencv,
    }
    chosen = args.methods.split(",") if args.methods else [*methods, "torchcodec"]
    if "torchcodec" in chosen and (torchcodec := torchcodec_method()) is not None:
        methods["torchcodec"] = torchcodec
    unknown = sorted(set(chosen) - set(methods) - {"torchcodec"})
    if unknown or "videoqa" not in chosen:
        parser.error(f"unknown methods {unknown}; 'videoqa' (the reference) must be among them")
    methods = {name: method for name, method in methods.items() if name in chosen}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, "
        f"PyAV {av.__version__}, OpenCV {cv2.__version__}; {seconds} s videos, best of {repeat}"
    )
    WORK.mkdir(exist_ok=True)
    for gop in (2, 10):
        path = WORK / f"bench_{seconds}s_gop{gop}.mp4"
        if not path.exists():
            print(f"encoding {path.name} ...", flush=True)
            make_video(path, seconds, gop)
        keyframes = keyframe_indices(path)
        duration = seconds - 1 / RATE
        clip_times = [
            t for clip in plan_clips(duration, frames_per_clip=6) for t in clip.frame_times
        ]
        rng = random.Random(gop)
        random_sets = [sorted(rng.uniform(0, duration) for _ in range(10)) for _ in range(5)]
        for pattern, time_sets in (("clips", [clip_times]), ("random", random_sets)):
            total = sum(len(times) for times in time_sets)
            minimum = sum(minimum_decodes(keyframes, times) for times in time_sets)
            print(
                f"\n{path.name}: {gop} s GOPs, pattern {pattern}: {total} frames, "
                f"minimum decodes {minimum}"
            )
            print(
                f"  {'method':<22}{'wall s':>8}{'frames/s':>10}{'x ours':>8}{'cpu s':>8}"
                f"{'x ours':>8}{'exact':>9}{'decoded':>9}{'/ min':>7}"
            )
            results = measure(methods, path, time_sets, repeat)
            ours, ours_cpu = results["videoqa"][:2]
            for name, (elapsed, cpu, exact, decoded) in results.items():
                ratio = f"{decoded / minimum:.2f}" if decoded is not None else "-"
                shown = decoded if decoded is not None else "-"
                print(
                    f"  {name:<22}{elapsed:>8.3f}{total / elapsed:>10.1f}{elapsed / ours:>8.2f}"
                    f"{cpu:>8.3f}{cpu / ours_cpu:>8.2f}{exact:>5}/{total:<3}"
                    f"{shown:>9}{ratio:>7}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
