"""Which files count, where they really are, and when they have settled.

Copy tools, browsers and sync clients write under temporary names, and NAS boxes drop their own
metadata folders beside the videos; none of that is a video to process. A file counts once its
size and modification time have not changed for the settle time, so a file still being copied
in chunks is never read half-written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from videoqa.watch.config import FolderSettings

logger = logging.getLogger("videoqa.watch.scanner")

TEMPORARY_SUFFIXES = (".part", ".crdownload", ".tmp", ".partial", ".download", ".!qb")
"""Names of files still being written by browsers, downloaders and copy tools."""

IGNORED_FOLDERS = ("@eaDir", "#recycle", "$RECYCLE.BIN", "lost+found")
"""NAS and operating-system housekeeping folders."""

OWN_OUTPUT_SUFFIXES = (
    ".videoqa.json", ".srt", ".vtt", ".jsonl", ".sqlite", ".sqlite-wal", ".sqlite-shm",
    ".sqlite.lock",
)  # fmt: skip
"""What the daemon writes itself (sidecars, event log, job store and its lock): never inputs."""


def is_ignored_name(name: str) -> bool:
    """Whether a single path component is temporary, hidden, housekeeping or our own output.

    Hidden names cover ``.syncthing.*`` and the ``.name.tmp`` files atomic writers use.
    """
    lowered = name.lower()
    return (
        name.startswith((".", "~"))
        or name in IGNORED_FOLDERS
        or lowered.endswith(TEMPORARY_SUFFIXES)
        or lowered.endswith(OWN_OUTPUT_SUFFIXES)
    )


def is_candidate(path: str | os.PathLike[str], settings: FolderSettings) -> bool:
    """Whether ``path`` (inside ``settings.folder``) is a video this folder should process."""
    path = Path(os.path.abspath(path))
    try:
        relative = path.relative_to(settings.folder)
    except ValueError:
        return False
    parts = relative.parts
    if not parts or any(is_ignored_name(part) for part in parts):
        return False
    if not settings.recursive and len(parts) > 1:
        return False
    if settings.output_dir is not None and path.is_relative_to(settings.output_dir):
        return False
    return not settings.extensions or path.suffix.lower() in settings.extensions


def real_path_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path``, symlinks resolved, still lies inside ``folder`` (also resolved).

    A link to ``/etc/shadow`` dropped into a watched folder must not be read, nor have
    results about it written anywhere.
    """
    real = Path(os.path.realpath(path))
    return real.is_relative_to(Path(os.path.realpath(folder)))


def iter_candidates(settings: FolderSettings, below: Path | None = None) -> Iterator[Path]:
    """Every candidate file under ``below`` (default: the whole folder), ignored folders pruned."""
    top = below or settings.folder
    for directory, subfolders, files in os.walk(top):
        subfolders[:] = sorted(d for d in subfolders if not is_ignored_name(d))
        if not settings.recursive:
            subfolders[:] = []
        for name in sorted(files):
            path = Path(directory) / name
            if is_candidate(path, settings):
                yield path


def iter_folders(settings: FolderSettings) -> Iterator[Path]:
    """Every folder where this folder's videos and their sidecars are (ignored folders pruned):
    the watched tree, and the ``output_dir`` tree when there is one."""
    seen: set[Path] = set()
    for top in (settings.folder, settings.output_dir):
        for directory, subfolders, _ in os.walk(top) if top is not None else ():
            subfolders[:] = [d for d in subfolders if not is_ignored_name(d)]
            if not settings.recursive:
                subfolders[:] = []
            if Path(directory) not in seen:
                seen.add(Path(directory))
                yield Path(directory)


@dataclass(frozen=True)
class Identity:
    """What makes a file "the same file": where it is, how big, when it last changed.

    ``device`` and ``inode`` tell a renamed file (they stay) from a copy (they do not).
    """

    path: Path
    size: int
    mtime_ns: int
    device: int | None = None
    inode: int | None = None

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Identity:
        """The identity of ``path`` now (follows symlinks; raises ``OSError`` if gone)."""
        stat = os.stat(path)
        return cls(Path(path), stat.st_size, stat.st_mtime_ns, stat.st_dev, stat.st_ino)


class SettleTracker:
    """Paths that changed recently, released once unchanged for ``settle`` seconds."""

    def __init__(self, settle: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle = settle
        self._clock = clock
        self._watched: dict[Path, tuple[tuple[int, int] | None, float]] = {}

    def __len__(self) -> int:
        return len(self._watched)

    def __contains__(self, path: object) -> bool:
        return path in self._watched

    def touch(self, path: Path) -> None:
        """Something happened to ``path``: its settle time starts again."""
        self._watched[path] = (None, self._clock())

    def forget(self, path: Path) -> None:
        self._watched.pop(path, None)

    def settled(self) -> list[Identity]:
        """Identities unchanged for the settle time; they leave the tracker. Vanished paths too."""
        now = self._clock()
        released = []
        for path, (last_seen, since) in list(self._watched.items()):
            try:
                identity = Identity.of(path)
            except OSError:
                del self._watched[path]
                continue
            key = (identity.size, identity.mtime_ns)
            if key != last_seen:
                # The first look after an event also restarts the clock: an event says "changed".
                self._watched[path] = (key, now if last_seen is not None else since)
            elif now - since >= self.settle:
                del self._watched[path]
                released.append(identity)
        return released
