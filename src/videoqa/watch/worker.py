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
from collections.abc import Callable
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
from videoqa.watch.config import FolderSettings

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
    from videoqa.media import DEFAULT_MAX_PIXELS, probe
    from videoqa.pipeline import VideoQA

    info = probe(path, max_pixels=settings.max_pixels or DEFAULT_MAX_PIXELS)
    if settings.max_duration is not None and info.duration > settings.max_duration:
        raise TooLargeError(
            path, f"lasts {info.duration:.1f} s, over the limit of {settings.max_duration:g} s"
        )
    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)
    key = (settings.model, settings.caption_model, settings.device)
    pipeline = _pipelines.get(key)
    if pipeline is None:
        options: dict[str, Any] = {"device": settings.device}
        if settings.caption_model is not None:
            options["caption_model"] = settings.caption_model
        _pipelines.clear()  # one set of models per worker: memory stays bounded
        pipeline = _pipelines[key] = VideoQA(settings.model, **options)
    clip_options: dict[str, Any] = {
        "clip_length": settings.clip_length, "deinterlace": settings.deinterlace,
        "clips": settings.clips, "min_clip": settings.min_clip, "max_clip": settings.max_clip,
        "detector": settings.detector,
    }
    for name in ("stride", "frames_per_clip", "fit", "max_new_tokens", "caption_max_new_tokens"):
        if getattr(settings, name) is not None:
            clip_options[name] = getattr(settings, name)
    if settings.batch_size is None:
        report = pipeline.run(
            path, questions=settings.questions, captions=settings.captions, **clip_options
        )
    else:
        report = _through_runner(pipeline, path, settings, clip_options)
    end = report.video.decodable_end
    if end is not None:  # never "done" with clips that describe frames the file does not hold
        raise TruncatedError(path, f"truncated at {end:.1f} s of {report.video.duration:.1f} s")
    return report


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


def _exit_when_daemon_dies(lifeline: Connection) -> None:
    """Block until the daemon's end of the lifeline closes, then end this process at once.

    A daemon killed with SIGKILL cannot stop its worker; without this the orphan would go on
    writing results for a job the restarted daemon is about to run again.
    """
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os._exit(70)


def _handle(
    path: Path,
    settings: FolderSettings,
    adapters_by_folder: dict,
    kept: tuple[str, tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Process one file and deliver its report to the adapters; returns what to tell the daemon.

    ``kept`` is ``(report JSON, adapter names)`` of a file processed before whose report those
    adapters did not deliver: they get it again, with no inference.
    """
    from videoqa.adapters import deliver_report, load_adapters, prepare_adapters

    key = (settings.folder, settings.adapters)
    adapters = adapters_by_folder.get(key)
    if adapters is None:
        adapters = adapters_by_folder[key] = load_adapters(
            settings.adapters, options=settings.adapter_options
        )
    if kept is None:
        adapter_errors = prepare_adapters(adapters, path, settings)
        report = load_processor(settings.processor)(path, settings)
    else:
        from videoqa.report import Report

        adapter_errors = []
        report = Report.from_dict(json.loads(kept[0]), source=os.fspath(path))
        adapters = [adapter for adapter in adapters if adapter.name in kept[1]]
    errors, undelivered = deliver_report(adapters, report, path, settings)
    fields: dict[str, Any] = {
        "adapter_errors": tuple(adapter_errors + errors),
        "details": {"clips": len(getattr(report, "clips", ()) or ())},
        "undelivered": tuple(undelivered),
    }
    if undelivered and kept is None:
        fields["report_json"] = json.dumps(report.to_dict())  # ASCII: any file name survives
    del report
    return fields


def _serve(conn: Connection, lifeline: Connection, log_level: int) -> None:
    """The worker process: receive ``(job_id, path, settings, kept)``, say ``("started",
    job_id)`` at once, then answer with an ``Outcome``."""
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
        job_id, path, settings, kept = message
        conn.send(("started", job_id))  # the attempt counts from here, not from the claim
        started = time.monotonic()
        fields: dict[str, Any]
        try:
            fields = {"ok": True, **_handle(Path(path), settings, adapters_by_folder, kept)}
        except ModelError as error:
            fields = {"ok": False, "error": str(error), "fatal": True}
        except DestinationError as error:
            # Nowhere to put the results yet (a read-only mount): no inference; try later.
            fields = {"ok": False, "error": str(error), "retryable": True}
        except VideoQAError as error:
            # The file is the problem: trying again gives the same answer.
            fields = {"ok": False, "error": str(error), "retryable": False}
        except Exception as error:
            logger.debug("%s: unexpected failure", path, exc_info=True)
            fields = {"ok": False, "retryable": True,
                      "error": f"{path}: {type(error).__name__}: {error}"}  # fmt: skip
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
    """The daemon's handle on its worker process: submit one job, then wait for its ``Outcome``.

    ``time_limit`` bounds each file, counted from submission (it includes loading the model
    for the first file of a fresh worker). ``on_start(job_id)`` is called (from ``wait``) when
    the worker process says it has begun on the job: the moment the attempt counts.
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
        self._job: tuple[int, Path] | None = None
        self._started = False
        self._deadline = 0.0

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def job_id(self) -> int | None:
        """The job being processed, if any."""
        return self._job[0] if self._job is not None else None

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

    def submit(
        self,
        job_id: int,
        path: Path,
        settings: FolderSettings,
        *,
        kept: tuple[str, tuple[str, ...]] | None = None,
    ) -> None:
        """Hand one file to the worker (starting a process if none is running).

        ``kept``: ``(report JSON, adapter names)`` to deliver again instead of processing.
        """
        if self.busy:
            raise RuntimeError("the worker is busy")
        if self._process is None or not self._process.is_alive():
            self._discard()
            self._start()
        assert self._conn is not None
        self._conn.send((job_id, os.fspath(path), settings, kept))
        self._job, self._started = (job_id, Path(path)), False
        self._deadline = time.monotonic() + self.time_limit

    def wait(self, timeout: float) -> Outcome | None:
        """The running job's outcome if it ends within ``timeout`` seconds, else ``None``.

        A worker that died or ran past the time limit yields a failed, retryable outcome
        and is replaced on the next submit.
        """
        if self._job is None or self._process is None or self._conn is None:
            return None
        job_id, path = self._job
        remaining = self._deadline - time.monotonic()
        ready = wait([self._conn, self._process.sentinel], max(0.0, min(timeout, remaining)))
        if self._conn in ready:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                message = None
            if isinstance(message, Outcome):
                self._job = None
                return message
            if message == ("started", job_id):
                self._started = True
                if self.on_start is not None:
                    self.on_start(job_id)
                return None
        if ready:  # the process ended without an answer
            self._process.join(timeout=5)
            code = self._process.exitcode
            self._discard()
            self._job = None
            how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"code {code}"
            return Outcome(job_id, ok=False, retryable=True, started=self._started,
                           error=f"{path}: worker process died ({how})")  # fmt: skip
        if time.monotonic() >= self._deadline:
            started = self._started
            self.kill()
            return Outcome(
                job_id, ok=False, retryable=True, started=started,
                error=f"{path}: time limit of {self.time_limit:g} s exceeded; worker killed",
            )  # fmt: skip
        return None

    def kill(self) -> None:
        """End the worker process now (its job, if any, is the caller's to requeue)."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._discard()
        self._job = None

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
