"""One daemon per job store: an exclusive ``flock`` on ``<jobstore>.lock``, held for its life.

Two daemons on one store would each take the other's running job for one interrupted by a
crash and process it again (and, on its last attempt, mark it failed while the other still
works on it). The kernel releases a ``flock`` when its holder ends, also by SIGKILL or power
loss, so a stale lock never blocks a restart. ``videoqa process`` takes the lock shared: any
number of them may share a store, but not with a daemon. ``videoqa jobs`` takes no lock: it
reads, and ``--retry-failed`` is one update that a running daemon picks up.
"""

from __future__ import annotations

import os
from pathlib import Path

from videoqa.errors import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no lock
    fcntl = None  # type: ignore[assignment]


def lock_path(jobstore: str | os.PathLike[str]) -> Path:
    """The lock file beside the database: ``jobs.sqlite`` → ``jobs.sqlite.lock``."""
    jobstore = Path(jobstore)
    return jobstore.with_name(f"{jobstore.name}.lock")


class StoreLock:
    """Hold the job store's lock (``exclusive`` for a daemon) from ``acquire`` to ``release``.

    ``acquire`` never waits: when the store is taken it raises ``ConfigError`` naming the
    holder (a daemon's process id is in the lock file).
    """

    def __init__(self, jobstore: str | os.PathLike[str], *, exclusive: bool = True) -> None:
        self.jobstore = Path(jobstore)
        self.path = lock_path(jobstore)
        self.exclusive = exclusive
        self._descriptor: int | None = None

    def acquire(self) -> StoreLock:
        if fcntl is None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise ConfigError(self.path, f"cannot open: {error.strerror or error}") from None
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise ConfigError(self.jobstore, self._refusal(holder)) from None
        if self.exclusive:  # say who holds it, for the next one refused
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor
        return self

    def _refusal(self, holder: str) -> str:
        if holder == "process":
            return "in use by `videoqa process` (one or more); start the daemon once they end"
        if self.exclusive:
            return f"in use by another videoqa watch ({holder}); one daemon per job store"
        return (
            f"in use by videoqa watch ({holder}), which processes the files of its folders "
            "itself; other files need another jobstore"
        )

    def release(self) -> None:
        """Let go of the lock (closing the descriptor releases it)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _holder(descriptor: int) -> str:
    """Who holds the lock: ``process`` (shared holders), else the daemon's ``pid N``."""
    assert fcntl is not None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    else:  # only shared holders: `videoqa process` runs
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return "process"
    pid = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
