"""A JSON-lines event log: one line per processed or failed video, for tail -f, jq, or an index.

The worker (reports) and the daemon (failures) both append to the same file, so each event is
one ``write`` of one complete line under an exclusive lock. Each line has an ``id``
(``videoqa.events``): a line announced again after a kill repeats the id, so a reader
drops a line whose id it has seen.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from videoqa.adapters import Adapter
from videoqa.errors import ConfigError, OutputError
from videoqa.events import event_id
from videoqa.pathnames import dumps_json

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class JsonLinesAdapter(Adapter):
    """Appends ``{"time", "id", "event": "done"|"failed"|"renamed", "video", ...}`` lines to
    ``path``."""

    name = "jsonl"
    description = "JSON-lines event log (option: path, include_report)"
    announces = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - {"path", "include_report"})
        if unknown:
            raise ConfigError("[adapters.jsonl]", f"unknown option(s) {unknown}")
        if not isinstance(self.options.get("path"), str):
            raise ConfigError("[adapters.jsonl]", "'path' (the log file) is required")
        self.path = Path(self.options["path"]).expanduser()
        self.include_report = bool(self.options.get("include_report", False))

    def _append(self, event: dict[str, Any]) -> None:
        event = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "id": event_id(event["event"], event["video"]),
            **event,
        }
        line = (dumps_json(event) + "\n").encode("utf-8")  # a non-UTF-8 name as \udcNN
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(self.path, f"cannot open event log: {error.strerror}") from None
        try:
            if fcntl is not None:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    def handle_report(self, report: Any, video_path: Path, settings: Any) -> None:
        event: dict[str, Any] = {
            "event": "done",
            "video": os.fspath(video_path),
            "clips": len(report.clips),
            "questions": list(report.questions),
        }
        if self.include_report:
            event["report"] = report.to_dict()
        self._append(event)

    def handle_failure(self, video_path: Path, error: str) -> None:
        self._append({"event": "failed", "video": os.fspath(video_path), "error": error})

    def handle_rename(self, old_path: Path, new_path: Path, settings: Any) -> None:
        self._append({"event": "renamed", "video": os.fspath(new_path),
                      "from": os.fspath(old_path)})  # fmt: skip
