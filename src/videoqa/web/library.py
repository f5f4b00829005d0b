"""Which videos the review page serves, and how a request names one.

A request never carries a path: it carries a video's key (a digest of the path the index
holds), and the key is looked up among the indexed videos. A video is served only when the
index has it and its real path (every symlink resolved) lies under one of the configured
roots, so ``..``, absolute paths and symlinks that lead out of a root get nothing.

Why a digest of the path and not the index's row id: the key stays the same when a video
is re-indexed or the index is rebuilt, so links and bookmarks keep working.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from videoqa.ffmpeg_names import codec_name
from videoqa.index import ArchiveIndex, SearchHit, VideoEntry
from videoqa.pathnames import readable
from videoqa.report import Report

MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"

BROWSER_FORMATS: dict[tuple[str, str], str] = {
    **{(MP4_FAMILY, codec): "video/mp4" for codec in ("h264", "av1", "vp9")},
    **{("matroska,webm", codec): "video/webm" for codec in ("vp8", "vp9", "av1")},
    ("matroska,webm", "h264"): "video/x-matroska",
    **{("ogg", codec): "video/ogg" for codec in ("theora", "vp8")},
}
"""(container as FFmpeg names it, video codec) → the media type sent, for what browsers play.
Measured in Chromium 156 (Debian): h264 in MP4, QuickTime and Matroska, VP9 in WebM play;
HEVC in MP4 ("no supported streams": Chromium decodes HEVC only in hardware) and MPEG-4 Part 2
in AVI do not. Firefox plays Matroska from release 145 on; where a browser refuses a file after
all, the page shows the same note as for the formats left out here."""

REFRESH_INTERVAL = 1.0
"""Seconds between two reloads of the indexed videos when a key is not found (a video indexed
since): a flood of unknown keys costs one query a second, not one each."""


def video_key(path: str) -> str:
    """The key a video is named by in URLs: 16 hex digits of the SHA-256 of its indexed path."""
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:16]


def browser_media_type(codec: str | None, format_name: str | None) -> str | None:
    """The media type to send a video as, or None when browsers cannot play it (a report
    from before codecs were named may hold the decoder's name: ``libdav1d`` is AV1)."""
    return BROWSER_FORMATS.get((format_name or "", codec_name(codec) or ""))


@dataclass(frozen=True)
class ServedVideo:
    """An indexed video under a root: where it really is and where its results are."""

    key: str
    path: Path
    """The real path (symlinks resolved), under a root."""
    indexed_path: str
    """The path as the index holds it (search hits name it)."""
    report_path: Path | None
    """The JSON sidecar it was indexed from (None: the index got the report another way)."""
    duration: float | None

    @property
    def name(self) -> str:
        """The file name to show (a name that is not UTF-8 with ``\\xNN`` escapes)."""
        return readable(Path(self.indexed_path).name)

    @property
    def folder(self) -> str:
        """The folder to show, as :attr:`name`."""
        return readable(Path(self.indexed_path).parent)

    def load_report(self) -> Report | None:
        """The report from the JSON sidecar (None when there is none); raises
        ``ReportFormatError`` when it cannot be read."""
        return Report.load(self.report_path) if self.report_path is not None else None


class Library:
    """The indexed videos under ``roots``, and the index to search and update.

    Each thread gets its own connection to the index (SQLite connections stay in the thread
    that opened them, and the server answers requests in a thread pool).
    """

    def __init__(self, db_path: str | os.PathLike[str], roots: Iterable[str | os.PathLike[str]]):
        self.db_path = Path(db_path)
        self.roots: tuple[Path, ...] = tuple(Path(os.path.realpath(root)) for root in roots)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._entries: dict[str, VideoEntry] = {}
        self._loaded_at = float("-inf")

    def index(self) -> ArchiveIndex:
        """This thread's open index."""
        index = getattr(self._local, "index", None)
        if index is None:
            index = self._local.index = ArchiveIndex(self.db_path)
        return index

    def under_roots(self, path: str | os.PathLike[str]) -> Path | None:
        """``path`` resolved (every symlink followed), when that lies under a root and is a
        file; else None."""
        real = Path(os.path.realpath(path))
        for root in self.roots:
            if real == root or root in real.parents:
                return real if real.is_file() else None
        return None

    def video(self, key: str) -> ServedVideo | None:
        """The video named by ``key``, when it is indexed and under a root."""
        entry = self._entries.get(key)
        if entry is None:
            with self._lock:
                if time.monotonic() - self._loaded_at >= REFRESH_INTERVAL:
                    self._reload()
                entry = self._entries.get(key)
        return self._served(entry) if entry is not None else None

    def videos(self) -> list[ServedVideo]:
        """Every indexed video that is served, by path."""
        with self._lock:
            self._reload()
            entries = list(self._entries.values())
        served = (self._served(entry) for entry in entries)
        return [video for video in served if video is not None]

    def search(
        self, query: str, *, kind: str | None = None, question: str | None = None,
        limit: int = 20,
    ) -> tuple[list[tuple[SearchHit, ServedVideo]], int]:  # fmt: skip
        """The index's hits for ``query`` whose video is served, and how many were not."""
        hits = self.index().search(query, kind=kind, question=question, limit=limit)
        served, hidden = [], 0
        videos: dict[str, ServedVideo | None] = {}
        for hit in hits:
            if hit.video not in videos:
                videos[hit.video] = self.video(video_key(hit.video))
            video = videos[hit.video]
            if video is None:
                hidden += 1
            else:
                served.append((hit, video))
        return served, hidden

    def reindex(self, video: ServedVideo, report: Report) -> None:
        """Index ``report`` again for ``video`` (after an edit), from its JSON sidecar."""
        self.index().add_report(report, video.report_path, video_path=video.indexed_path)

    def _reload(self) -> None:
        self._entries = {video_key(entry.path): entry for entry in self.index().videos()}
        self._loaded_at = time.monotonic()

    def _served(self, entry: VideoEntry) -> ServedVideo | None:
        real = self.under_roots(entry.path)
        if real is None:
            return None
        return ServedVideo(
            key=video_key(entry.path),
            path=real,
            indexed_path=entry.path,
            report_path=Path(entry.report) if entry.report is not None else None,
            duration=entry.duration,
        )


PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#999999")  # fmt: skip
"""Okabe and Ito's eight colours, told apart with every common colour-vision deficiency."""

NAMED_COLOURS = {
    "red": "#D55E00", "orange": "#E69F00", "yellow": "#F0E442", "green": "#009E73",
    "blue": "#0072B2", "purple": "#8E44AD", "violet": "#8E44AD", "pink": "#CC79A7",
    "brown": "#8B5A2B", "black": "#222222", "white": "#FFFFFF", "grey": "#999999",
    "gray": "#999999", "cyan": "#56B4E9",
}  # fmt: skip
"""An answer that is a colour's name is drawn in (a colour-blind-safe shade of) it."""


class Colours:
    """One colour per distinct text across a page: equal answers look alike in every row.

    A text that is a colour's name gets that colour; the others take :data:`PALETTE` in order
    of first appearance, skipping the colours named ones took while others are left (cycling
    after that: the legend beside each row names the texts, colour is never all there is).
    """

    def __init__(self, texts: Iterable[str]) -> None:
        keys = list(dict.fromkeys(_colour_key(text) for text in texts))
        self._given = {key: NAMED_COLOURS[key] for key in keys if key in NAMED_COLOURS}
        free = [c for c in PALETTE if c not in self._given.values()] or list(PALETTE)
        others = [key for key in keys if key not in self._given]
        for number, key in enumerate(others):
            self._given[key] = free[number % len(free)]

    def __call__(self, text: str) -> str:
        return self._given.get(_colour_key(text), PALETTE[-1])


def _colour_key(text: str) -> str:
    key = " ".join(text.lower().split()).rstrip(".")
    for article in ("the ", "a "):
        key = key.removeprefix(article)
    return key


def clip_colour(text: str) -> str:
    """The colour a text gets on a page where it comes first (tests, one-off uses)."""
    return Colours([text])(text)


def roots_or_cwd(roots: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The roots asked for, or the current folder when none was."""
    return [Path(root) for root in roots] if roots else [Path.cwd()]
