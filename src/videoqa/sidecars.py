"""Write a report beside its video: JSON, SRT, WebVTT, text, OTIO and XMP sidecars, atomically.

One small writer class per format (like openai/whisper's ``WriteSRT``/``WriteVTT``) sharing
one cue list and one timestamp formatter in integer milliseconds. Files are written to a
temporary file in the target folder, flushed and synced, then renamed over the target: a
crash never leaves a half-written sidecar and never replaces a good one with a broken one.

Subtitle and text files already beside a video may be the user's own. They are replaced only
with ``overwrite=True``, or when the JSON sidecar records that videoqa wrote exactly that file
(its SHA-256 matches), so re-running on a video refreshes our own subtitles.

Sidecars are named ``<stem>.<format>`` so that players find the subtitles (with a subtitle
language, ``<stem>.<language>.srt``: what Jellyfin, Plex and Kodi read as the track's language).
The timeline (``otio``) and XMP (``xmp``) writers live in ``videoqa.formats``. Two videos with one
stem (``same.mp4`` and ``same.mkv``) must not share a set: the JSON sidecar records which video
a set belongs to, and a video whose stem is taken by another gets ``<file name>.<format>``
(``same.mkv.srt``) instead. Temporary files are named
``.<target>.<pid>-<host>.<random>.videoqa-tmp``, so that those of a writer that died can be
recognised by name alone and removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from videoqa.errors import ConfigError, OutputError
from videoqa.formats.lines import clip_lines
from videoqa.pathnames import dumps_json, readable
from videoqa.record import KeptEdits, adopt, merge_records
from videoqa.report import Report, ReportFormatError
from videoqa.version import __version__

logger = logging.getLogger("videoqa.sidecars")

FORMATS: tuple[str, ...] = ("json", "srt", "vtt", "txt", "otio", "xmp")
"""Every sidecar format, in the order they are written (JSON first: it records the others)."""

DEFAULT_FORMATS: tuple[str, ...] = ("json", "srt", "vtt")
"""What is written unless asked otherwise (``all`` adds ``txt``, ``otio`` and ``xmp``)."""

_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z]{2,4}|-[0-9]{3})?")
_FLAGS = {"cc", "sdh", "forced", "default", "foreign", "none", "normal"}
"""Words media servers read as track flags, never as a language (see check_subtitle_language)."""

JSON_SUFFIX = ".videoqa.json"

TEMP_SUFFIX = ".videoqa-tmp"
"""Ends the name of every temporary file videoqa writes (then renames to its final name)."""

_TEMP_NAME = re.compile(
    r"\.(?s:.+)\.(?P<pid>[0-9]+)-(?P<host>[0-9a-f]{8})\.[a-z0-9_]+" + re.escape(TEMP_SUFFIX)
)


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
    """Whether the file may be the user's (a subtitle, text, timeline or XMP file beside the
    video): then the JSON sidecar records its digest, and only a file so recorded is replaced."""
    takes_language: ClassVar[bool] = False
    """Whether a subtitle language goes into the name (``<stem>.en.srt``)."""
    names_video: ClassVar[bool] = False
    """Whether the text holds the video's path (so a renamed video's file is written anew)."""

    def target(self, stem: str, folder: Path, language: str | None = None) -> Path:
        if language and self.takes_language:
            return folder / f"{stem}.{language}.{self.format}"
        return folder / f"{stem}.{self.format}"

    def render(self, report: Report) -> str:
        raise NotImplementedError

    def render_for(self, report: Report, video: Path) -> str:
        """The text for ``report`` when its video is at ``video`` (most formats do not say)."""
        return self.render(report)


class SrtWriter(SidecarWriter):
    format = "srt"
    takes_language = True

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
    takes_language = True

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


class TxtWriter(SidecarWriter):
    """Plain text to read: one line per clip, ``[start --> end] caption`` (or its answers).

    Unlike the subtitles, clips are not merged: every clip has its line, empty ones too.
    """

    format = "txt"

    def render(self, report: Report) -> str:
        lines = []
        for clip in sorted(report.clips, key=lambda clip: clip.start):
            span = f"{format_timestamp(clip.start)} --> {format_timestamp(clip.end)}"
            text = " | ".join(clip_lines(clip, captions=report.has_captions))
            lines.append(f"[{span}] {text}".rstrip() + "\n")
        return "".join(lines)


class JsonWriter(SidecarWriter):
    format = "json"
    is_subtitle = False

    def target(self, stem: str, folder: Path, language: str | None = None) -> Path:
        return folder / f"{stem}{JSON_SUFFIX}"

    def render(
        self,
        report: Report,
        subtitle_hashes: dict[str, list[str]] | None = None,
        sidecar_of: str | None = None,
    ) -> str:
        data = report.to_dict()
        if subtitle_hashes:
            # Which subtitle files we wrote, so a later run may replace them (and only them).
            data["sidecars"] = subtitle_hashes
        if sidecar_of:
            # Which video owns this set of names (see sidecar_stem).
            data["sidecar_of"] = sidecar_of
        return dumps_json(data, indent=2) + "\n"  # a name that is not UTF-8 as \udcNN


class OtioWriter(SidecarWriter):
    """An OpenTimelineIO timeline for editors: the video as a clip, a marker per clip."""

    format = "otio"
    names_video = True

    def render(self, report: Report) -> str:
        return self.render_for(report, Path(report.video.path))

    def render_for(self, report: Report, video: Path) -> str:
        from videoqa.formats import otio  # imports this module: loaded on first use

        return otio.render(report, video)


class XmpWriter(SidecarWriter):
    """An XMP sidecar for asset managers: description, keywords, a marker per clip."""

    format = "xmp"

    def render(self, report: Report) -> str:
        from videoqa.formats import xmp  # imports this module: loaded on first use

        return xmp.render(report)


WRITERS: dict[str, SidecarWriter] = {
    writer.format: writer
    for writer in (SrtWriter(), VttWriter(), TxtWriter(), JsonWriter(), OtioWriter(), XmpWriter())
}


def check_subtitle_language(language: str | None) -> str | None:
    """``language`` when it can name subtitle files (``en``, ``deu``, ``pt-BR``), else
    ``ConfigError``.

    An ISO 639 code of two or three letters, optionally with a region, is what Jellyfin, Plex
    and Kodi read from ``<stem>.<language>.srt``; anything else (a dot, a space, a flag word
    such as ``forced`` or ``sdh``) would be read as a title or flag, or split the name.
    """
    if language is None:
        return None
    if not _LANGUAGE.fullmatch(language) or language.lower() in _FLAGS:
        raise ConfigError(
            None, f"{language!r} is not a language code (ISO 639: en, deu, pt-BR)",
            setting="subtitle_language",
        )  # fmt: skip
    return language


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """``"json,srt"`` or ``["srt", "vtt"]`` → known formats in writing order.

    ``all`` is every format, ``none`` is none. A string that names no format at all (``""``)
    is an ``OutputError``: an empty ``--format`` is a mistake, not a request for nothing.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = {name.strip().lower() for name in names if name.strip()}
    choices = f"choose from {', '.join(FORMATS)}, all or none"
    if isinstance(formats, str) and not wanted:
        raise OutputError(None, f"no format given ({choices})", setting="formats")
    if "all" in wanted:
        wanted = (wanted - {"all"}) | set(FORMATS)
    wanted.discard("none")
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        raise OutputError(
            None, f"unknown format {', '.join(unknown)} ({choices})", setting="formats"
        )
    return tuple(name for name in FORMATS if name in wanted)


def sidecar_paths(
    video_path: str | os.PathLike[str],
    *,
    formats: Sequence[str] = FORMATS,
    output_dir: str | os.PathLike[str] | None = None,
    subtitle_language: str | None = None,
) -> dict[str, Path]:
    """Where each format's sidecar goes: beside the video unless ``output_dir`` is given.

    The names start with :func:`sidecar_stem`, so two videos never share a sidecar; with
    ``subtitle_language``, the subtitles' names end ``.<language>.srt`` and ``.<language>.vtt``.
    """
    video = Path(video_path)
    folder = Path(output_dir) if output_dir is not None else video.parent
    stem = sidecar_stem(video, folder)
    language = check_subtitle_language(subtitle_language)
    return {fmt: WRITERS[fmt].target(stem, folder, language) for fmt in parse_formats(formats)}


def sidecar_stem(video_path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> str:
    """What the names of ``video_path``'s sidecars in ``folder`` start with.

    The video's stem (``clip`` for ``clip.mp4``), unless the JSON sidecar there records another
    video (``same.mp4`` got there before ``same.mkv``): then its whole name (``same.mkv``).
    When both are taken, ``OutputError``: no video's sidecars are ever overwritten by another's.
    """
    video, folder = Path(video_path), Path(folder)
    owners = []
    for stem in dict.fromkeys((video.stem, video.name)):
        owner = _recorded_video(WRITERS["json"].target(stem, folder))
        if owner is None or owner == video.name:
            return stem
        owners.append(owner)
    raise OutputError(
        video, f"sidecar names taken by {readable(' and '.join(owners))} in {readable(folder)}"
    )


def _recorded_video(json_target: Path) -> str | None:
    """The file name of the video an existing JSON sidecar belongs to (None: no sidecar)."""
    data = _read_json(json_target)
    if not isinstance(data, dict):
        return None
    owner = data.get("sidecar_of")
    if not isinstance(owner, str):  # written before sidecar_of: the report's own video
        video = data.get("video")
        owner = video.get("path") if isinstance(video, dict) else None
    return Path(owner).name if isinstance(owner, str) and owner else None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_sidecars(
    report: Report,
    video_path: str | os.PathLike[str],
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    subtitle_language: str | None = None,
) -> list[Path]:
    """Write the report's sidecars and return their paths (the JSON sidecar first).

    ``output_dir`` is created when missing. Every target is checked before anything is
    written: when one would replace a subtitle file that is not ours, ``OutputError`` is
    raised and nothing is written. The JSON sidecar is written first and records the SHA-256
    of each subtitle file about to be written, and of the one it replaces when that was ours
    too: a crash between two files leaves every subtitle file either the old one or the new
    one, both recognised as ours on the next run. ``subtitle_language`` names the subtitles
    ``<stem>.<language>.srt`` (see :func:`sidecar_paths`).
    """
    targets = check_targets(video_path, formats=formats, output_dir=output_dir,
                            overwrite=overwrite, subtitle_language=subtitle_language)
    if not targets:
        return []
    if output_dir is not None:
        try:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = f"cannot create the output folder: {error.strerror or error}"
            raise OutputError(output_dir, reason) from None
    folder = next(iter(targets.values())).parent
    json_target = _json_target(video_path, folder)
    record, kept = merge_records(previous_record(json_target), report)
    adopt(report, record)  # the caller prints or hands on what was delivered
    _say_kept(kept, video_path, json_target)
    previously_ours = _recorded_sidecars(json_target)
    video = Path(video_path)
    texts = {fmt: WRITERS[fmt].render_for(report, video) for fmt in targets if fmt != "json"}
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
        rendered = json_writer.render(report, recorded, sidecar_of=Path(video_path).name)
        atomic_write_text(targets["json"], rendered)
        written.append(targets["json"])
    for fmt, text in texts.items():
        atomic_write_text(targets[fmt], text)
        written.append(targets[fmt])
    for path in written:
        logger.info("wrote %s", path)
    return written


def previous_record(json_target: Path) -> Report | None:
    """The record an earlier run left in ``json_target`` (None when there is none, or when it
    cannot be read as a report: then it is replaced, as it holds nothing this version can keep;
    a warning says so)."""
    if not json_target.exists():
        return None
    try:
        return Report.load(json_target)
    except ReportFormatError as error:
        if "newer" in str(error) or "not readable by" in str(error):
            raise OutputError(json_target, f"holds a record videoqa {__version__} cannot merge "
                              f"into ({error.reason}); move it away first") from None
        logger.warning("%s: replaced: %s", readable(json_target), error.reason)
        return None


def _say_kept(kept: KeptEdits, video_path: str | os.PathLike[str], json_target: Path) -> None:
    name = readable(Path(video_path).name)
    if kept.captions or kept.answers:
        logger.warning(
            "%s: kept %d edited caption%s and %d edited answer%s from %s instead of the "
            "model's new text (remove their \"edited\" mark there to let the model's in)",
            name, kept.captions, "" if kept.captions == 1 else "s",
            kept.answers, "" if kept.answers == 1 else "s", readable(json_target.name),
        )  # fmt: skip
    if kept.moved:
        logger.warning(
            "%s: %d edited text%s in %s belong%s to another clip plan than this run's; "
            "kept under \"alternatives\" there, not in the subtitles",
            name, kept.moved, "" if kept.moved == 1 else "s", readable(json_target.name),
            "s" if kept.moved == 1 else "",
        )  # fmt: skip


def our_formats(
    video_path: str | os.PathLike[str], *, output_dir: str | os.PathLike[str] | None = None
) -> tuple[str, ...]:
    """The subtitle and text formats whose file for ``video_path`` is there as videoqa wrote it
    (its digest recorded in the JSON sidecar): what a rewrite may replace without asking.
    Subtitles named with a language count under that name (see
    :func:`recorded_subtitle_language`)."""
    language = recorded_subtitle_language(video_path, output_dir=output_dir)
    targets = sidecar_paths(video_path, formats=FORMATS, output_dir=output_dir,
                            subtitle_language=language)
    ours = _recorded_sidecars(targets["json"])
    return tuple(
        fmt for fmt, target in targets.items()
        if WRITERS[fmt].is_subtitle and _is_ours(target, ours)
    )  # fmt: skip


def recorded_subtitle_language(
    video_path: str | os.PathLike[str], *, output_dir: str | os.PathLike[str] | None = None
) -> str | None:
    """The language in the names of the subtitles the JSON sidecar records as ours
    (``clip.en.srt`` → ``en``), or None: what a rewrite of the set names them again with."""
    video = Path(video_path)
    json_target = _json_target(video, Path(output_dir) if output_dir is not None else video.parent)
    stem = json_target.name[: -len(JSON_SUFFIX)]
    for name in _recorded_sidecars(json_target):
        if not name.startswith(f"{stem}."):
            continue
        language, _, suffix = name[len(stem) + 1 :].rpartition(".")
        writer = WRITERS.get(suffix)
        if writer is not None and writer.takes_language and _LANGUAGE.fullmatch(language):
            return language
    return None


def check_targets(
    video_path: str | os.PathLike[str],
    *,
    formats: Sequence[str] = DEFAULT_FORMATS,
    output_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    subtitle_language: str | None = None,
) -> dict[str, Path]:
    """The sidecar paths, once sure they can be written (so a caller can check before work).

    Raises ``OutputError`` when the video's folder is missing, ``output_dir`` is not a
    folder or, without ``overwrite``, when a subtitle file is there that videoqa did not
    write. A missing ``output_dir`` is fine: ``write_sidecars`` creates it.
    """
    targets = sidecar_paths(video_path, formats=formats, output_dir=output_dir,
                            subtitle_language=subtitle_language)
    if not targets:
        return targets
    folder = next(iter(targets.values())).parent
    if not folder.is_dir():
        if output_dir is not None and not folder.exists():
            return targets  # nothing there to replace
        reason = "not a folder" if folder.exists() else "output folder does not exist"
        raise OutputError(folder, reason)
    if overwrite:
        return targets
    ours = _recorded_sidecars(_json_target(video_path, folder))
    for fmt, target in targets.items():
        if WRITERS[fmt].is_subtitle and target.exists() and not _is_ours(target, ours):
            raise OutputError(
                target,
                "exists and was not written by videoqa (set overwrite to replace it)",
                setting="overwrite",
            )
    return targets


def move_sidecars(
    old_video: str | os.PathLike[str],
    new_video: str | os.PathLike[str],
    *,
    old_output_dir: str | os.PathLike[str] | None = None,
    new_output_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Give a renamed video's sidecars its new name; nothing is processed again.

    Only a set whose JSON sidecar belongs to the old video moves, and of its other files only
    those the JSON records as ours, whatever their format or subtitle language: each keeps the
    rest of its name (``old.en.srt`` → ``new.en.srt``). The JSON sidecar is written under the
    new name first (with the new video path, ``sidecar_of`` and file names), then the files are
    renamed (a timeline, which names its video, is written anew for the new path), then the old
    JSON goes: after a crash in between, calling this again finishes the move. Returns the
    sidecars under the new name (none without a JSON sidecar to follow).
    """
    old_video, new_video = Path(old_video), Path(new_video)
    old_folder = Path(old_output_dir) if old_output_dir is not None else old_video.parent
    new_folder = Path(new_output_dir) if new_output_dir is not None else new_video.parent
    old_json = _json_target(old_video, old_folder)
    data = _read_json(old_json)
    if not isinstance(data, dict) or _recorded_video(old_json) != old_video.name:
        return []
    if old_folder == new_folder and old_json.name == f"{new_video.stem}{JSON_SUFFIX}":
        new_json = old_json  # clip.mp4 -> clip.mkv: same names
    else:
        new_json = _json_target(new_video, new_folder)
    old_stem, new_stem = old_json.name[: -len(JSON_SUFFIX)], new_json.name[: -len(JSON_SUFFIX)]
    if isinstance(data.get("video"), dict):
        data["video"]["path"] = os.fspath(new_video)
    data["sidecar_of"] = new_video.name
    moves, names = _planned_moves(_recorded_sidecars(old_json), data, old_video, new_video,
                                  (old_folder, old_stem), (new_folder, new_stem))  # fmt: skip
    data["sidecars"] = names
    new_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(new_json, dumps_json(data, indent=2) + "\n")
    try:
        for old_target, new_target, text in moves:
            if text is None:
                os.replace(old_target, new_target)
                continue
            atomic_write_text(new_target, text)
            if new_target != old_target:
                old_target.unlink()
        if new_json != old_json:
            old_json.unlink(missing_ok=True)
    except OSError as error:
        raise OutputError(old_folder, f"cannot move sidecars: {error.strerror or error}") from None
    for folder in dict.fromkeys((new_folder, old_folder)):
        _sync_folder(folder)
    return [new_json, *(new_target for _, new_target, _ in moves)]


def _planned_moves(
    recorded: dict[str, list[str]], data: dict[str, object], old_video: Path, new_video: Path,
    old: tuple[Path, str], new: tuple[Path, str],
) -> tuple[list[tuple[Path, Path, str | None]], dict[str, list[str]]]:
    """What :func:`move_sidecars` renames: ``(from, to, new text or None to rename)`` for each
    recorded file of ours still there, and the digests the new JSON sidecar records (those
    moved already by an interrupted move included). ``old``/``new``: (folder, stem).
    Raises ``OutputError`` (nothing moved) when a new name is taken by a file not ours."""
    (old_folder, old_stem), (new_folder, new_stem) = old, new
    moves: list[tuple[Path, Path, str | None]] = []
    names: dict[str, list[str]] = {}
    for name, digests in recorded.items():
        if not name.startswith(f"{old_stem}."):
            continue
        old_target = old_folder / name
        new_target = new_folder / f"{new_stem}{name[len(old_stem):]}"
        text = _text_for_renamed(name, data, new_video)
        if text is not None:
            digests = [*digests, _sha256(text.encode("utf-8"))]
        if _is_ours(old_target, recorded):
            if new_target != old_target and new_target.exists():
                raise OutputError(new_target, "exists and was not written by videoqa for "
                                  f"{readable(old_video.name)}; its sidecars stay")  # fmt: skip
            moves.append((old_target, new_target, text))
        elif _file_digest(new_target) not in digests:  # neither here nor already moved
            continue
        names[new_target.name] = digests
    return moves, names


def _text_for_renamed(name: str, data: dict[str, object], new_video: Path) -> str | None:
    """The new text of a sidecar whose format names the video (a timeline), else None.

    None too when the JSON does not read as a report: the file is then renamed as it is.
    """
    writer = WRITERS.get(name.rsplit(".", 1)[-1])
    if writer is None or not writer.names_video:
        return None
    try:
        return writer.render_for(Report.from_dict(data), new_video)
    except ReportFormatError:
        return None


def _json_target(video_path: str | os.PathLike[str], folder: Path) -> Path:
    """Where the video's JSON sidecar is (also when this run does not write one)."""
    return WRITERS["json"].target(sidecar_stem(video_path, folder), folder)


def _recorded_sidecars(json_target: Path) -> dict[str, list[str]]:
    """The subtitle files (name → SHA-256 digests) an existing JSON sidecar says are ours."""
    data = _read_json(json_target)
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


def atomic_write_text(target: str | os.PathLike[str], text: str, *, errors: str = "strict") -> None:
    """Replace ``target`` with ``text`` all at once: temp file in the same folder, fsync, rename.

    The temporary file's name says who writes it (:data:`TEMP_SUFFIX`), so a writer killed
    mid-write leaves a file that :func:`remove_stale_temporaries` recognises. ``errors`` is the
    UTF-8 encoding's error handler.
    """
    target = Path(target)
    try:
        mode = target.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    try:
        descriptor, temp_path = create_temporary(target.parent, target.name)
    except OSError as error:
        raise OutputError(target.parent, f"cannot write here: {error.strerror or error}") from None
    try:
        with open(descriptor, "w", encoding="utf-8", errors=errors, newline="") as handle:
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


def create_temporary(folder: str | os.PathLike[str], name: str) -> tuple[int, Path]:
    """Create and open a temporary file of ours in ``folder``, named after ``name``.

    ``.<name>.<pid>-<host>.<random>.videoqa-tmp``: hidden (watchers skip it), and saying who
    writes it, so that one left by a writer that died is recognised and removed (and no other
    file ever is). Returns the open descriptor and the path; raises ``OSError``.
    """
    writer = f"{os.getpid()}-{_host_digest()}"
    descriptor, path = tempfile.mkstemp(dir=folder, prefix=f".{name}.{writer}.", suffix=TEMP_SUFFIX)
    return descriptor, Path(path)


def _host_digest() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def is_stale_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file of ours whose writer, on this machine, is gone.

    A temporary file of a live writer (another ``videoqa`` at work in the same folder), of
    another machine sharing the folder, or of another program is never stale.
    """
    match = _TEMP_NAME.fullmatch(name)
    if match is None or match["host"] != _host_digest():
        return False
    return not _process_alive(int(match["pid"]))


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but is another user's
        return True
    try:  # a zombie (dead, not yet reaped by its parent) writes nothing more
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files in ``folder`` (not below) that a killed writer left behind.

    Only names :func:`is_stale_temporary` accepts are touched; returns the paths removed.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if name.endswith(TEMP_SUFFIX) and is_stale_temporary(name):
            path = Path(folder) / name
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as error:
                logger.warning("%s: cannot remove: %s", readable(path), error.strerror or error)
                continue
            removed.append(path)
            logger.info("removed %s (left by a writer that died)", readable(path))
    return removed


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
