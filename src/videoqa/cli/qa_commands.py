"""``videoqa ask`` and ``videoqa caption``: answers and captions for many videos in one call.

Thin: options become a ``VideoQA`` (models load once per call) and one ``VideoJob`` per file.
A bad file is reported in one line and skipped; the exit code is 1 when any file failed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from videoqa.cli import error_line
from videoqa.errors import ConfigError, MediaError, OutputError, VideoQAError
from videoqa.pathnames import readable

if TYPE_CHECKING:  # the pipeline imports torch: only load it when a command runs
    from videoqa.pipeline import VideoQA
    from videoqa.report import ClipResult

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")


def _clip_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every ask/caption call shares: clips, model placement, outputs."""
    options = [
        click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path)),
        click.option("--clip-length", type=click.FloatRange(min=0, min_open=True), default=5.0,
                     show_default=True, help="Seconds per clip (one subtitle cue)."),
        click.option("--stride", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Seconds between clip starts [default: the clip length]."),
        click.option("--start", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Begin here (seconds from the start of the video)."),
        click.option("--end", type=click.FloatRange(min=0), default=None,
                     help="Stop here (seconds) [default: the end of the video]."),
        click.option("--frames-per-clip", type=click.IntRange(min=1), default=None,
                     help="Frames per clip [default: a video checkpoint's own count, "
                          "3 for image checkpoints, which vote]."),
        click.option("--stream", type=click.IntRange(min=0), default=None,
                     help="Index of the video stream [default: the best one]."),
        click.option("--revision", default=None, help="Branch, tag or commit of --model."),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="Where the model runs (auto: a GPU when there is one)."),
        click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
                     help="Weights' precision (auto: half on GPU, float32 on CPU)."),
        click.option("--format", "formats", default="json,srt,vtt", show_default=True,
                     help="Sidecars to write, comma-separated: json, srt, vtt (or none)."),
        click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="Write sidecars here [default: beside each video]."),
        click.option("--overwrite", is_flag=True,
                     help="Replace existing subtitle files that videoqa did not write."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print each report as one line of JSON on stdout."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("ask")
@click.option("-q", "--question", "questions", multiple=True, required=True,
              help="A question to ask of every clip (repeat for more).")
@click.option("--model", default="microsoft/git-base-vqav2", show_default=True,
              help="GIT checkpoint that answers: hub id, local folder, or 'demo'.")
@click.option("--caption/--no-caption", "with_captions", default=False, show_default=True,
              help="Caption every clip too (subtitles then show the captions).")
@click.option("--caption-model", default="microsoft/git-base-vatex", show_default=True,
              help="GIT checkpoint that captions, with --caption.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=20, show_default=True,
              help="Longest answer, in tokens.")
@_clip_options
def ask_command(videos: Sequence[Path], questions: Sequence[str], model: str,
                with_captions: bool, caption_model: str, max_new_tokens: int,
                **options: Any) -> None:
    """Answer questions about each clip of VIDEO... and write sidecars with the answers."""
    from videoqa.pipeline import VideoQA

    qa = VideoQA(model, caption_model=caption_model, revision=options.pop("revision"),
                 device=options.pop("device"), dtype=options.pop("dtype"))
    _process_all(qa, videos, questions=tuple(questions), captions=with_captions,
                 max_new_tokens=max_new_tokens, **options)


@click.command("caption")
@click.option("--model", default="microsoft/git-base-vatex", show_default=True,
              help="GIT checkpoint that captions: hub id, local folder, or 'demo'.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=30, show_default=True,
              help="Longest caption, in tokens.")
@_clip_options
def caption_command(videos: Sequence[Path], model: str, max_new_tokens: int,
                    **options: Any) -> None:
    """Caption each clip of VIDEO... and write the captions as subtitles and JSON."""
    from videoqa.pipeline import VideoQA

    revision = options.pop("revision")
    qa = VideoQA(model, caption_model=model, revision=revision, caption_revision=revision,
                 device=options.pop("device"), dtype=options.pop("dtype"))
    _process_all(qa, videos, questions=(), captions=True,
                 caption_max_new_tokens=max_new_tokens, **options)


def _process_all(qa: VideoQA, videos: Sequence[Path], *, questions: tuple[str, ...],
                 captions: bool, formats: str, output_dir: Path | None, overwrite: bool,
                 as_json: bool, **plan_options: Any) -> None:
    """Process every video; report failures per file; exit 1 when any failed."""
    from videoqa.sidecars import parse_formats

    wanted = parse_formats(formats)
    end, start = plan_options.get("end"), plan_options.get("start", 0.0)
    if end is not None and end <= start:
        raise ConfigError("--end", f"{end:g} s is not after --start {start:g} s")
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(output_dir, f"cannot create: {error.strerror or error}") from None
    # Load the models once, before any file: a missing checkpoint (or a frame count a video
    # checkpoint cannot take) is one error, not one per file.
    from videoqa.pipeline import frames_per_clip_for

    engines = ([qa.answer_engine] if questions else []) + ([qa.caption_engine] if captions else [])
    for engine in engines:
        frames_per_clip_for(engine, plan_options.get("frames_per_clip"))

    began = time.monotonic()
    failed = clips_done = 0
    for video in videos:
        try:
            clips_done += _process_one(qa, video, questions=questions, captions=captions,
                                       formats=wanted, output_dir=output_dir,
                                       overwrite=overwrite, as_json=as_json, **plan_options)
        except VideoQAError as error:
            failed += 1
            click.echo(error_line(error, click.get_current_context().command), err=True)
    done = len(videos) - failed
    noun = "file" if len(videos) == 1 else "files"
    click.echo(f"videoqa: {len(videos)} {noun}: {done} done, {failed} failed; "
               f"{clips_done} clips in {time.monotonic() - began:.1f} s", err=True)
    if failed:
        click.get_current_context().exit(1)


def _process_one(qa: VideoQA, video: Path, *, questions: tuple[str, ...], captions: bool,
                 formats: tuple[str, ...], output_dir: Path | None, overwrite: bool,
                 as_json: bool, **plan_options: Any) -> int:
    """One video end to end; sidecars are written only once every clip is done."""
    from tqdm import tqdm

    from videoqa.sidecars import check_targets, format_timestamp, write_sidecars

    if not video.is_file():
        raise MediaError(video, "no such file" if not video.exists() else "not a file")
    # Refuse to clobber a user's subtitles before the inference, not after it.
    check_targets(video, formats=formats, output_dir=output_dir, overwrite=overwrite)
    job = qa.plan(video, questions=questions, captions=captions, **plan_options)
    results = []
    name = readable(video.name)  # a file name that is not UTF-8, shown with \xNN escapes
    with tqdm(total=len(job.clips), desc=name, unit="clip", file=sys.stderr,
              disable=not sys.stderr.isatty(), leave=False, dynamic_ncols=True) as bar:
        for clip in job.results():
            results.append(clip)
            bar.update(1)
            if not as_json:
                span = f"{format_timestamp(clip.start)} --> {format_timestamp(clip.end)}"
                for line in _clip_summary(clip, captions=captions):
                    bar.write(f"{name} [{span}] {line}", file=sys.stdout)
    report = job.build_report(results)
    written = write_sidecars(report, video, formats=formats, output_dir=output_dir,
                             overwrite=overwrite)
    if as_json:
        click.echo(report.to_json(indent=None))
    else:
        for path in written:
            click.echo(f"{name}: wrote {readable(path)}", err=True)
    return len(results)


def _clip_summary(clip: ClipResult, *, captions: bool) -> list[str]:
    lines = [f"{qa.question}: {qa.answer}" for qa in clip.answers]
    if captions and clip.caption is not None:
        lines.insert(0, clip.caption.text)
    return lines


COMMANDS: list[click.Command] = [ask_command, caption_command]
