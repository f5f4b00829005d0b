"""Shapes-world scenes written as real videos with PyAV, and the scenes of ``sample_media/``.

A frame shown at timeline time ``t`` (seconds from the first frame, as players and videoqa
count) always shows ``scene`` at ``t``, whatever the frame rate, its variations or the
container's start time, so the ground truth of any moment is ``scene.truth(...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.video.stream import VideoStream

from videoqa.demo.world import RADIUS, Actor, Scene, render

logger = logging.getLogger("videoqa.demo.video")


def write_scene_video(
    path: str | Path,
    scene: Scene,
    *,
    duration: float = 10.0,
    width: int = 320,
    height: int = 240,
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    frame_times: Sequence[float] | None = None,
    start_time: float = 0.0,
    container_options: dict[str, str] | None = None,
) -> list[Fraction]:
    """Encode ``scene`` and return each frame's timeline time (seconds from the first frame).

    By default frames come every ``1/fps`` s for ``duration`` s. ``frame_times`` (timeline
    seconds, increasing, first one 0) gives a variable frame rate instead; ``start_time`` shifts
    every timestamp so that the container starts there (the timeline still starts at 0).
    ``options`` go to the encoder, ``container_options`` to the muxer (``movflags=faststart``).
    """
    time_base = Fraction(1, 90_000) if frame_times is not None or start_time else Fraction(1, fps)
    if frame_times is None:
        times = [Fraction(index, fps) for index in range(round(duration * fps))]
    else:
        times = [Fraction(time).limit_denominator(90_000) for time in frame_times]
        if times[0] != 0 or any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise ValueError("frame_times must start at 0 and increase")
    offset = round(Fraction(start_time).limit_denominator(90_000) / time_base)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        if not isinstance(stream, VideoStream):
            raise ValueError(f"{codec} is not a video encoder")
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if options:
            stream.options = dict(options)
        for time in times:
            rgb = render(scene, float(time), width, height)
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format=pix_fmt)
            frame.pts, frame.time_base = round(time / time_base) + offset, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    logger.debug("wrote %s: %d frames", path, len(times))
    return times


@dataclass(frozen=True)
class SampleScene:
    """A scene for ``sample_media/`` with how to encode it and what happens when."""

    file_name: str
    scene: Scene
    duration: float
    width: int
    height: int
    codec: str
    description: str


def _ping_pong(start: float, end: float, period: float, duration: float) -> list[float]:
    """Along-axis positions at 0, period, 2*period, ...: from start to end and back."""
    return [start if index % 2 == 0 else end for index in range(int(duration / period) + 1)]


def _circle_turns_blue() -> SampleScene:
    duration, period = 15.0, 5.0
    xs = _ping_pong(0.22, 0.78, period, duration)
    circle = Actor(
        "circle",
        RADIUS,
        tuple((index * period, x, 0.5) for index, x in enumerate(xs)),
        ((0.0, "red"), (5.0, "blue")),
    )
    return SampleScene(
        "circle_turns_blue.mp4",
        Scene((circle,)),
        duration,
        320,
        240,
        "libx264",
        "15 s, 320x240, 25 fps, h264: a red circle moves right (0-5 s), turns blue at 5 s and "
        "moves left (5-10 s), then right (10-15 s)",
    )


def _triangle_joins() -> SampleScene:
    duration, period = 10.0, 5.0
    ys = _ping_pong(0.22, 0.78, period, duration)
    path_for = lambda lane: tuple(  # noqa: E731
        (index * period, lane, y) for index, y in enumerate(ys)
    )
    square = Actor("square", RADIUS, path_for(0.25), ((0.0, "green"),))
    triangle = Actor("triangle", RADIUS, path_for(0.75), ((0.0, "yellow"),), appears=5.0)
    return SampleScene(
        "triangle_joins.webm",
        Scene((square, triangle)),
        duration,
        320,
        240,
        "libvpx-vp9",
        "10 s, 320x240, 25 fps, VP9 in WebM: a green square moves down (0-5 s); at 5 s a yellow "
        "triangle appears beside it and both move up (5-10 s)",
    )


#: The clips of ``sample_media/`` (made by ``tools/make_sample_media.py``), by file name.
SAMPLE_SCENES: dict[str, SampleScene] = {
    sample.file_name: sample for sample in (_circle_turns_blue(), _triangle_joins())
}
