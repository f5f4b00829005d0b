"""``videoqa lint-subs``: the readability rules any SRT or WebVTT file breaks.

For ours and anyone's: each violation is one line, ``FILE:CUE: START --> END: RULE: detail``,
and the exit code is 1 when there is any, so a script or CI can check subtitle files.
"""

from __future__ import annotations

from pathlib import Path

import click

from videoqa.formats.cues import DEFAULT_LINT_FPS, PRESETS, resolve_style
from videoqa.pathnames import readable


@click.command("lint-subs")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--subtitle-style", "style_name", type=click.Choice(list(PRESETS)[1:]),
              default="netflix", show_default=True,
              help="The rules to check: a preset (docs/subtitles.md).")
@click.option("--max-line-chars", type=click.IntRange(min=10), default=None,
              help="Longest line in characters [default: the style's].")
@click.option("--max-lines", type=click.IntRange(min=1), default=None,
              help="Most lines in a cue [default: the style's].")
@click.option("--max-cps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Fastest reading speed, characters per second [default: the style's].")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_LINT_FPS,
              show_default=True, help="The video's frame rate, for gaps counted in frames.")
def lint_subs_command(files: tuple[Path, ...], style_name: str, max_line_chars: int | None,
                      max_lines: int | None, max_cps: float | None, fps: float) -> None:
    """Print the readability rules each cue of FILE... breaks (exit 1 when any does)."""
    from videoqa.formats.cues import check_cues
    from videoqa.formats.subfile import read_cues

    style = resolve_style(style_name, max_line_chars=max_line_chars, max_lines=max_lines,
                          max_cps=max_cps)  # fmt: skip
    found = 0
    for path in files:
        name = readable(path)
        for violation in check_cues(read_cues(path), style, fps=fps):
            found += 1
            cue = violation.cue
            click.echo(f"{name}:{violation.number}: {_time(cue.start)} --> {_time(cue.end)}: "
                       f"{violation.rule}: {violation.detail}")  # fmt: skip
    noun = "violation" if found == 1 else "violations"
    click.echo(f"videoqa: {found} {noun} of {style.name} in {len(files)} file"
               f"{'' if len(files) == 1 else 's'}", err=True)  # fmt: skip
    if found:
        raise SystemExit(1)


def _time(seconds: float) -> str:
    from videoqa.sidecars import format_timestamp

    return format_timestamp(seconds)


COMMANDS: list[click.Command] = [lint_subs_command]
