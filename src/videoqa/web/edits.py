"""A person's correction of a caption or an answer, written where the results live.

The corrected text goes into the report (marked ``edited``, schema 1.2), and the JSON sidecar
and the subtitle and text files videoqa wrote beside it are rewritten through the same
writers the command line uses (each file atomically, the JSON first). A later run keeps the
correction (``videoqa.sidecars.keep_edited``). Subtitle files a person changed by hand are
left as they are: only files still as videoqa wrote them are replaced.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from videoqa.errors import VideoQAError
from videoqa.report import ClipResult, Report
from videoqa.sidecars import (
    our_formats,
    recorded_subtitle_language,
    sidecar_paths,
    write_sidecars,
)


class EditError(VideoQAError):
    """A correction cannot be made (no such clip or question, an empty text, no sidecar)."""


@dataclass(frozen=True)
class EditResult:
    """The report as written, and the files rewritten (none when nothing changed)."""

    report: Report
    written: tuple[Path, ...]


def edit_clip(
    report_path: str | os.PathLike[str],
    video_path: str | os.PathLike[str],
    clip_index: int,
    *,
    caption: str | None = None,
    answers: Mapping[str, str] | None = None,
) -> EditResult:
    """Set clip ``clip_index``'s caption and/or answers (``{question: text}``) and rewrite
    the sidecars of ``video_path`` whose JSON sidecar is ``report_path``.

    Texts are kept on one line (subtitle cues cannot hold blank lines); a text equal to the
    one there changes nothing. Raises ``EditError`` (nothing written) for a clip or question
    the report does not have, or an empty text; ``OutputError`` when a file cannot be written.
    """
    report_path = Path(report_path)
    report = Report.load(report_path)
    folder = report_path.parent
    if sidecar_paths(video_path, formats=("json",), output_dir=folder)["json"] != report_path:
        raise EditError(report_path, f"is not the JSON sidecar of {Path(video_path).name}")
    position = next((n for n, c in enumerate(report.clips) if c.index == clip_index), None)
    if position is None:
        raise EditError(report_path, f"has no clip {clip_index}")
    clip = report.clips[position]
    changed = _edited_clip(clip, caption, answers or {}, report_path)
    if changed == clip:
        return EditResult(report, ())
    report.clips[position] = changed
    formats = ("json", *our_formats(video_path, output_dir=folder))
    language = recorded_subtitle_language(video_path, output_dir=folder)  # clip.en.srt stays
    written = write_sidecars(report, video_path, formats=formats, output_dir=folder,
                             subtitle_language=language)
    return EditResult(report, tuple(written))


def _edited_clip(
    clip: ClipResult, caption: str | None, answers: Mapping[str, str], report_path: Path
) -> ClipResult:
    new_caption = clip.caption
    if caption is not None:
        text = _one_line(caption, report_path, "caption")
        if clip.caption is None:
            raise EditError(report_path, f"clip {clip.index} has no caption to correct")
        if text != clip.caption.text:
            new_caption = replace(clip.caption, text=text, edited=True)
    new_answers = list(clip.answers)
    for question, answer in answers.items():
        number = next((n for n, qa in enumerate(clip.answers) if qa.question == question), None)
        if number is None:
            raise EditError(report_path, f"clip {clip.index} has no answer to {question!r}")
        text = _one_line(answer, report_path, "answer")
        if text != clip.answers[number].answer:
            new_answers[number] = replace(clip.answers[number], answer=text, edited=True)
    return replace(clip, caption=new_caption, answers=tuple(new_answers))


def _one_line(text: str, report_path: Path, what: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise EditError(report_path, f"an empty {what} is not a correction")
    return text
