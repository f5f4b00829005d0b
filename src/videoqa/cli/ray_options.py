"""``--ray`` and its options for ``videoqa ask`` and ``videoqa caption``.

The options live here, beside ``qa_commands``, so the commands need one decorator and one
branch: with ``--ray`` the call runs on a Ray cluster (``videoqa.distributed``) instead of in
this process. Ray is an optional extra; the options parse without it, and using them without it
is a one-line error that says how to install it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from videoqa.errors import ConfigError

RAY_ONLY_OPTIONS = ("model_actors", "gpus_per_actor", "decode_tasks")
"""Options that mean something only with ``--ray``."""


def ray_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--ray``, ``--model-actors``, ``--gpus-per-actor``, ``--decode-tasks``, ``--db``
    and ``--paths-from`` to an ask/caption command."""
    options = [
        click.option("--ray", "ray", metavar="ADDRESS|auto|local", default=None,
                     help="Run on a Ray cluster: auto (the running one: RAY_ADDRESS or the "
                          "local head), local (start one in this process), or an address "
                          "(ray://head:10001). Needs: pip install \"videoqa[ray]\"."),
        click.option("--model-actors", type=click.IntRange(min=1), default=None,
                     help="With --ray: model replicas (Ray actors), each loading the model "
                          "once [default: 1]."),
        click.option("--gpus-per-actor", type=click.FloatRange(min=0), default=None,
                     help="With --ray: GPUs each model actor reserves; fractions share a card "
                          "(0.25: four replicas on one GPU) [default: 1 when the cluster has "
                          "GPUs and --device is not cpu, else 0]."),
        click.option("--decode-tasks", type=click.IntRange(min=1), default=None,
                     help="With --ray: decoding tasks at once (one CPU each) [default: the "
                          "cluster's CPUs less one per model actor]."),
        click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Also add each file's report to this archive index (videoqa search "
                          "reads it), as its sidecars are written."),
        click.option("--paths-from", type=click.Path(dir_okay=False, path_type=Path),
                     default=None,
                     help="Also process the paths listed in FILE, one a line (# comments). "
                          "With --ray they are opened by the workers, as the workers see them."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def check_ray_options(options: dict[str, Any]) -> None:
    """Refuse a Ray-only option without ``--ray`` (before any model loads)."""
    if options.get("ray") is None:
        for name in RAY_ONLY_OPTIONS:
            if options.get(name) is not None:
                raise ConfigError(None, "needs --ray", setting=name)


def read_paths_file(listing: Path) -> list[str]:
    """The paths listed in ``listing``: one a line, blank lines and ``#`` comments skipped.

    Paths are returned as written (relative ones resolve against the current folder later);
    nothing is checked here, since with ``--ray`` only the workers may see the files.
    """
    try:
        text = listing.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as error:
        raise ConfigError(listing, f"cannot read: {error.strerror or error}") from None
    paths = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            paths.append(stripped)
    if not paths:
        raise ConfigError(listing, "lists no paths")
    return paths


def process_on_ray(models: dict[str, Any], videos: Sequence[Any], ray: dict[str, Any], *,
                   questions: tuple[str, ...], captions: bool, formats: tuple[str, ...],
                   output_dir: Path | None, overwrite: bool, as_json: bool,
                   sidecar_options: dict[str, Any], batch_size: int | None,
                   **plan_options: Any) -> None:
    """``ask``/``caption`` with ``--ray``: the same lines, sidecars and exit codes as on one
    machine, each file's printed when it is done (files finish in any order)."""
    from videoqa.cli.progress import RunProgress, clip_summary, end_run, say
    from videoqa.collection import find_videos
    from videoqa.distributed import DEFAULT_BATCH_SIZE, RaySettings, connect, run_on_ray
    from videoqa.pathnames import readable
    from videoqa.sidecars import format_timestamp

    settings = RaySettings(address=ray["ray"], model_actors=ray["model_actors"] or 1,
                           gpus_per_actor=ray["gpus_per_actor"],
                           decode_tasks=ray["decode_tasks"],
                           batch_size=batch_size or DEFAULT_BATCH_SIZE)  # fmt: skip
    # Those of --paths-from as the workers see them: not looked at here.
    listed = _with_listed([os.fspath(path) for path in find_videos(videos)], ray)
    # Before the models load: a wrong address fails at once. Ray's info lines only with -v.
    connect(settings.address, quiet=not logging.getLogger("videoqa").isEnabledFor(logging.INFO))
    interrupted = False
    out = sys.stdout  # ours: the clip lines and --json reports
    with RunProgress(len(listed)) as run, contextlib.ExitStack() as closing:
        # Ray prints its own notices (a worker died, a task is retried) on stdout, from a
        # thread of its own: they go to stderr for the run, so stdout stays parseable.
        closing.enter_context(contextlib.redirect_stdout(sys.stderr))
        index = None
        if ray.get("db") is not None:
            from videoqa.index import ArchiveIndex

            index = ArchiveIndex(ray["db"])
            closing.callback(index.close)
        try:
            qa = _check_models(models, questions=questions, captions=captions,
                               frames_per_clip=plan_options.get("frames_per_clip"))
            run.began = time.monotonic()  # the clips/s of the summary count from here
            say(f"videoqa: on Ray ({settings.address}): {settings.model_actors} model "
                f"actor{'s' if settings.model_actors != 1 else ''}, batches of "
                f"{settings.batch_size}")
            outcomes = run_on_ray(qa, listed, settings=settings, questions=questions,
                                  captions=captions, formats=formats, output_dir=output_dir,
                                  overwrite=overwrite, sidecar_options=sidecar_options,
                                  index=index, search_folders=False, **plan_options)  # fmt: skip
            for outcome in outcomes:
                run.start_file()
                name = readable(Path(outcome.path).name)
                report = outcome.report
                if report is not None:
                    run.planned(len(report.clips))
                    for clip in report.clips:
                        run.clip_done()
                        if as_json:
                            continue
                        span = f"{format_timestamp(clip.start)} --> {format_timestamp(clip.end)}"
                        for line in clip_summary(clip, captions=captions):
                            click.echo(f"{name} [{span}] {line}", file=out)
                if outcome.error is not None:
                    say(f"videoqa: error: {outcome.error}")
                    run.file_ended(ok=False)
                    continue
                if as_json and report is not None:
                    click.echo(report.to_json(indent=None), file=out)
                for path in outcome.written:
                    if not as_json:
                        say(f"{name}: wrote {readable(path)}")
                run.file_ended(ok=True)
        except KeyboardInterrupt:
            interrupted = True
    end_run(run, interrupted=interrupted)


def _check_models(models: dict[str, Any], *, questions: tuple[str, ...], captions: bool,
                  frames_per_clip: int | None) -> Any:
    """The driver's ``VideoQA``: each checkpoint checked from its config files, as the local
    command checks it by loading it (one error, before any file), but without the weights:
    the model actors load those, and the driver needs neither their memory nor torch."""
    from videoqa.cli.progress import say
    from videoqa.distributed import needed_models, planning_copy
    from videoqa.pipeline import VideoQA, frames_per_clip_for

    qa = VideoQA(**models)
    wanted = needed_models(qa, questions, captions)
    say(f"videoqa: checking {', '.join(model for model, _ in wanted)} (the model actors load "
        f"{'them' if len(wanted) > 1 else 'it'})")
    qa = planning_copy(qa, questions, captions)
    for model, revision in wanted:
        frames_per_clip_for(qa.engine(model, revision), frames_per_clip)
    return qa


def split_ray_options(options: dict[str, Any]) -> dict[str, Any]:
    """Take ``--ray`` and its options out of a command's options (checked), leaving the rest."""
    names = ("ray", *RAY_ONLY_OPTIONS, "db", "paths_from")
    ray = {name: options.pop(name, None) for name in names}
    check_ray_options(ray)
    return ray


def listed_videos(videos: Sequence[Path], ray: dict[str, Any]) -> list[Path]:
    """``videos`` and those of ``--paths-from``; at least one, else a usage error."""
    return [Path(path) for path in _with_listed([os.fspath(v) for v in videos], ray)]


def _with_listed(paths: list[str], ray: dict[str, Any]) -> list[str]:
    if ray.get("paths_from") is not None:
        paths = paths + read_paths_file(ray["paths_from"])
    if not paths:
        raise click.UsageError("Missing argument 'VIDEOS...' (or --paths-from FILE).")
    return paths

