"""One marker per clip, in whole frames at the video's frame rate.

Editors (OpenTimelineIO) and Adobe's dynamic-media XMP both count time in frames of a rate, so
both formats take these markers: a clip's start and end, each rounded to the nearest frame of
the video's rate. A marker's duration is the difference of the two rounded ends, so markers of
touching clips touch, with no frame lost or doubled by rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from videoqa.formats.lines import clip_lines
from videoqa.report import Report

MILLISECONDS = Fraction(1000)
"""The rate used when a report has no usable frame rate: markers then count milliseconds."""


@dataclass(frozen=True)
class Marker:
    """A clip on the timeline: ``start`` and ``duration`` in frames, what it says, its data."""

    start: int
    duration: int
    name: str
    """The caption (or, with questions only, ``question: answer`` pairs joined by `` | ``)."""
    comment: str
    """The answers when the name is the caption (``question: answer; ...``), else empty."""
    data: dict[str, Any]
    """The clip as the JSON sidecar holds it (times, caption, answers, scores)."""


def frame_rate(fps: float) -> Fraction:
    """The video's rate as a fraction, as editors write it: 29.97002997 → 30000/1001.

    Denominators up to 1001 cover every broadcast and film rate (24000/1001, 25, 30000/1001,
    60000/1001, ...). A rate that is missing, infinite or not positive counts milliseconds.
    """
    if not math.isfinite(fps) or fps <= 0:
        return MILLISECONDS
    return Fraction(fps).limit_denominator(1001)


def to_frames(seconds: float, rate: Fraction) -> int:
    """``seconds`` as the nearest whole frame at ``rate``."""
    return round(Fraction(seconds) * rate)


def clip_markers(report: Report, rate: Fraction) -> list[Marker]:
    """A marker for every clip of ``report`` that says something, in clip order."""
    captions = report.has_captions
    clip_data = report.to_dict()["clips"]
    markers = []
    for clip, data in sorted(zip(report.clips, clip_data, strict=True), key=lambda p: p[0].start):
        lines = clip_lines(clip, captions=captions)
        if not lines:
            continue
        answers = clip_lines(clip, captions=False) if captions else ()
        start = to_frames(clip.start, rate)
        markers.append(Marker(
            start=start,
            duration=max(to_frames(clip.end, rate) - start, 0),
            name=" | ".join(lines),
            comment="; ".join(answers),
            data=data,
        ))  # fmt: skip
    return markers
