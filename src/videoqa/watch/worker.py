"""Run the pipeline in a separate process, one file at a time, under a time limit.

A crash inside FFmpeg or a decode that never returns must cost one file, not the daemon: the
daemon hands each file to a long-lived worker process (the model stays loaded between files)
and waits with a deadline. A worker that dies or overruns is killed and replaced; the next
file gets a fresh one. Worker processes come from a fork server that has already imported the
heavy modules, so a replacement starts in well under a second.

The processing itself is one function, ``process_file(path, settings) -> Report`` (the seam:
``FolderSettings.processor`` may name another one as ``module:function``). After it returns,
the worker hands the report to the folder's adapters.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import json
import logging
import multiprocessing
import os
import resource  # POSIX only, as the daemon is: Linux (and macOS), not Windows (README)
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videoqa.errors import (
    ConfigError,
    DestinationError,
    ModelError,
    TooLargeError,
    TruncatedError,
    VideoQAError,
)
from videoqa.events import EventScope, announcing
from videoqa.watch.config import DEFAULT_PROCESSOR, FolderSettings

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

logger = logging.getLogger("videoqa.watch.worker")

_PRELOAD = [
    "videoqa.watch.worker", "videoqa.adapters", "videoqa.pipeline",
    "transformers.models.git.modeling_git", "transformers.models.auto.tokenization_auto",
]  # fmt: skip
"""Imported once by the fork server, so each worker process starts with them loaded."""

_pipelines: dict[tuple, Any] = {}
"""VideoQA instances of this worker process, by model settings: the model loads once."""


def process_file(path: Path, settings: FolderSettings) -> Any:
    """Run the pipeline on one video with this folder's questions, captions and clip options.

    The folder's pixel and duration limits are checked on the probe first, so an oversized
    file fails before any model loads or any frame decodes.
    """
    _check_limits(path, settings)
    pipeline = _pipeline_for(settings)
    clip_options = _clip_options(settings)
    if settings.batch_size is None:
        report = pipeline.run(
            path, questions=settings.questions, captions=settings.captions, **clip_options
        )
    else:
        report = _through_runner(pipeline, path, settings, clip_options)
    _check_complete(path, report)
    _shape_subtitles(path, report, settings)
    return report


def process_files(paths: Sequence[Path], settings: FolderSettings) -> Iterator[tuple[int, Any]]:
    """Run a backlog of videos through the collection runner, clips batched across files.

    Yields ``(index into paths, report)`` as each file finishes, or ``(index, error)`` for a
    file that failed alone; the reports are the ones :func:`process_file` gives. Decoding runs
    in a thread, as in :func:`_through_runner` (this daemonic process may not start others).
    """
    from videoqa.collection import CollectionRunner, FileDone, FileFailed

    clip_options = _clip_options(settings)
    pipeline = _pipeline_for(settings)
    with CollectionRunner(pipeline, workers=0, batch_size=settings.batch_size) as runner:
        events = runner.run(paths, questions=settings.questions, captions=settings.captions,
                            precheck=lambda path: _check_limits(path, settings),
                            **clip_options)  # fmt: skip
        for event in events:
            if isinstance(event, FileFailed):
                yield event.position, event.cause or VideoQAError(None, event.error)
            elif isinstance(event, FileDone):
                try:
                    _check_complete(paths[event.position], event.report)
                except TruncatedError as error:
                    yield event.position, error
                else:
                    try:
                        _shape_subtitles(paths[event.position], event.report, settings)
                    except VideoQAError as error:  # audio that does not decode: this file
                        yield event.position, error
                    else:
                        yield event.position, event.report


def _shape_subtitles(path: Path, report: Any, settings: FolderSettings) -> None:
    """The folder's subtitle style and, with ``avoid_speech``, where people speak, into the
    report before the adapters write it (``videoqa.vad.prepare_report``)."""
    from videoqa.speech import speech_options
    from videoqa.vad import prepare_report

    options = speech_options(settings)
    if options.shapes_report:
        prepare_report(report, path, options)


def _check_limits(path: Path, settings: FolderSettings) -> None:
    """Refuse a file over the folder's pixel or duration limit, from its probe alone."""
    from videoqa.media import DEFAULT_MAX_PIXELS, probe

    info = probe(path, max_pixels=settings.max_pixels or DEFAULT_MAX_PIXELS)
    if settings.max_duration is not None and info.duration > settings.max_duration:
        raise TooLargeError(
            path, f"lasts {info.duration:.1f} s, over the limit of {settings.max_duration:g} s"
        )


def _pipeline_for(settings: FolderSettings) -> Any:
    """This worker's ``VideoQA`` for the folder's models, loaded once and kept."""
    from videoqa.pipeline import VideoQA

    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)
    key = (settings.model, settings.caption_model, settings.device, settings.quantize)
    pipeline = _pipelines.get(key)
    if pipeline is None:
        options: dict[str, Any] = {"device": settings.device, "quantize": settings.quantize}
        if settings.caption_model is not None:
            options["caption_model"] = settings.caption_model
        _pipelines.clear()  # one set of models per worker: memory stays bounded
        pipeline = _pipelines[key] = VideoQA(settings.model, **options)
    return pipeline


def _clip_options(settings: FolderSettings) -> dict[str, Any]:
    """The folder's clip and answer options, as ``VideoQA.run`` and ``plan`` take them."""
    clip_options: dict[str, Any] = {
        "clip_length": settings.clip_length, "deinterlace": settings.deinterlace,
        "clips": settings.clips, "min_clip": settings.min_clip, "max_clip": settings.max_clip,
        "detector": settings.detector,
    }
    for name in ("stride", "frames_per_clip", "fit", "max_new_tokens", "caption_max_new_tokens"):
        if getattr(settings, name) is not None:
            clip_options[name] = getattr(settings, name)
    return clip_options


def _check_complete(path: Path, report: Any) -> None:
    """Never "done" with clips that describe frames the file does not hold: the CLI's rule
    (``pipeline.check_decoded``), stricter, as a partial decode fails here too."""
    from videoqa.pipeline import check_decoded

    check_decoded(path, report, partial=False)


def _through_runner(
    pipeline: Any, path: Path, settings: FolderSettings, clip_options: dict[str, Any]
) -> Any:
    """The report of ``path`` from the collection runner: ``batch_size`` clips a batch, frames
    decoded in a thread while the model runs. A thread, not processes: this worker process is
    the daemon's crash boundary, and a daemonic process may not start processes of its own."""
    from videoqa.collection import CollectionRunner, FileDone, FileFailed

    with CollectionRunner(pipeline, workers=0, batch_size=settings.batch_size) as runner:
        for event in runner.run([path], questions=settings.questions,
                                captions=settings.captions, **clip_options):  # fmt: skip
            if isinstance(event, FileFailed):
                raise event.cause or VideoQAError(None, event.error)
            if isinstance(event, FileDone):
                return event.report
    raise VideoQAError(path, "the collection runner ended without a report")


def load_processor(spec: str) -> Callable[[Path, FolderSettings], Any]:
    """The function a ``module:function`` spec names (ConfigError when it does not exist)."""
    module_name, _, function_name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(spec, f"cannot load processor: {error}") from None
    if not callable(function):
        raise ConfigError(spec, "processor is not callable")
    return function


def resident_memory_bytes() -> int:
    """This process's resident set size now (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, where there is one (``VIDEOQA_MALLOC_TRIM=0``: off, to compare)."""
    if os.environ.get("VIDEOQA_MALLOC_TRIM", "1") == "0":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_malloc_trim = _load_malloc_trim()


def release_free_memory() -> None:
    """Hand memory freed by the last file back to the operating system.

    Decoders and tensors allocate and free large native buffers; glibc keeps freed pages in
    its arenas, so without this the worker's resident size creeps up file after file even
    though nothing is kept (measured by ``benchmarks/bench_worker_memory.py``).
    """
    if _malloc_trim is not None:
        _malloc_trim(0)


@dataclass(frozen=True)
class Outcome:
    """What became of one file in the worker: done, or failed with an error and whether to retry."""

    job_id: int
    ok: bool
    error: str | None = None
    retryable: bool = False
    fatal: bool = False
    """The model itself failed to load: no file can succeed until the config is fixed."""
    adapter_errors: tuple[str, ...] = ()
    seconds: float = 0.0
    rss_bytes: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    started: bool = True
    """The worker had begun on the file; one that died before that never read it."""
    undelivered: tuple[str, ...] = ()
    """Adapters that could not deliver the results (then the job is not done)."""
    report_json: str | None = None
    """The report as JSON when some adapter did not deliver it, to deliver again later."""
    interrupted: bool = False
    """The worker died or overran during a backlog before this file's turn ended: not known
    to be this file's fault, so its attempt is not counted and it runs again alone."""


def _exit_when_daemon_dies(lifeline: Connection) -> None:
    """Block until the daemon's end of the lifeline closes, then end this process at once.

    A daemon killed with SIGKILL cannot stop its worker; without this the orphan would go on
    writing results for a job the restarted daemon is about to run again.
    """
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os._exit(70)


def _adapters_for(settings: FolderSettings, adapters_by_folder: dict) -> list:
    """The folder's adapters in this worker process, loaded once."""
    from videoqa.adapters import load_adapters

    key = (settings.folder, settings.adapters)
    adapters = adapters_by_folder.get(key)
    if adapters is None:
        adapters = adapters_by_folder[key] = load_adapters(
            settings.adapters, options=settings.adapter_options
        )
    return adapters


def _handle(
    path: Path,
    settings: FolderSettings,
    adapters_by_folder: dict,
    kept: tuple[str, tuple[str, ...]] | None = None,
    events: EventScope | None = None,
) -> dict[str, Any]:
    """Process one file and deliver its report to the adapters; returns what to tell the daemon.

    ``kept`` is ``(report JSON, adapter names)`` of a file processed before whose report those
    adapters did not deliver: they get it again, with no inference. ``events``: the job's,
    for the ids of the events the adapters announce.
    """
    from videoqa.adapters import prepare_adapters

    adapters = _adapters_for(settings, adapters_by_folder)
    if kept is None:
        adapter_errors = prepare_adapters(adapters, path, settings)
        report = load_processor(settings.processor)(path, settings)
    else:
        from videoqa.report import Report

        adapter_errors = []
        report = Report.from_dict(json.loads(kept[0]), source=os.fspath(path))
        adapters = [adapter for adapter in adapters if adapter.name in kept[1]]
    with announcing(events):
        return _deliver(adapters, report, path, settings, adapter_errors, keep=kept is None)


def _deliver(
    adapters: list, report: Any, path: Path, settings: FolderSettings,
    adapter_errors: list[str], *, keep: bool,
) -> dict[str, Any]:  # fmt: skip
    """Hand ``report`` to the adapters; what to tell the daemon (with the report as JSON when
    some adapter did not deliver it and ``keep``)."""
    from videoqa.adapters import deliver_report

    errors, undelivered = deliver_report(adapters, report, path, settings)
    fields: dict[str, Any] = {
        "adapter_errors": tuple(adapter_errors + errors),
        "details": {"clips": len(getattr(report, "clips", ()) or ())},
        "undelivered": tuple(undelivered),
    }
    if undelivered and keep:
        fields["report_json"] = json.dumps(report.to_dict())  # ASCII: any file name survives
    return fields


def _failure(path: Path | str, error: Exception) -> dict[str, Any]:
    """What to tell the daemon about a file that raised ``error``: fatal, retryable or not."""
    if isinstance(error, ModelError):
        return {"ok": False, "error": str(error), "fatal": True}
    if isinstance(error, DestinationError):
        # Nowhere to put the results yet (a read-only mount): no inference; try later.
        return {"ok": False, "error": str(error), "retryable": True}
    if isinstance(error, VideoQAError):
        # The file is the problem: trying again gives the same answer.
        return {"ok": False, "error": str(error), "retryable": False}
    logger.debug("%s: unexpected failure", path, exc_info=error)
    return {"ok": False, "retryable": True, "error": f"{path}: {type(error).__name__}: {error}"}


def _backlog_results(
    paths: list[Path], settings: FolderSettings, adapters_by_folder: dict,
    events: Sequence[EventScope | None] = (),
) -> Iterator[tuple[int, dict[str, Any]]]:  # fmt: skip
    """Process a backlog of one folder's files; yield ``(index, fields)`` as each ends.

    Adapters are asked first (a refusal fails that file before any inference); the rest go
    through :func:`process_files` together, or, for a folder with its own ``processor``,
    through it one after another in this process.
    """
    from videoqa.adapters import prepare_adapters

    adapters = _adapters_for(settings, adapters_by_folder)
    ready: list[int] = []
    adapter_errors: dict[int, list[str]] = {}
    for index, path in enumerate(paths):
        try:
            adapter_errors[index] = prepare_adapters(adapters, path, settings)
            ready.append(index)
        except Exception as error:  # noqa: BLE001 - that file's alone
            yield index, _failure(path, error)
    results: Iterator[tuple[int, Any]]
    if settings.processor == DEFAULT_PROCESSOR:
        chosen = [paths[index] for index in ready]
        results = ((ready[i], result) for i, result in process_files(chosen, settings))
    else:
        results = _one_by_one(ready, paths, settings)
    for index, result in results:
        if isinstance(result, Exception):
            yield index, _failure(paths[index], result)
            continue
        try:
            with announcing(events[index] if index < len(events) else None):
                fields = _deliver(adapters, result, paths[index], settings,
                                  adapter_errors[index], keep=True)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - that file's alone
            fields = _failure(paths[index], error)
        else:
            fields = {"ok": True, **fields}
        del result
        yield index, fields


def _one_by_one(
    indexes: list[int], paths: list[Path], settings: FolderSettings
) -> Iterator[tuple[int, Any]]:
    """``(index, report or error)`` from the folder's own processor, file after file."""
    processor = load_processor(settings.processor)
    for index in indexes:
        try:
            yield index, processor(paths[index], settings)
        except Exception as error:  # noqa: BLE001 - that file's alone
            yield index, error


def _serve_backlog(
    conn: Connection, jobs: list[tuple[int, str, EventScope | None]], settings: FolderSettings,
    adapters_by_folder: dict,
) -> None:  # fmt: skip
    """Answer a backlog: ``("started", *job_ids)`` at once, then one ``Outcome`` per file as
    each finishes (the daemon records it then, whatever becomes of the rest)."""
    conn.send(("started", *(job_id for job_id, _, _ in jobs)))
    paths = [Path(path) for _, path, _ in jobs]
    events = [scope for _, _, scope in jobs]
    started = time.monotonic()
    unreported = dict(enumerate(jobs))
    try:
        for index, fields in _backlog_results(paths, settings, adapters_by_folder, events):
            job_id = unreported.pop(index)[0]
            conn.send(Outcome(job_id, seconds=time.monotonic() - started,
                              rss_bytes=resident_memory_bytes(), **fields))  # fmt: skip
            started = time.monotonic()
    except Exception as error:  # noqa: BLE001 - the model, say: every file left gets it
        for job_id, path, _ in unreported.values():
            conn.send(Outcome(job_id, seconds=time.monotonic() - started, **_failure(path, error)))
    release_free_memory()


def _serve(conn: Connection, lifeline: Connection, log_level: int) -> None:
    """The worker process: receive ``(job_id, path, settings, kept, events)``, say
    ``("started", job_id)`` at once, then answer with an ``Outcome``; or receive ``("backlog",
    [(job_id, path, events), ...], settings)`` and answer as :func:`_serve_backlog` does."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    from videoqa.watch.logformat import DaemonLogFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(DaemonLogFormatter("videoqa: worker %(process)d"))
    logging.basicConfig(level=log_level, handlers=[handler])
    threading.Thread(target=_exit_when_daemon_dies, args=(lifeline,), daemon=True).start()
    adapters_by_folder: dict = {}
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        if message[0] == "backlog":
            _serve_backlog(conn, message[1], message[2], adapters_by_folder)
            continue
        job_id, path, settings, kept, events = message
        conn.send(("started", job_id))  # the attempt counts from here, not from the claim
        started = time.monotonic()
        fields: dict[str, Any]
        try:
            handled = _handle(Path(path), settings, adapters_by_folder, kept, events)
            fields = {"ok": True, **handled}
        except Exception as error:
            fields = _failure(path, error)
        release_free_memory()
        conn.send(Outcome(job_id, seconds=time.monotonic() - started,
                          rss_bytes=resident_memory_bytes(), **fields))  # fmt: skip


def _context() -> ForkServerContext | SpawnContext:
    """A fork server where the platform has one (preloaded, safe with the daemon's threads)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


class Worker:
    """The daemon's handle on its worker process: submit one job (or a backlog of one folder's
    jobs), then wait for each ``Outcome``.

    ``time_limit`` bounds each file, counted from submission (it includes loading the model
    for the first file of a fresh worker); in a backlog, from the last file's outcome.
    ``on_start(job_id)`` is called (from ``wait``) when the worker process says it has begun on
    the job (for a backlog, on each of its jobs at once): the moment the attempt counts.
    """

    def __init__(
        self, *, time_limit: float, on_start: Callable[[int], object] | None = None
    ) -> None:
        self.time_limit = time_limit
        self.on_start = on_start
        self._context = _context()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lifeline: Connection | None = None
        self._jobs: dict[int, Path] = {}
        """The jobs handed over whose outcome has not come back, in order."""
        self._backlog = False
        self._ready: deque[Outcome] = deque()
        """Outcomes made here (the worker died during a backlog), to hand out one by one."""
        self._started = False
        self._deadline = 0.0

    @property
    def busy(self) -> bool:
        return bool(self._jobs or self._ready)

    @property
    def job_id(self) -> int | None:
        """The (first) job being processed, if any."""
        return next(iter(self._jobs), None)

    @property
    def job_ids(self) -> list[int]:
        """Every job handed over whose outcome has not been handed out."""
        return [outcome.job_id for outcome in self._ready] + list(self._jobs)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _start(self) -> None:
        conn, child_conn = self._context.Pipe()
        lifeline_read, lifeline_write = self._context.Pipe(duplex=False)
        level = logging.getLogger("videoqa").getEffectiveLevel()
        process = self._context.Process(
            target=_serve, args=(child_conn, lifeline_read, level), name="videoqa-worker",
            daemon=True,
        )  # fmt: skip
        process.start()
        child_conn.close()
        lifeline_read.close()
        self._process, self._conn, self._lifeline = process, conn, lifeline_write
        logger.debug("worker process %s started", process.pid)

    def _send(self, message: tuple, jobs: dict[int, Path]) -> None:
        if self.busy:
            raise RuntimeError("the worker is busy")
        if self._process is None or not self._process.is_alive():
            self._discard()
            self._start()
        assert self._conn is not None
        self._conn.send(message)
        self._jobs, self._started = jobs, False
        self._deadline = time.monotonic() + self.time_limit

    def submit(
        self,
        job_id: int,
        path: Path,
        settings: FolderSettings,
        *,
        kept: tuple[str, tuple[str, ...]] | None = None,
        events: EventScope | None = None,
    ) -> None:
        """Hand one file to the worker (starting a process if none is running).

        ``kept``: ``(report JSON, adapter names)`` to deliver again instead of processing.
        ``events``: the job's, for the ids of the events its adapters announce.
        """
        self._send((job_id, os.fspath(path), settings, kept, events), {job_id: Path(path)})
        self._backlog = False

    def submit_backlog(
        self, jobs: Sequence[tuple[int, Path]], settings: FolderSettings,
        *, events: Mapping[int, EventScope] | None = None,
    ) -> None:  # fmt: skip
        """Hand several files of one folder to the worker at once, to batch their clips.

        Their outcomes come back one by one as each file finishes. If the worker dies or
        overruns first, each file not yet reported comes back ``interrupted``. ``events``:
        each job's, by job id.
        """
        events = events or {}
        handed = [(job_id, os.fspath(path), events.get(job_id)) for job_id, path in jobs]
        message = ("backlog", handed, settings)
        self._send(message, {job_id: Path(path) for job_id, path in jobs})
        self._backlog = True

    def wait(self, timeout: float) -> Outcome | None:
        """The next outcome if one comes within ``timeout`` seconds, else ``None``.

        A worker that died or ran past the time limit yields a failed, retryable outcome
        and is replaced on the next submit; during a backlog, an ``interrupted`` outcome for
        each file not yet reported.
        """
        if self._ready:
            return self._ready.popleft()
        if not self._jobs or self._process is None or self._conn is None:
            return None
        remaining = self._deadline - time.monotonic()
        ready = wait([self._conn, self._process.sentinel], max(0.0, min(timeout, remaining)))
        if self._conn in ready:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                message = None
            if isinstance(message, Outcome):
                self._jobs.pop(message.job_id, None)
                self._deadline = time.monotonic() + self.time_limit  # the next file's turn
                return message
            if isinstance(message, tuple) and message[:1] == ("started",):
                self._started = True
                for job_id in message[1:]:
                    if self.on_start is not None and job_id in self._jobs:
                        self.on_start(job_id)
                return None
        if ready:  # the process ended without an answer
            self._process.join(timeout=5)
            code = self._process.exitcode
            self._discard()
            how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"code {code}"
            return self._lost("worker process died ({})", how)
        if time.monotonic() >= self._deadline:
            self.kill(keep_jobs=True)
            return self._lost("time limit of {} s exceeded; worker killed", f"{self.time_limit:g}")
        return None

    def _lost(self, what: str, detail: str) -> Outcome:
        """Outcomes for the jobs a dead or killed worker took with it; returns the first."""
        jobs, self._jobs = self._jobs, {}
        for job_id, path in jobs.items():
            if self._backlog:
                error = f"{path}: {what.format(detail)} during a backlog of files; runs again alone"
            else:
                error = f"{path}: {what.format(detail)}"
            self._ready.append(Outcome(job_id, ok=False, retryable=True, started=self._started,
                                       interrupted=self._backlog, error=error))  # fmt: skip
        return self._ready.popleft()

    def kill(self, *, keep_jobs: bool = False) -> None:
        """End the worker process now (its jobs, if any, are the caller's to requeue)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._discard()
        if not keep_jobs:
            self._jobs, self._ready = {}, deque()

    def _discard(self) -> None:
        for connection in (self._conn, self._lifeline):
            if connection is not None:
                connection.close()
        if self._process is not None:
            self._process.join(timeout=1)
            if self._process.exitcode is not None:
                self._process.close()
        self._process = self._conn = self._lifeline = None

    def close(self) -> None:
        """Stop the worker: politely when idle, by force when it is still busy."""
        if self._process is not None and not self.busy and self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._process.join(timeout=5)
        self.kill()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
