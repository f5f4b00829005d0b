"""``videoqa index`` and ``videoqa search``: an archive's reports in one SQLite file, searched.

``index`` reads JSON sidecars only (no model, no decoding), so a whole archive indexes in
minutes; ``search`` ranks clips by BM25 over their captions and answers (docs/index.md).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import click
from tqdm import tqdm

from videoqa.cli import error_line
from videoqa.cli.progress import INTERRUPTED_EXIT_CODE, say
from videoqa.errors import VideoQAError
from videoqa.index import (
    KINDS,
    ArchiveIndex,
    IndexDatabaseError,
    SearchHit,
    default_db_path,
    find_sidecars,
    ingest,
    rebuild_index,
)
from videoqa.pathnames import dumps_json, readable
from videoqa.sidecars import format_timestamp

_PROGRESS_FROM = 200
"""Sidecars from which ``index`` draws a progress bar (on a terminal)."""

_db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The index file [default: $VIDEOQA_INDEX, else ~/.local/share/videoqa/index.sqlite].",
)


@click.command("index")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@_db_option
@click.option("--prune", is_flag=True, help="Also remove indexed videos whose file is gone.")
@click.option("--check", is_flag=True,
              help="Verify the index file (SQLite's integrity check) and change nothing: "
                   "exit 1 and one line when it is damaged.")
@click.option("--rebuild", is_flag=True,
              help="Make the index anew from the sidecars in PATHS (a damaged one too): "
                   "written to a temporary file, then swapped in, so a failed rebuild loses "
                   "nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the tally as one JSON object.")
def index_command(paths: tuple[Path, ...], db: Path | None, prune: bool, check: bool,
                  rebuild: bool, as_json: bool) -> None:  # fmt: skip
    """Add the reports in PATHS (*.videoqa.json sidecars; folders recursively) to the index.

    A video indexed before has its rows replaced; an unchanged sidecar is skipped. A file that
    is not a readable report is one line on stderr, and the others go on (exit 1 at the end).
    A damaged index is one line too: --check verifies it, --rebuild PATHS makes it again.
    """
    db = db or default_db_path()
    if check:
        if paths or prune or rebuild:
            raise click.UsageError("--check takes no PATHS, --prune or --rebuild")
        _check_index(db, as_json)
        return
    if rebuild and (not paths or prune):
        raise click.UsageError("--rebuild needs the sidecars or folders to index (and no "
                               "--prune: the rebuilt index has only what they hold)")
    if not paths and not prune:
        raise click.UsageError("give the sidecars or folders to index (or --prune)")
    command = click.get_current_context().command
    began = time.perf_counter()
    sidecars = list(find_sidecars(paths))
    bar = tqdm(total=len(sidecars), unit="report", file=sys.stderr, leave=False,
               disable=True if len(sidecars) < _PROGRESS_FROM else None)  # fmt: skip

    def on_error(error: VideoQAError) -> None:
        say(error_line(error, command))

    pruned: list[str] = []
    try:
        if rebuild:
            with bar:
                tally = rebuild_index(db, sidecars, on_file=bar.update, on_error=on_error)
        else:
            with ArchiveIndex.checked(db) as index, bar:  # damage shows only where read
                tally = ingest(index, sidecars, on_file=bar.update, on_error=on_error)
                pruned = index.prune() if prune else []
    except KeyboardInterrupt:
        kept = "the index is as it was" if rebuild else "the reports indexed so far are kept"
        click.echo(f"videoqa: interrupted; {kept}", err=True)
        click.get_current_context().exit(INTERRUPTED_EXIT_CODE)
    seconds = time.perf_counter() - began
    if as_json:
        click.echo(dumps_json({
            "db": str(db), "indexed": tally.indexed, "unchanged": tally.unchanged,
            "failed": tally.failed, "clips": tally.clips, "pruned": pruned,
            "seconds": round(seconds, 3), "errors": tally.errors,
        }))  # fmt: skip
    else:
        for path in pruned:
            click.echo(f"pruned {readable(path)}", err=True)
        click.echo(
            f"videoqa: {'rebuilt the index from' if rebuild else 'indexed'} {tally.indexed} "
            f"report(s) ({tally.clips} clip rows), "
            f"{tally.unchanged} unchanged, {tally.failed} failed"
            + (f", {len(pruned)} pruned" if prune else "")
            + f" in {seconds:.1f} s: {readable(db)}",
            err=True,
        )
    if tally.failed:
        click.get_current_context().exit(1)


def _check_index(db: Path, as_json: bool) -> None:
    """``index --check``: the index verified, or one line saying it is damaged (exit 1)."""
    if not db.is_file():
        raise IndexDatabaseError(db, "no index here (build one with `videoqa index PATHS`)")
    with ArchiveIndex(db) as index:
        counts = index.check()
    if as_json:
        click.echo(dumps_json({"db": str(db), "ok": True, **counts}))
    else:
        click.echo(f"videoqa: {readable(db)}: the index is sound ({counts['videos']} videos, "
                   f"{counts['clips']} clip rows)", err=True)  # fmt: skip


@click.command("search")
@click.argument("query")
@_db_option
@click.option("--kind", type=click.Choice(KINDS), help="Only captions, or only answers.")
@click.option("--question", help="Only answers to this question (case and spacing ignored).")
@click.option("--video", "video", metavar="GLOB",
              help="Only videos whose path matches (a pattern without / matches the file name).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Hits to show.")
@click.option("--fts", is_flag=True,
              help="QUERY is FTS5 query syntax (AND, OR, NOT, NEAR, prefix*, \"phrases\"), "
              "not plain words.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
def search_command(
    query: str, db: Path | None, kind: str | None, question: str | None, video: str | None,
    limit: int, fts: bool, as_json: bool,
) -> None:  # fmt: skip
    """Find the clips whose captions or answers match QUERY, best first (BM25).

    Plain words by default: every word must occur (stop words like "the" aside; when no clip
    has them all, any of them will do); "quoted words" must occur together. Adjacent clips of
    one video that say the same thing are one hit.
    """
    db = db or default_db_path()
    if not db.exists():
        raise IndexDatabaseError(db, "no index here (build one with `videoqa index PATHS`)")
    with ArchiveIndex(db) as index:
        hits = index.search(query, kind=kind, question=question, video=video, limit=limit,
                            fts=fts)  # fmt: skip
    if as_json:
        for hit in hits:
            click.echo(dumps_json(hit.to_dict()))
        return
    if not hits:
        click.echo("no clip matches", err=True)
        return
    click.echo(_table(hits))


def _table(hits: list[SearchHit]) -> str:
    """Rows of video, start–end, text and score: in columns that fit a terminal (long paths
    and texts shortened with …), whole when the output goes to a file or a pipe."""
    videos = [readable(hit.video) for hit in hits]
    texts = [f"{hit.question}: {hit.text}" if hit.question else hit.text for hit in hits]
    spans = [f"{format_timestamp(hit.start)}–{format_timestamp(hit.end)}" for hit in hits]
    video_width = max(len(v) for v in videos)
    text_width = max(len(t) for t in texts)
    if sys.stdout.isatty():
        width = shutil.get_terminal_size().columns
        video_width = min(video_width, max(20, width // 3))
        text_width = max(20, min(text_width, width - video_width - 25 - 10))
    lines = []
    for video, span, text, hit in zip(videos, spans, texts, hits, strict=True):
        video = video if len(video) <= video_width else "…" + video[-(video_width - 1):]
        text = text if len(text) <= text_width else text[: text_width - 1] + "…"
        lines.append(f"{video:<{video_width}}  {span}  {text:<{text_width}}  {hit.score:6.2f}")
    return "\n".join(lines)


COMMANDS: list[click.Command] = [index_command, search_command]

