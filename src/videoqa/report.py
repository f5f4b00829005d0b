"""Results of asking questions of a video and captioning it, with a versioned JSON form.

Plain dataclasses, typed all the way down, so writers, adapters and the daemon work with
attributes instead of dictionary keys. ``Report.to_dict()`` is the documented JSON schema
(``docs/report-schema.md``); ``Report.from_dict()`` reads it back, accepting any report of
the same major schema version (newer minor versions only add keys, which are ignored).

This module imports neither torch nor the media stack: reading a report stays cheap.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from videoqa.errors import VideoQAError
from videoqa.pathnames import dumps_json
from videoqa.version import __version__

logger = logging.getLogger("videoqa.report")

SCHEMA_VERSION = "1.3"
"""``major.minor``: a new minor version only adds keys; a new major version changes meaning."""

SCHEMA_MAJOR = int(SCHEMA_VERSION.split(".")[0])


class ReportFormatError(VideoQAError):
    """A report (JSON sidecar or dictionary) does not follow a schema this version can read."""


class _Scored:
    """Generated text with a ``score``: the mean log-probability of its tokens (0 is certain)."""

    score: float

    @property
    def confidence(self) -> float:
        """``exp(score)``: the geometric mean of the tokens' probabilities, from 0 to 1."""
        return math.exp(self.score)


@dataclass(frozen=True)
class Caption(_Scored):
    """What a captioning model said about one clip (``score``: mean log-probability per token)."""

    text: str
    score: float
    frame_times: tuple[float, ...] = ()
    """Times of the frames the captioning model saw (it may see other frames than the answers)."""
    edited: bool = False
    """A person changed the text (``videoqa serve``'s edit page; schema 1.2): ``score`` is
    still the model's for the text it wrote, and a later run keeps this text."""
    run: str | None = None
    """The ``Report.runs`` entry that made it (schema 1.3; None until it is delivered)."""


@dataclass(frozen=True)
class FrameAnswer(_Scored):
    """One frame's answer when an image checkpoint answers frame by frame and the clip votes."""

    time: float
    answer: str
    score: float


@dataclass(frozen=True)
class QuestionAnswer(_Scored):
    """A question's answer for one clip; ``frames`` holds the per-frame votes, if any."""

    question: str
    answer: str
    score: float
    frames: tuple[FrameAnswer, ...] = ()
    edited: bool = False
    """A person changed the answer (schema 1.2); as for ``Caption.edited``."""
    run: str | None = None
    """The ``Report.runs`` entry that made it (schema 1.3)."""


@dataclass(frozen=True)
class ClipResult:
    """Everything found in one clip of the timeline (seconds from the start of the video)."""

    index: int
    start: float
    end: float
    frame_times: tuple[float, ...]
    caption: Caption | None = None
    answers: tuple[QuestionAnswer, ...] = ()

    def answer_for(self, question: str) -> QuestionAnswer | None:
        """The answer to ``question`` in this clip, or None when it was not asked."""
        return next((qa for qa in self.answers if qa.question == question), None)


@dataclass(frozen=True)
class VideoFacts:
    """The facts about the input that a reader of the results needs (a subset of VideoInfo)."""

    path: str
    duration: float
    width: int
    height: int
    fps: float
    stream: int
    codec: str | None = None
    format_name: str | None = None
    rotation: int = 0
    start_time: float = 0.0
    frame_count: int | None = None
    decodable_end: float | None = None
    """Where decodable video ends, when before ``duration`` (a truncated file); else None."""

    @classmethod
    def from_info(cls, info: Any) -> VideoFacts:
        """Take the facts from a ``videoqa.media.VideoInfo`` (duck-typed to stay import-light)."""
        codec = None
        for stream in getattr(info, "streams", ()):
            if getattr(stream, "index", None) == info.video_stream:
                codec = getattr(stream, "codec", None)
        return cls(
            path=os.fspath(info.path),
            duration=float(info.duration),
            width=int(info.width),
            height=int(info.height),
            fps=float(info.fps),
            stream=int(info.video_stream),
            codec=codec,
            format_name=getattr(info, "format_name", None),
            rotation=int(getattr(info, "rotation", 0) or 0),
            start_time=float(getattr(info, "start_time", 0.0) or 0.0),
            frame_count=getattr(info, "frame_count", None),
        )


@dataclass(frozen=True)
class ModelInfo:
    """Which checkpoint produced results, and how it was fed."""

    id: str
    revision: str | None
    kind: Literal["image", "video"]
    frames_per_clip: int
    """Frames sampled per clip for this model (a video checkpoint's own frame count)."""
    frame_size: tuple[int, int] | None = None
    """(width, height) the frames were decoded at for this model."""
    fit: str | None = None
    """How frames went into the model's square: ``crop`` or ``pad`` (schema 1.1; ``None`` in
    older reports)."""


@dataclass(frozen=True)
class Sampling:
    """How the timeline was cut into clips and how long answers could grow."""

    clip_length: float
    stride: float
    start: float
    end: float
    max_new_tokens: int
    caption_max_new_tokens: int | None = None
    clip_mode: str = "fixed"
    """``fixed`` (windows of ``clip_length`` every ``stride`` s) or ``shots`` (schema 1.2)."""
    shots: ShotSampling | None = None
    """How shots were found and cut into clips, in ``shots`` mode (schema 1.2)."""
    deinterlace: str | None = None
    """``auto``, ``on`` or ``off`` as asked (schema 1.3; None in older reports)."""


@dataclass(frozen=True)
class ShotSampling:
    """Shot-aligned clips: the detector, the clip length limits and the cuts it found."""

    detector: str
    min_clip: float
    max_clip: float
    cuts: tuple[float, ...]
    """Where shots begin (timeline seconds), as detected: before short shots were merged."""


@dataclass(frozen=True)
class RunInfo:
    """One model's part in one delivered run: what made a record's entries (schema 1.3).

    ``made`` is ``captions``, ``answers`` or ``find``; ``time`` is when the run's results
    were delivered (UTC, ISO 8601), or None for entries of a report older than schema 1.3.
    """

    id: str
    made: str
    model: ModelInfo
    sampling: Sampling
    time: str | None = None
    generator: str = ""


@dataclass(frozen=True)
class FoundRange:
    """A time range ``videoqa find`` found: mean and peak P(yes) of its moments."""

    start: float
    end: float
    score: float
    peak: float


@dataclass(frozen=True)
class FindingRecord:
    """One ``videoqa find`` query's ranges in a video's record (schema 1.3)."""

    what: str
    question: str
    threshold: float
    step: float | None
    ranges: tuple[FoundRange, ...]
    run: str | None = None


@dataclass(frozen=True)
class AlternativeText:
    """One clip's text of an alternative (a caption, or one question's answer)."""

    start: float
    end: float
    text: str
    score: float
    edited: bool = False


@dataclass(frozen=True)
class Alternative:
    """Captions or one question's answers that are not in the record's clips any more: made
    by another model or with other options than the ones there now, or on another clip plan
    (schema 1.3). Kept so that nothing a run found is lost; not written to subtitles."""

    kind: Literal["caption", "answer"]
    question: str | None
    run: str | None
    texts: tuple[AlternativeText, ...]


@dataclass
class Report:
    """The whole-video result: video facts, models, sampling and one ``ClipResult`` per clip.

    ``model`` answered the questions (or captioned, when no questions were asked);
    ``caption_model`` made the captions, when captions were made (it may be the same model).
    """

    video: VideoFacts
    model: ModelInfo
    sampling: Sampling
    questions: tuple[str, ...] = ()
    caption_model: ModelInfo | None = None
    clips: list[ClipResult] = field(default_factory=list)
    schema_version: str = SCHEMA_VERSION
    generator: str = f"videoqa {__version__}"
    runs: list[RunInfo] = field(default_factory=list)
    """Every run whose entries the record holds (schema 1.3): see ``videoqa.record``."""
    findings: list[FindingRecord] = field(default_factory=list)
    """``videoqa find`` ranges, one entry per query, model and options (schema 1.3)."""
    alternatives: list[Alternative] = field(default_factory=list)
    """Entries displaced from ``clips`` by a later run (schema 1.3)."""

    @property
    def has_captions(self) -> bool:
        return self.caption_model is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form documented in ``docs/report-schema.md``."""
        return {
            "schema_version": self.schema_version,
            "generator": self.generator,
            "video": _video_to_dict(self.video),
            "model": _model_to_dict(self.model),
            "caption_model": _model_to_dict(self.caption_model) if self.caption_model else None,
            "sampling": _sampling_to_dict(self.sampling),
            "questions": list(self.questions),
            "clips": [_clip_to_dict(clip) for clip in self.clips],
            "findings": [_finding_to_dict(finding) for finding in self.findings],
            "alternatives": [_alternative_to_dict(alt) for alt in self.alternatives],
            "runs": [_run_to_dict(run) for run in self.runs],
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return dumps_json(self.to_dict(), indent=indent)  # a non-UTF-8 file name as \udcNN

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Report:
        """Read a report of this major schema version; ``source`` names it in errors."""
        where = source or "report"
        if not isinstance(data, Mapping):
            raise ReportFormatError(where, "a report is a JSON object")
        version = str(data.get("schema_version", ""))
        try:
            major = int(version.split(".")[0])
        except ValueError:
            raise ReportFormatError(where, f"no readable schema_version ({version!r})") from None
        if major != SCHEMA_MAJOR:
            raise ReportFormatError(
                where,
                f"schema version {version} is not readable by videoqa {__version__} "
                f"(reads {SCHEMA_MAJOR}.x)",
            )
        try:
            caption_model = data.get("caption_model")
            return cls(
                schema_version=version,
                generator=str(data.get("generator", "")),
                video=_video_from_dict(data["video"]),
                model=_model_from_dict(data["model"]),
                caption_model=_model_from_dict(caption_model) if caption_model else None,
                sampling=_sampling_from_dict(data["sampling"]),
                questions=tuple(str(q) for q in data.get("questions", ())),
                clips=[_clip_from_dict(clip) for clip in data["clips"]],
                runs=[_run_from_dict(run) for run in data.get("runs") or ()],
                findings=[_finding_from_dict(found) for found in data.get("findings") or ()],
                alternatives=[_alternative_from_dict(alt)
                              for alt in data.get("alternatives") or ()],
            )
        except (KeyError, TypeError, ValueError) as error:
            missing = f"missing key {error}" if isinstance(error, KeyError) else str(error)
            raise ReportFormatError(where, f"not a videoqa report: {missing}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Report:
        """Read a JSON sidecar (``<stem>.videoqa.json``)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ReportFormatError(path, f"cannot read: {error.strerror or error}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ReportFormatError(path, f"not JSON: {error}") from None
        return cls.from_dict(data, source=os.fspath(path))


def _video_to_dict(video: VideoFacts) -> dict[str, Any]:
    return {
        "path": video.path,
        "duration": video.duration,
        "width": video.width,
        "height": video.height,
        "fps": video.fps,
        "stream": video.stream,
        "codec": video.codec,
        "format_name": video.format_name,
        "rotation": video.rotation,
        "start_time": video.start_time,
        "frame_count": video.frame_count,
        "decodable_end": video.decodable_end,
    }


def _video_from_dict(data: Mapping[str, Any]) -> VideoFacts:
    frame_count = data.get("frame_count")
    return VideoFacts(
        path=str(data["path"]),
        duration=float(data["duration"]),
        width=int(data["width"]),
        height=int(data["height"]),
        fps=float(data["fps"]),
        stream=int(data["stream"]),
        codec=data.get("codec"),
        format_name=data.get("format_name"),
        rotation=int(data.get("rotation", 0)),
        start_time=float(data.get("start_time", 0.0)),
        frame_count=int(frame_count) if frame_count is not None else None,
        decodable_end=float(end) if (end := data.get("decodable_end")) is not None else None,
    )


def _model_to_dict(model: ModelInfo) -> dict[str, Any]:
    return {
        "id": model.id,
        "revision": model.revision,
        "kind": model.kind,
        "frames_per_clip": model.frames_per_clip,
        "frame_size": list(model.frame_size) if model.frame_size else None,
        "fit": model.fit,
    }


def _model_from_dict(data: Mapping[str, Any]) -> ModelInfo:
    kind = data["kind"]
    if kind not in ("image", "video"):
        raise ValueError(f"model kind must be 'image' or 'video', not {kind!r}")
    size = data.get("frame_size")
    return ModelInfo(
        id=str(data["id"]),
        revision=data.get("revision"),
        kind=kind,
        frames_per_clip=int(data["frames_per_clip"]),
        frame_size=(int(size[0]), int(size[1])) if size else None,
        fit=str(fit) if (fit := data.get("fit")) is not None else None,
    )


def _sampling_to_dict(sampling: Sampling) -> dict[str, Any]:
    return {
        "clip_length": sampling.clip_length,
        "stride": sampling.stride,
        "start": sampling.start,
        "end": sampling.end,
        "max_new_tokens": sampling.max_new_tokens,
        "caption_max_new_tokens": sampling.caption_max_new_tokens,
        "clip_mode": sampling.clip_mode,
        "shots": _shots_to_dict(sampling.shots) if sampling.shots else None,
        "deinterlace": sampling.deinterlace,
    }


def _shots_to_dict(shots: ShotSampling) -> dict[str, Any]:
    return {
        "detector": shots.detector,
        "min_clip": shots.min_clip,
        "max_clip": shots.max_clip,
        "cuts": list(shots.cuts),
    }


def _sampling_from_dict(data: Mapping[str, Any]) -> Sampling:
    caption_tokens = data.get("caption_max_new_tokens")
    shots = data.get("shots")
    return Sampling(
        clip_length=float(data["clip_length"]),
        stride=float(data["stride"]),
        start=float(data["start"]),
        end=float(data["end"]),
        max_new_tokens=int(data["max_new_tokens"]),
        caption_max_new_tokens=int(caption_tokens) if caption_tokens is not None else None,
        clip_mode=str(data.get("clip_mode", "fixed")),
        shots=_shots_from_dict(shots) if isinstance(shots, Mapping) else None,
        deinterlace=str(mode) if (mode := data.get("deinterlace")) is not None else None,
    )


def _shots_from_dict(data: Mapping[str, Any]) -> ShotSampling:
    return ShotSampling(
        detector=str(data["detector"]),
        min_clip=float(data["min_clip"]),
        max_clip=float(data["max_clip"]),
        cuts=tuple(float(cut) for cut in data.get("cuts", ())),
    )


def _rounded(confidence: float) -> float:
    """A confidence for the JSON form: four decimals say all a reader needs (schema 1.1)."""
    return round(confidence, 4)


def _clip_to_dict(clip: ClipResult) -> dict[str, Any]:
    caption = None
    if clip.caption is not None:
        caption = {
            "text": clip.caption.text,
            "score": clip.caption.score,
            "confidence": _rounded(clip.caption.confidence),
        }
        if clip.caption.frame_times:
            caption["frame_times"] = list(clip.caption.frame_times)
        if clip.caption.edited:
            caption["edited"] = True
        if clip.caption.run is not None:
            caption["run"] = clip.caption.run
    return {
        "index": clip.index,
        "start": clip.start,
        "end": clip.end,
        "frame_times": list(clip.frame_times),
        "caption": caption,
        "answers": [
            {
                "question": qa.question,
                "answer": qa.answer,
                "score": qa.score,
                "confidence": _rounded(qa.confidence),
                **({"edited": True} if qa.edited else {}),
                **({"run": qa.run} if qa.run is not None else {}),
                "frames": [
                    {
                        "time": f.time,
                        "answer": f.answer,
                        "score": f.score,
                        "confidence": _rounded(f.confidence),
                    }
                    for f in qa.frames
                ],
            }
            for qa in clip.answers
        ],
    }


def _clip_from_dict(data: Mapping[str, Any]) -> ClipResult:
    caption_data = data.get("caption")
    caption = None
    if caption_data is not None:
        caption = Caption(
            text=str(caption_data["text"]),
            score=float(caption_data["score"]),
            frame_times=tuple(float(t) for t in caption_data.get("frame_times", ())),
            edited=caption_data.get("edited") is True,
            run=_optional_str(caption_data.get("run")),
        )
    return ClipResult(
        index=int(data["index"]),
        start=float(data["start"]),
        end=float(data["end"]),
        frame_times=tuple(float(t) for t in data["frame_times"]),
        caption=caption,
        answers=tuple(
            QuestionAnswer(
                question=str(qa["question"]),
                answer=str(qa["answer"]),
                score=float(qa["score"]),
                frames=tuple(
                    FrameAnswer(time=float(f["time"]), answer=str(f["answer"]),
                                score=float(f["score"]))
                    for f in qa.get("frames", ())
                ),
                edited=qa.get("edited") is True,
                run=_optional_str(qa.get("run")),
            )
            for qa in data.get("answers", ())
        ),
    )


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _run_to_dict(run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.id,
        "made": run.made,
        "time": run.time,
        "generator": run.generator,
        "model": _model_to_dict(run.model),
        "sampling": _sampling_to_dict(run.sampling),
    }


def _run_from_dict(data: Mapping[str, Any]) -> RunInfo:
    return RunInfo(
        id=str(data["id"]),
        made=str(data["made"]),
        model=_model_from_dict(data["model"]),
        sampling=_sampling_from_dict(data["sampling"]),
        time=_optional_str(data.get("time")),
        generator=str(data.get("generator", "")),
    )


def _finding_to_dict(finding: FindingRecord) -> dict[str, Any]:
    return {
        "what": finding.what,
        "question": finding.question,
        "threshold": finding.threshold,
        "step": finding.step,
        "run": finding.run,
        "ranges": [
            {"start": r.start, "end": r.end, "score": round(r.score, 4), "peak": round(r.peak, 4)}
            for r in finding.ranges
        ],
    }


def _finding_from_dict(data: Mapping[str, Any]) -> FindingRecord:
    step = data.get("step")
    return FindingRecord(
        what=str(data["what"]),
        question=str(data["question"]),
        threshold=float(data["threshold"]),
        step=float(step) if step is not None else None,
        ranges=tuple(
            FoundRange(float(r["start"]), float(r["end"]), float(r["score"]), float(r["peak"]))
            for r in data.get("ranges", ())
        ),
        run=_optional_str(data.get("run")),
    )


def _alternative_to_dict(alternative: Alternative) -> dict[str, Any]:
    return {
        "kind": alternative.kind,
        "question": alternative.question,
        "run": alternative.run,
        "texts": [
            {"start": t.start, "end": t.end, "text": t.text, "score": t.score,
             **({"edited": True} if t.edited else {})}
            for t in alternative.texts
        ],
    }


def _alternative_from_dict(data: Mapping[str, Any]) -> Alternative:
    kind = data["kind"]
    if kind not in ("caption", "answer"):
        raise ValueError(f"alternative kind must be 'caption' or 'answer', not {kind!r}")
    return Alternative(
        kind=kind,
        question=_optional_str(data.get("question")),
        run=_optional_str(data.get("run")),
        texts=tuple(
            AlternativeText(float(t["start"]), float(t["end"]), str(t["text"]),
                            float(t["score"]), t.get("edited") is True)
            for t in data.get("texts", ())
        ),
    )
