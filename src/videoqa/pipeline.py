"""Ask questions of a video and caption it, clip by clip, lazily.

``VideoQA`` ties the steps together: probe the file (``media.probe``), plan clips
(``planning.plan_video_clips``: fixed windows or shots), sample each clip's frames at the model's
input size (``media.FrameSampler``), and run the checkpoints (``videoqa.engines.load_engine``:
GIT's engine, or another family's). Like
faster-whisper's ``transcribe``, ``ask`` and ``caption`` return an iterator of results and the
video's facts at once: nothing is decoded until the caller asks for the next clip.

Image checkpoints see one frame at a time, so each sampled frame is answered on its own and the
clip's answer is the vote of its frames, weighted by each frame's probability
(``exp(score)``); the per-frame answers stay in the result. Video checkpoints see a clip's
frames together, in time order, exactly as many as they were trained with.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from videoqa.clips import (
    DEFAULT_CLIP_LENGTH,
    DEFAULT_MAX_CLIP,
    DEFAULT_MIN_CLIP,
    Clip,
    check_clip_options,
    frame_times_in,
)
from videoqa.deinterlace import DEINTERLACE_MODES
from videoqa.errors import ConfigError
from videoqa.fit import check_fit
from videoqa.media import Frame, FrameSampler, VideoInfo, open_samplers, probe
from videoqa.models import DEFAULT_CAPTION_MODEL, DEFAULT_QA_MODEL
from videoqa.planning import plan_video_clips
from videoqa.report import (
    Caption,
    ClipResult,
    FrameAnswer,
    ModelInfo,
    QuestionAnswer,
    Report,
    Sampling,
    VideoFacts,
)

if TYPE_CHECKING:  # an engine (torch) is imported when a model loads, not to plan
    from videoqa.engines import Answer, Engine

logger = logging.getLogger("videoqa.pipeline")

DEFAULT_IMAGE_FRAMES_PER_CLIP = 3
"""Frames an image checkpoint answers per clip (then votes), unless told otherwise."""
DEFAULT_MAX_NEW_TOKENS = 20
DEFAULT_CAPTION_MAX_NEW_TOKENS = 30

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(clips_done, clips_total)`` after each clip."""


@dataclass(frozen=True)
class ModelRole:
    """One model's part in a job: answering or captioning, with its own frames per clip."""

    engine: Engine
    frames_per_clip: int
    frame_size: tuple[int, int]
    fit: str = "crop"

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            id=self.engine.model_id,
            revision=self.engine.revision,
            kind=self.engine.kind,
            frames_per_clip=self.frames_per_clip,
            frame_size=self.frame_size,
            fit=self.fit,
        )


@dataclass
class VideoJob:
    """One video, planned: its facts, its clips, and the models that will look at them.

    ``results()`` does the work lazily; ``report()`` runs it all and returns the ``Report``.
    """

    path: str
    info: VideoInfo
    clips: list[Clip]
    questions: tuple[str, ...]
    sampling: Sampling
    answering: ModelRole | None
    captioning: ModelRole | None
    stream: int | None
    clip_batch_size: int = 1
    deinterlace: str = "auto"
    decodable_end: float | None = None
    """Set when the file turned out truncated: where decodable video ends (seconds)."""
    _started: bool = field(default=False, repr=False)

    def results(self, progress: ProgressCallback | None = None) -> Iterator[ClipResult]:
        """Yield one ``ClipResult`` per clip, in time order, as soon as each is ready."""
        if self._started:
            raise RuntimeError("a VideoJob's results can be iterated only once")
        self._started = True
        return self._generate(progress)

    def report(self, progress: ProgressCallback | None = None) -> Report:
        """Run every clip and gather the whole-video ``Report``."""
        return self.build_report(list(self.results(progress)))

    def build_report(self, clips: list[ClipResult]) -> Report:
        """The ``Report`` of this job from results already gathered from ``results()``."""
        return make_report(
            self.info,
            model=(self.answering or self.captioning).info,  # type: ignore[union-attr]
            caption_model=self.captioning.info if self.captioning else None,
            sampling=self.sampling,
            questions=self.questions,
            clips=clips,
            decodable_end=self.decodable_end,
        )

    def _generate(self, progress: ProgressCallback | None) -> Iterator[ClipResult]:
        total = len(self.clips)
        with contextlib.ExitStack() as stack:
            roles = [role for role in (self.answering, self.captioning) if role is not None]
            samplers = open_samplers(stack, self.path, [role.frame_size for role in roles],
                                     stream=self.stream, deinterlace=self.deinterlace)  # fmt: skip
            done = 0
            for first in range(0, total, self.clip_batch_size):
                batch = self.clips[first : first + self.clip_batch_size]
                requests = []
                if self.answering:
                    requests.append((self.answering, [clip.frame_times for clip in batch]))
                if self.captioning:
                    times = [
                        frame_times_in(clip.start, clip.end, self.captioning.frames_per_clip)
                        for clip in batch
                    ]
                    requests.append((self.captioning, times))
                sampled = _sample(requests, samplers)
                kept, any_past_end = _clips_before_end(sampled)
                if any_past_end:
                    self._note_truncation(samplers.values())
                cut_short = kept < len(batch)
                if cut_short:
                    batch = batch[:kept]
                    requests = [(role, times[:kept]) for role, times in requests]
                    sampled = [request[:kept] for request in sampled]
                if not batch:
                    return
                frames = [[[f.rgb for f in clip] for clip in request] for request in sampled]
                answers = self._answer(batch, frames[0]) if self.answering else None
                captions = (
                    self._caption(requests[-1][1], frames[-1]) if self.captioning else None
                )
                for position, clip in enumerate(batch):
                    result = ClipResult(
                        index=clip.index,
                        start=clip.start,
                        end=clip.end,
                        frame_times=clip.frame_times,
                        caption=captions[position] if captions else None,
                        answers=answers[position] if answers else (),
                    )
                    done += 1
                    if progress is not None:
                        progress(done, total)
                    yield result
                if cut_short:  # every later clip lies past the end too
                    return

    def _note_truncation(self, samplers: Iterable[FrameSampler]) -> None:
        """Record (once) that the video decodes only to ``decodable_end``, and say so."""
        if self.decodable_end is not None:
            return
        ends = [s.decodable_end for s in samplers if s.decodable_end is not None]
        self.decodable_end = min(ends) if ends else 0.0
        logger.warning(
            "%s: truncated: video decodes only to %.1f s of %.1f s; later clips are left out",
            self.path,
            self.decodable_end,
            self.info.duration,
        )

    def _answer(
        self, batch: list[Clip], frames_per_clip: list[list[np.ndarray]]
    ) -> list[tuple[QuestionAnswer, ...]]:
        role = self.answering
        assert role is not None
        engine = role.engine
        # An image checkpoint answers every frame on its own (then each clip votes).
        inputs = frames_per_clip if engine.kind == "video" else _singles(frames_per_clip)
        rows = engine.answer(
            inputs, self.questions, max_new_tokens=self.sampling.max_new_tokens, fit=role.fit
        )
        times = [clip.frame_times for clip in batch]
        return clip_answers(engine.kind, self.questions, times, rows)

    def _caption(
        self, times_per_clip: list[tuple[float, ...]], frames_per_clip: list[list[np.ndarray]]
    ) -> list[Caption]:
        role = self.captioning
        assert role is not None
        engine = role.engine
        max_tokens = self.sampling.caption_max_new_tokens or DEFAULT_CAPTION_MAX_NEW_TOKENS
        inputs = frames_per_clip if engine.kind == "video" else _singles(frames_per_clip)
        rows = engine.caption(inputs, max_new_tokens=max_tokens, fit=role.fit)
        return clip_captions(engine.kind, times_per_clip, rows)


def _singles(frames_per_clip: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Every frame as a clip of its own: what an image checkpoint takes."""
    return [[frame] for frames in frames_per_clip for frame in frames]


def clip_answers(
    kind: str,
    questions: Sequence[str],
    times_per_clip: Sequence[tuple[float, ...]],
    rows: Sequence[Sequence[Answer]],
) -> list[tuple[QuestionAnswer, ...]]:
    """Each clip's answers from the engine's ``rows`` (``[row][question]``).

    A video checkpoint gives one row per clip; an image checkpoint one row per frame (the
    frames of each clip in turn), which each clip then votes on. The one-file pipeline and the
    collection runner both go through here, so their answers are the same.
    """
    if kind == "video":
        return [
            tuple(QuestionAnswer(q, a.text, a.score) for q, a in zip(questions, row, strict=True))
            for row in rows
        ]
    results = []
    offset = 0
    for times in times_per_clip:
        frame_rows = rows[offset : offset + len(times)]
        offset += len(times)
        answers = []
        for column, question in enumerate(questions):
            votes = [
                FrameAnswer(time, row[column].text, row[column].score)
                for time, row in zip(times, frame_rows, strict=True)
            ]
            text, score = vote(votes)
            answers.append(QuestionAnswer(question, text, score, tuple(votes)))
        results.append(tuple(answers))
    return results


def clip_captions(
    kind: str, times_per_clip: Sequence[tuple[float, ...]], rows: Sequence[Answer]
) -> list[Caption]:
    """Each clip's caption from the engine's ``rows``: one per clip (video checkpoint) or one
    per frame, voted per clip (image checkpoint), as :func:`clip_answers`."""
    if kind == "video":
        pairs = zip(rows, times_per_clip, strict=True)
        return [Caption(caption.text, caption.score, times) for caption, times in pairs]
    results = []
    offset = 0
    for times in times_per_clip:
        frame_captions = rows[offset : offset + len(times)]
        offset += len(times)
        voted = zip(times, frame_captions, strict=True)
        text, score = vote([FrameAnswer(t, c.text, c.score) for t, c in voted])
        results.append(Caption(text, score, times))
    return results


def make_report(
    info: VideoInfo,
    *,
    model: ModelInfo,
    caption_model: ModelInfo | None,
    sampling: Sampling,
    questions: tuple[str, ...],
    clips: list[ClipResult],
    decodable_end: float | None,
) -> Report:
    """A video's ``Report`` from its facts and its clips' results (every path builds it here)."""
    facts = VideoFacts.from_info(info)
    return Report(
        video=replace(facts, path=os.path.abspath(facts.path), decodable_end=decodable_end),
        model=model,
        caption_model=caption_model,
        sampling=sampling,
        questions=questions,
        clips=clips,
    )


def _sample(
    requests: list[tuple[ModelRole, list[tuple[float, ...]]]],
    samplers: dict[tuple[int, int], FrameSampler],
) -> list[list[list[Frame]]]:
    """Frames for each request (a role and its clips' times): ``[request][clip][frame]``.

    Requests that share a frame size share one ``sample`` call, so the sampler sees every time
    of the batch at once and decodes each frame once, moving forward only.
    """
    pending: dict[tuple[int, int], list[float]] = {}
    for role, clip_times in requests:
        pending.setdefault(role.frame_size, []).extend(t for times in clip_times for t in times)
    decoded = {size: iter(samplers[size].sample(times)) for size, times in pending.items()}
    return [
        [[next(decoded[role.frame_size]) for _ in times] for times in clip_times]
        for role, clip_times in requests
    ]


def _clips_before_end(frames: list[list[list[Frame]]]) -> tuple[int, bool]:
    """How many clips of a batch show some decodable video, and whether any frame is past it.

    Clips come in time order, so once every frame of a clip lies past the end of a truncated
    file, so do all the frames of the clips after it.
    """
    clips = len(frames[0])
    showing = [
        any(not frame.past_end for request in frames for frame in request[clip])
        for clip in range(clips)
    ]
    kept = showing.index(False) if False in showing else clips
    any_past = any(frame.past_end for request in frames for clip in request for frame in clip)
    return kept, any_past


def vote(frames: Sequence[FrameAnswer]) -> tuple[str, float]:
    """The answer with the most probability mass over the frames, and its mean score.

    Each frame votes with ``exp(score)`` (its answer's geometric-mean token probability); ties
    go to the answer seen first. The returned score is the mean score of the frames that gave
    the winning answer, so it stays a mean log-probability like every other score.
    """
    if not frames:
        raise ValueError("nothing to vote on")
    weight: dict[str, float] = {}
    for frame in frames:
        weight[frame.answer] = weight.get(frame.answer, 0.0) + math.exp(frame.score)
    winner = max(weight, key=weight.__getitem__)  # first maximum: earliest answer wins ties
    scores = [frame.score for frame in frames if frame.answer == winner]
    return winner, sum(scores) / len(scores)


class VideoQA:
    """Answers questions about videos and captions them with GIT checkpoints.

    Checkpoints load on first use and stay loaded, so one ``VideoQA`` serves many videos.
    ``model`` answers questions; ``caption_model`` captions (either may be a hub id, a local
    folder, or ``"demo"``). ``fit`` is how frames go into the model's square unless a call says
    otherwise: ``"crop"`` (the checkpoint's own processor), ``"pad"`` (the whole frame,
    letterboxed), or ``None`` for each checkpoint's default (``pad`` for ``demo``, else ``crop``).
    """

    def __init__(
        self,
        model: str = DEFAULT_QA_MODEL,
        *,
        caption_model: str = DEFAULT_CAPTION_MODEL,
        revision: str | None = None,
        caption_revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        clip_batch_size: int = 1,
        fit: str | None = None,
    ) -> None:
        if clip_batch_size < 1:
            raise ValueError(f"clip_batch_size must be at least 1, got {clip_batch_size}")
        self.fit = check_fit(fit)
        self.model = model
        self.caption_model = caption_model
        self.revision = revision
        self.caption_revision = caption_revision
        self.device = device
        self.dtype = dtype
        self.clip_batch_size = clip_batch_size
        self._engines: dict[tuple[str, str | None], Engine] = {}

    @classmethod
    def from_engines(
        cls,
        answer_engine: Engine | None = None,
        caption_engine: Engine | None = None,
        *,
        clip_batch_size: int = 1,
    ) -> VideoQA:
        """A ``VideoQA`` around engines already loaded (a worker's, a benchmark's)."""
        answer = answer_engine or caption_engine
        caption = caption_engine or answer_engine
        if answer is None or caption is None:
            raise ValueError("from_engines needs at least one engine")
        qa = cls(
            answer.model_id,
            caption_model=caption.model_id,
            revision=answer.revision,
            caption_revision=caption.revision,
            device=str(answer.device),
            clip_batch_size=clip_batch_size,
        )
        qa._engines[(answer.model_id, answer.revision)] = answer
        qa._engines[(caption.model_id, caption.revision)] = caption
        return qa

    # -- models -------------------------------------------------------------------------------

    def engine(self, model: str, revision: str | None = None) -> Engine:
        """The loaded engine for ``model`` (loaded once, then reused)."""
        key = (model, revision)
        if key not in self._engines:
            from videoqa.engines import load_engine

            logger.info("loading %s", model)
            self._engines[key] = load_engine(
                model, revision=revision, device=self.device, dtype=self.dtype
            )
        return self._engines[key]

    @property
    def answer_engine(self) -> Engine:
        return self.engine(self.model, self.revision)

    @property
    def caption_engine(self) -> Engine:
        return self.engine(self.caption_model, self.caption_revision)

    # -- work ---------------------------------------------------------------------------------

    def plan(
        self,
        video: str | os.PathLike[str],
        *,
        questions: Sequence[str] = (),
        captions: bool = True,
        clip_length: float = DEFAULT_CLIP_LENGTH,
        stride: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        frames_per_clip: int | None = None,
        stream: int | None = None,
        deinterlace: str = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        caption_max_new_tokens: int = DEFAULT_CAPTION_MAX_NEW_TOKENS,
        fit: str | None = None,
        clips: str = "fixed",
        min_clip: float = DEFAULT_MIN_CLIP,
        max_clip: float = DEFAULT_MAX_CLIP,
        detector: str = "content",
    ) -> VideoJob:
        """Probe ``video`` and plan its clips; decoding and inference wait for ``results()``.

        Args:
            video: The video file.
            questions: Questions asked of every clip, each answered on its own.
            captions: Caption every clip too (with the caption model).
            clip_length: Seconds per clip; each clip is one subtitle cue.
            stride: Seconds between clip starts; ``None``: ``clip_length`` (clips touch).
            start: Seconds into the video where the first clip starts.
            end: Seconds into the video where clips stop; ``None``: the end of the video.
            frames_per_clip: Frames the model sees per clip; ``None``: a video checkpoint's
                own count (the only one it takes), 3 for an image checkpoint (they vote).
            stream: Index of the video stream; ``None``: the best one.
            deinterlace: ``"auto"`` (when the video says it is interlaced), ``"on"`` or
                ``"off"``: rebuild interlaced frames with FFmpeg's ``bwdif`` before the
                model sees them (``FrameSampler``'s ``deinterlace``).
            max_new_tokens: Longest answer, in tokens.
            caption_max_new_tokens: Longest caption, in tokens.
            fit: How frames go into the model's square: ``"crop"`` (the checkpoint's own
                processor: Microsoft's cut the sides of a widescreen frame), ``"pad"`` (the
                whole frame, letterboxed on black); ``None``: the ``VideoQA``'s ``fit``, else
                each checkpoint's default.
            clips: ``"fixed"`` (windows of ``clip_length`` every ``stride`` s) or ``"shots"``
                (from shot cut to shot cut, found by decoding the video once at low
                resolution with PySceneDetect: the ``shots`` extra; ``videoqa.shots``).
            min_clip, max_clip: Shots mode: shots shorter than ``min_clip`` seconds join a
                neighbour, longer than ``max_clip`` are split into equal parts.
            detector: Shots mode: ``"content"`` (PySceneDetect's ``ContentDetector``) or
                ``"adaptive"`` (``AdaptiveDetector``, steadier under camera motion).

        Raises:
            MediaError: The file cannot be used as a video (raised before any model loads).
            ConfigError: Impossible options (no work asked for, ``start`` past the end, a
                frame count a video checkpoint cannot take, an empty question).
            ModelError: A checkpoint cannot be found or loaded.
        """
        path = os.fspath(video)
        questions = _clean_questions(questions)
        if deinterlace not in DEINTERLACE_MODES:
            raise ConfigError(
                None, f"must be auto, on or off, got {deinterlace!r}", setting="deinterlace"
            )
        fit = check_fit(fit) or self.fit
        check_clip_options(clips, detector=detector, min_clip=min_clip, max_clip=max_clip,
                           stride=stride)  # fmt: skip
        if not questions and not captions:
            raise ConfigError(path, "nothing to do: no questions and no captions asked for")
        for setting, tokens in (
            ("max_new_tokens", max_new_tokens),
            ("caption_max_new_tokens", caption_max_new_tokens),
        ):
            if tokens < 1:
                raise ConfigError(None, f"must be at least 1, got {tokens}", setting=setting)
        # Probe first: a file that is not a usable video fails before any model loads.
        info = probe(path, stream=stream)
        answering = _role(self.answer_engine, frames_per_clip, info, fit) if questions else None
        captioning = _role(self.caption_engine, frames_per_clip, info, fit) if captions else None
        primary = answering or captioning
        assert primary is not None
        plan = plan_video_clips(
            path,
            info,
            frames_per_clip=primary.frames_per_clip,
            clips=clips,
            clip_length=clip_length,
            stride=stride,
            start=start,
            end=end,
            min_clip=min_clip,
            max_clip=max_clip,
            detector=detector,
            stream=stream,
            deinterlace=deinterlace,
        )
        longest = max_clip if plan.mode == "shots" else clip_length  # no fixed length in shots
        sampling = Sampling(
            clip_length=longest,
            stride=longest if stride is None else stride,
            start=start,
            end=info.duration if end is None else min(end, info.duration),
            max_new_tokens=max_new_tokens,
            caption_max_new_tokens=caption_max_new_tokens if captions else None,
            clip_mode=plan.mode,
            shots=plan.shots,
            deinterlace=deinterlace,
        )
        return VideoJob(
            path=path,
            info=info,
            clips=plan.clips,
            questions=questions,
            sampling=sampling,
            answering=answering,
            captioning=captioning,
            stream=stream if stream is not None else info.video_stream,
            clip_batch_size=self.clip_batch_size,
            deinterlace=deinterlace,
        )

    def ask(
        self,
        video: str | os.PathLike[str],
        questions: Sequence[str],
        *,
        clip_length: float = DEFAULT_CLIP_LENGTH,
        stride: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        frames_per_clip: int | None = None,
        stream: int | None = None,
        deinterlace: str = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        fit: str | None = None,
        clips: str = "fixed",
        min_clip: float = DEFAULT_MIN_CLIP,
        max_clip: float = DEFAULT_MAX_CLIP,
        detector: str = "content",
    ) -> tuple[Iterator[ClipResult], VideoInfo]:
        """Answer ``questions`` clip by clip, lazily, like faster-whisper's ``transcribe``.

        Args:
            video: The video file.
            questions: Questions asked of every clip, each answered on its own.
            clip_length, stride, start, end, frames_per_clip, stream: Which clips, and how
                many frames of each the model sees: as in ``plan``.
            deinterlace: ``"auto"``, ``"on"`` or ``"off"``: as in ``plan``.
            max_new_tokens: Longest answer, in tokens.
            fit: ``"crop"`` or ``"pad"``: as in ``plan``.
            clips, min_clip, max_clip, detector: Fixed clips or shots: as in ``plan``.

        Returns:
            ``(results, info)``: an iterator of ``ClipResult`` in time order that decodes and
            answers each clip only when asked for the next (it can be iterated once), and the
            video's ``VideoInfo``, known at once.

        Raises:
            MediaError, ConfigError, ModelError: As ``plan``, before any frame is decoded.
        """
        job = self.plan(
            video,
            questions=questions,
            captions=False,
            clip_length=clip_length,
            stride=stride,
            start=start,
            end=end,
            frames_per_clip=frames_per_clip,
            stream=stream,
            deinterlace=deinterlace,
            max_new_tokens=max_new_tokens,
            fit=fit,
            clips=clips,
            min_clip=min_clip,
            max_clip=max_clip,
            detector=detector,
        )
        return job.results(), job.info

    def caption(
        self,
        video: str | os.PathLike[str],
        *,
        clip_length: float = DEFAULT_CLIP_LENGTH,
        stride: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        frames_per_clip: int | None = None,
        stream: int | None = None,
        deinterlace: str = "auto",
        max_new_tokens: int = DEFAULT_CAPTION_MAX_NEW_TOKENS,
        fit: str | None = None,
        clips: str = "fixed",
        min_clip: float = DEFAULT_MIN_CLIP,
        max_clip: float = DEFAULT_MAX_CLIP,
        detector: str = "content",
    ) -> tuple[Iterator[ClipResult], VideoInfo]:
        """Caption the video clip by clip, lazily, with the caption model.

        Args:
            video: The video file.
            clip_length, stride, start, end, frames_per_clip, stream: Which clips, and how
                many frames of each the model sees: as in ``plan``.
            deinterlace: ``"auto"``, ``"on"`` or ``"off"``: as in ``plan``.
            max_new_tokens: Longest caption, in tokens.
            fit: ``"crop"`` or ``"pad"``: as in ``plan``.
            clips, min_clip, max_clip, detector: Fixed clips or shots: as in ``plan``.

        Returns:
            ``(results, info)`` as ``ask`` returns them; each result has a ``caption``.

        Raises:
            MediaError, ConfigError, ModelError: As ``plan``, before any frame is decoded.
        """
        job = self.plan(
            video,
            questions=(),
            captions=True,
            clip_length=clip_length,
            stride=stride,
            start=start,
            end=end,
            frames_per_clip=frames_per_clip,
            stream=stream,
            deinterlace=deinterlace,
            caption_max_new_tokens=max_new_tokens,
            fit=fit,
            clips=clips,
            min_clip=min_clip,
            max_clip=max_clip,
            detector=detector,
        )
        return job.results(), job.info

    def run(
        self,
        video: str | os.PathLike[str],
        *,
        questions: Sequence[str] = (),
        captions: bool = True,
        clip_length: float = DEFAULT_CLIP_LENGTH,
        stride: float | None = None,
        start: float = 0.0,
        end: float | None = None,
        frames_per_clip: int | None = None,
        stream: int | None = None,
        deinterlace: str = "auto",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        caption_max_new_tokens: int = DEFAULT_CAPTION_MAX_NEW_TOKENS,
        fit: str | None = None,
        clips: str = "fixed",
        min_clip: float = DEFAULT_MIN_CLIP,
        max_clip: float = DEFAULT_MAX_CLIP,
        detector: str = "content",
        progress: ProgressCallback | None = None,
    ) -> Report:
        """Process one whole video and return its ``Report`` (what the daemon calls).

        Args:
            video: The video file.
            questions, captions: What to do with every clip: as in ``plan``.
            clip_length, stride, start, end, frames_per_clip, stream: Which clips, and how
                many frames of each the model sees: as in ``plan``.
            deinterlace: ``"auto"``, ``"on"`` or ``"off"``: as in ``plan``.
            max_new_tokens: Longest answer, in tokens.
            caption_max_new_tokens: Longest caption, in tokens.
            fit: ``"crop"`` or ``"pad"``: as in ``plan``.
            clips, min_clip, max_clip, detector: Fixed clips or shots: as in ``plan``.
            progress: Called as ``progress(clips_done, clips_total)`` after each clip.

        Raises:
            MediaError, ConfigError, ModelError: As ``plan``, before any frame is decoded.
        """
        job = self.plan(
            video,
            questions=questions,
            captions=captions,
            clip_length=clip_length,
            stride=stride,
            start=start,
            end=end,
            frames_per_clip=frames_per_clip,
            stream=stream,
            deinterlace=deinterlace,
            max_new_tokens=max_new_tokens,
            caption_max_new_tokens=caption_max_new_tokens,
            fit=fit,
            clips=clips,
            min_clip=min_clip,
            max_clip=max_clip,
            detector=detector,
        )
        return job.report(progress)


def _clean_questions(questions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(questions, str):
        questions = (questions,)
    cleaned = tuple(" ".join(q.split()) for q in questions)
    if any(not q for q in cleaned):
        raise ConfigError(None, "a question is empty", setting="questions")
    return cleaned


def frames_per_clip_for(engine: Engine, requested: int | None = None) -> int:
    """Frames per clip for ``engine``: a video checkpoint's own count, else ``requested`` or 3.

    Raises ``ConfigError`` when a video checkpoint is asked for another count than it was
    trained with (its temporal embeddings exist for exactly that many frames).
    """
    if requested is not None and requested < 1:
        raise ConfigError(None, f"must be at least 1, got {requested}", setting="frames_per_clip")
    if engine.kind == "video":
        trained = int(engine.frames_per_clip or 0)
        if requested is not None and requested != trained:
            raise ConfigError(
                None,
                f"{engine.model_id} is a video checkpoint trained on {trained} frames per clip; "
                f"it cannot take {requested}",
                setting="frames_per_clip",
            )
        return trained
    return requested or DEFAULT_IMAGE_FRAMES_PER_CLIP


def _role(
    engine: Engine, frames_per_clip: int | None, info: VideoInfo, fit: str | None
) -> ModelRole:
    """How many frames this engine sees per clip, how they fit its square, and at what size
    the sampler decodes them."""
    count = frames_per_clip_for(engine, frames_per_clip)
    fit = engine.resolve_fit(fit)
    width, height = engine.frame_size(info.width, info.height, fit)
    return ModelRole(
        engine=engine, frames_per_clip=count, frame_size=(int(width), int(height)), fit=fit
    )
