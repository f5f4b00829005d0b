"""Plan clips over a video's timeline.

A clip is a window of the timeline (seconds from the start of the video as a player shows it)
and the times of the frames the model will see inside it: the centres of N equal parts of the
window, so frames are spread evenly and never sit on a clip boundary. Windows are fixed
(``plan_clips``: every ``stride`` seconds) or shots (``videoqa.shots``: from cut to cut);
``videoqa.planning.plan_video_clips`` chooses between them for every path.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from videoqa.errors import ConfigError

DEFAULT_CLIP_LENGTH = 5.0
"""Seconds per clip: about one subtitle cue."""

CLIP_MODES = ("fixed", "shots")
"""``fixed``: windows of ``clip_length`` every ``stride`` s; ``shots``: from cut to cut."""
DETECTORS = ("content", "adaptive")
"""PySceneDetect's ``ContentDetector`` and ``AdaptiveDetector``."""
SHOTS_INSTALL_HINT = "shots need PySceneDetect: pip install 'videoqa[shots]'"
DEFAULT_MIN_CLIP = 1.0
"""Shots shorter than this (seconds) are merged into a neighbour: a cue must stay readable."""
DEFAULT_MAX_CLIP = 10.0
"""Shots longer than this (seconds) are split into equal parts: a clip's few frames must still
show what happens in it."""

MIN_LAST_CLIP_FRACTION = 0.25
"""A shorter last clip is kept when it covers at least this fraction of a full clip."""


@dataclass(frozen=True)
class Clip:
    """One window of the timeline and the times of the frames sampled inside it."""

    index: int
    start: float
    end: float
    frame_times: tuple[float, ...]

    @property
    def duration(self) -> float:
        return self.end - self.start


def frame_times_in(start: float, end: float, count: int) -> tuple[float, ...]:
    """The centres of ``count`` equal parts of ``[start, end)``."""
    if count < 1:
        raise ValueError(f"frames per clip must be at least 1, got {count}")
    step = (end - start) / count
    return tuple(round(start + (i + 0.5) * step, 6) for i in range(count))


def plan_clips(
    duration: float,
    *,
    frames_per_clip: int,
    clip_length: float = DEFAULT_CLIP_LENGTH,
    stride: float | None = None,
    start: float = 0.0,
    end: float | None = None,
    min_last_clip: float | None = None,
) -> list[Clip]:
    """Split ``[start, end)`` (default: the whole video) into clips.

    ``stride`` defaults to ``clip_length`` (back-to-back clips); a smaller stride overlaps
    clips, a larger one leaves gaps. The last clip is cut at ``end``; it is kept when it is
    at least ``min_last_clip`` seconds long (default: a quarter of ``clip_length``), or when
    it is the only clip.
    """
    if clip_length <= 0:
        raise ValueError(f"clip length must be positive, got {clip_length}")
    stride = clip_length if stride is None else stride
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if start < 0:
        raise ValueError(f"start must not be negative, got {start}")
    end = duration if end is None else min(end, duration)
    if end <= start:
        raise ValueError(f"nothing to plan: start {start:g} s is not before end {end:g} s")
    if min_last_clip is None:
        min_last_clip = clip_length * MIN_LAST_CLIP_FRACTION

    clips: list[Clip] = []
    index = 0
    while True:
        clip_start = start + index * stride
        if clip_start >= end - 1e-9:
            break
        clip_end = min(clip_start + clip_length, end)
        if clip_end - clip_start < min_last_clip - 1e-9 and clips:
            break
        clips.append(
            Clip(
                index=index,
                start=round(clip_start, 6),
                end=round(clip_end, 6),
                frame_times=frame_times_in(clip_start, clip_end, frames_per_clip),
            )
        )
        if clip_end >= end:
            break
        index += 1
    return clips


def check_clip_options(
    clips: str = "fixed",
    *,
    detector: str = "content",
    min_clip: float = DEFAULT_MIN_CLIP,
    max_clip: float = DEFAULT_MAX_CLIP,
    stride: float | None = None,
) -> None:
    """``ConfigError`` naming the setting when the clip options cannot go together.

    Cheap (no decoding, no PySceneDetect import, but shots need it installed): the CLI and
    the daemon's config call it before any model loads.
    """
    if clips not in CLIP_MODES:
        raise ConfigError(None, f"{clips!r} is not one of fixed, shots", setting="clips")
    if detector not in DETECTORS:
        raise ConfigError(None, f"{detector!r} is not one of content, adaptive", setting="detector")
    if min_clip < 0:
        raise ConfigError(None, f"must not be negative, got {min_clip:g}", setting="min_clip")
    if max_clip <= 0:
        raise ConfigError(None, f"must be positive, got {max_clip:g}", setting="max_clip")
    if min_clip > max_clip:
        raise ConfigError(
            None, f"{min_clip:g} s is longer than max_clip {max_clip:g} s", setting="min_clip"
        )
    if clips == "shots" and stride is not None:
        raise ConfigError(None, "applies to fixed clips only, not clips = shots", setting="stride")
    if clips == "shots" and importlib.util.find_spec("scenedetect") is None:
        raise ConfigError(None, SHOTS_INSTALL_HINT, setting="clips")
