"""Write a report beside its video: JSON, SRT and WebVTT sidecars, each written atomically.

One small writer class per format (like openai/whisper's ``WriteSRT``/``WriteVTT``) sharing
one cue list and one timestamp formatter in integer milliseconds. Files are written to a
temporary file in the target folder, flushed and synced, then renamed over the target: a
crash never leaves a half-written sidecar and never replaces a good one with a broken one.

Subtitle files already beside a video may be the user's own. They are replaced only with
``overwrite=True``, or when the JSON sidecar records that videoqa wrote exactly that file
(its SHA-256 matches), so re-running on a video refreshes our own subtitles.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from videoqa.errors import OutputError
from videoqa.report import ClipResult, Report

logger = logging.getLogger("videoqa.sidecars")

FORMATS: tuple[str, ...] = ("json", "srt", "vtt")
"""Every sidecar format, in the order they are written (JSON first: it records the others)."""

JSON_SUFFIX = ".videoqa.json"


@dataclass(frozen=True)
class Cue:
    """One subtitle: a span of the timeline (seconds) and its lines of text."""

    start: float
    end: float
    lines: tuple[str, ...]


def format_timestamp(
    seconds: float, *, always_include_hours: bool = True, decimal_marker: str = "."
) -> str:
    """``HH:MM:SS.mmm`` in whole milliseconds; SRT uses ``,`` as the decimal marker."""
    if seconds < 0:
        raise ValueError(f"timestamps are not negative, got {seconds}")
    milliseconds = round(seconds * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1000)
    hours_part = f"{hours:02d}:" if always_include_hours or hours else ""
    return f"{hours_part}{minutes:02d}:{secs:02d}{decimal_marker}{milliseconds:03d}"


def _one_line(text: str) -> str:
    """Subtitle text may not contain blank lines (they end a cue): keep it on one line."""
    return " ".join(text.split())


def clip_lines(clip: ClipResult, *, captions: bool) -> tuple[str, ...]:
    """What a clip's cue says: its caption, or one ``question: answer`` line per question."""
    if captions:
        text = _one_line(clip.caption.text) if clip.caption else ""
        return (text,) if text else ()
    return tuple(
        f"{_one_line(qa.question)}: {_one_line(qa.answer)}" for qa in clip.answers
    )


def build_cues(report: Report) -> list[Cue]:
    """One cue per clip, consecutive touching clips that say the same thing merged into one.

    Captions are shown when the report has them, otherwise the answers. Where clips overlap
    (a stride shorter than the clip) a cue ends when the next one starts, so cues never stack
    on screen; clips that say nothing get no cue.
    """
    captions = report.has_captions
    clips = sorted(report.clips, key=lambda clip: clip.start)
    cues: list[Cue] = []
    for position, clip in enumerate(clips):
        lines = clip_lines(clip, captions=captions)
        end = clip.end
        if position + 1 < len(clips):
            end = min(end, clips[position + 1].start)
        if not lines or end <= clip.start:
            continue
        previous = cues[-1] if cues else None
        if previous and previous.lines == lines and clip.start <= previous.end + 1e-6:
            cues[-1] = Cue(previous.start, max(previous.end, end), lines)
        else:
            cues.append(Cue(clip.start, end, lines))
    return cues


class SidecarWriter:
    """Turns a report into the text of one sidecar format."""

    format: ClassVar[str]
    is_subtitle: ClassVar[bool] = True

    def target(self, video_path: Path, output_dir: Path) -> Path:
        return output_dir / f"{video_path.stem}.{self.format}"

    def render(self, report: Report) -> str:
        raise NotImplementedError


class SrtWriter(SidecarWriter):
    format = "srt"

    def render(self, report: Report) -> str:
        blocks = []
        for number, cue in enumerate(build_cues(report), start=1):
            start = format_timestamp(cue.start, decimal_marker=",")
            end = format_timestamp(cue.end, decimal_marker=",")
            # An arrow inside the text would read as a timing line to SRT parsers.
            text = "\n".join(line.replace("-->", "->") for line in cue.lines)
            blocks.append(f"{number}\n{start} --> {end}\n{text}\n")
        return "\n".join(blocks)


class VttWriter(SidecarWriter):
    format = "vtt"

    def render(self, report: Report) -> str:
        parts = ["WEBVTT\n"]
        for cue in build_cues(report):
            start = format_timestamp(cue.start)
            end = format_timestamp(cue.end)
            text = "\n".join(_escape_vtt(line) for line in cue.lines)
            parts.append(f"{start} --> {end}\n{text}\n")
        return "\n".join(parts)


def _escape_vtt(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class JsonWriter(SidecarWriter):
    format = "json"
    is_subtitle = False

    def target(self, video_path: Path, output_dir: Path) -> Path:
        return output_dir / f"{video_path.stem}{JSON_SUFFIX}"

    def render(
        self, report: Report, subtitle_hashes: dict[str, list[str]] | None = None
    ) -> str:
        data = report.to_dict()
        if subtitle_hashes:
            # Which subtitle files we wrote, so a later run may replace them (and only them).
            data["sidecars"] = subtitle_hashes
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


WRITERS: dict[str, SidecarWriter] = {
    writer.format: writer for writer in (SrtWriter(), VttWriter(), JsonWriter())
}


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"json,srt"`` or ``["srt", "vtt"]`` → known formats in writing order; ``none`` → ()."""
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {name.strip().lower() for name in names if name.strip()}
    wanted.discard("none")
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise OutputError(
            None,
            f"unknown format {', '.join(unknown)} (choose from {', '.join(FORMATS)})",
            setting="formats",
        )
    return tuple(name for name in FORMATS if name in wanted)


def sidecar_paths(
    video_path: str | os.PathLike[str],
    *,
    formats: Sequence[str] = FORMATS,
    output_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Path]:
    """Where each format's sidecar goes: beside the video unless ``output_dir`` is given."""
    video = Path(video_path)
    folder = Path(output_dir) if output_dir is not None else video.parent
    return {fmt: WRITERS[fmt].target(video, folder) for fmt in parse_formats(formats)}


def write_sidecars(
    report: Report,
    video_path: str | os.PathLike[str],
    *,
    formats: Sequence[str] = FORMATS,
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write the report's sidecars and return their paths (the JSON sidecar first).

    Every target is checked before anything is written: when one would replace a subtitle
    file that is not ours, ``OutputError`` is raised and nothing is written. The JSON sidecar
    is written first and records the SHA-256 of each subtitle file about to be written, and
    of the one it replaces when that was ours too: a crash between two files leaves every
    subtitle file either the old one or the new one, both recognised as ours on the next run.
    """
    targets = check_targets(video_path, formats=formats, output_dir=output_dir,
                            overwrite=overwrite)
    if not targets:
        return []
    folder = next(iter(targets.values())).parent
    previously_ours = _recorded_sidecars(WRITERS["json"].target(Path(video_path), folder))
    texts = {fmt: WRITERS[fmt].render(report) for fmt in targets if fmt != "json"}
    recorded: dict[str, list[str]] = {}
    for fmt, text in texts.items():
        target = targets[fmt]
        digests = [_sha256(text.encode("utf-8"))]
        current = _file_digest(target)
        if current and current != digests[0] and current in previously_ours.get(target.name, ()):
            digests.append(current)
        recorded[target.name] = digests
    for name, digests in previously_ours.items():
        # Our subtitles not rewritten this time (other formats) stay ours while unchanged.
        current = _file_digest(folder / name)
        if name not in recorded and current in digests:
            recorded[name] = [current]

    written: list[Path] = []
    if "json" in targets:
        json_writer = WRITERS["json"]
        assert isinstance(json_writer, JsonWriter)
        atomic_write_text(targets["json"], json_writer.render(report, recorded))
        written.append(targets["json"])
    for fmt, text in texts.items():
        atomic_write_text(targets[fmt], text)
        written.append(targets[fmt])
    for path in written:
        logger.info("wrote %s", path)
    return written


def check_targets(
    video_path: str | os.PathLike[str],
    *,
    formats: Sequence[str] = FORMATS,
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """The sidecar paths, once sure they can be written (so a caller can check before work).

    Raises ``OutputError`` when the folder is missing or, without ``overwrite``, when a
    subtitle file is there that videoqa did not write.
    """
    targets = sidecar_paths(video_path, formats=formats, output_dir=output_dir)
    if not targets:
        return targets
    folder = next(iter(targets.values())).parent
    if not folder.is_dir():
        raise OutputError(folder, "output folder does not exist")
    if overwrite:
        return targets
    ours = _recorded_sidecars(WRITERS["json"].target(Path(video_path), folder))
    for fmt, target in targets.items():
        if WRITERS[fmt].is_subtitle and target.exists() and not _is_ours(target, ours):
            raise OutputError(
                target,
                "exists and was not written by videoqa (set overwrite to replace it)",
                setting="overwrite",
            )
    return targets


def _recorded_sidecars(json_target: Path) -> dict[str, list[str]]:
    """The subtitle files (name → SHA-256 digests) an existing JSON sidecar says are ours."""
    try:
        data = json.loads(json_target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    recorded = data.get("sidecars") if isinstance(data, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {
        str(name): [digests] if isinstance(digests, str) else [str(d) for d in digests]
        for name, digests in recorded.items()
        if isinstance(digests, (str, list))
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: Path) -> str | None:
    try:
        return _sha256(path.read_bytes())
    except OSError:
        return None


def _is_ours(target: Path, recorded: dict[str, list[str]]) -> bool:
    digest = _file_digest(target)
    return digest is not None and digest in recorded.get(target.name, ())


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Replace ``target`` with ``text`` all at once: temp file in the same folder, fsync, rename."""
    target = Path(target)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    try:
        descriptor, temp_name = tempfile.mkstemp(
            dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
        )
    except OSError as error:
        raise OutputError(target.parent, f"cannot write here: {error.strerror or error}") from None
    temp_path = Path(temp_name)
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_path, mode)
        os.replace(temp_path, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise OutputError(target, f"cannot write: {error.strerror or error}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
