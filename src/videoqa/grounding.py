"""Temporal grounding: when in a video is the answer to a yes/no question "yes"?

``videoqa find`` asks one question of every moment of a video ("is there a dog on the
beach?", or a question given verbatim) and scores each moment with the model's P(yes) /
(P(yes) + P(no)), read from the first answer token's distribution
(:meth:`Engine.yes_probability`: one decoder step after the image pass, no generation).
A moment is one frame every ``step`` seconds for an image checkpoint, one clip (its
``frames_per_clip`` frames, planned by ``videoqa.clips`` as ``ask`` and ``caption`` plan them)
for a video checkpoint. Consecutive moments scoring over the threshold form a range that
starts and ends halfway to the neighbouring moments (the first moment starts at 0, the last
ends at the end of the video).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from videoqa.clips import DEFAULT_CLIP_LENGTH, plan_clips
from videoqa.errors import ConfigError
from videoqa.index import FIND_KIND
from videoqa.record import new_run_id, now
from videoqa.report import (
    FindingRecord,
    FoundRange,
    ModelInfo,
    Report,
    RunInfo,
    Sampling,
    VideoFacts,
)

if TYPE_CHECKING:  # the engine imports torch
    from videoqa.engines import Engine

logger = logging.getLogger("videoqa.grounding")

DEFAULT_STEP = 1.0
"""Seconds between the frames an image checkpoint scores."""

DEFAULT_THRESHOLD = 0.5
"""A moment belongs to a range when its score is over this."""

MOMENTS_PER_BATCH = 32
"""Moments decoded and scored together (the engine splits them into its own batches)."""


@dataclass(frozen=True)
class Moment:
    """One scored moment: the frame's time, or the middle of the clip, and its P(yes)."""

    time: float
    score: float


@dataclass(frozen=True)
class TimeRange:
    """Consecutive moments over the threshold: where they start and end, their mean and peak
    score."""

    start: float
    end: float
    score: float
    peak: float

    def to_dict(self) -> dict[str, float]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": round(self.score, 4),
            "peak": round(self.peak, 4),
        }


@dataclass(frozen=True)
class Finding:
    """What ``find`` found in one video."""

    video: str
    what: str
    """The ``--what`` text, or the question when it was given verbatim."""
    question: str
    """The yes/no question every moment was asked."""
    duration: float
    moments: tuple[Moment, ...]
    ranges: tuple[TimeRange, ...]
    threshold: float = DEFAULT_THRESHOLD
    step: float | None = None
    """Seconds between the frames scored (image checkpoints; None for clips)."""
    model: ModelInfo | None = None
    facts: VideoFacts | None = None
    sampling: Sampling | None = None

    def to_report(self) -> Report:
        """The finding as a report for the video's record (``videoqa.record``): no clips, one
        finding and the run that made it; delivered like any report (``find --db``)."""
        if self.model is None or self.facts is None or self.sampling is None:
            raise ValueError("a finding made without its model and video facts")
        run = RunInfo(new_run_id(), "find", self.model, self.sampling, now())
        ranges = tuple(FoundRange(r.start, r.end, r.score, r.peak) for r in self.ranges)
        found = FindingRecord(self.what, self.question, self.threshold, self.step, ranges, run.id)
        return Report(self.facts, self.model, self.sampling, runs=[run], findings=[found])

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``videoqa find --json`` (docs/index.md)."""
        return {
            "video": self.video,
            "what": self.what,
            "ranges": [time_range.to_dict() for time_range in self.ranges],
            "scores": [[round(m.time, 3), round(m.score, 4)] for m in self.moments],
        }


def presence_question(what: str) -> str:
    """``"a blue circle"`` -> ``"is there a blue circle?"`` (spacing and an ending "?" tidied)."""
    text = " ".join(what.split()).rstrip("?").rstrip()
    if not text:
        raise ConfigError(None, "is empty: say what to look for", setting="what")
    return f"is there {text}?"


def ranges_over(
    moments: Sequence[Moment], threshold: float, duration: float
) -> tuple[TimeRange, ...]:
    """Runs of consecutive moments scoring over ``threshold``, as time ranges.

    A range starts halfway between its first moment and the one before, and ends halfway
    between its last moment and the one after; the first moment starts at 0 and the last ends
    at ``duration``. ``moments`` are in time order.
    """
    ranges: list[TimeRange] = []
    run: list[int] = []
    for index in range(len(moments) + 1):
        if index < len(moments) and moments[index].score > threshold:
            run.append(index)
            continue
        if run:
            first, last = run[0], run[-1]
            start = 0.0 if first == 0 else (moments[first - 1].time + moments[first].time) / 2
            end = (
                duration
                if last == len(moments) - 1
                else (moments[last].time + moments[last + 1].time) / 2
            )
            scores = [moments[i].score for i in run]
            ranges.append(
                TimeRange(
                    start=min(max(start, 0.0), duration),
                    end=min(max(end, 0.0), duration),
                    score=sum(scores) / len(scores),
                    peak=max(scores),
                )
            )
            run = []
    return tuple(ranges)


def plan_moments(
    engine_kind: str,
    duration: float,
    *,
    frames_per_clip: int,
    step: float = DEFAULT_STEP,
    clip_length: float = DEFAULT_CLIP_LENGTH,
    stride: float | None = None,
) -> list[tuple[float, tuple[float, ...]]]:
    """``(time, frame times)`` of each moment, in time order.

    An image checkpoint: one frame at the middle of every ``step`` seconds. A video
    checkpoint: its clips as ``ask`` plans them (``clip_length`` windows every ``stride``,
    default back to back), ``frames_per_clip`` frames each, the time being the clip's middle.
    """
    if engine_kind == "video":
        clips = plan_clips(
            duration, frames_per_clip=frames_per_clip, clip_length=clip_length, stride=stride
        )
        return [((clip.start + clip.end) / 2, clip.frame_times) for clip in clips]
    if step <= 0:
        raise ConfigError(None, f"must be positive, got {step:g}", setting="step")
    # Middles of whole steps that start before the end (a video shorter than half a step: its
    # middle).
    count = math.ceil(duration / step - 0.5)
    times = [round((k + 0.5) * step, 6) for k in range(count)] or [duration / 2]
    return [(time, (time,)) for time in times]


def find(
    engine: Engine,
    video: str | os.PathLike[str],
    *,
    what: str | None = None,
    question: str | None = None,
    step: float = DEFAULT_STEP,
    threshold: float = DEFAULT_THRESHOLD,
    clip_length: float = DEFAULT_CLIP_LENGTH,
    stride: float | None = None,
    fit: str | None = None,
    stream: int | None = None,
    deinterlace: str = "auto",
) -> Finding:
    """Score every moment of ``video`` for ``what`` ("is there {what}?") or ``question``
    (asked verbatim; exactly one of the two) and gather the ranges over ``threshold``.

    Raises ``ConfigError`` for impossible options, the ``MediaError`` family for a file that
    is not a usable video, ``ModelError`` when the checkpoint has no "yes"/"no" words.
    """
    from videoqa.media import FrameSampler, probe

    asked, label = _asked(what, question)
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(None, f"must be between 0 and 1, got {threshold:g}", setting="threshold")
    path = os.fspath(video)
    info = probe(path, stream=stream)
    fit = engine.resolve_fit(fit)
    frames_per_clip = engine.frames_per_clip or 1
    plan = plan_moments(
        engine.kind,
        info.duration,
        frames_per_clip=frames_per_clip,
        step=step,
        clip_length=clip_length,
        stride=stride,
    )
    duration = info.duration
    size = engine.frame_size(info.width, info.height, fit)
    with FrameSampler(path, stream=stream, size=size, deinterlace=deinterlace) as sampler:
        moments = _scored(engine, sampler, plan, asked, fit, frames_per_clip)
        if sampler.decodable_end is not None:  # a truncated file: ranges end where it does
            duration = min(duration, sampler.decodable_end)
            logger.warning(
                "%s: truncated: video decodes only to %.1f s of %.1f s; later moments are "
                "left out", path, sampler.decodable_end, info.duration,
            )  # fmt: skip
    model = ModelInfo(engine.model_id, engine.revision, engine.kind, frames_per_clip, size, fit)
    every = step if engine.kind == "image" else clip_length
    sampling = Sampling(every, every if stride is None else stride, 0.0, duration, 1,
                        clip_mode="find", deinterlace=deinterlace)
    facts = VideoFacts.from_info(info)
    return Finding(
        video=path,
        what=label,
        question=asked,
        duration=duration,
        moments=tuple(moments),
        ranges=ranges_over(moments, threshold, duration),
        threshold=threshold,
        step=step if engine.kind == "image" else None,
        model=model,
        facts=replace(facts, path=os.path.abspath(facts.path),
                      decodable_end=sampler.decodable_end),
        sampling=sampling,
    )


def _asked(what: str | None, question: str | None) -> tuple[str, str]:
    """The yes/no question asked of every moment, and the label of the finding."""
    if (what is None) == (question is None):
        raise ConfigError(None, "give what to look for or a question, not both", setting="what")
    if question is not None:
        asked = " ".join(question.split())
        if not asked:
            raise ConfigError(None, "is empty", setting="question")
        return asked, asked
    assert what is not None
    return presence_question(what), " ".join(what.split())


def _scored(engine: Engine, sampler: Any, plan: Sequence[tuple[float, tuple[float, ...]]],
            asked: str, fit: str, frames_per_clip: int) -> list[Moment]:
    """P(yes) of every planned moment, in batches, up to the end of decodable video."""
    moments: list[Moment] = []
    for first in range(0, len(plan), MOMENTS_PER_BATCH):
        batch = plan[first : first + MOMENTS_PER_BATCH]
        frames = sampler.sample([t for _, times in batch for t in times])
        clips = []
        for position in range(len(batch)):
            clip = frames[position * frames_per_clip : (position + 1) * frames_per_clip]
            if all(frame.past_end for frame in clip):
                break  # a truncated file: this moment and every later one show nothing
            clips.append([frame.rgb for frame in clip])
        if clips:
            scores = engine.yes_probability(clips, [asked], fit=fit)
            moments.extend(Moment(batch[i][0], row[0]) for i, row in enumerate(scores))
        if len(clips) < len(batch):
            break
    return moments


__all__ = [
    "DEFAULT_STEP",
    "DEFAULT_THRESHOLD",
    "FIND_KIND",
    "Finding",
    "Moment",
    "TimeRange",
    "find",
    "plan_moments",
    "presence_question",
    "ranges_over",
]
