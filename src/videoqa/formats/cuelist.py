"""The subtitle cue list and its timestamps: what every subtitle writer starts from.

``build_cues`` is one cue per clip (identical touching clips merged), the cues videoqa always
wrote; ``videoqa.formats.cues`` shapes them to a readability style. Below the writers
(``videoqa.sidecars`` re-exports these names): imports only the report and the clip wording.
"""

from __future__ import annotations

from dataclasses import dataclass

from videoqa.formats.lines import clip_lines
from videoqa.report import Report


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
    on screen; clips that say nothing get no cue. With ``--clips shots`` no cue crosses a shot
    cut: two shots that say the same thing are two cues.
    """
    captions = report.has_captions
    shots = getattr(report.sampling, "shots", None)
    cuts = tuple(shots.cuts) if shots is not None else ()
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
        touches = previous is not None and clip.start <= previous.end + 1e-6
        at_cut = any(abs(cut - clip.start) < 1e-3 for cut in cuts)
        if previous and previous.lines == lines and touches and not at_cut:
            cues[-1] = Cue(previous.start, max(previous.end, end), lines)
        else:
            cues.append(Cue(clip.start, end, lines))
    return cues


__all__ = ["Cue", "build_cues", "format_timestamp"]
