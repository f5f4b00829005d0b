"""The daemon: watch folders, wait for files to settle, queue them, run them one by one.

One loop in one thread owns every decision; the observer thread only reports paths and the
worker process only processes. State lives in the job store, so a daemon killed at any moment
resumes where it was: running jobs are requeued at start and a rescan finds what changed while
it was down (or what an event queue dropped).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path

from videoqa.adapters import (
    Adapter,
    close_adapters,
    load_adapters,
    run_failure_adapters,
    run_rename_adapters,
)
from videoqa.errors import ConfigError, MediaError, ModelError, VideoQAError
from videoqa.events import EventScope, announcing
from videoqa.pathnames import readable
from videoqa.sidecars import remove_stale_temporaries
from videoqa.watch.config import FolderSettings, WatchConfig, with_folder
from videoqa.watch.jobstore import Job, JobStore
from videoqa.watch.scanner import (
    Identity,
    SettleTracker,
    is_candidate,
    iter_candidates,
    iter_folders,
    real_path_inside,
)
from videoqa.watch.storelock import StoreLock
from videoqa.watch.watcher import Change, FolderWatcher
from videoqa.watch.worker import Outcome, Worker

logger = logging.getLogger("videoqa.watch.daemon")


class WatchDaemon:
    """Watch ``config.folders`` until ``stop()``; with ``once=True``, scan, process and return.

    ``run()`` blocks; ``stop()`` may be called from a signal handler or another thread. On
    stop, the file being processed goes back to the queue (its attempt not counted).
    """

    def __init__(self, config: WatchConfig, *, once: bool = False) -> None:
        if not config.folders:
            raise ConfigError("watch", "no folders to watch (give FOLDER... or [[folders]])")
        self.config = config
        self.once = once
        self.tracker = SettleTracker(config.settle)
        self.tick = max(0.02, min(0.25, config.settle / 4))
        self._stopping = threading.Event()
        self._store: JobStore | None = None
        self._adapters: dict[Path, list[Adapter]] = {}
        """Adapters the daemon itself runs (failures, renames), by folder."""
        self._start_failures = 0
        self._alone: set[int] = set()
        """Jobs to run one at a time: left unfinished by a worker that died (or was killed)
        during a backlog, or found running after a restart; one of them may be the cause."""
        self.watcher: FolderWatcher | None = None
        self.worker: Worker | None = None
        self.ready = threading.Event()
        """Set once the observer runs and the first scan is done (tests and callers wait on it)."""
        self.failed: list[str] = []
        """Files whose jobs ended ``failed`` while this daemon ran (``watch --once`` exits 1)."""

    def stop(self) -> None:
        """Ask the loop to end; safe from signal handlers and other threads."""
        self._stopping.set()

    @property
    def store(self) -> JobStore:
        assert self._store is not None, "the daemon is not running"
        return self._store

    def run(self) -> None:
        """Watch and process until stopped (or, with ``once``, until nothing is left).

        Raises ``ConfigError`` at once when another daemon holds the job store.
        """
        with StoreLock(self.config.jobstore):  # one daemon per job store, for its whole life
            self._run()

    def _run(self) -> None:
        self._store = JobStore(self.config.jobstore)
        recovered = self.store.recover(max_attempts=self.config.max_attempts)
        self.worker = Worker(time_limit=self.config.time_limit, on_start=self._started)
        try:
            self._alone.update(job.id for job in recovered)
            for job in recovered:
                if job.state == "failed":  # the same failure path as any other failure
                    self._notify_failure(job, job.last_error or "interrupted")
            if not self.once:
                self.watcher = FolderWatcher(
                    [s.folder for s in self.config.folders],
                    poll=self.config.poll,
                    poll_interval=self.config.poll_interval,
                )
                try:
                    self.watcher.start()
                except OSError as error:
                    reason = f"cannot watch: {error.strerror or error}"
                    raise ConfigError(error.filename or "watch", reason) from None
            self._remove_stale_temporaries()
            self.rescan()
            logger.info("watching %s", ", ".join(str(s.folder) for s in self.config.folders))
            self.ready.set()
            self._loop()
        finally:
            self._shut_down()

    def _loop(self) -> None:
        assert self.worker is not None
        next_rescan = time.monotonic() + self.config.rescan_interval
        while not self._stopping.is_set():
            self._take_changes(wait=0.0 if self.worker.busy else self.tick)
            self._queue_settled()
            if self.worker.busy:
                outcome = self.worker.wait(self.tick)
                if outcome is not None:
                    self._record(outcome)
            if not self.worker.busy and not self._stopping.is_set():
                job = self.store.claim()
                if job is not None:
                    self._dispatch(job)
                elif self.once and not self.tracker and not self.store.has_waiting_work():
                    return
            if time.monotonic() >= next_rescan:
                self.rescan()
                next_rescan = time.monotonic() + self.config.rescan_interval

    def _shut_down(self) -> None:
        if self.worker is not None:
            job_ids = self.worker.job_ids
            self.worker.close()
            for job_id in job_ids if self._store is not None else ():
                job = self.store.requeue(job_id)
                logger.info("%s: stopped while processing; back in the queue", job.path)
        if self.watcher is not None:
            self.watcher.stop()
        for adapters in self._adapters.values():
            close_adapters(adapters)
        self._adapters.clear()
        if self._store is not None:
            self._store.close()
            self._store = None

    def _remove_stale_temporaries(self) -> None:
        """Temporary files that a worker killed mid-write left (ours by name, writer gone)."""
        for settings in self.config.folders:
            for folder in iter_folders(settings):
                remove_stale_temporaries(folder)

    # --- finding files ------------------------------------------------------------------

    def _settings_for(self, path: Path) -> FolderSettings | None:
        try:
            return self.config.settings_for(path)
        except ConfigError:
            return None

    def rescan(self) -> None:
        """Walk every folder: unknown files start settling, vanished ones are marked deleted."""
        for settings in self.config.folders:
            for path in iter_candidates(settings):
                self._consider(path, settings)
            for known in self.store.present_paths(settings.folder):
                if not os.path.lexists(known):
                    self._deleted(Path(known))

    def _consider(self, path: Path, settings: FolderSettings) -> None:
        """Start the settle clock for ``path`` unless the store already knows these bytes."""
        if path in self.tracker:
            return
        try:
            identity = Identity.of(path)
        except OSError:
            return
        if self.store.find(path, identity.size, identity.mtime_ns) is None:
            self.tracker.touch(path)

    def _deleted(self, path: Path) -> None:
        self.tracker.forget(path)
        if self.store.mark_deleted(path):
            logger.info("%s: deleted", path)

    def _take_changes(self, *, wait: float) -> None:
        if self.watcher is None:
            if wait:
                self._stopping.wait(wait)
            return
        try:
            change = self.watcher.changes.get(timeout=wait) if wait else None
        except queue.Empty:
            return
        while True:
            if change is not None:
                self._apply(change)
            try:
                change = self.watcher.changes.get_nowait()
            except queue.Empty:
                return

    def _apply(self, change: Change) -> None:
        path = Path(os.path.abspath(change.path))
        if change.kind == "deleted":
            self._deleted(path)
            return
        settings = self._settings_for(path)
        if settings is None:
            return
        if change.kind == "folder":
            # A folder moved in arrives as one event; its files have none of their own.
            if path.is_dir():
                for file in iter_candidates(settings, below=path):
                    self._consider(file, settings)
        elif is_candidate(path, settings):
            self.tracker.touch(path)

    def _queue_settled(self) -> None:
        for identity in self.tracker.settled():
            settings = self._settings_for(identity.path)
            if settings is None:
                continue
            if not real_path_inside(identity.path, settings.folder):
                self._refuse(identity, settings)
                continue
            if self._follow_rename(identity, settings):
                continue
            job, new = self.store.enqueue(
                identity.path, identity.size, identity.mtime_ns, settings.folder,
                device=identity.device, inode=identity.inode,
            )  # fmt: skip
            if new:
                logger.info("%s: settled, queued", identity.path)

    def _follow_rename(self, identity: Identity, settings: FolderSettings) -> bool:
        """Whether ``identity`` is a known file under a new name, handled without inference.

        The job follows the file, and adapters move what they delivered (the sidecars). A
        file still being processed under its old name is looked at again once it settles
        anew; by then its job has finished.
        """
        path = identity.path
        if self.store.find(path, identity.size, identity.mtime_ns) is not None:
            return False
        old = self.store.find_renamed(path, identity, settings.folder)
        if old is None or os.path.lexists(old.path):  # unknown, or a second (hard) link
            return False
        if old.state == "running":
            self.tracker.touch(path)
            return True
        moved = self.store.rename(old.id, path)
        logger.info("%s: renamed from %s; %s, not processed again", path, old.path, old.state)
        if old.state == "done":
            adapters = self._adapters_for(settings)
            with announcing(EventScope.of(self.store, moved).renamed(moved.updated_at)):
                run_rename_adapters(adapters, Path(old.path), path, settings)
        return True

    def _refuse(self, identity: Identity, settings: FolderSettings) -> None:
        path = identity.path
        if self.store.find(path, identity.size, identity.mtime_ns) is not None:
            return
        reason = (
            f"{path}: refused: its real path {os.path.realpath(path)} "
            f"is outside the watched folder {settings.folder}"
        )
        job = self.store.record_refused(path, identity.size, identity.mtime_ns, settings.folder,
                                        reason)  # fmt: skip
        logger.warning("%s", reason)
        self._notify_failure(job, reason)

    # --- processing ---------------------------------------------------------------------

    def _dispatch(self, job: Job) -> None:
        """Hand a claimed job to the worker, with up to ``backlog - 1`` more due files of its
        folder when there are some (their clips batched together); a file that changed or
        left in the meantime is not handed over."""
        assert self.worker is not None
        ready = self._checked(job)
        if ready is None:
            return
        path, settings = ready
        kept = self.store.kept_report(job.id)
        jobs = [(job.id, path)]
        if kept is None and job.id not in self._alone and self.config.backlog > 1:
            jobs += self._more_of(job, settings)
        if len(jobs) > 1:
            events = {job_id: EventScope.of(self.store, self.store.get(job_id))
                      for job_id, _ in jobs}  # fmt: skip
            self.worker.submit_backlog(jobs, settings, events=events)
            logger.debug("%d files of %s handed to worker process %s together", len(jobs),
                         settings.folder, self.worker.pid)  # fmt: skip
            return
        self.worker.submit(job.id, path, settings, events=EventScope.of(self.store, job),
                           kept=(kept.report_json, kept.adapters) if kept else None)  # fmt: skip
        logger.debug("%s: handed to worker process %s", path, self.worker.pid)

    def _more_of(self, first: Job, settings: FolderSettings) -> list[tuple[int, Path]]:
        """Claim up to ``backlog - 1`` more queued, due files of ``first``'s folder (same
        settings), none of them to be run alone."""
        more: list[tuple[int, Path]] = []
        for candidate in self.store.due_queued(first.folder, limit=4 * self.config.backlog):
            if len(more) >= self.config.backlog - 1:
                break
            if candidate.id in self._alone or candidate.id == first.id:
                continue
            job = self.store.claim(candidate.id)
            if job is None:
                continue
            ready = self._checked(job)
            if ready is not None and ready[1] == settings:
                more.append((job.id, ready[0]))
            elif ready is not None:
                self.store.requeue(job.id)
        return more

    def _checked(self, job: Job) -> tuple[Path, FolderSettings] | None:
        """The claimed job's path and settings, unless its file changed, left or is refused
        (then the job is put back, dropped or failed here)."""
        path = Path(job.path)
        settings = self._settings_for(path)
        try:
            current = Identity.of(path)
        except OSError:
            self.store.requeue(job.id)
            self._deleted(path)
            return None
        if (current.size, current.mtime_ns) != (job.size, job.mtime_ns):
            self.store.drop(job.id)  # never processed; the new bytes settle and queue anew
            self.tracker.touch(path)
            return None
        if settings is None or not real_path_inside(path, settings.folder):
            reason = f"{path}: refused: not inside a watched folder"
            job = self.store.fail(job.id, reason, retryable=False, max_attempts=0)
            logger.warning("%s", reason)
            self._notify_failure(job, reason)
            return None
        return path, settings

    def _started(self, job_id: int) -> None:
        """The worker has begun on the job: its attempt counts from now."""
        assert self.worker is not None
        job = self.store.start(job_id)
        kept = self.store.kept_report(job_id)
        if kept is not None:
            logger.info("%s: delivering its kept report to %s (try %d, worker pid %s)", job.path,
                        ", ".join(kept.adapters), kept.tries, self.worker.pid)  # fmt: skip
        else:
            logger.info("%s: processing (attempt %d, worker pid %s)", job.path, job.attempts,
                        self.worker.pid)  # fmt: skip

    def _record(self, outcome: Outcome) -> None:
        if outcome.interrupted:
            # The worker died or overran during a backlog: which file caused it is unknown,
            # so none is charged; each unfinished one runs again alone (the one at fault then
            # fails alone).
            job = self.store.requeue(outcome.job_id)
            self._alone.add(job.id)
            remove_leftovers(self.config, Path(job.path))
            logger.warning("%s (not counted)", outcome.error)
            return
        if outcome.fatal:
            # Every file would fail the same way: keep this one queued and stop, loudly.
            self.store.requeue(outcome.job_id)
            raise ModelError(None, outcome.error or "the model cannot be loaded")
        if not outcome.started:
            # The worker died (or ran out of time) before it began on the file: not the
            # file's fault, so no attempt is counted; a worker that never starts stops us.
            self._start_failures += 1
            job = self.store.requeue(outcome.job_id, delay=self.config.retry_delay)
            if self._start_failures >= self.config.max_attempts:
                raise VideoQAError(None, f"the worker process cannot start: {outcome.error}")
            logger.warning("%s (before it began on %s; not counted)", outcome.error, job.path)
            return
        self._start_failures = 0
        job = self.store.get(outcome.job_id)
        if not outcome.ok and not os.path.exists(job.path):
            # It left while being read: deleted, or renamed (then its job follows it and
            # runs under the new name). Not the file's failure, so no attempt is counted.
            self.store.requeue(job.id)
            self._deleted(Path(job.path))
            logger.info("%s: gone while being processed; not a failure", job.path)
            return
        job = record_outcome(self.store, self.config, outcome)
        if job.state in ("done", "failed"):
            self._alone.discard(job.id)
        if job.state == "failed":
            self._notify_failure(job, job.last_error or "unknown error")

    def _adapters_for(self, settings: FolderSettings) -> list[Adapter]:
        """The folder's adapters, loaded once, for what the daemon itself reports."""
        adapters = self._adapters.get(settings.folder)
        if adapters is None:
            adapters = load_adapters(settings.adapters, options=settings.adapter_options)
            self._adapters[settings.folder] = adapters
        return adapters

    def _notify_failure(self, job: Job, error: str) -> None:
        """Tell the folder's adapters that ``job`` ended ``failed``."""
        self.failed.append(job.path)
        path = Path(job.path)
        settings = self._settings_for(path) or self.config.defaults
        if settings is not None:
            with announcing(EventScope.of(self.store, job)):
                run_failure_adapters(self._adapters_for(settings), path, error)


def record_outcome(store: JobStore, config: WatchConfig, outcome: Outcome) -> Job:
    """Write a worker's outcome to the store: done, undelivered (its report kept), waiting for
    a retry, or failed."""
    if outcome.ok and outcome.undelivered:
        error = "; ".join(outcome.adapter_errors) or "not delivered"
        job = store.record_undelivered(
            outcome.job_id, error, outcome.undelivered, report_json=outcome.report_json,
            max_attempts=config.max_attempts, retry_delay=config.retry_delay,
        )  # fmt: skip
        if job.state == "undelivered":
            logger.warning("%s: not delivered (%s); its report is kept, next try in %g s",
                           job.path, error, config.retry_delay)  # fmt: skip
        else:
            logger.warning("failed: %s", naming_the_file(job.path, job.last_error or error))
        return job
    if outcome.ok:
        note = "; ".join(outcome.adapter_errors) or None
        job = store.complete(outcome.job_id, note=note)
        logger.info("%s: done in %.2f s (worker RSS %.0f MiB)", job.path, outcome.seconds,
                    (outcome.rss_bytes or 0) / 2**20)  # fmt: skip
        return job
    error = outcome.error or "unknown error"
    job = store.fail(
        outcome.job_id,
        error,
        retryable=outcome.retryable,
        max_attempts=config.max_attempts,
        retry_delay=config.retry_delay,
    )
    if outcome.retryable:  # the worker may have died (or been killed) mid-write
        remove_leftovers(config, Path(job.path))
    if job.state in ("queued", "undelivered"):
        logger.warning("%s (attempt %d of %d; will retry)", naming_the_file(job.path, error),
                       job.attempts, config.max_attempts)  # fmt: skip
    else:
        logger.warning("failed: %s", naming_the_file(job.path, error))
    return job


def naming_the_file(path: str, error: str) -> str:
    """``error`` for a log line that names the file: an adapter's error names its own target
    (an event log, a URL, a sidecar), so the video's path goes first unless it is there."""
    if error.startswith((path, readable(path))):
        return error
    return f"{path}: {error}"


def remove_leftovers(config: WatchConfig, video: Path) -> None:
    """Remove the temporary files a dead worker left beside ``video``'s sidecars."""
    try:
        settings = config.settings_for(video)
    except ConfigError:
        return
    remove_stale_temporaries(settings.output_dir_for(video) or video.parent)


def wait_until_settled(path: Path, settle: float) -> None:
    """Block until ``path`` has not changed for ``settle`` seconds (MediaError if it vanishes)."""
    tracker = SettleTracker(settle)
    tracker.touch(path)
    while tracker:
        if tracker.settled():
            return
        time.sleep(min(0.25, settle / 4))
    raise MediaError(path, "disappeared while settling")


def process_one(config: WatchConfig, path: str | os.PathLike[str], *, settle: float = 0.0) -> Job:
    """Process one file with the daemon's store, worker and adapters; idempotent.

    For people who run their own watcher: a file the store already finished (``done`` or
    ``failed``, same bytes) is not processed again; a changed file is. An ``undelivered``
    one gets one more delivery of its kept report (no inference). A file outside every
    configured folder gets the ``[defaults]`` settings with its own folder as the root.
    ``settle`` first waits for the file to stop changing (for watchers that fire early).
    """
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise MediaError(path, "no such file")
    if settle > 0:
        wait_until_settled(path, settle)
    try:
        settings = config.settings_for(path)
    except ConfigError:
        config = with_folder(config, path.parent)
        settings = config.settings_for(path)
    if not real_path_inside(path, settings.folder):
        raise MediaError(path, f"refused: its real path is outside {settings.folder}")
    identity = Identity.of(path)
    with StoreLock(config.jobstore, exclusive=False), JobStore(config.jobstore) as store:
        job, new = store.enqueue(path, identity.size, identity.mtime_ns, settings.folder,
                                 device=identity.device, inode=identity.inode)  # fmt: skip
        deliver_kept = job.state == "undelivered"
        while job.state == "queued" or deliver_kept:
            deliver_kept = False
            claimed = store.claim(job.id)
            if claimed is None:  # another process took it meanwhile
                return store.get(job.id)
            kept = store.kept_report(claimed.id)
            with Worker(time_limit=config.time_limit, on_start=store.start) as worker:
                worker.submit(claimed.id, path, settings, events=EventScope.of(store, claimed),
                              kept=(kept.report_json, kept.adapters) if kept else None)  # fmt: skip
                outcome = None
                while outcome is None:
                    outcome = worker.wait(1.0)
            if outcome.fatal or not outcome.started:
                store.requeue(claimed.id)
                if outcome.fatal:
                    raise ModelError(None, outcome.error or "the model cannot be loaded")
                raise VideoQAError(None, f"the worker process cannot start: {outcome.error}")
            job = record_outcome(store, config, outcome)
            if job.state == "failed":
                adapters = load_adapters(settings.adapters, options=settings.adapter_options)
                with announcing(EventScope.of(store, job)):
                    run_failure_adapters(adapters, path, job.last_error or "unknown error")
                close_adapters(adapters)
        return job
