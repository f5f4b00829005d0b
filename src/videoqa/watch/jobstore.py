"""The job store: one SQLite row per file identity (path, size, modification time).

SQLite in WAL mode is the embedded default: the daemon, ``videoqa process`` and ``videoqa jobs``
may open the same store at once; a claim is one ``BEGIN IMMEDIATE`` transaction, so two
processes never run the same job. Rows are never reused for a changed file: new bytes are a
new identity and a new row, which is how "a changed file is processed again" and "the same
file is never processed twice" both hold.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from videoqa.errors import ConfigError
from videoqa.pathnames import readable
from videoqa.pathnames import sqlite_path as _stored

if TYPE_CHECKING:
    from videoqa.watch.scanner import Identity

logger = logging.getLogger("videoqa.watch.jobstore")

State = Literal["queued", "running", "undelivered", "done", "failed"]
STATES: tuple[State, ...] = ("queued", "running", "undelivered", "done", "failed")
"""``undelivered``: processed, but an adapter could not deliver the results (its report is kept
in ``deliveries`` and delivered again later, without inference)."""

SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of a current store; an older one is migrated when opened.
Version 2 added the ``generations`` and ``meta`` tables (event ids); ``jobs`` is as in
version 1, so an older videoqa still reads and runs a store of version 2."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids name jobs in logs
    path        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    folder      TEXT    NOT NULL,
    state       TEXT    NOT NULL
                CHECK (state IN ('queued', 'running', 'undelivered', 'done', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  REAL    NOT NULL,
    updated_at  REAL    NOT NULL,
    started_at  REAL,   -- when a worker began on the file (it acknowledged the job)
    finished_at REAL,
    not_before  REAL    NOT NULL DEFAULT 0,
    deleted_at  REAL,
    device      INTEGER,  -- st_dev and st_ino: a renamed file keeps them
    inode       INTEGER,
    UNIQUE (path, size, mtime_ns)
)""",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, not_before, id)",
    "CREATE INDEX IF NOT EXISTS jobs_by_path ON jobs (path)",
    "CREATE INDEX IF NOT EXISTS jobs_by_inode ON jobs (inode, size, mtime_ns)",
    """CREATE TABLE IF NOT EXISTS deliveries (
    job_id   INTEGER PRIMARY KEY,  -- the undelivered (or delivery-failed) job
    report   TEXT    NOT NULL,     -- its report as JSON: delivered again without inference
    adapters TEXT    NOT NULL,     -- JSON list: names of the adapters still to deliver it
    tries    INTEGER NOT NULL DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS generations (
    job_id     INTEGER PRIMARY KEY,  -- a job --retry-failed made due again after it failed
    generation INTEGER NOT NULL      -- how many times: its events since then are new events
)""",
    """CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,  -- 'store_id': a random id, the first part of every event id
    value TEXT NOT NULL
)""",
)

_V0_COLUMNS = (
    "id, path, size, mtime_ns, folder, state, attempts, last_error, created_at, updated_at,"
    " started_at, finished_at, not_before, deleted_at"
)
"""The columns of a version-0 store (before ``undelivered`` and the inode columns)."""


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
    device: int | None = None
    inode: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class KeptReport:
    """The report of a processed job that some adapters have not delivered yet."""

    report_json: str
    adapters: tuple[str, ...]
    """Names of the adapters still to deliver it."""
    tries: int
    """Deliveries tried so far (the one right after inference included)."""


def _job(row: sqlite3.Row) -> Job:
    fields = dict(row)
    for name in ("path", "folder"):
        if isinstance(fields[name], bytes):
            fields[name] = os.fsdecode(fields[name])
    return Job(**fields)


class JobStore:
    """Open (creating if needed) the SQLite job store at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._store_id: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            if self._db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                self._create_or_migrate()
        except (OSError, sqlite3.Error) as error:
            raise ConfigError(path, f"cannot open job store: {error}") from None

    def _create_or_migrate(self) -> None:
        """Create the tables, or bring a store of an older version up to date (one transaction).

        Version 0 lacked the ``undelivered`` state (a CHECK constraint, which SQLite can only
        change by copying the table) and the ``device``/``inode`` columns; version 1 lacked
        the ``generations`` and ``meta`` tables (created here like any missing table).
        """
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            old = version == 0 and db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'"
            ).fetchone()
            if old:
                db.execute("ALTER TABLE jobs RENAME TO jobs_v0")
                db.execute("DROP INDEX IF EXISTS jobs_by_state")
                db.execute("DROP INDEX IF EXISTS jobs_by_path")
            for statement in _SCHEMA:
                db.execute(statement)
            if old:
                db.execute(f"INSERT INTO jobs ({_V0_COLUMNS}) SELECT {_V0_COLUMNS} FROM jobs_v0")
                db.execute(  # ids are never reused, also those of rows deleted before
                    "UPDATE sqlite_sequence SET seq = (SELECT MAX(seq) FROM sqlite_sequence"
                    " WHERE name IN ('jobs', 'jobs_v0')) WHERE name = 'jobs'"
                )
                db.execute("DROP TABLE jobs_v0")
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?)",
                       (uuid.uuid4().hex[:16],))  # fmt: skip
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def store_id(self) -> str:
        """This store's random id (16 hex digits), made when the store was created or
        migrated: event ids start with it, so two daemons' events never share an id."""
        if self._store_id is None:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
            self._store_id = str(row[0])
        return self._store_id

    def generation(self, job_id: int) -> int:
        """How many times ``retry_failed`` made the job due again after it failed (0: never):
        the events it announces since are new events, with new ids."""
        row = self._db.execute(
            "SELECT generation FROM generations WHERE job_id = ?", (job_id,)
        ).fetchone()
        return int(row[0]) if row else 0

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
        return _job(row) if row else None

    def get(self, job_id: int) -> Job:
        job = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if job is None:
            raise KeyError(job_id)
        return job

    def find(self, path: str | os.PathLike[str], size: int, mtime_ns: int) -> Job | None:
        """The row of this exact identity, if the store has seen it."""
        return self._one(
            "SELECT * FROM jobs WHERE path = ? AND size = ? AND mtime_ns = ?",
            (_stored(path), size, mtime_ns),
        )

    def latest(self, path: str | os.PathLike[str]) -> Job | None:
        """The newest row for ``path`` (any identity)."""
        return self._one("SELECT * FROM jobs WHERE path = ? ORDER BY id DESC", (_stored(path),))

    def enqueue(
        self,
        path: str | os.PathLike[str],
        size: int,
        mtime_ns: int,
        folder: str | os.PathLike[str],
        *,
        device: int | None = None,
        inode: int | None = None,
    ) -> tuple[Job, bool]:
        """Queue this identity unless the store knows it; returns ``(job, newly_queued)``.

        Older identities of the same path that were still waiting, undelivered or failed are
        dropped: only the current bytes are worth processing, and a failure of bytes that
        are gone (a copy read while it stalled) is no longer a current failure.
        """
        stored_path, stored_folder = _stored(path), _stored(folder)
        now = time.time()
        with self._transaction() as db:
            existing = self.find(path, size, mtime_ns)
            if existing is not None:
                if existing.deleted_at is not None:
                    db.execute("UPDATE jobs SET deleted_at = NULL, updated_at = ? WHERE id = ?",
                               (now, existing.id))  # fmt: skip
                    existing = self.get(existing.id)
                return existing, False
            _supersede(db, stored_path)
            cursor = db.execute(
                "INSERT INTO jobs (path, size, mtime_ns, folder, state, created_at, updated_at,"
                " device, inode) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (stored_path, size, mtime_ns, stored_folder, now, now, device, inode),
            )
            return self.get(_new_id(cursor)), True

    def record_refused(
        self,
        path: str | os.PathLike[str],
        size: int,
        mtime_ns: int,
        folder: str | os.PathLike[str],
        reason: str,
    ) -> Job:
        """Store a file the daemon will not process (``failed`` at once, never retried)."""
        stored_path, stored_folder = _stored(path), _stored(folder)
        now = time.time()
        with self._transaction() as db:
            existing = self.find(path, size, mtime_ns)
            if existing is not None:
                return existing
            _supersede(db, stored_path)
            cursor = db.execute(
                "INSERT INTO jobs (path, size, mtime_ns, folder, state, last_error, created_at,"
                " updated_at, finished_at) VALUES (?, ?, ?, ?, 'failed', ?, ?, ?, ?)",
                (stored_path, size, mtime_ns, stored_folder, readable(reason), now, now, now),
            )
            return self.get(_new_id(cursor))

    def claim(self, job_id: int | None = None) -> Job | None:
        """Mark the next due job (or ``job_id``) running: a queued file, or an undelivered report.

        The attempt is not counted here: ``start`` counts it once a worker has the job, so a
        daemon killed while its worker is still starting up costs the file nothing.
        """
        now = time.time()
        waiting = "state IN ('queued', 'undelivered') AND deleted_at IS NULL"
        with self._transaction() as db:
            if job_id is None:
                job = self._one(
                    f"SELECT * FROM jobs WHERE {waiting} AND not_before <= ?"
                    " ORDER BY not_before, id LIMIT 1",
                    (now,),
                )
            else:
                job = self._one(f"SELECT * FROM jobs WHERE id = ? AND {waiting}", (job_id,))
            if job is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', started_at = NULL, finished_at = NULL,"
                " updated_at = ? WHERE id = ?",
                (now, job.id),
            )
            return self.get(job.id)

    def due_queued(self, folder: str | os.PathLike[str], *, limit: int) -> list[Job]:
        """Up to ``limit`` queued files of ``folder`` due now, in claim order (not claimed):
        the backlog a worker may take together."""
        rows = self._db.execute(
            "SELECT * FROM jobs WHERE state = 'queued' AND deleted_at IS NULL AND folder = ?"
            " AND not_before <= ? ORDER BY not_before, id LIMIT ?",
            (_stored(folder), time.time(), limit),
        )
        return [_job(row) for row in rows]

    def start(self, job_id: int) -> Job:
        """A worker has begun on the running job: count its attempt (for a kept report, the
        delivery try) now. Counted once per claim."""
        now = time.time()
        with self._transaction() as db:
            job = self.get(job_id)
            if job.state != "running" or job.started_at is not None:
                return job
            delivering = self.kept_report(job_id) is not None
            if delivering:
                db.execute("UPDATE deliveries SET tries = tries + 1 WHERE job_id = ?", (job_id,))
            db.execute(
                "UPDATE jobs SET attempts = attempts + ?, started_at = ?, updated_at = ?"
                " WHERE id = ?",
                (0 if delivering else 1, now, now, job_id),
            )
            return self.get(job_id)

    def complete(self, job_id: int, *, note: str | None = None) -> Job:
        """Mark a job done; ``note`` keeps a non-fatal problem (an adapter that failed)."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'done', last_error = ?, finished_at = ?, updated_at = ?"
                " WHERE id = ?",
                (note and readable(note), now, now, job_id),
            )
            db.execute("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
        return self.get(job_id)

    def record_undelivered(
        self,
        job_id: int,
        error: str,
        adapters: Sequence[str],
        *,
        report_json: str | None,
        max_attempts: int,
        retry_delay: float = 0.0,
    ) -> Job:
        """Processed, but ``adapters`` could not deliver: keep the report and try them again.

        ``report_json`` is the report after inference (``None`` when this was already a
        retry of a kept report). Delivery is tried ``max_attempts`` times, ``retry_delay``
        apart; then the job is ``failed``, its report still kept for ``retry_failed``.
        """
        now = time.time()
        with self._transaction() as db:
            kept = self.kept_report(job_id)
            if kept is None:
                if report_json is None:
                    raise ValueError(f"job {job_id} has no kept report")
                db.execute(
                    "INSERT INTO deliveries (job_id, report, adapters, tries) VALUES (?, ?, ?, 1)",
                    (job_id, report_json, json.dumps(list(adapters))),
                )
            else:
                db.execute("UPDATE deliveries SET adapters = ? WHERE job_id = ?",
                           (json.dumps(list(adapters)), job_id))  # fmt: skip
            tries = kept.tries if kept is not None else 1
            if tries < max_attempts:
                db.execute(
                    "UPDATE jobs SET state = 'undelivered', last_error = ?, not_before = ?,"
                    " finished_at = ?, updated_at = ? WHERE id = ?",
                    (readable(error), now + retry_delay, now, now, job_id),
                )
            else:
                error = f"{error} (not delivered after {tries} tries; the report is kept)"
                _set_failed(db, job_id, error, now)
            return self.get(job_id)

    def kept_report(self, job_id: int) -> KeptReport | None:
        """The report kept for an undelivered (or delivery-failed) job, if there is one."""
        row = self._db.execute(
            "SELECT report, adapters, tries FROM deliveries WHERE job_id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        return KeptReport(row["report"], tuple(json.loads(row["adapters"])), row["tries"])

    def fail(
        self,
        job_id: int,
        error: str,
        *,
        retryable: bool,
        max_attempts: int,
        retry_delay: float = 0.0,
    ) -> Job:
        """Record a failed attempt: waiting again (after ``retry_delay``) or ``failed``.

        A job with a kept report waits as ``undelivered`` and is bounded by its delivery tries.
        """
        now = time.time()
        with self._transaction() as db:
            job = self.get(job_id)
            kept = self.kept_report(job_id)
            tries, waiting = (
                (job.attempts, "queued") if kept is None else (kept.tries, "undelivered")
            )
            if retryable and tries < max_attempts:
                db.execute(
                    "UPDATE jobs SET state = ?, last_error = ?, not_before = ?,"
                    " updated_at = ? WHERE id = ?",
                    (waiting, readable(error), now + retry_delay, now, job_id),
                )
            else:
                _set_failed(db, job_id, error, now)
            return self.get(job_id)

    def drop(self, job_id: int) -> None:
        """Forget a row (its file changed before its turn came, or before its delivery)."""
        with self._transaction() as db:
            db.execute("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM generations WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def requeue(self, job_id: int, *, delay: float = 0.0) -> Job:
        """Put a running job back without counting its attempt (the daemon was stopped, or
        the worker never started on it); ``delay`` seconds before it is due again."""
        now = time.time()
        with self._transaction() as db:
            job = self.get(job_id)
            if job.state != "running":
                return job
            started = job.started_at is not None
            kept = self.kept_report(job_id)
            if kept is not None and started:
                db.execute("UPDATE deliveries SET tries = MAX(tries - 1, 0) WHERE job_id = ?",
                           (job_id,))  # fmt: skip
            db.execute(
                "UPDATE jobs SET state = ?, attempts = MAX(attempts - ?, 0), started_at = NULL,"
                " not_before = ?, updated_at = ? WHERE id = ?",
                ("queued" if kept is None else "undelivered", int(started and kept is None),
                 now + delay if delay > 0 else job.not_before, now, job_id),
            )  # fmt: skip
            return self.get(job_id)

    def recover(self, *, max_attempts: int) -> list[Job]:
        """At start: jobs left ``running`` by a killed daemon wait again; returns them as now.

        A job a worker had started on keeps its counted attempt, so a file that takes the
        whole daemon down every time still ends ``failed`` after ``max_attempts`` (the caller
        reports it like any failure). One whose worker was still starting was never read and
        costs nothing.
        """
        now = time.time()
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM jobs WHERE state = 'running'")
            running = [_job(row) for row in rows]
            for job in running:
                kept = self.kept_report(job.id)
                tries = job.attempts if kept is None else kept.tries
                if job.started_at is not None and tries >= max_attempts:
                    error = f"{job.path}: interrupted {tries} times (daemon killed?)"
                    _set_failed(db, job.id, error, now)
                else:
                    db.execute(
                        "UPDATE jobs SET state = ?, started_at = NULL, updated_at = ? WHERE id = ?",
                        ("queued" if kept is None else "undelivered", now, job.id),
                    )
            recovered = [self.get(job.id) for job in running]
        for job in recovered:
            logger.warning("%s: found %s after a restart", job.path, job.state)
        return recovered

    def retry_failed(self) -> int:
        """Make every failed or undelivered job whose file still exists due again, its count
        reset (after a fix): a kept report is delivered again without inference, any other
        file is processed again. Returns how many. Each failed one starts a new ``generation``:
        what it announces now is a new event, not a repeat of the last one."""
        now = time.time()
        due_again = "state IN ('failed', 'undelivered') AND deleted_at IS NULL"
        with self._transaction() as db:
            db.execute(
                "INSERT INTO generations (job_id, generation) SELECT id, 1 FROM jobs"
                " WHERE state = 'failed' AND deleted_at IS NULL"
                " ON CONFLICT (job_id) DO UPDATE SET generation = generation + 1"
            )
            kept = f"id IN (SELECT job_id FROM deliveries) AND {due_again}"
            db.execute(f"UPDATE deliveries SET tries = 0 WHERE job_id IN"
                       f" (SELECT id FROM jobs WHERE {kept})")  # fmt: skip
            delivering = db.execute(
                "UPDATE jobs SET state = 'undelivered', not_before = 0, finished_at = NULL,"
                f" updated_at = ? WHERE {kept}",
                (now,),
            ).rowcount
            processing = db.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, not_before = 0,"
                " finished_at = NULL, updated_at = ? WHERE state = 'failed' AND deleted_at IS NULL",
                (now,),
            ).rowcount
        return delivering + processing

    def mark_deleted(self, path: str | os.PathLike[str]) -> int:
        """Note that ``path`` is gone; its queued rows will not run. Returns rows marked."""
        now = time.time()
        cursor = self._db.execute(
            "UPDATE jobs SET deleted_at = ?, updated_at = ? WHERE path = ? AND deleted_at IS NULL",
            (now, now, _stored(path)),
        )
        return cursor.rowcount

    def find_renamed(
        self, path: str | os.PathLike[str], identity: Identity, folder: str | os.PathLike[str]
    ) -> Job | None:
        """The newest row of the same file under another name in ``folder``, if any.

        The same file: same device, inode, size and modification time (a rename keeps them
        all; a copy does not). Failed rows are not followed: those files are processed again.
        The caller checks that the other name is gone (else it is a hard link).
        """
        return self._one(
            "SELECT * FROM jobs WHERE inode = ? AND device = ? AND size = ? AND mtime_ns = ?"
            " AND folder = ? AND path != ? AND state != 'failed' ORDER BY id DESC LIMIT 1",
            (identity.inode, identity.device, identity.size, identity.mtime_ns,
             _stored(folder), _stored(path)),
        )  # fmt: skip

    def rename(self, job_id: int, path: str | os.PathLike[str]) -> Job:
        """The file of ``job_id`` was renamed to ``path``: the job (and its kept report) follows."""
        stored, now = _stored(path), time.time()
        with self._transaction() as db:
            _supersede(db, stored)
            db.execute("UPDATE jobs SET path = ?, deleted_at = NULL, updated_at = ? WHERE id = ?",
                       (stored, now, job_id))  # fmt: skip
            kept = self.kept_report(job_id)
            if kept is not None:
                report = json.loads(kept.report_json)
                report["video"]["path"] = os.fspath(path)
                db.execute("UPDATE deliveries SET report = ? WHERE job_id = ?",
                           (json.dumps(report), job_id))  # fmt: skip
            return self.get(job_id)

    def present_paths(self, folder: str | os.PathLike[str]) -> set[str]:
        """Paths under ``folder`` the store believes still exist (for reconciling)."""
        rows = self._db.execute(
            "SELECT DISTINCT path FROM jobs WHERE folder = ? AND deleted_at IS NULL",
            (_stored(folder),),
        )
        return {os.fsdecode(row["path"]) for row in rows}

    def jobs(self, *, state: State | None = None, limit: int | None = None) -> list[Job]:
        """Rows, newest first, optionally of one state."""
        sql = "SELECT * FROM jobs"
        params: tuple[str, ...] = ()
        if state is not None:
            sql, params = sql + " WHERE state = ?", (state,)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_job(row) for row in self._db.execute(sql, params)]

    def counts(self) -> dict[str, int]:
        """Number of rows in each state (every state present, zero included). A waiting row
        whose file was deleted is not counted: it will never run."""
        counts: dict[str, int] = dict.fromkeys(STATES, 0)
        for row in self._db.execute(
            "SELECT state, COUNT(*) AS n FROM jobs WHERE deleted_at IS NULL"
            " OR state NOT IN ('queued', 'undelivered') GROUP BY state"
        ):
            counts[row["state"]] = row["n"]
        return counts

    def has_due_work(self) -> bool:
        """Whether a queued or undelivered job could be claimed now."""
        row = self._db.execute(
            "SELECT 1 FROM jobs WHERE state IN ('queued', 'undelivered') AND deleted_at IS NULL"
            " AND not_before <= ? LIMIT 1",
            (time.time(),),
        ).fetchone()
        return row is not None

    def has_waiting_work(self) -> bool:
        """Whether any job still waits, due now or later (a retry waiting out its delay)."""
        row = self._db.execute(
            "SELECT 1 FROM jobs WHERE state IN ('queued', 'undelivered') AND deleted_at IS NULL"
            " LIMIT 1"
        ).fetchone()
        return row is not None


def _new_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just added."""
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _supersede(db: sqlite3.Connection, path: str | bytes) -> None:
    """Drop the rows of ``path`` (as stored) that new bytes there replace: waiting,
    undelivered or failed ones. Done rows stay, as history."""
    replaced = "path = ? AND state IN ('queued', 'undelivered', 'failed')"
    for table in ("deliveries", "generations"):
        db.execute(f"DELETE FROM {table} WHERE job_id IN (SELECT id FROM jobs WHERE {replaced})",
                   (path,))  # fmt: skip
    db.execute(f"DELETE FROM jobs WHERE {replaced}", (path,))


def _set_failed(db: sqlite3.Connection, job_id: int, error: str, now: float) -> None:
    """Mark a job ``failed`` for good with ``error`` (made readable: paths may not be UTF-8)."""
    db.execute(
        "UPDATE jobs SET state = 'failed', last_error = ?, finished_at = ?, updated_at = ?"
        " WHERE id = ?",
        (readable(error), now, now, job_id),
    )
