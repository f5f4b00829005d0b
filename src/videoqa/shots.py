"""Clips at shot cuts: find the cuts with PySceneDetect, then make each shot a clip.

A subtitle cue reads best when it is a shot, and a model sees a clip best when its frames come
from one shot. PySceneDetect's detectors (``ContentDetector``, ``AdaptiveDetector``) compare
each frame with the one before, so every frame must be decoded: our sampler decodes the video
once, sequentially, straight to a low resolution inside swscale (PySceneDetect itself scales
frames to about 256 pixels wide before comparing them), and hands each frame to the detector's
``process_frame``. PySceneDetect never opens the file: decoding, rotation, aspect ratio,
deinterlacing, damaged packets and the timeline's times are the sampler's, as for every other
frame videoqa uses.

Shots shorter than ``min_clip`` are merged into a neighbour (the shorter one), shots longer
than ``max_clip`` are split into equal parts; each clip's frames are placed inside it as for
fixed clips (``clips.frame_times_in``). PySceneDetect is the optional ``shots`` extra.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2

from videoqa.clips import (
    DEFAULT_MAX_CLIP,
    DEFAULT_MIN_CLIP,
    Clip,
    check_clip_options,
    frame_times_in,
)
from videoqa.media import FrameSampler, VideoInfo, probe

logger = logging.getLogger("videoqa.shots")

DETECTION_WIDTH = 256
"""Frames are compared at this width (narrower videos at their own): PySceneDetect's default."""

DETECTION_INTERPOLATION = "FAST_BILINEAR"
"""swscale filter for the detection frames: its cheapest bilinear (decoding and resizing a 720p
frame cost a third less CPU than with ``BILINEAR``; ``benchmarks/bench_shots.py``), finer than
the comparison needs, which averages differences over the whole frame."""


@dataclass(frozen=True)
class CutDetection:
    """Where the shots of ``[start, end)`` begin, and what finding them cost."""

    cuts: tuple[float, ...]
    """Timeline seconds of the first frame of each new shot, in order (``start`` excluded)."""
    frames: int
    """Frames decoded and compared."""
    size: tuple[int, int]
    """(width, height) the frames were compared at."""


def make_detector(name: str) -> Any:
    """A new PySceneDetect detector by our name for it (``content`` or ``adaptive``)."""
    check_clip_options("shots", detector=name)
    import scenedetect

    if name == "adaptive":
        return scenedetect.AdaptiveDetector()
    return scenedetect.ContentDetector()


def detection_size(width: int, height: int, target: int = DETECTION_WIDTH) -> tuple[int, int]:
    """The upright frame scaled to ``target`` pixels wide (never enlarged), aspect kept."""
    if width <= target:
        return width, height
    return target, max(1, round(height * target / width))


def detect_cuts(
    path: str | os.PathLike[str],
    *,
    detector: str = "content",
    start: float = 0.0,
    end: float | None = None,
    stream: int | None = None,
    deinterlace: str = "auto",
    width: int = DETECTION_WIDTH,
    info: VideoInfo | None = None,
) -> CutDetection:
    """Decode ``[start, end)`` once at low resolution and return where shots begin.

    ``info`` is the video's ``probe`` when the caller has it already (else it is probed).
    Raises ``MediaError`` when the file cannot be decoded, ``ConfigError`` when PySceneDetect
    is not installed or ``detector`` is unknown.
    """
    shot_detector = make_detector(detector)
    from scenedetect.common import FrameTimecode, Timecode  # after make_detector's check

    info = info or probe(path, stream=stream)
    size = detection_size(info.width, info.height, width)
    rate = Fraction(info.fps).limit_denominator(100_000) if info.fps > 0 else Fraction(25)
    time_of: dict[int, float] = {}  # detector pts (from the first frame compared) -> our time
    first_pts: int | None = None
    position: Any = None
    cuts: list[Any] = []
    frames = 0
    started = time.monotonic()
    logger.info("%s: finding shot cuts (%s detector, frames at %dx%d)", path, detector, *size)
    with FrameSampler(
        path,
        stream=stream,
        size=size,
        interpolation=DETECTION_INTERPOLATION,
        deinterlace=deinterlace,
    ) as sampler:
        for frame in sampler.frames(start, end):
            first_pts = frame.pts if first_pts is None else first_pts
            relative = frame.pts - first_pts
            time_of[relative] = frame.pts_time
            position = FrameTimecode(Timecode(relative, frame.time_base), fps=rate)
            bgr = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)  # detectors take OpenCV's BGR
            cuts.extend(shot_detector.process_frame(position, bgr))
            frames += 1
    if position is not None:
        cuts.extend(shot_detector.post_process(position))
    times = sorted({time_of[cut.pts] for cut in cuts if cut.pts in time_of})
    seconds = time.monotonic() - started
    logger.info("%s: %d cuts in %d frames, %.1f s (%.0f frames/s)", path, len(times), frames,
                seconds, frames / seconds if seconds else 0.0)  # fmt: skip
    return CutDetection(cuts=tuple(t for t in times if t > start), frames=frames, size=size)


def shot_windows(
    cuts: Iterable[float],
    start: float,
    end: float,
    *,
    min_clip: float = DEFAULT_MIN_CLIP,
    max_clip: float = DEFAULT_MAX_CLIP,
) -> list[tuple[float, float]]:
    """Clip windows over ``[start, end)`` from shot cuts.

    A shot shorter than ``min_clip`` joins the shorter of its neighbours (the earlier one on a
    tie), shortest shots first, until none is shorter or one is left; then a shot longer than
    ``max_clip`` is split into the fewest equal parts no longer than it.
    """
    if min_clip < 0 or max_clip <= 0 or min_clip > max_clip:
        raise ValueError(
            f"need 0 <= min_clip <= max_clip and max_clip > 0, got {min_clip:g} and {max_clip:g}"
        )
    inner = sorted({cut for cut in cuts if start < cut < end})
    bounds = [start, *inner, end]
    while len(bounds) > 2:
        lengths = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
        shortest = min(range(len(lengths)), key=lengths.__getitem__)
        if lengths[shortest] >= min_clip - 1e-9:
            break
        before = lengths[shortest - 1] if shortest > 0 else math.inf
        after = lengths[shortest + 1] if shortest + 1 < len(lengths) else math.inf
        # Joining the previous shot removes the cut at its start, the next one the cut at its end.
        del bounds[shortest if before <= after else shortest + 1]
    windows: list[tuple[float, float]] = []
    for shot_start, shot_end in zip(bounds, bounds[1:], strict=False):
        parts = max(1, math.ceil((shot_end - shot_start) / max_clip - 1e-9))
        step = (shot_end - shot_start) / parts
        windows.extend(
            (shot_start + part * step, shot_start + (part + 1) * step) for part in range(parts)
        )
    return windows


def clips_from_windows(
    windows: Sequence[tuple[float, float]], frames_per_clip: int
) -> list[Clip]:
    """Numbered ``Clip``s with their frames at the centres of equal parts of each window."""
    return [
        Clip(
            index=index,
            start=round(start, 6),
            end=round(end, 6),
            frame_times=frame_times_in(start, end, frames_per_clip),
        )
        for index, (start, end) in enumerate(windows)
    ]
