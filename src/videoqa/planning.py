"""The one planning function every path goes through: a probed video's clips, fixed or shots.

``VideoQA.plan`` (and so the collection runner, Ray's planning tasks and the daemon's worker)
calls :func:`plan_video_clips`; fixed windows come from ``videoqa.clips``, shots from
``videoqa.shots`` (imported only when shots are planned: it brings PySceneDetect and OpenCV).
Here rather than in ``clips``, which ``shots`` builds on: planning stands above both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from videoqa.clips import (
    DEFAULT_CLIP_LENGTH,
    DEFAULT_MAX_CLIP,
    DEFAULT_MIN_CLIP,
    Clip,
    check_clip_options,
    plan_clips,
)
from videoqa.errors import ConfigError
from videoqa.report import ShotSampling

if TYPE_CHECKING:
    from videoqa.media import VideoInfo


@dataclass(frozen=True)
class ClipPlan:
    """A video's clips and how they were cut: what the report's ``sampling`` records."""

    clips: list[Clip]
    mode: str = "fixed"
    shots: ShotSampling | None = None
    """Shots mode: the detector, the limits, and where it found shots beginning."""


def plan_video_clips(
    path: str | os.PathLike[str],
    info: VideoInfo,
    *,
    frames_per_clip: int,
    clips: str = "fixed",
    clip_length: float = DEFAULT_CLIP_LENGTH,
    stride: float | None = None,
    start: float = 0.0,
    end: float | None = None,
    min_clip: float = DEFAULT_MIN_CLIP,
    max_clip: float = DEFAULT_MAX_CLIP,
    detector: str = "content",
    stream: int | None = None,
    deinterlace: str = "auto",
) -> ClipPlan:
    """The clips of one probed video, fixed or at shot cuts.

    ``fixed`` uses ``clip_length`` and ``stride`` (``plan_clips``); ``shots`` decodes
    ``[start, end)`` once to find the cuts (``videoqa.shots``), merges shots shorter than
    ``min_clip`` and splits those longer than ``max_clip``. Raises ``ConfigError`` for options
    that cannot work (naming the file when it is about this video), ``MediaError`` when the
    shots pass cannot decode the file.
    """
    check_clip_options(clips, detector=detector, min_clip=min_clip, max_clip=max_clip,
                       stride=stride)  # fmt: skip
    try:
        if clips == "fixed":
            planned = plan_clips(
                info.duration,
                frames_per_clip=frames_per_clip,
                clip_length=clip_length,
                stride=stride,
                start=start,
                end=end,
            )
            return ClipPlan(planned)
        last = info.duration if end is None else min(end, info.duration)
        if start < 0 or last <= start:
            raise ValueError(f"nothing to plan: start {start:g} s is not before end {last:g} s")
    except ValueError as error:
        raise ConfigError(path, str(error)) from None
    from videoqa import shots

    found = shots.detect_cuts(
        path, detector=detector, start=start, end=last, stream=stream,
        deinterlace=deinterlace, info=info,
    )  # fmt: skip
    windows = shots.shot_windows(found.cuts, start, last, min_clip=min_clip, max_clip=max_clip)
    return ClipPlan(
        shots.clips_from_windows(windows, frames_per_clip),
        mode="shots",
        shots=ShotSampling(detector, min_clip, max_clip, found.cuts),
    )


__all__ = ["ClipPlan", "plan_video_clips"]
