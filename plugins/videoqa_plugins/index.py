"""Add every report the daemon finishes to the archive index, so ``videoqa search`` finds it.

The index is one SQLite file in WAL mode: the worker adds a report while ``videoqa search``
(or ``videoqa index`` over the same archive) reads or writes it; a writer waits for another
up to 30 s. The file is opened for each report and closed after it, so nothing is held
between videos and the adapter is safe in any worker process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from videoqa.adapters import Adapter
from videoqa.errors import ConfigError
from videoqa.index import ArchiveIndex, default_db_path

logger = logging.getLogger("videoqa.plugins.index")


class IndexAdapter(Adapter):
    """Indexes each report (its rows replace the video's earlier ones); follows renames."""

    name = "index"
    description = "add each report to the archive index for `videoqa search` (option: db)"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - {"db"})
        if unknown:
            raise ConfigError("[adapters.index]", f"unknown option(s) {unknown}")
        db = self.options.get("db")
        if db is not None and not isinstance(db, str):
            raise ConfigError("[adapters.index]", f"'db' must be a path, got {db!r}")
        self.db = Path(db).expanduser() if db else default_db_path()

    def handle_report(self, report: Any, video_path: Path, settings: Any) -> None:
        with ArchiveIndex(self.db) as index:
            rows = index.add_report(report, video_path=video_path)
        logger.info("%s: indexed %d clip rows in %s", video_path, rows, self.db)

    def handle_rename(self, old_path: Path, new_path: Path, settings: Any) -> None:
        with ArchiveIndex(self.db) as index:
            index.rename(old_path, new_path)
