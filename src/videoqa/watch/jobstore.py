"""The job store: one SQLite row per file identity (path, size, modification time).

SQLite in WAL mode is the embedded default: the daemon, ``videoqa process`` and ``videoqa jobs``
may open the same store at once; a claim is one ``BEGIN IMMEDIATE`` transaction, so two
processes never run the same job. Rows are never reused for a changed file: new bytes are a
new identity and a new row, which is how "a changed file is processed again" and "the same
file is never processed twice" both hold.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from videoqa.errors import ConfigError

logger = logging.getLogger("videoqa.watch.jobstore")

State = Literal["queued", "running", "done", "failed"]
STATES: tuple[State, ...] = ("queued", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids name jobs in logs
    path        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    folder      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL,
    started_at  REAL,
    finished_at REAL,
    not_before  REAL    NOT NULL DEFAULT 0,
    deleted_at  REAL,
    UNIQUE (path, size, mtime_ns)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, not_before, id);
CREATE INDEX IF NOT EXISTS jobs_by_path ON jobs (path);
"""


@dataclass(frozen=True)
class Job:
    """One file identity and what happened to it. Times are Unix seconds."""

    id: int
    path: str
    size: int
    mtime_ns: int
    folder: str
    state: State
    attempts: int
    last_error: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    not_before: float
    deleted_at: float | None

    def to_dict(self) -> dict:
        return asdict(self)


class JobStore:
    """Open (creating if needed) the SQLite job store at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(path, f"cannot open job store: {error}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front, so read-then-write is atomic."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _one(self, sql: str, params: tuple = ()) -> Job | None:
        row = self._db.execute(sql, params).fetchone()
        return Job(**dict(row)) if row else None

    def get(self, job_id: int) -> Job:
        job = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if job is None:
            raise KeyError(job_id)
        return job

    def find(self, path: str | os.PathLike[str], size: int, mtime_ns: int) -> Job | None:
        """The row of this exact identity, if the store has seen it."""
        return self._one(
            "SELECT * FROM jobs WHERE path = ? AND size = ? AND mtime_ns = ?",
            (os.fspath(path), size, mtime_ns),
        )

    def latest(self, path: str | os.PathLike[str]) -> Job | None:
        """The newest row for ``path`` (any identity)."""
        return self._one("SELECT * FROM jobs WHERE path = ? ORDER BY id DESC", (os.fspath(path),))

    def enqueue(
        self, path: str | os.PathLike[str], size: int, mtime_ns: int, folder: str | os.PathLike[str]
    ) -> tuple[Job, bool]:
        """Queue this identity unless the store knows it; returns ``(job, newly_queued)``.

        Older identities of the same path that were still waiting are dropped: only the
        current bytes are worth processing.
        """
        path, folder = os.fspath(path), os.fspath(folder)
        now = time.time()
        with self._transaction() as db:
            existing = self.find(path, size, mtime_ns)
            if existing is not None:
                if existing.deleted_at is not None:
                    db.execute("UPDATE jobs SET deleted_at = NULL, updated_at = ? WHERE id = ?",
                               (now, existing.id))  # fmt: skip
                    existing = self.get(existing.id)
                return existing, False
            db.execute("DELETE FROM jobs WHERE path = ? AND state = 'queued'", (path,))
            cursor = db.execute(
                "INSERT INTO jobs (path, size, mtime_ns, folder, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'queued', ?, ?)",
                (path, size, mtime_ns, folder, now, now),
            )
            return self.get(cursor.lastrowid), True

    def record_refused(
        self,
        path: str | os.PathLike[str],
        size: int,
        mtime_ns: int,
        folder: str | os.PathLike[str],
        reason: str,
    ) -> Job:
        """Store a file the daemon will not process (``failed`` at once, never retried)."""
        path, folder = os.fspath(path), os.fspath(folder)
        now = time.time()
        with self._transaction() as db:
            existing = self.find(path, size, mtime_ns)
            if existing is not None:
                return existing
            cursor = db.execute(
                "INSERT INTO jobs (path, size, mtime_ns, folder, state, last_error, created_at,"
                " updated_at, finished_at) VALUES (?, ?, ?, ?, 'failed', ?, ?, ?, ?)",
                (path, size, mtime_ns, folder, reason, now, now, now),
            )
            return self.get(cursor.lastrowid)

    def claim(self, job_id: int | None = None) -> Job | None:
        """Mark the next due queued job (or ``job_id``, if queued) running and count the attempt."""
        now = time.time()
        with self._transaction() as db:
            if job_id is None:
                job = self._one(
                    "SELECT * FROM jobs WHERE state = 'queued' AND deleted_at IS NULL"
                    " AND not_before <= ? ORDER BY not_before, id LIMIT 1",
                    (now,),
                )
            else:
                job = self._one(
                    "SELECT * FROM jobs WHERE id = ? AND state = 'queued' AND deleted_at IS NULL",
                    (job_id,),
                )
            if job is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?,"
                " finished_at = NULL, updated_at = ? WHERE id = ?",
                (now, now, job.id),
            )
            return self.get(job.id)

    def complete(self, job_id: int, *, note: str | None = None) -> Job:
        """Mark a job done; ``note`` keeps a non-fatal problem (an adapter that failed)."""
        now = time.time()
        self._db.execute(
            "UPDATE jobs SET state = 'done', last_error = ?, finished_at = ?, updated_at = ?"
            " WHERE id = ?",
            (note, now, now, job_id),
        )
        return self.get(job_id)

    def fail(
        self,
        job_id: int,
        error: str,
        *,
        retryable: bool,
        max_attempts: int,
        retry_delay: float = 0.0,
    ) -> Job:
        """Record a failed attempt: back in the queue (after ``retry_delay``) or ``failed``."""
        now = time.time()
        with self._transaction() as db:
            job = self.get(job_id)
            if retryable and job.attempts < max_attempts:
                db.execute(
                    "UPDATE jobs SET state = 'queued', last_error = ?, not_before = ?,"
                    " updated_at = ? WHERE id = ?",
                    (error, now + retry_delay, now, job_id),
                )
            else:
                db.execute(
                    "UPDATE jobs SET state = 'failed', last_error = ?, finished_at = ?,"
                    " updated_at = ? WHERE id = ?",
                    (error, now, now, job_id),
                )
            return self.get(job_id)

    def drop(self, job_id: int) -> None:
        """Forget a row that was never processed (its file changed before its turn came)."""
        self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def requeue(self, job_id: int) -> Job:
        """Put a running job back without counting the attempt (the daemon was stopped)."""
        now = time.time()
        self._db.execute(
            "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), updated_at = ?"
            " WHERE id = ? AND state = 'running'",
            (now, job_id),
        )
        return self.get(job_id)

    def recover(self, *, max_attempts: int) -> list[Job]:
        """At start: jobs left ``running`` by a killed daemon go back to the queue.

        Their attempt stays counted, so a file that kills the whole daemon every time still
        ends ``failed`` after ``max_attempts``.
        """
        now = time.time()
        with self._transaction() as db:
            rows = db.execute("SELECT id FROM jobs WHERE state = 'running'").fetchall()
            db.execute(
                "UPDATE jobs SET state = 'failed', finished_at = ?, updated_at = ?,"
                " last_error = 'interrupted ' || attempts || ' times (daemon killed?)'"
                " WHERE state = 'running' AND attempts >= ?",
                (now, now, max_attempts),
            )
            db.execute(
                "UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'running'", (now,)
            )
            recovered = [self.get(row["id"]) for row in rows]
        for job in recovered:
            logger.warning("%s: found %s after a restart", job.path, job.state)
        return recovered

    def retry_failed(self) -> int:
        """Queue every failed file that still exists again, attempts reset (after a fix)."""
        now = time.time()
        cursor = self._db.execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0, finished_at = NULL,"
            " updated_at = ? WHERE state = 'failed' AND deleted_at IS NULL",
            (now,),
        )
        return cursor.rowcount

    def mark_deleted(self, path: str | os.PathLike[str]) -> int:
        """Note that ``path`` is gone; its queued rows will not run. Returns rows marked."""
        now = time.time()
        cursor = self._db.execute(
            "UPDATE jobs SET deleted_at = ?, updated_at = ? WHERE path = ? AND deleted_at IS NULL",
            (now, now, os.fspath(path)),
        )
        return cursor.rowcount

    def present_paths(self, folder: str | os.PathLike[str]) -> set[str]:
        """Paths under ``folder`` the store believes still exist (for reconciling)."""
        rows = self._db.execute(
            "SELECT DISTINCT path FROM jobs WHERE folder = ? AND deleted_at IS NULL",
            (os.fspath(folder),),
        )
        return {row["path"] for row in rows}

    def jobs(self, *, state: State | None = None, limit: int | None = None) -> list[Job]:
        """Rows, newest first, optionally of one state."""
        sql, params = "SELECT * FROM jobs", ()
        if state is not None:
            sql, params = sql + " WHERE state = ?", (state,)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Job(**dict(row)) for row in self._db.execute(sql, params)]

    def counts(self) -> dict[str, int]:
        """Number of rows in each state (every state present, zero included)."""
        counts = dict.fromkeys(STATES, 0)
        for row in self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def has_due_work(self) -> bool:
        """Whether a queued job could be claimed now."""
        row = self._db.execute(
            "SELECT 1 FROM jobs WHERE state = 'queued' AND deleted_at IS NULL AND not_before <= ?"
            " LIMIT 1",
            (time.time(),),
        ).fetchone()
        return row is not None

    def has_waiting_work(self) -> bool:
        """Whether any queued job remains, due now or later (a retry waiting out its delay)."""
        row = self._db.execute(
            "SELECT 1 FROM jobs WHERE state = 'queued' AND deleted_at IS NULL LIMIT 1"
        ).fetchone()
        return row is not None
