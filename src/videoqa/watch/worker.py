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
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from videoqa.errors import ConfigError, ModelError, TooLargeError, TruncatedError, VideoQAError
from videoqa.watch.config import FolderSettings

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
    clip_options: dict[str, Any] = {"clip_length": settings.clip_length}
    for name in ("stride", "frames_per_clip", "max_new_tokens", "caption_max_new_tokens"):
        if getattr(settings, name) is not None:
            clip_options[name] = getattr(settings, name)
    report = pipeline.run(
        path, questions=settings.questions, captions=settings.captions, **clip_options
    )
    end = report.video.decodable_end
    if end is not None:  # never "done" with clips that describe frames the file does not hold
        raise TruncatedError(path, f"truncated at {end:.1f} s of {report.video.duration:.1f} s")
    return report


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


def _exit_when_daemon_dies(lifeline: Connection) -> None:
    """Block until the daemon's end of the lifeline closes, then end this process at once.

    A daemon killed with SIGKILL cannot stop its worker; without this the orphan would go on
    writing results for a job the restarted daemon is about to run again.
    """
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os._exit(70)


def _handle(path: Path, settings: FolderSettings, adapters_by_folder: dict) -> dict[str, Any]:
    """Process one file and run its adapters; returns what to tell the daemon."""
    from videoqa.adapters import load_adapters, prepare_adapters, run_report_adapters

    key = (settings.folder, settings.adapters)
    adapters = adapters_by_folder.get(key)
    if adapters is None:
        adapters = adapters_by_folder[key] = load_adapters(
            settings.adapters, options=settings.adapter_options
        )
    adapter_errors = prepare_adapters(adapters, path, settings)
    report = load_processor(settings.processor)(path, settings)
    adapter_errors += run_report_adapters(adapters, report, path, settings)
    clips = len(getattr(report, "clips", ()) or ())
    del report
    return {"adapter_errors": tuple(adapter_errors), "details": {"clips": clips}}


def _serve(conn: Connection, lifeline: Connection, log_level: int) -> None:
    """The worker process: receive ``(job_id, path, settings)``, answer with an ``Outcome``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    logging.basicConfig(
        level=log_level, format="videoqa: worker %(process)d: %(levelname)s: %(message)s"
    )
    threading.Thread(target=_exit_when_daemon_dies, args=(lifeline,), daemon=True).start()
    adapters_by_folder: dict = {}
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        job_id, path, settings = message
        started = time.monotonic()
        fields: dict[str, Any]
        try:
            fields = {"ok": True, **_handle(Path(path), settings, adapters_by_folder)}
        except ModelError as error:
            fields = {"ok": False, "error": str(error), "fatal": True}
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


def _context() -> multiprocessing.context.BaseContext:
    """A fork server where the platform has one (preloaded, safe with the daemon's threads)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


class Worker:
    """The daemon's handle on its worker process: submit one job, then wait for its ``Outcome``.

    ``time_limit`` bounds each file, counted from submission (it includes loading the model
    for the first file of a fresh worker).
    """

    def __init__(self, *, time_limit: float) -> None:
        self.time_limit = time_limit
        self._context = _context()
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._lifeline: Connection | None = None
        self._job: tuple[int, Path] | None = None
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

    def submit(self, job_id: int, path: Path, settings: FolderSettings) -> None:
        """Hand one file to the worker (starting a process if none is running)."""
        if self.busy:
            raise RuntimeError("the worker is busy")
        if self._process is None or not self._process.is_alive():
            self._discard()
            self._start()
        assert self._conn is not None
        self._conn.send((job_id, os.fspath(path), settings))
        self._job = (job_id, Path(path))
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
                outcome = self._conn.recv()
            except (EOFError, OSError):
                outcome = None
            if outcome is not None:
                self._job = None
                return outcome
        if ready:  # the process ended without an answer
            self._process.join(timeout=5)
            code = self._process.exitcode
            self._discard()
            self._job = None
            how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"code {code}"
            return Outcome(job_id, ok=False, retryable=True,
                           error=f"{path}: worker process died ({how})")  # fmt: skip
        if time.monotonic() >= self._deadline:
            self.kill()
            return Outcome(
                job_id, ok=False, retryable=True,
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
