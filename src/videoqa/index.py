"""The archive index: every report's clip results in one SQLite file, searchable by BM25.

One file (WAL, so the daemon can add reports while ``videoqa search`` reads), two tables and
an FTS5 index over the clip texts:

- ``videos``: one row per video: its path, a content digest (:func:`video_digest`), duration,
  the models that produced its results, the JSON sidecar it came from and when it was indexed.
- ``clips``: one row per clip result: video, start, end, kind (``caption`` or ``answer``),
  question (answers only), text and the model's score (mean log-probability per token).
- ``clip_text``: the FTS5 index of ``clips.text`` (Porter stemming, so "turns" finds "turn").

Re-indexing a video replaces the rows its report produced; when the video's content changed
(another digest) every row of it goes, also rows that other tools added. ``prune`` removes the
videos whose file is gone. Nothing here needs torch or the media stack: indexing is JSON in,
rows out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shlex
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoqa.errors import VideoQAError
from videoqa.pathnames import path_from_sqlite as _loaded
from videoqa.pathnames import sqlite_path
from videoqa.report import Report, ReportFormatError
from videoqa.sidecars import JSON_SUFFIX
from videoqa.version import __version__

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of an index this module writes."""

INDEX_ENV = "VIDEOQA_INDEX"
"""Environment variable naming the index file, in place of the default."""

REPORT_KINDS = ("caption", "answer")
"""Kinds of clip rows a report's clips (and alternatives) produce."""

FIND_KIND = "find"
"""The kind of the rows a record's ``findings`` produce (``videoqa find --db``'s ranges)."""

KINDS: tuple[str, ...] = (*REPORT_KINDS, FIND_KIND)
"""Every kind of clip row ``search --kind`` accepts."""

DIGEST_BLOCK = 64 * 1024
"""Bytes read from each end of a video for its digest."""

_DIGEST_NAME = "headtail-sha256"


def default_db_path() -> Path:
    """``$VIDEOQA_INDEX``, else ``$XDG_DATA_HOME/videoqa/index.sqlite``
    (``~/.local/share/videoqa/index.sqlite``): data a person searches, kept per user."""
    named = os.environ.get(INDEX_ENV)
    if named:
        return Path(named).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "videoqa" / "index.sqlite"


DEFAULT_DB: Path = default_db_path()
"""The index file used when none is named (as it was when videoqa was imported); the CLI
calls :func:`default_db_path` at run time instead."""


class IndexDatabaseError(VideoQAError):
    """The index file cannot be opened, read or written."""


class IndexDamagedError(IndexDatabaseError):
    """The index file is corrupt (SQLite reports a malformed database image): one line saying
    how to make it again from the JSON sidecars (:func:`rebuild_index`)."""

    def __init__(self, path: str | os.PathLike[str], detail: str) -> None:
        self.detail = detail
        flag = "" if Path(path) == default_db_path() else f" --db {shlex.quote(os.fspath(path))}"
        super().__init__(
            path,
            f"the index is damaged ({detail}); run 'videoqa index --rebuild DIR{flag}' to make "
            "it again from the JSON sidecars under DIR",
        )


def _is_damage(error: sqlite3.Error) -> bool:
    """SQLite's own verdict that the file's pages are not a sound database."""
    name = getattr(error, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_CORRUPT") or "malformed" in str(error)


class _Cursor(sqlite3.Cursor):
    """SQLite's cursor, raising ``IndexDamagedError`` for a corrupt file, wherever a query or
    a fetch meets the damage (a corrupt page shows only when a query reads it)."""

    def _damaged(self, error: sqlite3.Error) -> Exception:
        if _is_damage(error):
            path = getattr(self.connection, "index_path", "")
            return IndexDamagedError(path, str(error))
        return error

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return super().execute(sql, parameters)  # type: ignore[return-value]
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def executemany(self, sql: str, parameters: Any, /) -> _Cursor:
        try:
            return super().executemany(sql, parameters)  # type: ignore[return-value]
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None


class _Connection(sqlite3.Connection):
    """The index's connection: every statement runs on a :class:`_Cursor`."""

    index_path: Path

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self.cursor(_Cursor).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> _Cursor:
        return self.cursor(_Cursor).executemany(sql, parameters)


class SearchSyntaxError(VideoQAError):
    """A search query is not valid FTS5 syntax (or names nothing to search for)."""


@dataclass(frozen=True)
class SearchHit:
    """One result of :meth:`ArchiveIndex.search`: a clip, or a run of adjacent clips of one
    video that say the same thing, merged into one span.

    ``score`` is the BM25 relevance (SQLite's ``bm25()`` negated: higher is better); ``rank``
    is the position in the results (1 is the best). ``confidence`` is the model's own
    confidence in the text: the mean ``exp`` of the merged clips' scores (log-probabilities),
    0 to 1.
    """

    video: str
    start: float
    end: float
    kind: str
    question: str | None
    text: str
    score: float
    rank: int
    confidence: float | None = None
    clips: int = 1
    """How many clips were merged into this hit."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``videoqa search --json`` prints (docs/index.md)."""
        return {
            "video": self.video,
            "start": self.start,
            "end": self.end,
            "kind": self.kind,
            "question": self.question,
            "text": self.text,
            "score": round(self.score, 4),
            "rank": self.rank,
            "confidence": round(self.confidence, 4) if self.confidence is not None else None,
            "clips": self.clips,
        }


@dataclass(frozen=True)
class ClipRow:
    """One clip result as the index keeps it (``score``: the model's, as in the report)."""

    video: str
    start: float
    end: float
    kind: str
    question: str | None
    text: str
    score: float | None


@dataclass(frozen=True)
class VideoEntry:
    """One indexed video."""

    path: str
    digest: str | None
    """:func:`video_digest` of the file when it was indexed; None when it was not there."""
    duration: float | None
    models: tuple[str, ...]
    indexed_at: str
    """UTC, ISO 8601 (``2026-11-28T10:05:00Z``)."""
    report: str | None
    """The JSON sidecar it was indexed from (None when a report came another way)."""
    clips: int


def video_digest(path: str | os.PathLike[str]) -> str | None:
    """A cheap content digest of a video: SHA-256 of its size, first and last 64 KiB.

    Why this and not a hash of the whole file: reading a 50 GB master to index a 10 KB report
    would make indexing as slow as copying the archive. Why it is still sound for telling a
    replaced video from the one the report describes: a re-encode or another file changes the
    container header (MP4 ``moov``/``ftyp``, Matroska segment info) at the head, the index or
    last cluster at the tail, or the size; a file copied elsewhere keeps it. The modification
    time is left out on purpose: ``cp``/``rsync`` without ``-t`` change it, not the content.
    Returns None when the file cannot be read (gone, or offline).
    """
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = hashlib.sha256(size.to_bytes(8, "little"))
            digest.update(handle.read(DIGEST_BLOCK))
            if size > DIGEST_BLOCK:
                handle.seek(max(DIGEST_BLOCK, size - DIGEST_BLOCK))
                digest.update(handle.read(DIGEST_BLOCK))
    except OSError:
        return None
    return f"{_DIGEST_NAME}:{digest.hexdigest()}"


def find_sidecars(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """The JSON sidecars to index: each file as given, each folder's ``*.videoqa.json``
    (recursively, in name order; symbolic links to folders are not followed, so a link
    cycle cannot loop; temporary files end in another suffix)."""
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            yield path
            continue
        for folder, subfolders, names in os.walk(path):
            subfolders.sort()
            yield from (Path(folder, name) for name in sorted(names) if name.endswith(JSON_SUFFIX))


@dataclass
class IngestTally:
    """What :func:`ingest` did."""

    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    clips: int = 0
    errors: list[str] = field(default_factory=list)


def ingest(
    index: ArchiveIndex,
    sidecars: Iterable[Path],
    *,
    on_error: Callable[[VideoQAError], object] | None = None,
    on_file: Callable[[], object] | None = None,
    batch: int = 500,
) -> IngestTally:
    """Index JSON sidecars, ``batch`` of them per transaction (fast, and an interruption
    loses at most one batch). A sidecar that is not a readable report is counted, passed to
    ``on_error`` and skipped; the others go on."""
    tally = IngestTally()
    pending = list(sidecars)
    for first in range(0, len(pending), batch):
        with index.batch():
            for json_path in pending[first : first + batch]:
                try:
                    added = index.add_sidecar(json_path)
                except VideoQAError as error:
                    tally.failed += 1
                    tally.errors.append(str(error))
                    if on_error is not None:
                        on_error(error)
                else:
                    if added is None:
                        tally.unchanged += 1
                    else:
                        tally.indexed += 1
                        tally.clips += added
                if on_file is not None:
                    on_file()
    return tally


def rebuild_index(
    db_path: str | os.PathLike[str] | None,
    paths: Iterable[str | os.PathLike[str]],
    *,
    on_error: Callable[[VideoQAError], object] | None = None,
    on_file: Callable[[], object] | None = None,
) -> IngestTally:
    """Make the index at ``db_path`` anew from the JSON sidecars under ``paths`` (files or
    folders, searched recursively): how a damaged index is repaired.

    The new index is written to a temporary file beside the old one and renamed over it only
    once complete, so a rebuild that fails or is interrupted leaves the old file as it was. A
    file there that is not a videoqa index (another SQLite file, or not SQLite at all) is
    refused, not replaced. ``find --db`` ranges come back too: they live in the records.
    Stop the daemon and ``videoqa serve``
    first: a process that has the old file open goes on with it.
    """
    target = Path(db_path) if db_path is not None else default_db_path()
    _check_replaceable(target)
    sidecars = list(find_sidecars(paths))
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.rebuild")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # umask's mode
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, target.stat().st_mode & 0o7777)  # the old file's, when one
        with ArchiveIndex(temporary) as index:
            tally = ingest(index, sidecars, on_error=on_error, on_file=on_file)
        # The old file's write-ahead log would be replayed onto the new file: it goes first.
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{target}{suffix}")
        os.replace(temporary, target)
    except BaseException:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    return tally


def _check_replaceable(path: Path) -> None:
    """Refuse to rebuild over a file that is not a videoqa index (a damaged one is)."""
    try:
        if not path.exists() or path.stat().st_size == 0:
            return
        # Read only, but not mode=ro: a read-only connection to a WAL file leaves -wal and
        # -shm files behind; this one, the last to close, removes them.
        with contextlib.closing(sqlite3.connect(path)) as db:
            tables = {name for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
    except sqlite3.DatabaseError as error:
        if _is_damage(error):
            return
        kind = "not an SQLite database" if "not a database" in str(error) else str(error)
        raise IndexDatabaseError(path, f"not a videoqa index ({kind}): left as it is; "
                                 "name another --db") from None  # fmt: skip
    except OSError as error:
        raise IndexDatabaseError(path, f"cannot read: {error.strerror or error}") from None
    if tables and not set(_TABLES) <= tables:
        raise IndexDatabaseError(path, "not a videoqa index (it holds other tables): left as "
                                 "it is; name another --db")  # fmt: skip


_TABLES = ("videos", "texts", "clips", "text_search")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS videos (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        digest TEXT,
        duration REAL,
        models TEXT NOT NULL,
        report TEXT,
        report_stamp TEXT,
        indexed_at TEXT NOT NULL,
        clips INTEGER NOT NULL DEFAULT 0
    )""",
    # Each distinct text of a kind (and question) once: adjacent clips repeat their caption,
    # answers repeat everywhere ("yes", "red"), so BM25 scores far fewer rows than there are
    # clips; and with kind and question beside the text, --kind and --question narrow the
    # full-text match itself instead of checking the clips of every matching text.
    """CREATE TABLE IF NOT EXISTS texts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        question TEXT NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (kind, question, text)
    )""",
    """CREATE TABLE IF NOT EXISTS clips (
        id INTEGER PRIMARY KEY,
        video_id INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
        start REAL NOT NULL,
        end REAL NOT NULL,
        kind TEXT NOT NULL,
        question TEXT,
        text_id INTEGER NOT NULL REFERENCES texts (id),
        score REAL
    )""",
    "CREATE INDEX IF NOT EXISTS clips_by_video ON clips (video_id, kind, question, start)",
    "CREATE INDEX IF NOT EXISTS clips_by_text ON clips (text_id, score)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS text_search USING fts5 (
        text, kind, question, content = 'texts', content_rowid = 'id',
        tokenize = 'porter unicode61 remove_diacritics 2'
    )""",
    # BM25 on the text alone: the kind and question columns only filter.
    "INSERT INTO text_search (text_search, rank) VALUES ('rank', 'bm25(1.0, 0.0, 0.0)')",
    """CREATE TRIGGER IF NOT EXISTS texts_added AFTER INSERT ON texts BEGIN
        INSERT INTO text_search (rowid, text, kind, question)
        VALUES (new.id, new.text, new.kind, new.question);
    END""",
    """CREATE TRIGGER IF NOT EXISTS texts_removed AFTER DELETE ON texts BEGIN
        INSERT INTO text_search (text_search, rowid, text, kind, question)
        VALUES ('delete', old.id, old.text, old.kind, old.question);
    END""",
)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ArchiveIndex:
    """Open (creating when needed) the index at ``db_path`` (default :func:`default_db_path`)."""

    def __init__(self, db_path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(db_path) if db_path is not None else default_db_path()
        self._depth = 0
        self._known_texts: dict[tuple[str, str, str], int] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                       factory=_Connection)  # fmt: skip
            self._db.index_path = self.path
            fresh = self._check_layout()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # Indexing touches the clip indexes all over (texts arrive in no order): a 32 MiB
            # page cache instead of SQLite's 2 MiB keeps a million-row index's pages at hand.
            self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            if fresh:
                with self.batch():
                    for statement in _SCHEMA:
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except IndexDatabaseError:
            self._close_quietly()
            raise
        except sqlite3.DatabaseError as error:
            self._close_quietly()
            if getattr(error, "sqlite_errorname", "") == "SQLITE_NOTADB":
                raise IndexDatabaseError(
                    self.path, "not a videoqa index (not an SQLite database)"
                ) from None
            raise IndexDatabaseError(self.path, f"cannot open the index: {error}") from None
        except (OSError, sqlite3.Error) as error:
            self._close_quietly()
            raise IndexDatabaseError(self.path, f"cannot open the index: {error}") from None

    @classmethod
    def checked(cls, db_path: str | os.PathLike[str] | None = None) -> ArchiveIndex:
        """The index opened and its pages verified (``check(quick=True)``): what a command
        that will write into it (``--db``) or serve it opens, so a damaged file is one line
        before any work, not an error after it."""
        index = cls(db_path)
        try:
            index.check(quick=True)
        except BaseException:
            index.close()
            raise
        return index

    def _close_quietly(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def check(self, *, quick: bool = False) -> dict[str, int]:
        """Verify every page of the file (SQLite's ``PRAGMA integrity_check``, then FTS5's
        own ``integrity-check`` of the text index against its texts); raises
        ``IndexDamagedError`` with SQLite's first complaint. Returns :meth:`counts`.

        ``quick``: ``PRAGMA quick_check`` alone (the pages and their structure, not whether
        each index matches its table): what a command runs before it writes or serves, since
        a damaged page shows only when a query happens to read it.
        """
        pragma = "quick_check" if quick else "integrity_check"
        problems = [row[0] for row in self._db.execute(f"PRAGMA {pragma}").fetchall()]
        if problems != ["ok"]:
            more = f", and {len(problems) - 1} more" if len(problems) > 1 else ""
            raise IndexDamagedError(self.path, f"{problems[0]}{more}")
        if quick:
            return self.counts()
        try:
            self._db.execute(
                "INSERT INTO text_search (text_search, rank) VALUES ('integrity-check', 1)"
            )
        except sqlite3.DatabaseError as error:  # SQLITE_CORRUPT_VTAB
            raise IndexDamagedError(self.path, f"text search: {error}") from None
        return self.counts()

    def _check_layout(self) -> bool:
        """True for an empty file (to create the tables in); raise ``IndexDatabaseError`` for
        a file that is not an index of this layout (another SQLite file, such as the daemon's
        job store, or an index of another version), before anything is changed in it."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {name for (name,) in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}  # fmt: skip
        if version == 0 and not tables:
            return True
        if version == SCHEMA_VERSION and set(_TABLES) <= tables:
            return False
        if set(_TABLES) <= tables:
            reason = (f"an index of another layout (version {version}; videoqa {__version__}"
                      f" reads {SCHEMA_VERSION}): index the sidecars again into a new file")
        else:
            reason = "not a videoqa index (it holds other tables)"
        self._db.close()
        raise IndexDatabaseError(self.path, reason)

    def __enter__(self) -> ArchiveIndex:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around many changes (nested batches join the outer one): indexing
        thousands of reports costs one commit, not one per report."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")  # waits up to 30 s for another writer
        except sqlite3.Error as error:
            raise IndexDatabaseError(self.path, f"cannot write the index: {error}") from None
        # Text ids are remembered for one transaction only: between two, another writer (the
        # daemon's adapter) may have removed texts no clip used any more.
        self._known_texts.clear()
        self._depth = 1
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException as error:
            self._known_texts.clear()  # ids of texts the rollback takes back
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(error, sqlite3.Error) and _is_damage(error):
                raise IndexDamagedError(self.path, str(error)) from None
            if isinstance(error, sqlite3.Error):  # a full disk, a read-only file
                raise IndexDatabaseError(self.path, f"cannot write the index: {error}") from None
            raise
        finally:
            self._depth = 0

    # -- writing -----------------------------------------------------------------------------

    def add_written(self, report: Report, written: Sequence[str | os.PathLike[str]], *,
                    video_path: str | os.PathLike[str] | None = None) -> int:
        """Index ``report`` as just written to the sidecars ``written``: its JSON sidecar, when
        among them, is recorded as where it was read from (``add_report``'s ``json_path``)."""
        json_path = next((path for path in written if os.fspath(path).endswith(".json")), None)
        return self.add_report(report, json_path, video_path=video_path)

    def add_report(
        self,
        report: Report,
        json_path: str | os.PathLike[str] | None = None,
        *,
        video_path: str | os.PathLike[str] | None = None,
    ) -> int:
        """Index ``report`` (a video's record), replacing the video's rows of each kind and
        question the record holds; rows of others (a question asked with ``--format none``,
        another find query) stay: the index, like the record, accumulates.

        ``video_path`` is where the video is now (default: the report's ``video.path``);
        ``json_path`` the sidecar the report was read from, if any. Returns the rows added.
        """
        video = os.fspath(video_path) if video_path is not None else report.video.path
        models = list(dict.fromkeys(run.model.id for run in report.runs)) or [report.model.id]
        if report.caption_model is not None and report.caption_model.id not in models:
            models.append(report.caption_model.id)
        rows = list(_report_rows(report))
        keys = _record_keys(report) | {(row[2], row[3]) for row in rows}
        condition = " OR ".join("(kind = ? AND question IS ?)" for _ in keys) or "0"
        return self._store(
            video,
            rows,
            replaces=(f"({condition})", [value for key in sorted(keys, key=str) for value in key]),
            duration=report.video.duration,
            models=models,
            report=json_path,
        )

    def add_sidecar(self, json_path: str | os.PathLike[str]) -> int | None:
        """Index one JSON sidecar; None when it is unchanged since it was last indexed (same
        file size and modification time, same video digest). Raises ``ReportFormatError``
        naming the file when it is not a readable report."""
        json_path = Path(os.path.abspath(json_path))
        data = _read_sidecar(json_path)
        report = Report.from_dict(data, source=os.fspath(json_path))
        video = _video_of_sidecar(json_path, data, report)
        known = self._db.execute(
            "SELECT digest, report_stamp, report FROM videos WHERE path = ?", (_stored(video),)
        ).fetchone()
        if known is not None and known[2] is not None:
            same_report = _loaded(known[2]) == os.fspath(json_path)
            if same_report and known[1] == _stamp(json_path) and known[0] == video_digest(video):
                return None
        return self.add_report(report, json_path, video_path=video)

    def add_results(
        self,
        video_path: str | os.PathLike[str],
        rows: Iterable[tuple[float, float, str, float | None]],
        *,
        kind: str,
        question: str | None = None,
        duration: float | None = None,
        models: Sequence[str] = (),
    ) -> int:
        """Index results that come from elsewhere than a record (your own tool's rows):
        ``rows`` of ``(start, end, text, score)``, ``score`` a log-probability like a report's
        (``confidence`` is its ``exp``), replacing the video's earlier rows of this ``kind``
        and ``question`` only. Returns the rows added."""
        return self._store(
            os.fspath(video_path),
            [(start, end, kind, question, text, score) for start, end, text, score in rows],
            replaces=("kind = ? AND question IS ?", (kind, question)),
            duration=duration,
            models=models,
            report=None,
        )

    def _store(
        self,
        video: str,
        rows: Sequence[tuple[Any, ...]],
        *,
        replaces: tuple[str, Sequence[Any]],
        duration: float | None,
        models: Sequence[str],
        report: str | os.PathLike[str] | None,
    ) -> int:
        """Write a video's row and its clip ``rows`` (``start, end, kind, question, text,
        score``) in one transaction, replacing its rows that match ``replaces`` (SQL condition
        and parameters), or all of its rows when the video's digest changed."""
        digest = video_digest(video)
        with self.batch():
            video_id, changed = self._video_row(video, digest, duration, models, report)
            condition, parameters = ("1", ()) if changed else replaces
            old = self._db.execute(
                f"SELECT id, text_id FROM clips WHERE video_id = ? AND {condition}",
                (video_id, *parameters),
            ).fetchall()
            text_ids = self._text_ids((row[2], row[3] or "", row[4]) for row in rows)
            self._db.executemany(
                "INSERT INTO clips (video_id, start, end, kind, question, text_id, score)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(video_id, start, end, kind, question, text_ids[kind, question or "", text],
                  score) for start, end, kind, question, text, score in rows],
            )  # fmt: skip
            self._remove_clips(old)
            self._db.execute(
                "UPDATE videos SET clips = (SELECT COUNT(*) FROM clips WHERE video_id = ?)"
                " WHERE id = ?",
                (video_id, video_id),
            )
        return len(rows)

    def _video_row(
        self,
        video: str,
        digest: str | None,
        duration: float | None,
        models: Sequence[str],
        report: str | os.PathLike[str] | None,
    ) -> tuple[int, bool]:
        """The video's id, its row created or updated, and whether its content changed
        (another digest than when it was indexed before)."""
        stored = _stored(video)
        report_value = _stored(report) if report is not None else None
        stamp = _stamp(report) if report is not None else None
        known = self._db.execute(
            "SELECT id, digest, models FROM videos WHERE path = ?", (stored,)
        ).fetchone()
        if known is None:
            cursor = self._db.execute(
                "INSERT INTO videos (path, digest, duration, models, report, report_stamp,"
                " indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stored, digest, duration, json.dumps(list(models)), report_value, stamp, _now()),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid, False
        video_id, old_digest, old_models = known
        changed = old_digest != digest
        if not changed:
            models = list(dict.fromkeys([*json.loads(old_models), *models]))
        self._db.execute(
            "UPDATE videos SET digest = ?, duration = COALESCE(?, duration), models = ?,"
            " report = COALESCE(?, report), report_stamp = COALESCE(?, report_stamp),"
            " indexed_at = ? WHERE id = ?",
            (digest, duration, json.dumps(list(models)), report_value, stamp, _now(), video_id),
        )
        return int(video_id), changed

    def _text_ids(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
        """The ids of ``(kind, question, text)`` in the ``texts`` table (a caption's question
        is ""), new ones added; looked up a few hundred per query, and remembered for the rest
        of the transaction."""
        if len(self._known_texts) >= _TEXT_CACHE:
            self._known_texts.clear()
        known = self._known_texts
        missing = [key for key in dict.fromkeys(keys) if key not in known]
        for first in range(0, len(missing), 300):
            chunk = missing[first : first + 300]
            marks = " OR ".join("(kind = ? AND question = ? AND text = ?)" for _ in chunk)
            found = self._db.execute(
                f"SELECT id, kind, question, text FROM texts WHERE {marks}",
                [part for key in chunk for part in key],
            )
            known.update(((kind, question, text), text_id)
                         for text_id, kind, question, text in found)  # fmt: skip
        for key in missing:
            if key not in known:
                cursor = self._db.execute(
                    "INSERT INTO texts (kind, question, text) VALUES (?, ?, ?)", key
                )
                assert cursor.lastrowid is not None
                known[key] = cursor.lastrowid
        return known

    def _remove_clips(self, clips: Sequence[tuple[int, int]]) -> None:
        """Delete ``(clip id, text id)`` rows, then the texts no clip uses any more."""
        if not clips:
            return
        self._db.executemany("DELETE FROM clips WHERE id = ?", [(c,) for c, _t in clips])
        orphans = [
            (text_id,) for text_id in {t for _c, t in clips}
            if self._db.execute(
                "SELECT 1 FROM clips WHERE text_id = ? LIMIT 1", (text_id,)
            ).fetchone() is None
        ]  # fmt: skip
        if orphans:
            self._db.executemany("DELETE FROM texts WHERE id = ?", orphans)
            self._known_texts.clear()

    def prune(self) -> list[str]:
        """Remove every video whose file is gone (and its rows); returns their paths.

        A share that is not mounted looks gone too: prune with the archive reachable.
        """
        gone = [
            (video_id, _loaded(path))
            for video_id, path in self._db.execute("SELECT id, path FROM videos").fetchall()
            if not os.path.exists(_loaded(path))
        ]
        with self.batch():
            for video_id, _path in gone:
                self._remove_clips(self._db.execute(
                    "SELECT id, text_id FROM clips WHERE video_id = ?", (video_id,)
                ).fetchall())  # fmt: skip
                self._db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
        return [path for _id, path in gone]

    def rename(self, old_path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> bool:
        """A video moved: its rows follow it (replacing any under the new name). False when
        ``old_path`` was not indexed."""
        with self.batch():
            known = self._db.execute(
                "SELECT id FROM videos WHERE path = ?", (_stored(old_path),)
            ).fetchone()
            if known is None:
                return False
            target = self._db.execute(
                "SELECT id FROM videos WHERE path = ?", (_stored(new_path),)
            ).fetchone()
            if target is not None:
                self._remove_clips(self._db.execute(
                    "SELECT id, text_id FROM clips WHERE video_id = ?", (target[0],)
                ).fetchall())  # fmt: skip
                self._db.execute("DELETE FROM videos WHERE id = ?", (target[0],))
            self._db.execute(
                "UPDATE videos SET path = ? WHERE id = ?", (_stored(new_path), known[0])
            )
        return True

    # -- reading -----------------------------------------------------------------------------

    def videos(self) -> list[VideoEntry]:
        """Every indexed video, by path."""
        rows = self._db.execute(
            "SELECT path, digest, duration, models, indexed_at, report, clips FROM videos"
            " ORDER BY path"
        ).fetchall()
        return [
            VideoEntry(
                path=_loaded(path), digest=digest, duration=duration,
                models=tuple(json.loads(models)), indexed_at=indexed_at,
                report=_loaded(report) if report is not None else None, clips=count,
            )  # fmt: skip
            for path, digest, duration, models, indexed_at, report, count in rows
        ]

    def clips(self, video: str | os.PathLike[str]) -> list[ClipRow]:
        """The clip rows of one video, in time order (at one time: the caption, the answers,
        then other kinds)."""
        rows = self._db.execute(
            "SELECT c.start, c.end, c.kind, c.question, t.text, c.score FROM clips c"
            " JOIN videos v ON v.id = c.video_id JOIN texts t ON t.id = c.text_id"
            " WHERE v.path = ? ORDER BY c.start,"
            " CASE c.kind WHEN 'caption' THEN 0 WHEN 'answer' THEN 1 ELSE 2 END, c.question, c.id",
            (_stored(video),),
        ).fetchall()
        return [ClipRow(os.fspath(video), *row) for row in rows]

    def counts(self) -> dict[str, int]:
        """``{"videos", "clips", "texts"}``: how much the index holds."""
        return {
            table: self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("videos", "clips", "texts")
        }

    def search(
        self,
        query: str,
        *,
        kind: str | None = None,
        question: str | None = None,
        video: str | None = None,
        limit: int = 20,
        fts: bool = False,
    ) -> list[SearchHit]:
        """The clips whose text best matches ``query``, best first (BM25), adjacent clips of
        one video saying the same thing merged into one hit.

        ``query`` is plain words unless ``fts``: then it is an FTS5 query as is (see
        :func:`plain_queries` for what plain words become). ``question`` keeps answers to
        that question (case and spacing ignored); ``video`` is a glob on the video's path
        (on its file name alone when it has no ``/``). Raises ``SearchSyntaxError``.
        """
        if limit < 1:
            raise SearchSyntaxError(None, f"must be at least 1, got {limit}", setting="limit")
        matches = [query] if fts else plain_queries(query)
        search = _Search(self._db, _filters(self._db, kind, question, video), limit)
        for match in matches:
            match = _restricted(match, kind, question)
            try:
                search.collect(match)
            except sqlite3.OperationalError as error:
                reason = f"not a valid FTS5 query: {query!r} ({error})"
                raise SearchSyntaxError(None, reason) from None
            if search.hits:
                break
        return search.hits


_CACHE_KIB = 32 * 1024
"""SQLite's page cache per connection, in KiB (it grows only as far as it is used)."""

_TEXT_CACHE = 100_000
"""Distinct texts whose ids a connection remembers while indexing (then it starts over)."""

_FIRST_PAGE = 50
"""Texts fetched by the first BM25 query of a search, at least (twice the hits asked for);
the rest only when they are not enough."""

_STOPWORD_TEXT = (
    "a an and are as at be by for from has he her his in into is it its of on or she that the "
    "their them there these they this to was were what when where which while who with"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
"""Words a plain-word search leaves out (unless they are all it has): they occur in most
captions, so they would rank nothing and make BM25 score most of the index."""

_UNIT = re.compile(r'"([^"]*)"?|([^\s"]+)')


def plain_queries(text: str) -> list[str]:
    """What plain words search for: FTS5 queries, tried in order until the results are full.

    Each word, each ``"quoted phrase"`` and each hyphenated or punctuated word (``left-turn``,
    ``o'clock``) becomes one quoted FTS5 phrase, so quotes, hyphens and FTS5 operators typed
    as words (``AND``, ``NEAR``) are just text. Stop words are dropped. The first query wants
    every phrase; only when nothing says them all, the second (with two or more) wants any of
    them. Not both at once: clips that say some of the words are noise below those that say
    them all, and ranking them means BM25-scoring every text with any of the words, which at
    a million clips costs far more than the search itself.
    """
    units = [
        (quoted or word, bool(quoted))
        for quoted, word in _UNIT.findall(text)
        if re.search(r"\w", quoted or word)
    ]
    if not units:
        raise SearchSyntaxError(None, f"no words to search for in {text!r}")
    kept = [u for u, quoted in units if quoted or u.casefold() not in STOPWORDS]
    kept = kept or [unit for unit, _quoted in units]
    phrases = [_phrase(unit) for unit in dict.fromkeys(kept)]
    queries = [" AND ".join(phrases)]
    if len(phrases) > 1:
        queries.append(" OR ".join(phrases))
    return queries


def _restricted(match: str, kind: str | None, question: str | None) -> str:
    """The FTS5 query ``match`` on the text column, narrowed to rows of ``kind`` and (as a
    phrase: the clips' own question is compared exactly afterwards) ``question``."""
    parts = [f"text : ({match})"]
    if kind is not None:
        parts.append(f"kind : {_phrase(kind)}")
    if question is not None and re.search(r"\w", question):
        parts.append(f"question : {_phrase(question)}")
    return " AND ".join(parts)


def _phrase(text: str) -> str:
    """``text`` as one FTS5 string: its words a phrase, whatever characters it holds."""
    return '"' + text.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Filters:
    """The SQL condition on ``clips c JOIN videos v`` that the search options make, and, when
    the videos ``--video`` names hold few clips, those clips (the ones the other options
    keep) by text id: a text then costs a lookup, not a query over every clip saying it."""

    condition: str
    parameters: tuple[Any, ...]
    clips: dict[int, list[tuple[Any, ...]]] | None = None


_FEW_CLIPS = 20_000
"""Up to this many clips in the videos matching ``--video``, the search looks only at their
clips (one query reads them); more, and it queries each matching text's clips as it goes."""


def _filters(
    db: sqlite3.Connection, kind: str | None, question: str | None, video: str | None
) -> _Filters:
    conditions: list[str] = []
    parameters: list[Any] = []
    if kind is not None:
        conditions.append("c.kind = ?")
        parameters.append(kind)
    if question is not None:
        conditions.append("c.question = ? COLLATE NOCASE")
        parameters.append(" ".join(question.split()))
    clips_by_text: dict[int, list[tuple[Any, ...]]] | None = None
    if video is not None:
        pattern = video if video.startswith(("/", "*")) else f"*/{video}"
        matching = db.execute("SELECT id, clips FROM videos WHERE path GLOB ?", (pattern,))
        ids, clips = [], 0
        for video_id, count in matching:
            ids.append(video_id)
            clips += count
        if clips <= _FEW_CLIPS:
            conditions.append(f"c.video_id IN ({', '.join(str(int(i)) for i in ids)})")
            where = " AND ".join(conditions)
            clips_by_text = {}
            for text_id, *clip in db.execute(
                f"SELECT c.text_id, {_CLIP_COLUMNS} FROM clips c JOIN videos v"
                f" ON v.id = c.video_id WHERE {where} ORDER BY {_CLIP_ORDER}",
                parameters,
            ):
                clips_by_text.setdefault(text_id, []).append(tuple(clip))
        else:
            conditions.append("v.path GLOB ?")
            parameters.append(pattern)
    return _Filters("".join(f" AND {c}" for c in conditions), tuple(parameters), clips_by_text)


_CLIP_COLUMNS = "c.id, c.video_id, v.path, c.kind, c.question"
_CLIP_ORDER = "c.score DESC, c.id DESC"
"""A text's clips: the model's most confident first, then the latest indexed."""

_RANKED = (
    "SELECT rowid, text, rank FROM text_search WHERE text_search MATCH ?"
    " ORDER BY rank LIMIT ? OFFSET ?"
)


class _Search:
    """One search's results as they are collected: texts in BM25 order, each text's clips
    (best model score first), each clip widened to its run of adjacent clips saying the same."""

    def __init__(self, db: sqlite3.Connection, filters: _Filters, limit: int) -> None:
        self.db = db
        self.filters = filters
        self.limit = limit
        self.hits: list[SearchHit] = []
        self._texts_seen: set[int] = set()
        self._runs_seen: set[tuple[Any, ...]] = set()
        self._timelines: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}

    @property
    def full(self) -> bool:
        return len(self.hits) >= self.limit

    def collect(self, match: str) -> None:
        """Add the hits of one FTS5 query until the results are full or it has no more.

        BM25 scores every matching text before the first row comes back, so the texts come
        in two queries: the best few (enough for most searches), then, only when filters or
        merging left the results short, all the others, read as they are needed.
        """
        if self.filters.clips is not None and not self.filters.clips:
            return
        first = max(_FIRST_PAGE, 2 * self.limit)
        best = self.db.execute(_RANKED, (match, first, 0)).fetchall()
        self._take(best)
        if not self.full and len(best) == first:
            self._take(self.db.execute(_RANKED, (match, -1, first)))

    def _take(self, ranked: Iterable[tuple[int, str, float]]) -> None:
        allowed = self.filters.clips
        for text_id, text, bm25 in ranked:
            if text_id in self._texts_seen or (allowed is not None and text_id not in allowed):
                continue
            self._texts_seen.add(text_id)
            self._add_text(text_id, text, -bm25)
            if self.full:
                return

    def _add_text(self, text_id: int, text: str, relevance: float) -> None:
        clips: Iterable[tuple[Any, ...]]
        if self.filters.clips is not None:
            clips = self.filters.clips[text_id]
        else:
            clips = self.db.execute(
                f"SELECT {_CLIP_COLUMNS} FROM clips c JOIN videos v ON v.id = c.video_id"
                f" WHERE c.text_id = ?{self.filters.condition} ORDER BY {_CLIP_ORDER}",
                (text_id, *self.filters.parameters),
            )
        for clip_id, video_id, path, kind, question in clips:
            start, end, confidence, count = self._run(clip_id, video_id, kind, question)
            run = (video_id, kind, question, start)
            if run in self._runs_seen:
                continue
            self._runs_seen.add(run)
            self.hits.append(SearchHit(
                video=_loaded(path), start=start, end=end, kind=kind, question=question,
                text=text, score=relevance, rank=len(self.hits) + 1, confidence=confidence,
                clips=count,
            ))  # fmt: skip
            if self.full:
                return

    def _run(
        self, clip_id: int, video_id: int, kind: str, question: str | None
    ) -> tuple[float, float, float | None, int]:
        """``(start, end, confidence, clips)`` of the run of adjacent clips with the same text
        as ``clip_id`` (clips touching or overlapping, in time order)."""
        key = (video_id, kind, question)
        timeline = self._timelines.get(key)
        if timeline is None:
            timeline = self._timelines[key] = self.db.execute(
                "SELECT id, start, end, text_id, score FROM clips"
                " WHERE video_id = ? AND kind = ? AND question IS ? ORDER BY start, id",
                key,
            ).fetchall()
        here = next(i for i, row in enumerate(timeline) if row[0] == clip_id)
        first = last = here
        text_id = timeline[here][3]
        while first > 0 and _continues(timeline[first - 1], timeline[first], text_id):
            first -= 1
        while last + 1 < len(timeline) and _continues(timeline[last], timeline[last + 1], text_id):
            last += 1
        run = timeline[first : last + 1]
        scores = [row[4] for row in run if row[4] is not None]
        confidence = sum(math.exp(s) for s in scores) / len(scores) if scores else None
        return run[0][1], max(row[2] for row in run), confidence, len(run)


def _continues(before: tuple[Any, ...], after: tuple[Any, ...], text_id: int) -> bool:
    """Whether ``after`` continues ``before``'s run: same text, and no gap between them."""
    return before[3] == after[3] == text_id and after[1] <= before[2] + 1e-6


def _stored(path: str | os.PathLike[str]) -> str | bytes:
    """How a path is kept in the index: absolute (resolved once, against the folder of the
    command that stores it, so every reader finds the same file) and SQLite-safe."""
    return sqlite_path(os.path.abspath(path))


def _stamp(path: str | os.PathLike[str]) -> str | None:
    """What tells an unchanged sidecar: its size and modification time (ns)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _read_sidecar(json_path: Path) -> Any:
    try:
        text = json_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ReportFormatError(json_path, f"cannot read: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportFormatError(json_path, f"not JSON: {error}") from None


def _video_of_sidecar(json_path: Path, data: Any, report: Report) -> str:
    """Where the sidecar's video is: beside it under the name it records (``sidecar_of``) when
    that file is there (an archive moved as a whole), else the report's ``video.path``."""
    owner = data.get("sidecar_of") if isinstance(data, dict) else None
    if isinstance(owner, str) and owner:
        beside = json_path.parent / owner
        if beside.exists():
            return os.fspath(beside)
    return report.video.path


def _record_keys(report: Report) -> set[tuple[str, str | None]]:
    """The ``(kind, question)`` of everything a record holds, texts or not."""
    keys: set[tuple[str, str | None]] = {("answer", q) for q in report.questions}
    if any(clip.caption is not None for clip in report.clips):
        keys.add(("caption", None))
    keys.update((alt.kind, alt.question) for alt in report.alternatives)
    keys.update((FIND_KIND, finding.question) for finding in report.findings)
    return keys


def _report_rows(report: Report) -> Iterator[tuple[Any, ...]]:
    """``(start, end, kind, question, text, score)`` for each caption, answer and found range
    with text: the clips, then what the record keeps beside them (alternatives, findings)."""
    for clip in report.clips:
        if clip.caption is not None and clip.caption.text.strip():
            yield clip.start, clip.end, "caption", None, clip.caption.text, clip.caption.score
        for answer in clip.answers:
            if answer.answer.strip():
                yield clip.start, clip.end, "answer", answer.question, answer.answer, answer.score
    for alt in report.alternatives:
        question = alt.question if alt.kind == "answer" else None
        for text in alt.texts:
            if text.text.strip():
                yield text.start, text.end, alt.kind, question, text.text, text.score
    for finding in report.findings:
        for found in finding.ranges:
            score = math.log(found.score) if found.score > 0 else -1e9
            yield found.start, found.end, FIND_KIND, finding.question, finding.what, score


__all__ = [
    "DEFAULT_DB",
    "FIND_KIND",
    "KINDS",
    "ArchiveIndex",
    "ClipRow",
    "IndexDamagedError",
    "IndexDatabaseError",
    "SearchHit",
    "SearchSyntaxError",
    "VideoEntry",
    "default_db_path",
    "find_sidecars",
    "ingest",
    "plain_queries",
    "rebuild_index",
    "video_digest",
]
