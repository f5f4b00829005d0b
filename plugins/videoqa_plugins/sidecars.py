"""The default adapter: JSON, SRT, WebVTT (and text, OTIO, XMP) sidecars beside each video.

``write_sidecars`` writes each file atomically, but a worker killed between two files leaves a
mixed set, and the next attempt would then refuse to replace the subtitle it wrote itself
(the JSON that records it was not written yet). So before writing, this adapter leaves a hidden
journal naming the files it is cleared to write; a later attempt that finds the journal may
replace exactly those, and the journal goes once the set is complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from videoqa.adapters import Adapter
from videoqa.errors import ConfigError, DestinationError, OutputError
from videoqa.sidecars import (
    DEFAULT_FORMATS,
    atomic_write_text,
    check_subtitle_language,
    check_targets,
    create_temporary,
    move_sidecars,
    parse_formats,
    sidecar_paths,
    write_sidecars,
)

logger = logging.getLogger("videoqa.plugins.sidecars")

JOURNAL_SUFFIX = ".videoqa-pending"


class SidecarAdapter(Adapter):
    """Writes ``<stem>.videoqa.json``, ``<stem>.srt`` and ``<stem>.vtt`` for each report
    (the folder's ``formats``, or this adapter's: also ``txt``, ``otio``, ``xmp``)."""

    name = "sidecars"
    description = "JSON, SRT and WebVTT sidecars, or any of txt, otio, xmp (atomic; the default)"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        unknown = sorted(set(self.options) - {"formats", "overwrite", "subtitle_language"})
        if unknown:
            raise ConfigError("[adapters.sidecars]", f"unknown option(s) {unknown}")
        self.overwrite = bool(self.options.get("overwrite", False))
        try:
            self.formats = parse_formats(self.options.get("formats", ()))
            self.subtitle_language = check_subtitle_language(
                self.options.get("subtitle_language"))
        except (ConfigError, OutputError) as error:
            raise ConfigError("[adapters.sidecars]", error.reason) from None

    def _plan(self, video_path: Path, settings: Any) -> _Plan:
        # This adapter's options, else the folder's settings.
        formats: Sequence[str] = self.formats or getattr(settings, "formats", DEFAULT_FORMATS)
        language = self.subtitle_language or getattr(settings, "subtitle_language", None)
        output_dir = settings.output_dir_for(video_path) if settings is not None else None
        targets = sidecar_paths(video_path, formats=formats, output_dir=output_dir,
                                subtitle_language=language)  # fmt: skip
        folder = next(iter(targets.values())).parent if targets else video_path.parent
        journal = folder / f".{video_path.name}{JOURNAL_SUFFIX}"
        return _Plan(formats, language, output_dir, targets, journal)

    def _check(self, video_path: Path, plan: _Plan) -> None:
        """Raise OutputError when a subtitle file there is the user's own (not ours, not in
        the journal of an interrupted attempt)."""
        if plan.output_dir is not None:
            try:
                plan.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                reason = f"cannot create the output folder: {error.strerror or error}"
                raise DestinationError(plan.output_dir, reason) from None
        cleared = _read_journal(plan.journal)
        if not all(t.name in cleared or not t.exists() for t in plan.targets.values()):
            check_targets(video_path, formats=plan.formats, output_dir=plan.output_dir,
                          overwrite=self.overwrite,
                          subtitle_language=plan.subtitle_language)  # fmt: skip

    def prepare(self, video_path: Path, settings: Any) -> None:
        """Refuse the file before inference when its sidecars could not be written: a subtitle
        file of the user's is in the way (``OutputError``), or the folder takes no files now,
        say a read-only mount (``DestinationError``: the daemon tries again later)."""
        video_path = Path(video_path)
        plan = self._plan(video_path, settings)
        self._check(video_path, plan)
        if plan.targets:
            _check_writable(next(iter(plan.targets.values())).parent)

    def handle_report(self, report: Any, video_path: Path, settings: Any) -> None:
        video_path = Path(video_path)
        plan = self._plan(video_path, settings)
        if not plan.targets:
            return
        self._check(video_path, plan)
        names = "".join(f"{t.name}\n" for t in plan.targets.values())
        atomic_write_text(plan.journal, names, errors="surrogateescape")  # names' exact bytes
        written = write_sidecars(report, video_path, formats=plan.formats,
                                 output_dir=plan.output_dir, overwrite=True,
                                 subtitle_language=plan.subtitle_language)  # fmt: skip
        plan.journal.unlink()
        logger.info("%s: wrote %s", video_path, ", ".join(path.name for path in written))

    def handle_rename(self, old_path: Path, new_path: Path, settings: Any) -> None:
        """Move the renamed video's sidecars to its new name (the JSON sidecar rewritten).

        What moves is what the JSON sidecar records, in every format and language it was
        written in, whatever the settings say now."""
        old_path, new_path = Path(old_path), Path(new_path)
        old = self._plan(old_path, settings)
        new_output_dir = settings.output_dir_for(new_path) if settings is not None else None
        moved = move_sidecars(old_path, new_path, old_output_dir=old.output_dir,
                              new_output_dir=new_output_dir)  # fmt: skip
        if moved:
            logger.info("%s: moved its sidecars from %s", new_path, old_path.name)


class _Plan(NamedTuple):
    """Where one video's sidecars go."""

    formats: Sequence[str]
    subtitle_language: str | None
    output_dir: Path | None
    targets: dict[str, Path]
    journal: Path


def _check_writable(folder: Path) -> None:
    """Raise ``DestinationError`` unless a file can be created in ``folder`` now.

    Permission bits do not stop root, and a read-only mount or a full disk shows only when
    writing, so this creates an empty hidden file there and removes it at once.
    """
    try:
        descriptor, probe = create_temporary(folder, "videoqa-probe")
    except OSError as error:
        raise DestinationError(folder, f"cannot write here: {error.strerror or error}") from None
    os.close(descriptor)
    probe.unlink()


def _read_journal(journal: Path) -> set[str]:
    """The file names a previous, interrupted attempt was cleared to write."""
    try:
        text = journal.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip()}
