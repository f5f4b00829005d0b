"""The delivery step: where a finished report goes, the same for every runner.

The local runner (``ask``/``caption``, ``run_collection``), ``--ray``'s driver and
``find --db`` hand each finished report to :meth:`Delivery.deliver`; the daemon's sidecar and
index adapters (plugins/videoqa_plugins) call the same two functions it does. So the record
rules (``videoqa.record``: results accumulate, edits are kept) and the index hold whichever
runner made the report:

1. ``write_sidecars`` merges the report into the video's record (its JSON sidecar) and
   renders the subtitle and text files from the merged record; the report object becomes
   the merged record (so what the caller prints or hands on is what was delivered).
2. ``ArchiveIndex.add_written`` (``--db``) indexes the merged record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from videoqa.report import Report
from videoqa.sidecars import DEFAULT_FORMATS, write_sidecars

if TYPE_CHECKING:
    from videoqa.index import ArchiveIndex


@dataclass
class Delivery:
    """Where reports go: sidecar ``formats`` (none: only the index), their folder, and the
    archive ``index`` (``--db``), if any."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    output_dir: str | os.PathLike[str] | None = None
    overwrite: bool = False
    subtitle_language: str | None = None
    index: ArchiveIndex | None = None

    def deliver(self, report: Report, video: str | os.PathLike[str]) -> list[Path]:
        """Merge ``report`` into ``video``'s record, write its sidecars, index it; return the
        files written (the JSON sidecar first). Raises ``OutputError`` (nothing written) or
        ``IndexDatabaseError``."""
        written: list[Path] = []
        if self.formats:
            written = write_sidecars(report, video, formats=self.formats,
                                     output_dir=self.output_dir, overwrite=self.overwrite,
                                     subtitle_language=self.subtitle_language)  # fmt: skip
        if self.index is not None:
            self.index.add_written(report, written, video_path=video)
        return written


__all__ = ["Delivery"]
