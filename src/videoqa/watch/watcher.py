"""Turn file-system events into a queue of paths for the daemon's loop.

The operating system's events (inotify, FSEvents, ...) through watchdog are immediate and cheap;
network shares do not deliver them, and a folder tree can exhaust the inotify watch limit, so
polling is there on request and as the automatic fallback.
"""

from __future__ import annotations

import errno
import logging
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

logger = logging.getLogger("videoqa.watch.watcher")

_WATCH_LIMIT_ERRORS = (errno.ENOSPC, errno.EMFILE, errno.ENFILE)
"""inotify reports a full watch or instance table with these."""


class _StopRaceFilter(logging.Filter):
    """Drops watchdog's "queue_events() called when the thread is inactive" ERROR.

    watchdog logs it when an event arrives while its inotify thread is being stopped (a race
    in its shutdown, after which the event is dropped); we are stopping then, so it is noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRaceFilter())


@dataclass(frozen=True)
class Change:
    """A path that may be new or changed (``file``/``folder``), or is gone (``deleted``)."""

    kind: Literal["file", "folder", "deleted"]
    path: Path


class _Forwarder(FileSystemEventHandler):
    """Puts each event's paths on the queue; all decisions are the daemon's."""

    def __init__(self, changes: queue.Queue[Change]) -> None:
        self._changes = changes

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind: Literal["file", "folder"] = "folder" if event.is_directory else "file"
        if event.is_directory and event.event_type == "modified":
            return  # a file inside changed; that file has its own event
        if event.event_type in ("created", "modified", "closed"):
            self._changes.put(Change(kind, Path(str(event.src_path))))
        elif event.event_type == "deleted":
            self._changes.put(Change("deleted", Path(str(event.src_path))))
        elif event.event_type == "moved":
            self._changes.put(Change("deleted", Path(str(event.src_path))))
            self._changes.put(Change(kind, Path(str(event.dest_path))))


class FolderWatcher:
    """Watch ``folders`` recursively; read changes from ``changes``. Use ``start`` then ``stop``."""

    def __init__(
        self, folders: Sequence[Path], *, poll: bool = False, poll_interval: float = 2.0
    ) -> None:
        self.folders = list(folders)
        self.poll_interval = poll_interval
        self.polling = poll
        self.changes: queue.Queue[Change] = queue.Queue()
        self._observer: BaseObserver | None = None

    def _make_observer(self) -> BaseObserver:
        observer = PollingObserver(timeout=self.poll_interval) if self.polling else Observer()
        for folder in self.folders:
            observer.schedule(_Forwarder(self.changes), str(folder), recursive=True)
        return observer

    def start(self) -> None:
        """Start the observer thread, falling back to polling when event watches run out."""
        observer = self._make_observer()
        try:
            observer.start()
        except OSError as error:
            if self.polling or error.errno not in _WATCH_LIMIT_ERRORS:
                raise
            observer.stop()
            logger.warning(
                "file-system events unavailable (%s); polling every %.1f s instead "
                "(raise fs.inotify.max_user_watches to avoid this)",
                error, self.poll_interval,
            )  # fmt: skip
            self.polling = True
            observer = self._make_observer()
            observer.start()
        self._observer = observer

    def stop(self) -> None:
        """Stop the observer thread and wait for it."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
