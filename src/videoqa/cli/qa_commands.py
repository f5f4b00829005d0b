"""``videoqa ask`` and ``videoqa caption``: answers and captions for many videos in one call.

Thin: options become a ``VideoQA`` (models load once per call) and the collection runner
(``videoqa.collection``: folders searched, decoding in worker processes, clips of all files
batched together, each file's sidecars written as soon as its last clip is done). A bad file
is reported in one line and skipped; the exit code is 1 when any file failed, 130 when Ctrl-C
stopped the call (what is finished stays; files in progress get nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from videoqa.cli import error_line
from videoqa.cli.progress import Interrupts, RunProgress, clip_summary, end_run, say
from videoqa.cli.ray_options import listed_videos, process_on_ray, ray_options, split_ray_options
from videoqa.clips import (
    CLIP_MODES,
    DEFAULT_MAX_CLIP,
    DEFAULT_MIN_CLIP,
    DETECTORS,
    check_clip_options,
)
from videoqa.deinterlace import DEINTERLACE_MODES
from videoqa.errors import ConfigError, OutputError, VideoQAError
from videoqa.fit import check_fit
from videoqa.pathnames import readable

if TYPE_CHECKING:  # the pipeline imports torch: only load it when a command runs
    from videoqa.index import ArchiveIndex
    from videoqa.pipeline import VideoQA
    from videoqa.report import Report

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "float16", "bfloat16")


def _clip_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every ask/caption call shares: clips, model placement, outputs."""
    options = [
        click.argument("videos", nargs=-1, type=click.Path(path_type=Path)),  # or --paths-from
        click.option("--clip-length", type=click.FloatRange(min=0, min_open=True), default=5.0,
                     show_default=True, help="Seconds per clip (one subtitle cue)."),
        click.option("--stride", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Seconds between clip starts [default: the clip length]."),
        click.option("--start", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     help="Begin here (seconds from the start of the video)."),
        click.option("--end", type=click.FloatRange(min=0), default=None,
                     help="Stop here (seconds) [default: the end of the video]."),
        click.option("--clips", type=click.Choice(CLIP_MODES), default="fixed",
                     show_default=True,
                     help="fixed: --clip-length windows; shots: from shot cut to shot cut "
                          "(PySceneDetect, the shots extra; --clip-length and --stride do not "
                          "apply)."),
        click.option("--min-clip", type=click.FloatRange(min=0), default=DEFAULT_MIN_CLIP,
                     show_default=True,
                     help="With --clips shots: shorter shots join a neighbour (seconds)."),
        click.option("--max-clip", type=click.FloatRange(min=0, min_open=True),
                     default=DEFAULT_MAX_CLIP, show_default=True,
                     help="With --clips shots: longer shots are split into equal parts "
                          "(seconds)."),
        click.option("--detector", type=click.Choice(DETECTORS), default="content",
                     show_default=True,
                     help="With --clips shots: PySceneDetect's ContentDetector or "
                          "AdaptiveDetector (steadier under camera motion)."),
        click.option("--frames-per-clip", type=click.IntRange(min=1), default=None,
                     help="Frames per clip [default: a video checkpoint's own count, "
                          "3 for image checkpoints, which vote]."),
        click.option("--stream", type=click.IntRange(min=0), default=None,
                     help="Index of the video stream [default: the best one]."),
        click.option("--deinterlace", type=click.Choice(DEINTERLACE_MODES), default="auto",
                     show_default=True,
                     help="Rebuild interlaced frames (FFmpeg's bwdif) before the model sees "
                          "them; auto: when the video says it is interlaced."),
        click.option("--fit", metavar="crop|pad", default=None,
                     help="How frames go into the model's square: crop (the checkpoint's own "
                          "processor; Microsoft's cut the sides of widescreen video) or pad "
                          "(the whole frame, letterboxed) [default: the checkpoint's: pad for "
                          "demo, crop for the others]."),
        click.option("--revision", default=None, help="Branch, tag or commit of --model."),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="Where the model runs (auto: a GPU when there is one)."),
        click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
                     help="Weights' precision (auto: half on GPU, float32 on CPU)."),
        click.option("-f", "--format", "formats", default="json,srt,vtt", show_default=True,
                     help="Sidecars to write, comma-separated: json, srt, vtt, txt, otio "
                          "(an OpenTimelineIO timeline), xmp (XMP with markers); all or none."),
        click.option("--subtitle-language", metavar="LANG", default=None,
                     help="Name the subtitles <stem>.LANG.srt and <stem>.LANG.vtt (an ISO 639 "
                          "code: en, deu, pt-BR), the language media servers show."),
        click.option("-o", "--output-dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="Write sidecars here [default: beside each video]."),
        click.option("--overwrite", is_flag=True,
                     help="Replace existing subtitle files that videoqa did not write."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print each report as one line of JSON on stdout, as each file is "
                          "done."),
        click.option("--workers", type=click.IntRange(min=0), default=None,
                     help="Processes decoding videos while the model runs; 0: a thread of "
                          "this process [default: on a GPU one per core but one, at most one "
                          "per file and 16; elsewhere 0]."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Clips the model takes at once, from any files [default: 4 on the "
                          "CPU; on a GPU from its free memory, 8 to 64]."),
        click.option("--glob", "glob_pattern", metavar="PATTERN", default=None,
                     help="In folders given as VIDEO (searched recursively), take the files "
                          "whose path below the folder matches PATTERN ('*.mov', "
                          "'2024/*.mp4') [default: common video suffixes]."),
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
@ray_options
def ask_command(videos: Sequence[Path], questions: Sequence[str], model: str,
                with_captions: bool, caption_model: str, max_new_tokens: int,
                **options: Any) -> None:
    """Answer questions about each clip of VIDEO... and write sidecars with the answers."""
    check_fit(options["fit"])  # before the models load, as every option
    models = dict(model=model, caption_model=caption_model, revision=options.pop("revision"),
                  device=options.pop("device"), dtype=options.pop("dtype"),
                  fit=options.pop("fit"))
    _process_all(models, videos, questions=tuple(questions), captions=with_captions,
                 max_new_tokens=max_new_tokens, **options)


@click.command("caption")
@click.option("--model", default="microsoft/git-base-vatex", show_default=True,
              help="GIT checkpoint that captions: hub id, local folder, or 'demo'.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=30, show_default=True,
              help="Longest caption, in tokens.")
@_clip_options
@ray_options
def caption_command(videos: Sequence[Path], model: str, max_new_tokens: int,
                    **options: Any) -> None:
    """Caption each clip of VIDEO... and write the captions as subtitles and JSON."""
    check_fit(options["fit"])  # before the models load, as every option
    revision = options.pop("revision")
    models = dict(model=model, caption_model=model, revision=revision, caption_revision=revision,
                  device=options.pop("device"), dtype=options.pop("dtype"),
                  fit=options.pop("fit"))
    _process_all(models, videos, questions=(), captions=True,
                 caption_max_new_tokens=max_new_tokens, **options)


def _process_all(models: dict[str, Any], videos: Sequence[Path], *,
                 questions: tuple[str, ...], captions: bool, formats: str,
                 subtitle_language: str | None, output_dir: Path | None, overwrite: bool,
                 as_json: bool, **plan_options: Any) -> None:
    """Load the models (``VideoQA``'s arguments), process every video, report failures per
    file, and end with a summary; exit 1 when any file failed, 130 on Ctrl-C."""
    from videoqa.sidecars import check_subtitle_language, parse_formats

    ray = split_ray_options(plan_options)  # --ray and its options: cli/ray_options.py
    workers, glob_pattern = plan_options.pop("workers"), plan_options.pop("glob_pattern")
    wanted = parse_formats(formats)
    check_subtitle_language(subtitle_language)
    end, start = plan_options.get("end"), plan_options.get("start", 0.0)
    if end is not None and end <= start:
        raise ConfigError("--end", f"{end:g} s is not after --start {start:g} s")
    _check_clip_options(plan_options)
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(output_dir, f"cannot create: {error.strerror or error}") from None
    if ray["ray"] is not None:
        if glob_pattern is not None:
            from videoqa.collection import find_videos

            videos = find_videos(videos, glob=glob_pattern)
        process_on_ray(models, videos, ray, questions=questions, captions=captions,
                       formats=wanted, output_dir=output_dir, overwrite=overwrite,
                       as_json=as_json, batch_size=plan_options.pop("batch_size", None),
                       sidecar_options={"subtitle_language": subtitle_language},
                       **plan_options)  # fmt: skip
        return
    from videoqa.collection import find_videos

    runner_options = {"workers": workers, "batch_size": plan_options.pop("batch_size")}
    videos = find_videos(listed_videos(videos, ray), glob=glob_pattern)
    if not videos:
        raise ConfigError(None, "the folders given hold no video files", setting="glob_pattern")
    sidecars = _SidecarOptions(wanted, output_dir, overwrite, subtitle_language, as_json)

    interrupted = False
    with Interrupts() as interrupts, RunProgress(len(videos)) as run, ExitStack() as closing:
        try:
            if ray["db"] is not None:  # opened first: a file that is not an index stops here
                from videoqa.index import ArchiveIndex

                sidecars.index = ArchiveIndex(ray["db"])
                closing.callback(sidecars.index.close)
            qa = _load_models(models, questions=questions, captions=captions,
                              frames_per_clip=plan_options.get("frames_per_clip"))
            _process_collection(qa, videos, run, interrupts, sidecars, questions=questions,
                                captions=captions, **runner_options, **plan_options)
        except KeyboardInterrupt:
            interrupted = True
    end_run(run, interrupted=interrupted)


def _check_clip_options(plan_options: dict[str, Any]) -> None:
    """Clip options that cannot go together, or shots without PySceneDetect: before any model
    loads."""
    check_clip_options(plan_options.get("clips", "fixed"),
                       detector=plan_options.get("detector", "content"),
                       min_clip=plan_options.get("min_clip", DEFAULT_MIN_CLIP),
                       max_clip=plan_options.get("max_clip", DEFAULT_MAX_CLIP),
                       stride=plan_options.get("stride"))  # fmt: skip


def _load_models(models: dict[str, Any], *, questions: tuple[str, ...], captions: bool,
                 frames_per_clip: int | None) -> VideoQA:
    """A ``VideoQA`` with every checkpoint the call needs loaded, each announced first.

    The first line goes out before torch is imported (seconds), so a call says what it does
    at once. Loading up front makes a missing checkpoint (or a frame count a video checkpoint
    cannot take) one error, not one per file.
    """
    wanted = ([(models["model"], models.get("revision"))] if questions else []) + (
        [(models["caption_model"], models.get("caption_revision"))] if captions else []
    )
    click.echo(f"videoqa: loading {wanted[0][0]}", err=True, nl=False)
    try:
        from videoqa.models import choose_device, choose_dtype
        from videoqa.pipeline import VideoQA, frames_per_clip_for

        device = choose_device(models["device"])
        dtype = str(choose_dtype(models["dtype"], device)).removeprefix("torch.")
    except ImportError as error:  # a base install without torch: say so, no traceback
        click.echo("", err=True)
        missing = error.name or "torch"
        raise VideoQAError(
            None, f"{missing} is not installed: ask and caption run GIT with torch and "
            "transformers (install torch first, then videoqa; see the README's Set up)"
        ) from None
    except BaseException:
        click.echo("", err=True)  # end the line before the error's
        raise
    placement = f" on {device.type} ({dtype})"
    click.echo(f"{placement}...", err=True)
    qa = VideoQA(**models)
    for position, (model, revision) in enumerate(dict.fromkeys(wanted)):
        if position:
            click.echo(f"videoqa: loading {model}{placement}...", err=True)
        frames_per_clip_for(qa.engine(model, revision), frames_per_clip)
    return qa


@dataclass
class _SidecarOptions:
    formats: tuple[str, ...]
    output_dir: Path | None
    overwrite: bool
    subtitle_language: str | None
    as_json: bool
    index: ArchiveIndex | None = None  # --db: each delivered report goes into it too


def _process_collection(qa: VideoQA, videos: Sequence[Path], run: RunProgress,
                        interrupts: Interrupts, sidecars: _SidecarOptions, *,
                        questions: tuple[str, ...], captions: bool, workers: int | None,
                        batch_size: int | None, **plan_options: Any) -> None:
    """Every video through the collection runner: clip lines as clips are done (each file's in
    time order), each file's sidecars as soon as its last clip is, failures one line each.

    Sidecars are written only once every clip of a file is done, so Ctrl-C leaves a file
    with its whole set or nothing; once writing has begun, the set is finished first.
    """
    from videoqa.collection import ClipDone, CollectionRunner, FileDone, FileFailed, FilePlanned
    from videoqa.sidecars import check_targets, format_timestamp

    def precheck(video: Path) -> None:
        # Refuse to clobber a user's subtitles before the inference, not after it.
        check_targets(video, formats=sidecars.formats, output_dir=sidecars.output_dir,
                      overwrite=sidecars.overwrite, subtitle_language=sidecars.subtitle_language)

    command = click.get_current_context().command
    running: dict[int, list[Any]] = {}  # position -> [name, clips done, clips]
    with CollectionRunner(qa, workers=workers, batch_size=batch_size) as runner:
        try:
            for event in runner.run(videos, questions=questions, captions=captions,
                                    precheck=precheck, **plan_options):  # fmt: skip
                name = readable(Path(event.path).name)  # not UTF-8: shown with \xNN escapes
                if isinstance(event, FilePlanned):
                    running[event.position] = [name, 0, len(event.plan.clips)]
                    run.start_file(name)
                    run.planned(len(event.plan.clips))
                elif isinstance(event, ClipDone):
                    running[event.position][1] += 1
                    run.clip_done()
                    if not sidecars.as_json:
                        clip = event.result
                        span = f"{format_timestamp(clip.start)} --> {format_timestamp(clip.end)}"
                        for line in clip_summary(clip, captions=captions):
                            tqdm_write(f"{name} [{span}] {line}")
                elif isinstance(event, FileDone):
                    del running[event.position]
                    _deliver(event.report, Path(event.path), name, run, interrupts, sidecars,
                             command)
                elif isinstance(event, FileFailed):
                    planned = running.pop(event.position, None) is not None
                    cause = event.cause
                    say(error_line(cause, command) if cause else f"videoqa: error: {event.error}")
                    run.file_ended(ok=False, clips_left=event.clips_total - event.clips_done,
                                   planned=planned)
                interrupts.check()
        except KeyboardInterrupt:
            for name, done, total in running.values():
                if done:
                    say(f"videoqa: {name}: interrupted after {done} of {total} clips; "
                        "no sidecars written for it")
            raise


def _deliver(report: Report, video: Path, name: str, run: RunProgress, interrupts: Interrupts,
             sidecars: _SidecarOptions, command: click.Command) -> None:
    """One file's sidecars (or its JSON line) now that its last clip is done."""
    from videoqa.delivery import Delivery

    delivery = Delivery(sidecars.formats, sidecars.output_dir, sidecars.overwrite,
                        sidecars.subtitle_language, sidecars.index)
    with interrupts.deferred():
        try:
            written = delivery.deliver(report, video)
        except VideoQAError as error:
            say(error_line(error, command))
            run.file_ended(ok=False, planned=True)
            return
        if sidecars.as_json:
            click.echo(report.to_json(indent=None))
        else:
            for path in written:
                say(f"{name}: wrote {readable(path)}")
        run.file_ended(ok=True)


def tqdm_write(line: str) -> None:
    """A line on stdout that does not cut through the progress bar on stderr."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stdout)


COMMANDS: list[click.Command] = [ask_command, caption_command]
