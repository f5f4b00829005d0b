"""Readable subtitle cues: presets of line length, lines, reading speed, duration and gap.

The model's text goes into the JSON as it came; the subtitle files (SRT, WebVTT, TTML,
EBU-TT-D) show it shaped by a *style*: broken into lines at phrase boundaries, split into
consecutive cues when one cue cannot hold it, shown long enough to be read and never longer
than the style allows, with a gap of a few frames between cues. The presets are named after
the guidelines they follow (docs/subtitles.md says where each figure comes from); ``none``
keeps one cue per clip with the text on one line, as videoqa wrote before styles existed.

Cues stay inside their clip: a caption is never shown over a clip that did not produce it,
and, with ``--clips shots``, a cue never crosses a shot cut (identical captions of two shots
stay two cues). Times are whole milliseconds, so what is checked here is what is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from videoqa.errors import ConfigError
from videoqa.formats.cuelist import Cue, build_cues
from videoqa.report import Report

ELLIPSIS = "\u2026"
"""Ends the last cue of a caption cut short because its clip is too short to read it all."""


@dataclass(frozen=True)
class SubtitleStyle:
    """The readability rules one subtitle file follows; ``None`` means no limit."""

    name: str
    max_line_chars: int | None = None
    max_lines: int | None = None
    max_cps: float | None = None
    """Characters per second a cue asks the viewer to read (spaces counted, line breaks not)."""
    max_wpm: float | None = None
    """Words per minute (BBC states its reading speed in words)."""
    min_duration: float | None = None
    max_duration: float | None = None
    min_gap_frames: int = 0
    """Frames of the video's rate between one cue's end and the next one's start."""

    @property
    def shapes(self) -> bool:
        """Whether the style changes anything (``none`` writes one cue per clip)."""
        return any(getattr(self, f.name) not in (None, 0) for f in fields(self)[1:])

    def min_gap(self, fps: float) -> float:
        """The gap in seconds, rounded up to whole milliseconds (what the files can hold)."""
        if not self.min_gap_frames:
            return 0.0
        rate = fps if math.isfinite(fps) and fps > 0 else DEFAULT_LINT_FPS
        return math.ceil(self.min_gap_frames / rate * 1000 - 1e-9) / 1000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> SubtitleStyle | None:
        """The style a report records (``subtitles`` key), or None when it records none."""
        if not isinstance(data, dict):
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError:
            return None


PRESETS: dict[str, SubtitleStyle] = {
    style.name: style
    for style in (
        SubtitleStyle("none"),
        # Netflix Timed Text Style Guide: General Requirements, and its English Template.
        SubtitleStyle("netflix", max_line_chars=42, max_lines=2, max_cps=17.0,
                      min_duration=5 / 6, max_duration=7.0, min_gap_frames=2),
        # The same for children's programmes (13 characters per second).
        SubtitleStyle("netflix-children", max_line_chars=42, max_lines=2, max_cps=13.0,
                      min_duration=5 / 6, max_duration=7.0, min_gap_frames=2),
        # BBC Subtitle Guidelines: 37 characters a line, two lines, 160-180 words a minute,
        # at least 0.3 s a word (one word: 0.3 s). No maximum duration or gap figure.
        SubtitleStyle("bbc", max_line_chars=37, max_lines=2, max_wpm=180.0, min_duration=0.3),
    )
}  # fmt: skip

DEFAULT_STYLE = "none"
"""What is written unless a style is asked for: the cues videoqa always wrote, byte for byte,
so existing files, players' caches and the review page's corrections stay as they are."""

DEFAULT_LINT_FPS = 30.0
"""The frame rate ``lint-subs`` counts frame gaps in unless told (2 frames: 67 ms)."""

_TIME_TOLERANCE = 0.0015
"""Millisecond rounding of both ends of a cue: a cue within this of a limit obeys it."""


def resolve_style(
    name: str | None = None,
    *,
    max_line_chars: int | None = None,
    max_lines: int | None = None,
    max_cps: float | None = None,
) -> SubtitleStyle:
    """The preset ``name`` (default :data:`DEFAULT_STYLE`) with the given figures replaced.

    An unknown name or a figure that is not positive is a ``ConfigError`` naming the setting.
    """
    name = (name or DEFAULT_STYLE).strip().lower()
    if name not in PRESETS:
        raise ConfigError(None, f"unknown style {name!r} (choose from {', '.join(PRESETS)})",
                          setting="subtitle_style")  # fmt: skip
    overrides: dict[str, Any] = {}
    for setting, value in (("max_line_chars", max_line_chars), ("max_lines", max_lines),
                           ("max_cps", max_cps)):  # fmt: skip
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(None, f"{value!r} is not a positive number", setting=setting)
        if setting == "max_line_chars" and value < 10:
            raise ConfigError(None, f"{value} characters is too short a line (10 at least)",
                              setting=setting)  # fmt: skip
        overrides[setting] = int(value) if setting != "max_cps" else float(value)
    style = replace(PRESETS[name], **overrides)
    if overrides and style.max_lines is None and style.max_line_chars is not None:
        style = replace(style, max_lines=2)
    return style


def report_style(report: Report) -> SubtitleStyle:
    """The style a report's subtitle files are written in: the one it records, else the
    default (a JSON sidecar written without a style keeps its cues on a rewrite)."""
    return SubtitleStyle.from_dict(getattr(report, "subtitles", None)) or PRESETS[DEFAULT_STYLE]


# -- line breaking ---------------------------------------------------------------------------


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_CONJUNCTIONS = _wordset(
    "and but or nor so yet because while when whereas although though if unless until "
    "after before since as that which who whom whose where then"
)
_PREPOSITIONS = _wordset(
    "in on at by with from to of into onto over under behind beside between through across "
    "along around near for about against toward towards without within during past"
)
_DETERMINERS = _wordset(
    "a an the this that these those my your his her its our their some any each every no "
    "another one two three several many few"
)
_PRONOUNS = _wordset("i you he she it we they there")
_AUXILIARIES = _wordset(
    "is are was were be been being am has have had do does did not will would shall should "
    "can could may might must don't doesn't didn't isn't aren't wasn't weren't won't can't "
    "very"
)
_PUNCTUATION_END = re.compile(r"[.,;:!?\u2026)\]\"']$")

_CUE_COST = 40.0  # another cue: far worse than any line break
_LINE_COST = 4.0  # a second line where one would do
_ORPHAN_COST = 30.0  # a one-word line beside another line


def _break_cost(before: str, after: str) -> float:
    """How bad a line or cue break between the words ``before`` and ``after`` is (0: best).

    Netflix's and the BBC's rules: break after punctuation, before a conjunction or a
    preposition; never between an article and its noun, a subject pronoun and its verb, an
    auxiliary or negation and its verb.
    """
    if _PUNCTUATION_END.search(before):
        return 0.0
    last, first = before.lower(), after.lower().strip("\"'(")
    if last in _DETERMINERS:
        return 25.0
    if last in _PRONOUNS or last in _AUXILIARIES:
        return 15.0
    if last in _PREPOSITIONS:  # a preposition stays with its object
        return 12.0
    if first in _CONJUNCTIONS:
        return 1.0
    if first in _PREPOSITIONS:
        return 2.0
    return 8.0


def _words(text: str, width: int | None) -> list[str]:
    """``text``'s words; a word longer than a line is cut into line-long pieces."""
    words = []
    for word in text.split():
        while width and len(word) > width:
            words.append(word[:width])
            word = word[width:]
        if word:
            words.append(word)
    return words


def break_text(text: str, style: SubtitleStyle, *, preferred: Iterable[int] = ()) -> list[
        tuple[str, ...]]:  # fmt: skip
    """``text`` as the fewest cues of at most ``max_lines`` lines of ``max_line_chars``,
    breaking at the best phrase boundaries and avoiding one-word lines where it can.

    ``preferred`` are word positions where a break is as good as after punctuation (between
    two answers). A style without a line length keeps the text on one line.
    """
    width, most = style.max_line_chars, style.max_lines or 1
    words = _words(text, width)
    if not words:
        return []
    if width is None or len(" ".join(words)) <= width:
        return [(" ".join(words),)]
    count = len(words)
    good = set(preferred)
    costs = [0.0] + [
        0.0 if k in good else _break_cost(words[k - 1], words[k]) for k in range(1, count)
    ]

    def line_fits(i: int, j: int) -> bool:
        return sum(len(w) for w in words[i:j]) + (j - i - 1) <= width

    def cue_layout(i: int, j: int) -> tuple[float, tuple[str, ...]] | None:
        """The best way to lay words[i:j] out as one cue, or None when they cannot fit."""
        best: tuple[float, tuple[str, ...]] | None = None
        if line_fits(i, j):
            return 0.0, (" ".join(words[i:j]),)
        if most < 2:
            return None
        # Up to max_lines lines: a small search over the break positions (cues are short).
        stack: list[tuple[int, float, tuple[str, ...]]] = [(i, 0.0, ())]
        while stack:
            at, cost, lines = stack.pop()
            if len(lines) == most:
                continue
            for end in range(at + 1, j + 1):
                if not line_fits(at, end):
                    break
                line = " ".join(words[at:end])
                if end == j:
                    if not lines:
                        continue
                    total = cost + _LINE_COST * len(lines)
                    new = (*lines, line)
                    if any(" " not in one for one in new) and j - i > 2:
                        total += _ORPHAN_COST
                    lengths = [len(one) for one in new]
                    total += (max(lengths) - min(lengths)) / width * 3
                    if best is None or total < best[0]:
                        best = (total, new)
                else:
                    stack.append((end, cost + costs[end], (*lines, line)))
        return best

    # Fewest, best-broken cues: dynamic programming over the word positions.
    best: list[tuple[float, list[tuple[str, ...]]] | None] = [None] * (count + 1)
    best[0] = (0.0, [])
    for j in range(1, count + 1):
        for i in range(j - 1, -1, -1):
            if best[i] is None:
                continue
            if not line_fits(i, min(j, i + 1)):
                continue
            layout = cue_layout(i, j)
            if layout is None:
                if sum(len(w) + 1 for w in words[i:j]) > (width + 1) * most:
                    break  # longer spans fit even less
                continue
            previous = best[i]
            assert previous is not None
            total = previous[0] + layout[0] + (costs[i] + _CUE_COST if i else 0.0)
            current = best[j]
            if current is None or total < current[0]:
                best[j] = (total, [*previous[1], layout[1]])
    result = best[count]
    assert result is not None  # one word per line always fits
    return result[1]


# -- timing ----------------------------------------------------------------------------------


def reading_seconds(lines: Sequence[str], style: SubtitleStyle) -> float:
    """The shortest time the style lets ``lines`` be on screen."""
    need = style.min_duration or 0.0
    text = " ".join(lines)
    if style.max_cps:
        need = max(need, len(text) / style.max_cps)
    if style.max_wpm:
        need = max(need, len(text.split()) * 60.0 / style.max_wpm)
    return need


def _ms(seconds: float) -> float:
    return round(seconds * 1000) / 1000


def _layout(span: Cue, end: float, style: SubtitleStyle, gap: float) -> list[Cue]:
    """The cues of one span, between its start and ``end``: the text broken into cues, each
    long enough to read, none longer than the style allows, ``gap`` apart. Words are cut
    from the end (an ellipsis says so) while the span is too short to read the whole text."""
    text = " ".join(span.lines)  # a caption, or one ``question: answer`` per question
    preferred = []
    position = 0
    for item in span.lines[:-1]:
        position += len(item.split())
        preferred.append(position)
    words = text.split()
    available = end - span.start
    if style.max_cps:  # no more characters than the span can show: skip hopeless layouts
        while len(words) > 1 and len(" ".join(words)) > available * style.max_cps + 1:
            words = words[:-1]
        if len(words) < len(text.split()):
            words[-1] = words[-1].rstrip(",.;:") + ELLIPSIS
            preferred = [k for k in preferred if k < len(words)]
    while True:
        chunks = _item_lines(span.lines, style) if len(words) == len(text.split()) else None
        chunks = chunks or break_text(" ".join(words), style, preferred=preferred)
        needs = [reading_seconds(chunk, style) for chunk in chunks]
        if sum(needs) + gap * (len(chunks) - 1) <= available + 1e-9 or len(words) <= 1:
            break
        words = words[:-1]
        if words:
            words[-1] = words[-1].rstrip(",.;:") + ELLIPSIS
        preferred = [k for k in preferred if k < len(words)]
    total_chars = sum(len(" ".join(chunk)) for chunk in chunks) or 1
    spare = max(available - sum(needs) - gap * (len(chunks) - 1), 0.0)
    cues: list[Cue] = []
    at = span.start
    for chunk, need in zip(chunks, needs, strict=True):
        share = need + spare * len(" ".join(chunk)) / total_chars
        cues.extend(_pieces(chunk, at, at + share, need, style, gap))
        at += share + gap
    return cues


def _item_lines(items: Sequence[str], style: SubtitleStyle) -> list[tuple[str, ...]] | None:
    """Answers one to a line, ``max_lines`` to a cue, when each fits a line (as without a
    style); None when one does not (then the text is broken as one)."""
    width, most = style.max_line_chars, style.max_lines or 1
    if len(items) < 2 or any(width is not None and len(item) > width for item in items):
        return None
    return [tuple(items[at : at + most]) for at in range(0, len(items), most)]


def _pieces(chunk: tuple[str, ...], start: float, end: float, need: float,
            style: SubtitleStyle, gap: float) -> list[Cue]:  # fmt: skip
    """One chunk over [start, end): several cues of the same text when that is longer than
    the style's maximum and each piece can still be read, else one cue of the maximum."""
    start, end = _ms(start), _ms(end)
    longest = style.max_duration
    if longest is None or end - start <= longest + 1e-9:
        return [Cue(start, end, chunk)]
    count = math.ceil((end - start - 1e-9) / longest)
    length = (end - start - gap * (count - 1)) / count
    if length + 1e-9 < need or length > longest + 1e-9:
        return [Cue(start, _ms(start + longest), chunk)]
    pieces = []
    for number in range(count):
        piece_start = _ms(start + number * (length + gap))
        piece_end = end if number == count - 1 else _ms(start + number * (length + gap) + length)
        pieces.append(Cue(piece_start, piece_end, chunk))
    return pieces


def subtitle_cues(report: Report, style: SubtitleStyle | None = None) -> list[Cue]:
    """The cues of ``report``'s subtitle files in ``style`` (default: the report's own).

    ``none`` gives :func:`videoqa.sidecars.build_cues`' cues unchanged. Otherwise each span of
    clips that say the same thing is laid out on its own (see :func:`_layout`), ending
    ``min_gap`` before the next span starts; a span shorter than the minimum duration may
    take the free time after it, never across a shot cut or into the next cue.
    """
    style = style or report_style(report)
    if not style.shapes:
        return build_cues(report)
    gap = style.min_gap(report.video.fps)
    spans = build_cues(report)  # identical captions merged, never across a shot cut
    cuts = tuple(getattr(getattr(report.sampling, "shots", None), "cuts", ()) or ())
    cues: list[Cue] = []
    for position, span in enumerate(spans):
        following = spans[position + 1].start if position + 1 < len(spans) else math.inf
        end = min(span.end, following - gap) if following - span.end < gap else span.end
        shortest = style.min_duration or 0.0
        if end - span.start < shortest:
            limit = min(following - gap, report.video.duration or math.inf)
            limit = min([limit, *(cut for cut in cuts if cut > span.start + 1e-3)])
            end = max(end, min(span.start + shortest, limit))
        if end <= span.start:
            continue
        cues.extend(_layout(span, end, style, gap))
    return cues


# -- checking any subtitle file --------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One rule a cue breaks: ``rule`` is a short name (``line-length``, ``cps``, ...)."""

    number: int
    """The cue's position in the file, from 1."""
    cue: Cue
    rule: str
    detail: str


RULES = ("line-length", "lines", "cps", "wpm", "min-duration", "max-duration", "gap",
         "one-word-line")  # fmt: skip


def check_cues(cues: Sequence[Cue], style: SubtitleStyle, *, fps: float = DEFAULT_LINT_FPS
               ) -> list[Violation]:  # fmt: skip
    """Every rule of ``style`` that each of ``cues`` (in file order) breaks."""
    found: list[Violation] = []
    gap = style.min_gap(fps)
    ordered = sorted(enumerate(cues, start=1), key=lambda pair: pair[1].start)
    following = {number: ordered[k + 1][1] for k, (number, _) in enumerate(ordered[:-1])}
    for number, cue in enumerate(cues, start=1):
        def add(rule: str, detail: str, number: int = number, cue: Cue = cue) -> None:
            found.append(Violation(number, cue, rule, detail))

        lines = [line for line in cue.lines if line.strip()]
        duration = cue.end - cue.start
        text = " ".join(line.strip() for line in lines)
        if style.max_line_chars is not None:
            for line in lines:
                if len(line.strip()) > style.max_line_chars:
                    add("line-length", f"{len(line.strip())} characters in a line "
                        f"(at most {style.max_line_chars}): {line.strip()!r}")
        if style.max_lines is not None and len(lines) > style.max_lines:
            add("lines", f"{len(lines)} lines (at most {style.max_lines})")
        if style.max_cps and duration > 0:
            cps = len(text) / duration
            if len(text) / (duration + _TIME_TOLERANCE) > style.max_cps:
                add("cps", f"{cps:.1f} characters per second (at most {style.max_cps:g})")
        if style.max_wpm and duration > 0:
            wpm = len(text.split()) * 60 / duration
            if len(text.split()) * 60 / (duration + _TIME_TOLERANCE) > style.max_wpm:
                add("wpm", f"{wpm:.0f} words per minute (at most {style.max_wpm:g})")
        if style.min_duration and duration + _TIME_TOLERANCE < style.min_duration:
            add("min-duration", f"on screen {duration:.3f} s (at least "
                f"{style.min_duration:.3f} s)")
        if style.max_duration and duration - _TIME_TOLERANCE > style.max_duration:
            add("max-duration", f"on screen {duration:.3f} s (at most {style.max_duration:g} s)")
        after = following.get(number)
        if after is not None:
            space = after.start - cue.end
            if space < -_TIME_TOLERANCE / 2:
                add("gap", f"overlaps the next cue by {-space:.3f} s")
            elif gap and space + _TIME_TOLERANCE / 2 < gap:
                add("gap", f"{space:.3f} s before the next cue (at least {gap:.3f} s: "
                    f"{style.min_gap_frames} frames at {fps:g} fps)")
        if len(lines) > 1 and any(len(line.split()) == 1 for line in lines):
            relaid = break_text(text, style)
            if len(relaid) == 1 and not any(len(line.split()) == 1 for line in relaid[0]):
                add("one-word-line", "a line of one word where the text fits without one")
    return found
