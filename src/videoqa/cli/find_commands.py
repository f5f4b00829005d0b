"""``videoqa find``: when in each video is there {what}? Time ranges, from a yes/no score.

Thin: options become one ``videoqa.grounding.find`` call per file. A bad file is reported in
one line and skipped (exit 1 at the end); ``--db`` adds each file's ranges to the archive
index, so ``videoqa search`` finds them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from videoqa.cli import error_line
from videoqa.cli.progress import say
from videoqa.clips import DEFAULT_CLIP_LENGTH
from videoqa.deinterlace import DEINTERLACE_MODES
from videoqa.errors import ConfigError, MediaError, VideoQAError
from videoqa.fit import check_fit
from videoqa.grounding import DEFAULT_STEP, DEFAULT_THRESHOLD, presence_question
from videoqa.pathnames import readable

if TYPE_CHECKING:
    from videoqa.engines import Engine
    from videoqa.grounding import Finding


@click.command("find")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--what", default=None,
              help='What to look for: each moment is asked "is there WHAT?".')
@click.option("--question", default=None,
              help="A yes/no question asked of each moment as is (instead of --what).")
@click.option("--step", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_STEP,
              show_default=True,
              help="Image checkpoints: seconds between the frames scored.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=DEFAULT_THRESHOLD,
              show_default=True,
              help="A moment is in a range when its P(yes) is over this.")
@click.option("--clip-length", type=click.FloatRange(min=0, min_open=True),
              default=DEFAULT_CLIP_LENGTH, show_default=True,
              help="Video checkpoints: seconds per clip scored.")
@click.option("--stride", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Video checkpoints: seconds between clip starts [default: the clip length].")
@click.option("--json", "as_json", is_flag=True,
              help="Print each video's result as one line of JSON on stdout.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also add the ranges to the video's record (its JSON sidecar) and to this "
                   "archive index (videoqa search finds them).")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="With --db: the folder of the video's sidecars [default: beside it].")
# The ask default (videoqa.models.DEFAULT_QA_MODEL, not imported: models imports torch).
@click.option("--model", default="microsoft/git-base-vqav2", show_default=True,
              help="GIT checkpoint that answers: hub id, local folder, or 'demo'.")
@click.option("--revision", default=None, help="Branch, tag or commit of --model.")
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda", "mps")), default="auto",
              show_default=True, help="Where the model runs (auto: a GPU when there is one).")
@click.option("--dtype", type=click.Choice(("auto", "float32", "float16", "bfloat16")),
              default="auto", show_default=True,
              help="Weights' precision (auto: half on GPU, float32 on CPU).")
@click.option("--fit", metavar="crop|pad", default=None,
              help="How frames go into the model's square [default: the checkpoint's].")
@click.option("--stream", type=click.IntRange(min=0), default=None,
              help="Index of the video stream [default: the best one].")
@click.option("--deinterlace", type=click.Choice(DEINTERLACE_MODES), default="auto",
              show_default=True, help="Rebuild interlaced frames (FFmpeg's bwdif).")
def find_command(videos: Sequence[Path], what: str | None, question: str | None,
                 as_json: bool, db: Path | None, output_dir: Path | None, model: str,
                 revision: str | None,
                 device: str, dtype: str, **options: Any) -> None:
    """Find when each VIDEO shows WHAT (or when the answer to --question is yes).

    Every frame (every --step s) of an image checkpoint, or every clip of a video checkpoint,
    is scored P(yes) / (P(yes) + P(no)); consecutive moments over --threshold are one range.
    """
    if (what is None) == (question is None):
        raise ConfigError("--what", "give --what or --question (one of them)")
    if what is not None:
        presence_question(what)  # an empty --what fails before the model loads
    elif not question or not question.strip():
        raise ConfigError("--question", "is empty")
    check_fit(options["fit"])
    command = click.get_current_context().command
    engine = _load_engine(model, revision=revision, device=device, dtype=dtype)
    failed = 0
    for video in videos:
        try:
            finding = _find_one(engine, video, what=what, question=question, **options)
            if db is not None:
                _deliver(db, finding, output_dir)
                count = len(finding.ranges)
                say(f"{readable(video.name)}: {count} range{'' if count == 1 else 's'} "
                    f"indexed in {readable(str(db))}")  # fmt: skip
        except VideoQAError as error:
            say(error_line(error, command))
            failed += 1
            continue
        if as_json:
            click.echo(json.dumps(finding.to_dict(), ensure_ascii=False))
        else:
            click.echo(_readable(finding))
    if failed:
        click.echo(f"videoqa: {failed} of {len(videos)} files failed", err=True)
        click.get_current_context().exit(1)


def _load_engine(model: str, *, revision: str | None, device: str, dtype: str) -> Engine:
    """The checkpoint, announced on stderr first (loading takes seconds)."""
    from videoqa.engines import load_engine
    from videoqa.models import resolve_model

    click.echo(f"videoqa: loading {model}...", err=True)
    try:
        engine = load_engine(resolve_model(model), revision=revision, device=device,
                             dtype=dtype)  # fmt: skip
    except ImportError as error:  # a base install without torch: say so, no traceback
        raise VideoQAError(
            None, f"{error.name or 'torch'} is not installed: find runs its model with torch "
            "and transformers (install torch first, then videoqa; see the README's Set up)"
        ) from None
    check = getattr(engine, "yes_no_ids", None)  # GIT: a vocabulary without "yes" and "no"
    if check is not None:  # fails once, before any file
        check()
    return engine


def _find_one(engine: Engine, video: Path, **options: Any) -> Finding:
    from videoqa.grounding import find

    if not video.is_file():
        raise MediaError(video, "no such file" if not video.exists() else "not a file")
    return find(engine, video, **options)


def _deliver(db: Path, finding: Finding, output_dir: Path | None) -> None:
    """The finding into the video's record (its JSON sidecar, beside the video or in
    ``--output-dir``) and the archive index, through the delivery step every runner uses:
    the record keeps the captions and answers already there, and this query's ranges replace
    only its own earlier ones."""
    from videoqa.delivery import Delivery
    from videoqa.index import ArchiveIndex
    from videoqa.sidecars import our_formats, recorded_subtitle_language

    video = finding.video
    formats = ("json", *our_formats(video, output_dir=output_dir))  # subtitles stay in step
    language = recorded_subtitle_language(video, output_dir=output_dir)
    with ArchiveIndex(db) as index:
        Delivery(formats, output_dir, subtitle_language=language, index=index).deliver(
            finding.to_report(), video)


def _readable(finding: Finding) -> str:
    """``name: "what": N ranges`` then one line per range (HH:MM:SS.mmm, mean and peak)."""
    from videoqa.sidecars import format_timestamp

    name = readable(Path(finding.video).name)
    count = len(finding.ranges)
    lines = [f'{name}: "{finding.what}": {count} range{"" if count == 1 else "s"}'
             f" ({len(finding.moments)} moments scored)"]  # fmt: skip
    for found in finding.ranges:
        lines.append(
            f"  {format_timestamp(found.start)} --> {format_timestamp(found.end)}"
            f"  score {found.score:.2f} (peak {found.peak:.2f})"
        )
    return "\n".join(lines)


COMMANDS = [find_command]
