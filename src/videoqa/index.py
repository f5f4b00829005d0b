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

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from videoqa.errors import VideoQAError
from videoqa.pathnames import path_from_sqlite as _loaded
from videoqa.pathnames import sqlite_path as _stored
from videoqa.report import Report, ReportFormatError
from videoqa.sidecars import JSON_SUFFIX

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of an index this module writes."""

INDEX_ENV = "VIDEOQA_INDEX"
"""Environment variable naming the index file, in place of the default."""

REPORT_KINDS = ("caption", "answer")
"""Kinds of clip rows a report produces (re-indexing a report replaces exactly these)."""

KINDS: tuple[str, ...] = REPORT_KINDS
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


class SearchSyntaxError(VideoQAError):
    """A search query is not valid FTS5 syntax (or names nothing to search for)."""


@dataclass(frozen=True)
class SearchHit:
    """One result of :meth:`ArchiveIndex.search`: a clip, or a run of adjacent clips of one
    video that say the same thing, merged into one span.

    ``score`` is the BM25 relevance (SQLite's ``bm25()`` negated: higher is better); ``rank``
    is the position in the results (1 is the best). ``confidence`` is the model's own
    confidence in the text (mean ``exp(score)`` of the merged clips, 0 to 1).
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
    (recursively, sorted, hidden temporary files excluded by their suffix)."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from sorted(path.rglob(f"*{JSON_SUFFIX}"))
        else:
            yield path


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS videos (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        digest TEXT,
        duration REAL,
        models TEXT NOT NULL,
        report TEXT,
        report_stamp TEXT,
        indexed_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS clips (
        id INTEGER PRIMARY KEY,
        video_id INTEGER NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
        start REAL NOT NULL,
        end REAL NOT NULL,
        kind TEXT NOT NULL,
        question TEXT,
        text TEXT NOT NULL,
        score REAL
    )""",
    "CREATE INDEX IF NOT EXISTS clips_by_video ON clips (video_id, kind, question, start)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS clip_text USING fts5 (
        text, content = 'clips', content_rowid = 'id',
        tokenize = 'porter unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER IF NOT EXISTS clips_text_added AFTER INSERT ON clips BEGIN
        INSERT INTO clip_text (rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER IF NOT EXISTS clips_text_removed AFTER DELETE ON clips BEGIN
        INSERT INTO clip_text (clip_text, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ArchiveIndex:
    """Open (creating when needed) the index at ``db_path`` (default :func:`default_db_path`)."""

    def __init__(self, db_path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(db_path) if db_path is not None else default_db_path()
        self._depth = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            if self._db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                with self.batch():
                    for statement in _SCHEMA:
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as error:
            raise IndexDatabaseError(self.path, f"cannot open the index: {error}") from None

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
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- writing -----------------------------------------------------------------------------

    def add_report(
        self,
        report: Report,
        json_path: str | os.PathLike[str] | None = None,
        *,
        video_path: str | os.PathLike[str] | None = None,
    ) -> int:
        """Index ``report``, replacing the rows an earlier report of the same video produced.

        ``video_path`` is where the video is now (default: the report's ``video.path``);
        ``json_path`` the sidecar the report was read from, if any. Returns the clip rows added.
        """
        video = os.fspath(video_path) if video_path is not None else report.video.path
        models = [report.model.id]
        if report.caption_model is not None and report.caption_model.id not in models:
            models.append(report.caption_model.id)
        rows = list(_report_rows(report))
        with self.batch():
            video_id = self._replace_video(
                video,
                digest=video_digest(video),
                duration=report.video.duration,
                models=models,
                report=json_path,
                report_stamp=_stamp(json_path) if json_path is not None else None,
                kinds=REPORT_KINDS,
            )
            self._db.executemany(
                "INSERT INTO clips (video_id, start, end, kind, question, text, score)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(video_id, *row) for row in rows],
            )
        return len(rows)

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

    def _replace_video(
        self,
        video: str,
        *,
        digest: str | None,
        duration: float | None,
        models: Sequence[str],
        report: str | os.PathLike[str] | None,
        report_stamp: str | None,
        kinds: Sequence[str],
    ) -> int:
        """The video's row, created or updated; its rows of ``kinds`` removed (all its rows
        when its digest changed). Returns its id. Runs inside a batch."""
        stored = _stored(video)
        known = self._db.execute(
            "SELECT id, digest, models FROM videos WHERE path = ?", (stored,)
        ).fetchone()
        report_value = _stored(report) if report is not None else None
        if known is None:
            cursor = self._db.execute(
                "INSERT INTO videos (path, digest, duration, models, report, report_stamp,"
                " indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stored, digest, duration, json.dumps(list(models)), report_value,
                 report_stamp, _now()),
            )  # fmt: skip
            assert cursor.lastrowid is not None
            return cursor.lastrowid
        video_id, old_digest, old_models = known
        if old_digest != digest:
            self._db.execute("DELETE FROM clips WHERE video_id = ?", (video_id,))
            merged = list(models)
        else:
            marks = ", ".join("?" for _ in kinds)
            self._db.execute(
                f"DELETE FROM clips WHERE video_id = ? AND kind IN ({marks})", (video_id, *kinds)
            )
            merged = list(dict.fromkeys([*json.loads(old_models), *models]))
        self._db.execute(
            "UPDATE videos SET digest = ?, duration = COALESCE(?, duration), models = ?,"
            " report = COALESCE(?, report), report_stamp = COALESCE(?, report_stamp),"
            " indexed_at = ? WHERE id = ?",
            (digest, duration, json.dumps(merged), report_value, report_stamp, _now(), video_id),
        )
        return int(video_id)

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
                self._db.execute("DELETE FROM clips WHERE video_id = ?", (video_id,))
                self._db.execute("DELETE FROM videos WHERE id = ?", (video_id,))
        return [path for _id, path in gone]

    def rename(self, old_path: str | os.PathLike[str], new_path: str | os.PathLike[str]) -> bool:
        """A video moved: its rows follow it. False when ``old_path`` was not indexed."""
        with self.batch():
            self._db.execute("DELETE FROM videos WHERE path = ?", (_stored(new_path),))
            cursor = self._db.execute(
                "UPDATE videos SET path = ? WHERE path = ?",
                (_stored(new_path), _stored(old_path)),
            )
        return cursor.rowcount > 0

    # -- reading -----------------------------------------------------------------------------

    def videos(self) -> list[VideoEntry]:
        """Every indexed video, by path."""
        rows = self._db.execute(
            "SELECT v.path, v.digest, v.duration, v.models, v.indexed_at, v.report,"
            " (SELECT COUNT(*) FROM clips WHERE video_id = v.id) FROM videos v ORDER BY v.path"
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
        """The clip rows of one video, in time order (captions before answers at one time)."""
        rows = self._db.execute(
            "SELECT c.start, c.end, c.kind, c.question, c.text, c.score FROM clips c"
            " JOIN videos v ON v.id = c.video_id WHERE v.path = ?"
            " ORDER BY c.start, c.kind DESC, c.question, c.id",
            (_stored(video),),
        ).fetchall()
        return [ClipRow(os.fspath(video), *row) for row in rows]

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

        ``query`` is plain words unless ``fts``: then it is FTS5 query syntax as is
        (see :func:`fts_query` for what plain words become). ``question`` keeps answers to
        that question (case and spacing ignored); ``video`` is a glob on the video's path
        (on its file name alone when it has no ``/``). Raises ``SearchSyntaxError``.
        """
        raise NotImplementedError  # filled in next (the API is fixed)


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


def _report_rows(report: Report) -> Iterator[tuple[Any, ...]]:
    """``(start, end, kind, question, text, score)`` for each caption and answer with text."""
    for clip in report.clips:
        if clip.caption is not None and clip.caption.text.strip():
            yield clip.start, clip.end, "caption", None, clip.caption.text, clip.caption.score
        for answer in clip.answers:
            if answer.answer.strip():
                yield clip.start, clip.end, "answer", answer.question, answer.answer, answer.score


__all__ = [
    "DEFAULT_DB",
    "KINDS",
    "ArchiveIndex",
    "ClipRow",
    "IndexDatabaseError",
    "SearchHit",
    "SearchSyntaxError",
    "VideoEntry",
    "default_db_path",
    "find_sidecars",
    "video_digest",
]
