"""Reading any SRT or WebVTT file's cues, for ``videoqa lint-subs``.

A small reader of our own, not ``srt`` or ``webvtt-py``: those are test dependencies, and
``lint-subs`` must run on the base install. It is lenient where players are (a BOM, CRLF,
missing cue numbers, ``.`` or ``,`` before the milliseconds, hours left out) and strict where
a timing line cannot be read: that is a ``MediaError``-like one-line error naming the line.
Markup (``<i>``, ``{\\an8}``) is removed before counting characters.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from videoqa.errors import VideoQAError
from videoqa.formats.cuelist import Cue

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s.*)?$")
_MARKUP = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&nbsp;": " ", "&lrm;": "", "&rlm;": ""}


class SubtitleFileError(VideoQAError):
    """A file that does not read as SRT or WebVTT."""


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return (int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
            + int(fraction.ljust(3, "0")) / 1000)  # fmt: skip


def _plain(line: str) -> str:
    line = _MARKUP.sub("", line)
    for entity, character in _ENTITIES.items():
        line = line.replace(entity, character)
    return line


def read_cues(path: str | os.PathLike[str]) -> list[Cue]:
    """The cues of an SRT or WebVTT file, in file order (text without markup)."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except OSError as error:
        raise SubtitleFileError(path, f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise SubtitleFileError(path, "not UTF-8 text") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    vtt = lines[0].startswith("WEBVTT")
    cues: list[Cue] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        match = _TIMING.match(line)
        if match is None:
            if "-->" in line:
                raise SubtitleFileError(path, f"line {position + 1}: unreadable timing {line!r}")
            if vtt and line.split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
                while position < len(lines) and lines[position].strip():
                    position += 1  # a block that is not a cue
            position += 1
            continue
        groups = match.groups()
        start, end = _seconds(*groups[:4]), _seconds(*groups[4:])
        position += 1
        body = []
        while position < len(lines) and lines[position].strip():
            body.append(_plain(lines[position]).strip())
            position += 1
        cues.append(Cue(start, end, tuple(body)))
    if not cues and not (vtt or not text.strip()):
        raise SubtitleFileError(path, "no cues: not an SRT or WebVTT file")
    return cues
