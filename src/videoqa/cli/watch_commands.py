"""Commands of the folder-watch daemon: ``watch``, ``process``, ``jobs``, ``adapters``."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Any

import click

from videoqa.errors import VideoQAError
from videoqa.pathnames import readable
from videoqa.watch.config import load_config
from videoqa.watch.jobstore import STATES, JobStore
from videoqa.watch.logformat import use_daemon_log_format

_config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config (folders, questions, adapters); see examples/videoqa.toml.",
)  # fmt: skip
_jobstore_option = click.option(
    "--jobstore", type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite job store (default: the config's, else ~/.local/state/videoqa/jobs.sqlite).",
)  # fmt: skip
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _absolute(path: Path | None) -> str | None:
    """A command-line path is relative to the current folder, not to the config file."""
    return str(path.expanduser().absolute()) if path is not None else None


def _print_jobs(store: JobStore, *, state: str | None, limit: int | None, as_json: bool) -> None:
    jobs = store.jobs(state=state, limit=limit)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps({"counts": store.counts(), "jobs": [j.to_dict() for j in jobs]},
                              indent=2))  # fmt: skip
        return
    counts = store.counts()
    click.echo("  ".join(f"{name}: {counts[name]}" for name in STATES))
    for job in jobs:
        gone = " (deleted)" if job.deleted_at else ""
        click.echo(f"{job.state:11} {job.attempts}  {readable(job.path)}{gone}")
        if job.last_error:
            click.echo(f"              {job.last_error}")


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@_config_option
@_jobstore_option
@click.option("--settle", type=float, help="Seconds a file must stay unchanged (default 5).")
@click.option("--poll", is_flag=True, default=None, help="Poll instead of OS events (NFS/SMB).")
@click.option("--time-limit", type=float, help="Seconds allowed per file (default 600).")
@click.option("--max-attempts", type=int, help="Tries before a file stays failed (default 3).")
@click.option("--once", is_flag=True, help="Process what is there, then exit.")
@click.option("--status", is_flag=True, help="Show the job store's state and exit.")
@_json_option
@click.pass_context
def watch(
    ctx: click.Context,
    folders: tuple[Path, ...],
    config_path: Path | None,
    jobstore: Path | None,
    settle: float | None,
    poll: bool | None,
    time_limit: float | None,
    max_attempts: int | None,
    once: bool,
    status: bool,
    as_json: bool,
) -> None:
    """Watch FOLDER... and answer every new video that settles there.

    Results go to the configured adapters (sidecar files by default). Stop with Ctrl-C or
    SIGTERM: the file being processed goes back to the queue.
    """
    overrides: dict[str, Any] = dict(jobstore=_absolute(jobstore), settle=settle, poll=poll,
                                     time_limit=time_limit, max_attempts=max_attempts)  # fmt: skip
    if status:  # only reads the job store: an absent watched folder does not matter
        config = load_config(config_path, check_folders=False, **overrides)
        with JobStore(config.jobstore) as store:
            _print_jobs(store, state=None, limit=None, as_json=as_json)
        return
    from videoqa.watch.daemon import WatchDaemon

    config = load_config(config_path, folders=folders, **overrides)
    if ctx.find_root().params.get("verbose", 0) == 0:
        logging.getLogger("videoqa").setLevel(logging.INFO)
    use_daemon_log_format()
    daemon = WatchDaemon(config, once=once)

    def request_stop(signum: int, _frame: object) -> None:
        logging.getLogger("videoqa.watch.daemon").info(
            "%s: stopping", signal.Signals(signum).name
        )
        daemon.stop()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        daemon.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if once and daemon.failed:  # a batch job's caller learns of failures from the exit code
        raise VideoQAError(None, _failed_files(daemon.failed))


def _failed_files(paths: list[str]) -> str:
    """One line naming the files that failed (the first few; the job store has them all)."""
    shown = ", ".join(readable(path) for path in paths[:3])
    more = f" and {len(paths) - 3} more (videoqa jobs --state failed)" if len(paths) > 3 else ""
    return f"{len(paths)} file{'s' if len(paths) > 1 else ''} failed: {shown}{more}"


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@_config_option
@_jobstore_option
@click.option("--time-limit", type=float, help="Seconds allowed for the file (default 600).")
@click.option("--settle", type=float, default=0.0, show_default=True,
              help="First wait until the file is unchanged for this many seconds.")  # fmt: skip
@_json_option
def process(
    path: Path, config_path: Path | None, jobstore: Path | None, time_limit: float | None,
    settle: float, as_json: bool,
) -> None:  # fmt: skip
    """Process one video with the daemon's job store and adapters (for your own watcher).

    Idempotent: a file the store has already finished, with the same size and modification
    time, is not processed again. Exit code 1 when the file ends failed, or undelivered (its
    results could not be written; the next run delivers the kept report).
    """
    from videoqa.watch.daemon import process_one

    config = load_config(config_path, jobstore=_absolute(jobstore),
                   time_limit=time_limit)  # fmt: skip
    use_daemon_log_format()  # the worker's lines carry timestamps: so do these
    job = process_one(config, path, settle=settle)
    if as_json:
        click.echo(json.dumps(job.to_dict(), indent=2))
    else:
        error = f"\n{job.last_error}" if job.last_error else ""
        click.echo(f"{job.state}: {readable(job.path)}{error}")
    if job.state != "done":
        raise SystemExit(1)


@click.command()
@_config_option
@_jobstore_option
@click.option("--state", type=click.Choice(STATES), help="Only jobs in this state.")
@click.option("--limit", type=int, help="At most this many jobs (newest first).")
@click.option(
    "--retry-failed", is_flag=True,
    help="Queue every failed file again and deliver undelivered reports now (after a fix), "
    "then list.",
)  # fmt: skip
@_json_option
def jobs(
    config_path: Path | None, jobstore: Path | None, state: str | None, limit: int | None,
    retry_failed: bool, as_json: bool,
) -> None:  # fmt: skip
    """List the job store: counts per state, then each file with its attempts and last error."""
    config = load_config(config_path, check_folders=False, jobstore=_absolute(jobstore))
    with JobStore(config.jobstore) as store:
        if retry_failed:
            count = store.retry_failed()
            if not as_json:
                click.echo(f"queued {count} failed or undelivered file(s) again")
        _print_jobs(store, state=state, limit=limit, as_json=as_json)


@click.command()
@_json_option
def adapters(as_json: bool) -> None:
    """List the installed adapters (entry-point group ``videoqa.adapters``)."""
    from videoqa.adapters import available_adapters, third_party_disabled

    infos = available_adapters()
    if as_json:
        click.echo(json.dumps([{"name": i.name, "object": i.value, "distribution": i.distribution,
                                "bundled": i.bundled} for i in infos], indent=2))  # fmt: skip
        return
    for info in infos:
        origin = "bundled" if info.bundled else f"third-party ({info.distribution})"
        click.echo(f"{info.name:10} {info.value}  [{origin}]")
    if third_party_disabled():
        click.echo("(third-party adapters are disabled by VIDEOQA_NO_THIRD_PARTY_ADAPTERS)")


COMMANDS: list[click.Command] = [watch, process, jobs, adapters]
