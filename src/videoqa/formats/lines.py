"""What a clip says, as lines of text: the one wording every writer uses (SRT, WebVTT, text,
OTIO markers, XMP), so the formats never disagree. Below the writers: imports only the report.
"""

from __future__ import annotations

from videoqa.report import ClipResult


def one_line(text: str) -> str:
    """Subtitle text may not contain blank lines (they end a cue): keep it on one line."""
    return " ".join(text.split())


def clip_lines(clip: ClipResult, *, captions: bool) -> tuple[str, ...]:
    """What a clip's cue says: its caption, or one ``question: answer`` line per question."""
    if captions:
        text = one_line(clip.caption.text) if clip.caption else ""
        return (text,) if text else ()
    return tuple(
        f"{one_line(qa.question)}: {one_line(qa.answer)}" for qa in clip.answers
    )


__all__ = ["clip_lines", "one_line"]
