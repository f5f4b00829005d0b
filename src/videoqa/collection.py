"""Many videos through one set of models: decode in parallel, batch clips across files.

One file at a time (``VideoQA.run``) the model waits while frames decode, and decoding in one
process does not use a machine's cores. The collection runner splits the work into stages,
each a plain function, so the runner here and the Ray runner (``videoqa.distributed``) run the
same code:

1. :func:`find_videos` - the files to process: files as given, folders searched recursively.
2. :func:`plan_file` - probe a file and plan its clips with ``VideoQA.plan`` (the very planning
   of the one-file path, ``--clips`` included); the :class:`FilePlan` is picklable and holds
   no model, only what a worker needs.
3. :func:`decode_clips` - in a worker: a ``FrameSampler`` per frame size, then the checkpoint's
   own preprocessing, so only model-ready float32 arrays leave the worker
   (:class:`DecodedClip`), and a closing :class:`FileDecoded`.
4. :func:`infer_batch` - in the process that holds the models: one batch of clips from any
   files, answered and captioned together; returns each clip's ``ClipResult``.
5. :func:`finish_file` - a file's ``Report`` once its last clip is done, then
   ``write_sidecars``.

:class:`CollectionRunner` ties them together on one machine: a planning thread, ``workers``
decoding processes (``0``: one decoding thread in this process) that hand clips over through
a fixed pool of shared-memory slots (which bounds memory whatever the number or length of the
files), and one inference loop in the calling thread that runs a batch as soon as
``batch_size`` clips are waiting, or whatever is waiting when nothing else comes, so decoding
overlaps inference. Each file's results come out in time order as soon as its last clip is
done; a file that fails (unreadable, or its decoder crashed the worker) fails alone.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from videoqa.clips import Clip, frame_times_in
from videoqa.errors import ConfigError, VideoQAError
from videoqa.media import Frame, FrameSampler, VideoInfo, open_samplers
from videoqa.report import ClipResult, ModelInfo, Report, Sampling
from videoqa.videofiles import DEFAULT_EXTENSIONS

if TYPE_CHECKING:
    from videoqa.pipeline import ModelRole, VideoQA
    from videoqa.preprocess import FramePreprocessing

logger = logging.getLogger("videoqa.collection")

CPU_BATCH_SIZE = 4
"""Clips per batch on the CPU: bigger batches gain little there and delay the first results."""
GPU_MIN_BATCH_SIZE, GPU_MAX_BATCH_SIZE = 8, 64
GPU_BYTES_PER_CLIP = 512 * 2**20
"""A generous estimate of the accelerator memory one clip of a batch takes (activations and
key/value caches of a base-size GIT in half precision): the batch size is the free memory over
this, within the bounds above. An estimate, not a measurement (no GPU was at hand)."""
MAX_WORKERS = 16
SHARED_MEMORY_SHARE = 0.5
"""At most this share of the free space of /dev/shm goes to the slot pool."""


# --------------------------------------------------------------------------- 1. files


def find_videos(
    paths: Iterable[str | os.PathLike[str]],
    *,
    glob: str | None = None,
    extensions: Sequence[str] | None = None,
) -> list[Path]:
    """The files to process, in order: each file as given, then each folder's files.

    Folders are searched recursively (sorted, hidden names and symbolic links to folders
    skipped) for files whose path relative to the folder matches ``glob`` (``"*.mp4"``,
    ``"2024/*.mov"``; ``PurePath.match`` rules), or without ``glob`` for the video suffixes
    of ``extensions`` (default: the daemon's list). A path that does not exist is kept: it
    fails alone, with its reason, when processed.
    """
    if extensions is None:
        extensions = DEFAULT_EXTENSIONS
    suffixes = {suffix.lower() for suffix in extensions}
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            found.append(path)
            continue
        for folder, folders, files in os.walk(path):
            folders[:] = sorted(name for name in folders if not name.startswith("."))
            for name in sorted(files):
                if name.startswith("."):
                    continue
                candidate = Path(folder) / name
                relative = candidate.relative_to(path)
                if glob is not None:
                    if relative.match(glob):
                        found.append(candidate)
                elif candidate.suffix.lower() in suffixes:
                    found.append(candidate)
    return found


# --------------------------------------------------------------------------- 2. plans


@dataclass(frozen=True)
class RolePlan:
    """One model's part in a file's work, as a worker needs it: how to sample and preprocess.

    ``task`` is ``"answer"`` or ``"caption"``; ``input_shape`` the float32 array one clip
    becomes, ``(frames, 3, side, side)``: a video checkpoint sees the frames together, an image
    checkpoint each frame on its own.
    """

    task: str
    kind: str
    frames_per_clip: int
    frame_size: tuple[int, int]
    fit: str
    preprocessing: FramePreprocessing
    input_shape: tuple[int, int, int, int]
    model: ModelInfo

    def frame_times(self, clip: Clip) -> tuple[float, ...]:
        """The times of ``clip`` this model sees (as ``VideoJob`` samples them)."""
        if self.task == "answer":
            return clip.frame_times
        return frame_times_in(clip.start, clip.end, self.frames_per_clip)

    def preprocess(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """The model's input for one clip's frames (the engine's own ``FramePreprocessing``)."""
        pixels = self.preprocessing(frames, self.fit)
        if pixels.shape != self.input_shape:
            raise ValueError(f"frames preprocess to {pixels.shape}, expected {self.input_shape}")
        return pixels

    @property
    def nbytes(self) -> int:
        return math.prod(self.input_shape) * 4


@dataclass(frozen=True)
class FilePlan:
    """One file, probed and planned: everything the later stages need, and no model.

    ``position`` is the file's place in the collection (results are reported by it).
    """

    path: str
    position: int
    info: VideoInfo
    clips: tuple[Clip, ...]
    questions: tuple[str, ...]
    sampling: Sampling
    answering: RolePlan | None
    captioning: RolePlan | None
    stream: int | None
    deinterlace: str

    @property
    def roles(self) -> tuple[RolePlan, ...]:
        return tuple(role for role in (self.answering, self.captioning) if role is not None)

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Clips of plans with the same key can share a batch (same models, prompts, limits)."""
        return (
            self.questions,
            self.sampling.max_new_tokens,
            self.sampling.caption_max_new_tokens,
            tuple((role.task, role.model.id, role.model.revision) for role in self.roles),
        )


def _role_plan(task: str, role: ModelRole | None) -> RolePlan | None:
    if role is None:
        return None
    engine = role.engine
    frames = role.frames_per_clip
    return RolePlan(
        task=task,
        kind=engine.kind,
        frames_per_clip=frames,
        frame_size=role.frame_size,
        fit=role.fit,
        preprocessing=engine.preprocessing,
        input_shape=(frames, 3, engine.image_size, engine.image_size),
        model=role.info,
    )


def plan_file(
    qa: VideoQA,
    video: str | os.PathLike[str],
    *,
    position: int = 0,
    questions: Sequence[str] = (),
    captions: bool = True,
    **plan_options: Any,
) -> FilePlan:
    """Probe ``video`` and plan its clips exactly as ``qa.plan`` does (same options).

    Raises what ``VideoQA.plan`` raises (``MediaError``, ``ConfigError``, ``ModelError``).
    """
    job = qa.plan(video, questions=questions, captions=captions, **plan_options)
    return FilePlan(
        path=job.path,
        position=position,
        info=job.info,
        clips=tuple(job.clips),
        questions=job.questions,
        sampling=job.sampling,
        answering=_role_plan("answer", job.answering),
        captioning=_role_plan("caption", job.captioning),
        stream=job.stream,
        deinterlace=job.deinterlace,
    )


# --------------------------------------------------------------------------- 3. decoding


@dataclass
class DecodedClip:
    """One clip ready for the model: ``pixels[task]`` is a float32 ``RolePlan.input_shape``
    array. ``number`` is the clip's place in ``FilePlan.clips``."""

    position: int
    number: int
    pixels: dict[str, np.ndarray]


@dataclass(frozen=True)
class FileDecoded:
    """The end of a file's clips: how many were decoded, and where video ends when the file
    turned out truncated (clips wholly past that end are left out, as ``VideoJob`` does)."""

    position: int
    clips: int
    decodable_end: float | None = None


def decode_clips(plan: FilePlan, *, threads: int = 0) -> Iterator[DecodedClip | FileDecoded]:
    """Decode and preprocess ``plan``'s clips in time order, then say the file is done.

    Frames are sampled clip by clip, each size once per clip, as the one-file pipeline does,
    so the frames (and the arrays) are the same. ``threads``: FFmpeg threads per sampler
    (0: one per core). Raises the ``MediaError`` family for a file that cannot be decoded.
    """
    with contextlib.ExitStack() as stack:
        samplers = open_samplers(stack, plan.path, [role.frame_size for role in plan.roles],
                                 stream=plan.stream, deinterlace=plan.deinterlace,
                                 threads=threads)  # fmt: skip
        decodable_end: float | None = None
        count = 0
        for number, clip in enumerate(plan.clips):
            frames = _sample_clip(plan.roles, clip, samplers)
            every = [frame for role_frames in frames for frame in role_frames]
            if decodable_end is None and any(frame.past_end for frame in every):
                ends = [s.decodable_end for s in samplers.values() if s.decodable_end is not None]
                decodable_end = min(ends) if ends else 0.0
            if all(frame.past_end for frame in every):
                break  # this clip and every later one lie past the end of a truncated file
            pixels = {
                role.task: role.preprocess([frame.rgb for frame in role_frames])
                for role, role_frames in zip(plan.roles, frames, strict=True)
            }
            count += 1
            yield DecodedClip(plan.position, number, pixels)
        yield FileDecoded(plan.position, count, decodable_end)


def _sample_clip(
    roles: Sequence[RolePlan], clip: Clip, samplers: dict[tuple[int, int], FrameSampler]
) -> list[list[Frame]]:
    """Each role's frames of ``clip``; roles of one frame size share one ``sample`` call."""
    wanted: dict[tuple[int, int], list[float]] = {}
    for role in roles:
        wanted.setdefault(role.frame_size, []).extend(role.frame_times(clip))
    decoded = {size: iter(samplers[size].sample(times)) for size, times in wanted.items()}
    return [[next(decoded[role.frame_size]) for _ in role.frame_times(clip)] for role in roles]


# --------------------------------------------------------------------------- 4. inference


def infer_batch(
    qa: VideoQA, items: Sequence[tuple[FilePlan, DecodedClip]], *, pin_memory: bool = False
) -> list[ClipResult]:
    """Answer and caption a batch of clips from any files (one engine call per task).

    Every plan must share one ``batch_key`` (a ``ValueError`` otherwise). ``pin_memory``
    stages the pixels in page-locked memory so the copy to a GPU does not wait.
    """
    from videoqa.pipeline import clip_answers, clip_captions

    if not items:
        return []
    first = items[0][0]
    if any(plan.batch_key != first.batch_key for plan, _ in items):
        raise ValueError("a batch mixes plans with different questions, models or limits")
    answers: list[Any] = [()] * len(items)
    captions: list[Any] = [None] * len(items)
    import torch

    for role in first.roles:
        engine = qa.answer_engine if role.task == "answer" else qa.caption_engine
        stacked = np.stack([decoded.pixels[role.task] for _, decoded in items])
        if role.kind == "image":  # every frame answers on its own
            stacked = stacked.reshape(-1, *role.input_shape[1:])
        pixels = torch.from_numpy(stacked)
        if pin_memory:
            pixels = pixels.pin_memory()
        times = [role.frame_times(plan.clips[decoded.number]) for plan, decoded in items]
        if role.task == "answer":
            rows = engine.answer_pixels(pixels, first.questions,
                                        max_new_tokens=first.sampling.max_new_tokens)
            answers = clip_answers(role.kind, first.questions, times, rows)
        else:
            tokens = first.sampling.caption_max_new_tokens or 30
            captions = clip_captions(role.kind, times,
                                     engine.caption_pixels(pixels, max_new_tokens=tokens))
    results = []
    for position, (plan, decoded) in enumerate(items):
        clip = plan.clips[decoded.number]
        results.append(
            ClipResult(
                index=clip.index,
                start=clip.start,
                end=clip.end,
                frame_times=clip.frame_times,
                caption=captions[position],
                answers=answers[position],
            )
        )
    return results


# --------------------------------------------------------------------------- 5. reports


def finish_file(
    plan: FilePlan, results: Sequence[ClipResult], decodable_end: float | None = None
) -> Report:
    """The file's ``Report`` from its clips' results (any order; reported in time order)."""
    from videoqa.pipeline import make_report

    primary = plan.answering or plan.captioning
    assert primary is not None
    if decodable_end is not None:
        logger.warning(
            "%s: truncated: video decodes only to %.1f s of %.1f s; later clips are left out",
            plan.path,
            decodable_end,
            plan.info.duration,
        )
    return make_report(
        plan.info,
        model=primary.model,
        caption_model=plan.captioning.model if plan.captioning else None,
        sampling=plan.sampling,
        questions=plan.questions,
        clips=sorted(results, key=lambda result: result.index),
        decodable_end=decodable_end,
    )


# --------------------------------------------------------------------------- defaults


def default_workers(device: str, files: int) -> int:
    """Decoding processes: on a GPU one per core but one (for the inference loop), at most
    one per file and 16; elsewhere none, one thread: inference takes every core there and
    decoding costs under a percent of a clip's time (README, measured speed)."""
    cores = os.cpu_count() or 1
    if device == "cuda":
        return max(1, min(cores - 1, files, MAX_WORKERS))
    return 0


def default_batch_size(device: str) -> int:
    """Clips per batch: on a GPU from its free memory, on the CPU small."""
    if device != "cuda":
        return CPU_BATCH_SIZE
    import torch

    free, _total = torch.cuda.mem_get_info()
    return max(GPU_MIN_BATCH_SIZE, min(GPU_MAX_BATCH_SIZE, free // GPU_BYTES_PER_CLIP))


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class FilePlanned:
    """A file was probed and planned (its clip count is known)."""

    position: int
    path: str
    plan: FilePlan


@dataclass(frozen=True)
class ClipDone:
    """One clip of a file is answered; a file's clips come in time order."""

    position: int
    path: str
    result: ClipResult
    clips_total: int


@dataclass(frozen=True)
class FileDone:
    """Every clip of a file is done: its report (sidecars are the caller's to write)."""

    position: int
    path: str
    report: Report


@dataclass(frozen=True)
class FileFailed:
    """A file failed; ``error`` is one line naming it. ``clips_done`` were answered before."""

    position: int
    path: str
    error: str
    clips_done: int = 0
    clips_total: int = 0
    cause: VideoQAError | None = None
    """The error itself when it was raised in this process (planning), else ``None``."""


Event = FilePlanned | ClipDone | FileDone | FileFailed


# --------------------------------------------------------------------------- the runner


_Waiting = tuple[FilePlan, DecodedClip, Callable[[], None]]
"""A clip decoded and waiting for the model, and how to give its memory back."""


@dataclass
class _FileState:
    plan: FilePlan
    results: list[ClipResult] = field(default_factory=list)
    decoded: FileDecoded | None = None
    failed: bool = False


@dataclass(frozen=True)
class _SlotLayout:
    """Where each task's array sits inside one shared-memory slot."""

    offsets: tuple[tuple[str, int, tuple[int, ...]], ...]
    nbytes: int

    @classmethod
    def for_roles(cls, roles: Sequence[RolePlan]) -> _SlotLayout:
        offsets, offset = [], 0
        for role in roles:
            offsets.append((role.task, offset, role.input_shape))
            offset += role.nbytes
        return cls(tuple(offsets), offset)

    def views(self, buffer: Any, slot: int) -> dict[str, np.ndarray]:
        base = slot * self.nbytes
        return {
            task: np.ndarray(shape, dtype=np.float32, buffer=buffer, offset=base + offset)
            for task, offset, shape in self.offsets
        }


class CollectionRunner:
    """Process many files with one ``VideoQA``: decode in ``workers`` processes, batch clips
    of any files ``batch_size`` at a time, yield :data:`Event` s as work completes.

    ``workers=0`` decodes in one thread of this process (no process start-up: right for a
    file or two). ``slots_per_worker``: clips each worker may have decoded ahead (default
    from ``batch_size``). ``decoder_threads``: FFmpeg threads per file (0: automatic, as
    ``VideoQA.run`` decodes; 1 gives more clips per second in all with many workers, but
    FFmpeg may then decode one frame more or less at the cut of a truncated file).

    Use as a context manager: leaving it stops the workers and frees the shared memory, also
    on Ctrl-C.
    """

    def __init__(
        self,
        qa: VideoQA,
        *,
        workers: int | None = None,
        batch_size: int | None = None,
        slots_per_worker: int | None = None,
        decoder_threads: int = 0,
    ) -> None:
        self.qa = qa
        self.device = _device_type(qa)
        if workers is not None and workers < 0:
            raise ConfigError(None, f"must be 0 or more, got {workers}", setting="workers")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(None, f"must be at least 1, got {batch_size}", setting="batch_size")
        self.workers = workers
        self.batch_size = batch_size or default_batch_size(self.device)
        self.slots_per_worker = slots_per_worker
        self.decoder_threads = decoder_threads
        self.batches = 0
        self.largest_batch = 0
        self.most_waiting = 0
        """The most clips that were decoded and waited for the model at once (of this run)."""
        self.shared_memory_bytes = 0
        """The size of the shared-memory slot pool of the last run (0: decoded in a thread)."""
        self._pool: _DecoderPool | None = None

    def __enter__(self) -> CollectionRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(wait=exc[0] is None)

    def close(self, *, wait: bool = True) -> None:
        """Stop the decoders and free the shared memory (at once unless ``wait``)."""
        if self._pool is not None:
            self.shared_memory_bytes = self._pool.shared_memory_bytes
            self._pool.close(wait=wait)
            self._pool = None

    def worker_pids(self) -> list[int]:
        """The decoding processes' ids (none when decoding in a thread)."""
        pool = self._pool
        return [w.process.pid for w in pool._procs if w.process.pid] if pool else []

    def run(
        self,
        videos: Sequence[str | os.PathLike[str]],
        *,
        questions: Sequence[str] = (),
        captions: bool = True,
        precheck: Callable[[Path], None] | None = None,
        **plan_options: Any,
    ) -> Iterator[Event]:
        """Plan, decode and answer ``videos``; yield events as each step completes.

        ``plan_options`` are ``VideoQA.plan``'s. ``precheck(path)`` runs before a file is
        planned (the CLI refuses to clobber a user's subtitles there); a ``VideoQAError`` it or
        planning raises fails that file alone. A worker that dies fails the file it was
        decoding; a new worker takes its place.
        """
        paths = [Path(video) for video in videos]
        workers = self.workers
        if workers is None:
            workers = default_workers(self.device, len(paths))
        planner = _Planner(self.qa, paths, questions, captions, precheck, plan_options)
        self.close()
        self._pool = pool = _DecoderPool(
            workers,
            batch_size=self.batch_size,
            slots_per_worker=self.slots_per_worker,
            decoder_threads=self.decoder_threads,
        )
        planner.start(pool)
        files: dict[int, _FileState] = {}
        pending: deque[_Waiting] = deque()
        finished = 0
        pin = self.device == "cuda"
        try:
            while finished < len(paths):
                message = pool.next_message(block=not pending)
                if message is None and pending:
                    batch = _take_batch(pending, self.batch_size)
                    results = infer_batch(self.qa, [(plan, clip) for plan, clip, _ in batch],
                                          pin_memory=pin)  # fmt: skip
                    self.batches += 1
                    self.largest_batch = max(self.largest_batch, len(batch))
                    for (_plan, _clip, release), _result in zip(batch, results, strict=True):
                        release()
                    for (plan, _clip, _release), result in zip(batch, results, strict=True):
                        state = files[plan.position]
                        if state.failed:
                            continue
                        state.results.append(result)
                        yield ClipDone(plan.position, plan.path, result, len(plan.clips))
                        if _complete(state):
                            finished += 1
                            yield FileDone(plan.position, plan.path, _report(state))
                    continue
                if message is None:
                    continue
                kind = message[0]
                if kind == "planned":
                    plan = message[1]
                    files[plan.position] = _FileState(plan)
                    yield FilePlanned(plan.position, plan.path, plan)
                elif kind == "clip":
                    _, decoded, release = message
                    state = files[decoded.position]
                    if state.failed:
                        release()
                    else:
                        pending.append((state.plan, decoded, release))
                        self.most_waiting = max(self.most_waiting, len(pending))
                        if len(pending) >= self.batch_size:
                            pool.hold()  # run the batch before reading more
                elif kind == "decoded":
                    end: FileDecoded = message[1]
                    state = files[end.position]
                    if not state.failed:
                        state.decoded = end
                        if _complete(state):
                            finished += 1
                            yield FileDone(state.plan.position, state.plan.path, _report(state))
                elif kind == "failed":
                    _, position, path, error, cause = message
                    failed = files.get(position)
                    if failed is not None and failed.failed:
                        continue
                    if failed is not None:
                        failed.failed = True
                        for item in [item for item in pending if item[0].position == position]:
                            pending.remove(item)
                            item[2]()
                    finished += 1
                    done = len(failed.results) if failed else 0
                    total = len(failed.plan.clips) if failed else 0
                    yield FileFailed(position, path, error, done, total, cause)
        except BaseException:
            planner.stop()
            self.close(wait=False)
            raise
        finally:
            for _plan, _clip, release in pending:
                release()
            planner.stop()
            self.close()


def _take_batch(pending: deque[_Waiting], size: int) -> list[_Waiting]:
    """The oldest clips, up to ``size``, that can share a batch with the oldest one."""
    key = pending[0][0].batch_key
    batch: list[_Waiting] = []
    for item in list(pending):
        if len(batch) == size:
            break
        if item[0].batch_key == key:
            batch.append(item)
            pending.remove(item)
    return batch


def _complete(state: _FileState) -> bool:
    return state.decoded is not None and len(state.results) == state.decoded.clips


def _report(state: _FileState) -> Report:
    assert state.decoded is not None
    return finish_file(state.plan, state.results, state.decoded.decodable_end)


def _device_type(qa: VideoQA) -> str:
    from videoqa.models import choose_device

    return choose_device(qa.device).type


def _one_line(path: str, error: BaseException) -> str:
    """A failure as one line naming the file."""
    if isinstance(error, VideoQAError):
        return str(error)
    reason = str(error).splitlines()[0] if str(error) else ""
    return f"{path}: {type(error).__name__}{': ' + reason if reason else ''}"


class _Planner:
    """Plans files in a thread, in order, and hands each plan to the decoders."""

    def __init__(
        self,
        qa: VideoQA,
        paths: list[Path],
        questions: Sequence[str],
        captions: bool,
        precheck: Callable[[Path], None] | None,
        options: dict[str, Any],
    ) -> None:
        self.qa, self.paths, self.questions, self.captions = qa, paths, questions, captions
        self.precheck, self.options = precheck, options
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pool: _DecoderPool) -> None:
        self._thread = threading.Thread(
            target=self._plan_all, args=(pool,), name="videoqa-planner", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _plan_all(self, pool: _DecoderPool) -> None:
        _block_ctrl_c()  # decoder processes started from here must not get Ctrl-C
        for position, path in enumerate(self.paths):
            if self._stop.is_set():
                return
            try:
                if not path.is_file():
                    from videoqa.errors import MediaError

                    raise MediaError(path, "no such file" if not path.exists() else "not a file")
                if self.precheck is not None:
                    self.precheck(path)
                plan = plan_file(self.qa, path, position=position, questions=self.questions,
                                 captions=self.captions, **self.options)  # fmt: skip
            except Exception as error:  # noqa: BLE001 - any failure is that file's alone
                cause = error if isinstance(error, VideoQAError) else None
                line = _one_line(str(path), error)
                pool.post(("failed", position, os.fspath(path), line, cause))
                continue
            try:
                if not pool.submit(plan, self._stop):
                    return
            except Exception as error:  # noqa: BLE001 - no decoders: the whole run stops
                pool.post(("fatal", error))
                return


class _DecoderPool:
    """The decoders: threads or processes that turn plans into clips, and their messages.

    Process workers write each clip into a slot of one shared-memory block; each worker owns
    ``slots_per_worker`` slots and blocks when all of them wait for the model, so memory stays
    at (workers x slots x clip size) however many or long the files. Each worker holds at most
    two files (the one it decodes and the next), so a worker that dies takes one file with it.
    """

    FILES_PER_WORKER = 2

    def __init__(
        self, workers: int, *, batch_size: int, slots_per_worker: int | None, decoder_threads: int
    ) -> None:
        self.workers = workers
        self.decoder_threads = decoder_threads
        self.batch_size = batch_size
        self._messages: queue.Queue[Any] = queue.Queue()
        self._held = False
        self._closed = threading.Event()
        self._layout: _SlotLayout | None = None
        self._shared: shared_memory.SharedMemory | None = None
        self._slots_per_worker = slots_per_worker or (
            max(2, math.ceil(2 * batch_size / max(workers, 1))) + 1
        )
        self._lock = threading.Lock()
        self._capacity = threading.Condition(self._lock)
        self._assigned: dict[int, deque[FilePlan]] = {}
        self._procs: list[_WorkerProcess] = []
        self._threads: list[threading.Thread] = []
        self._plans: queue.Queue[FilePlan | None] | None = None
        self.shared_memory_bytes = 0

    # -- the planner's side ---------------------------------------------------------------

    def post(self, message: tuple) -> None:
        self._messages.put(message)

    def submit(self, plan: FilePlan, stop: threading.Event) -> bool:
        """Announce ``plan`` and queue it for a decoder (waits while all are busy)."""
        self._messages.put(("planned", plan))
        if self.workers == 0:
            self._start_thread(plan)
            assert self._plans is not None
            while not stop.is_set() and not self._closed.is_set():
                with contextlib.suppress(queue.Full):
                    self._plans.put(plan, timeout=0.2)
                    return True
            return False
        with self._capacity:
            self._start_processes(plan)
            while not stop.is_set() and not self._closed.is_set():
                free = [w for w in self._procs if len(w.files) < self.FILES_PER_WORKER]
                if free:
                    worker = min(free, key=lambda w: len(w.files))
                    worker.assign(plan)
                    return True
                self._capacity.wait(timeout=0.2)
        return False

    # -- threads ---------------------------------------------------------------------------

    def _start_thread(self, plan: FilePlan) -> None:
        if self._threads:
            return
        self._plans = queue.Queue(maxsize=1)
        thread = threading.Thread(target=self._decode_in_thread, name="videoqa-decoder",
                                  daemon=True)  # fmt: skip
        self._threads.append(thread)
        thread.start()

    def _decode_in_thread(self) -> None:
        assert self._plans is not None
        room = threading.Semaphore(2 * self.batch_size + 1)  # clips decoded, not yet inferred
        while not self._closed.is_set():
            try:
                plan = self._plans.get(timeout=0.2)
            except queue.Empty:
                continue
            if plan is None:
                return
            try:
                for item in decode_clips(plan):
                    if isinstance(item, FileDecoded):
                        self._messages.put(("decoded", item))
                        continue
                    while not room.acquire(timeout=0.2):
                        if self._closed.is_set():
                            return
                    self._messages.put(("clip", item, room.release))
            except Exception as error:  # noqa: BLE001 - the file fails alone
                cause = error if isinstance(error, VideoQAError) else None
                self._messages.put(("failed", plan.position, plan.path,
                                    _one_line(plan.path, error), cause))  # fmt: skip

    # -- processes -------------------------------------------------------------------------

    def _start_processes(self, plan: FilePlan) -> None:
        if self._procs:
            return
        self._layout = _SlotLayout.for_roles(plan.roles)
        slots = self.workers * self._slots_per_worker
        size = max(1, slots * self._layout.nbytes)
        _check_shared_memory(size)
        self._shared = shared_memory.SharedMemory(create=True, size=size)
        self.shared_memory_bytes = size
        context = multiprocessing.get_context("spawn")
        self._results = context.Queue()
        for index in range(self.workers):
            first = index * self._slots_per_worker
            slot_range = range(first, first + self._slots_per_worker)
            self._procs.append(_WorkerProcess(index, context, self, slot_range))
        threading.Thread(target=self._pump, name="videoqa-pump", daemon=True).start()

    def _pump(self) -> None:
        """Move workers' messages into the one queue the inference loop reads; notice deaths."""
        _block_ctrl_c()  # replacement decoder processes start from here
        while not self._closed.is_set():
            try:
                message = self._results.get(timeout=0.2)
            except queue.Empty:
                message = None
            except (EOFError, OSError):
                return
            with self._capacity:
                if message is not None:
                    self._on_worker_message(message)
                dead = [w for w in self._procs if not w.alive()]
                if dead and not self._closed.is_set():
                    # What a dead worker said before it died is all in the queue by now.
                    with contextlib.suppress(queue.Empty, EOFError, OSError):
                        while True:
                            self._on_worker_message(self._results.get(timeout=0.05))
                    for worker in dead:
                        self._on_worker_death(worker)

    def _on_worker_message(self, message: tuple) -> None:
        kind, index = message[0], message[1]
        worker = self._procs[index]
        if message[2] != worker.generation:
            return  # from a worker that was replaced
        if kind == "clip":
            _, _, _, position, number, slot = message
            assert self._layout is not None and self._shared is not None
            worker.pending.add(slot)
            pixels = self._layout.views(self._shared.buf, slot)
            release = _SlotRelease(worker, slot)
            self._messages.put(("clip", DecodedClip(position, number, pixels), release))
            return
        plan = worker.files.popleft()
        if kind == "decoded":
            self._messages.put(("decoded", message[3]))
        else:
            self._messages.put(("failed", plan.position, plan.path, message[3], None))
        self._capacity.notify_all()

    def _on_worker_death(self, worker: _WorkerProcess) -> None:
        code = worker.exitcode()
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"code {code}"
        lost = list(worker.files)
        worker.restart()
        if lost:
            first = lost[0]
            self._messages.put(("failed", first.position, first.path,
                                f"{first.path}: worker process died ({how})", None))  # fmt: skip
            for plan in lost[1:]:
                worker.assign(plan)
        self._capacity.notify_all()

    # -- the inference loop's side ------------------------------------------------------------

    def hold(self) -> None:
        """Have the next ``next_message`` say nothing: a full batch is waiting."""
        self._held = True

    def next_message(self, *, block: bool) -> tuple | None:
        if self._held:
            self._held = False
            return None
        try:
            message = self._messages.get(timeout=0.2) if block else self._messages.get_nowait()
        except queue.Empty:
            return None
        if message[0] == "fatal":
            raise message[1]
        return message

    def close(self, *, wait: bool = True) -> None:
        """Stop the decoders (politely when ``wait`` and they are idle, else at once)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._plans is not None:
            with contextlib.suppress(queue.Full):
                self._plans.put_nowait(None)
        for worker in self._procs:
            worker.stop(wait=wait)
        for thread in self._threads:
            thread.join(timeout=5)
        if self._shared is not None:
            with contextlib.suppress(BufferError):  # clips still viewed: freed with them
                self._shared.close()
            with contextlib.suppress(FileNotFoundError):
                self._shared.unlink()
            self._shared = None


class _SlotRelease:
    """Gives a slot back to the worker that owns it (once the batch holding it has run)."""

    def __init__(self, worker: _WorkerProcess, slot: int) -> None:
        self.worker, self.slot = worker, slot

    def __call__(self) -> None:
        self.worker.release(self.slot)


def _check_shared_memory(size: int) -> None:
    """Refuse a slot pool that /dev/shm cannot hold (writing past it would be a SIGBUS)."""
    if not os.path.isdir("/dev/shm"):
        return
    stats = os.statvfs("/dev/shm")
    free = stats.f_bavail * stats.f_frsize
    if size > free * SHARED_MEMORY_SHARE:
        raise ConfigError(
            None,
            f"the decoded-clip pool needs {size / 2**20:.0f} MiB of shared memory, /dev/shm has "
            f"{free / 2**20:.0f} MiB free: use fewer workers or a smaller batch size",
            setting="workers",
        )


class _WorkerProcess:
    """One decoding process, its task queue, its slots and the files it holds."""

    def __init__(self, index: int, context: Any, pool: _DecoderPool, slots: range) -> None:
        self.index, self.context, self.pool, self.slots = index, context, pool, slots
        self.generation = 0
        self.files: deque[FilePlan] = deque()
        self.pending: set[int] = set()
        self._start()

    def _start(self) -> None:
        assert self.pool._shared is not None and self.pool._layout is not None
        self.tasks = self.context.Queue()
        self.free = self.context.Queue()
        for slot in self.slots:
            if slot not in self.pending:
                self.free.put(slot)
        threads = self.pool.decoder_threads
        self.process = self.context.Process(
            target=_worker_main,
            args=(self.index, self.generation, self.pool._shared.name, self.pool._layout,
                  self.tasks, self.free, self.pool._results, threads, os.getpid()),
            name=f"videoqa-decoder-{self.index}", daemon=True,
        )  # fmt: skip
        self.process.start()

    def assign(self, plan: FilePlan) -> None:
        self.files.append(plan)
        self.tasks.put(plan)

    def release(self, slot: int) -> None:
        """The model is done with ``slot``: this worker (or its replacement) may reuse it."""
        with self.pool._lock:
            self.pending.discard(slot)
            if not self.pool._closed.is_set():
                self.free.put(slot)

    def alive(self) -> bool:
        return self.process.is_alive()

    def exitcode(self) -> int | None:
        self.process.join(timeout=1)
        return self.process.exitcode

    def restart(self) -> None:
        """A new process in this one's place: same slots, minus those the model still reads."""
        self.files.clear()
        self.generation += 1
        self._start()

    def stop(self, *, wait: bool) -> None:
        if wait:
            with contextlib.suppress(Exception):
                self.tasks.put(None)
            self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        for channel in (self.tasks, self.free):
            channel.close()
            channel.cancel_join_thread()


def _attach_shared_memory(name: str) -> shared_memory.SharedMemory:
    """Open the parent's block without registering it for removal at this process's exit
    (before Python 3.13 every process that opens a block would otherwise unlink it)."""
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg]
    from multiprocessing import resource_tracker

    register = resource_tracker.register
    resource_tracker.register = lambda *_args, **_kwargs: None  # type: ignore[assignment]
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register  # type: ignore[assignment]


def _block_ctrl_c() -> None:
    """Block SIGINT in this (non-main) thread: the main thread still gets Ctrl-C, and processes
    started from here begin with it blocked, so none dies with a traceback while starting."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _exit_with_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (killed, say)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(70)


def _worker_main(
    index: int,
    generation: int,
    shared_name: str,
    layout: _SlotLayout,
    tasks: Any,
    free: Any,
    results: Any,
    threads: int,
    parent: int,
) -> None:
    """A decoding process: plans in, clips into its shared-memory slots, messages out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    shared = _attach_shared_memory(shared_name)
    try:
        while True:
            plan = tasks.get()
            if plan is None:
                return
            try:
                for item in decode_clips(plan, threads=threads):
                    if isinstance(item, FileDecoded):
                        results.put(("decoded", index, generation, item))
                        continue
                    slot = free.get()
                    views = layout.views(shared.buf, slot)
                    for task, array in item.pixels.items():
                        views[task][...] = array
                    del views
                    results.put(("clip", index, generation, item.position, item.number, slot))
            except Exception as error:  # noqa: BLE001 - the file fails alone
                results.put(("failed", index, generation, _one_line(plan.path, error)))
    finally:
        shared.close()


# --------------------------------------------------------------------------- the simple API


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file of :func:`run_collection`: its report and sidecars, or why not."""

    path: str
    report: Report | None = None
    written: tuple[Path, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_collection(
    qa: VideoQA,
    videos: Sequence[str | os.PathLike[str]],
    *,
    questions: Sequence[str] = (),
    captions: bool = True,
    workers: int | None = None,
    batch_size: int | None = None,
    formats: Sequence[str] = (),
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    **plan_options: Any,
) -> Iterator[FileOutcome]:
    """Process ``videos`` with :class:`CollectionRunner`; yield each file's outcome as it ends.

    With ``formats`` (``("json", "srt", "vtt")``), each file's sidecars are written as soon as
    its last clip is done (``write_sidecars``'s ``output_dir`` and ``overwrite``). A file that
    fails yields an outcome with its one-line ``error``; the others go on.
    """
    from videoqa.delivery import Delivery
    from videoqa.sidecars import check_targets

    delivery = Delivery(tuple(formats), output_dir, overwrite)

    def precheck(path: Path) -> None:
        if formats:
            check_targets(path, formats=tuple(formats), output_dir=output_dir, overwrite=overwrite)

    with CollectionRunner(qa, workers=workers, batch_size=batch_size) as runner:
        for event in runner.run(videos, questions=questions, captions=captions,
                                precheck=precheck, **plan_options):  # fmt: skip
            if isinstance(event, FileFailed):
                yield FileOutcome(event.path, error=event.error)
            elif isinstance(event, FileDone):
                try:
                    written = delivery.deliver(event.report, event.path)
                except VideoQAError as error:
                    yield FileOutcome(event.path, report=event.report, error=str(error))
                    continue
                yield FileOutcome(event.path, report=event.report, written=tuple(written))
