"""The ``videoqa`` command line: one click group; each step of the pipeline adds its commands.

The commands are thin: they parse options and call the library. Errors from the
``VideoQAError`` family end in one line on stderr and exit code 1, never a traceback; an error
about one setting names the command's flag for it (``--frames-per-clip: ...``).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from videoqa.errors import VideoQAError
from videoqa.version import __version__


def error_line(error: VideoQAError, command: click.Command | None) -> str:
    """``videoqa: error: ...``, with ``command``'s flag where the library names a setting."""
    flags = [
        max(param.opts, key=len)
        for param in (command.params if command else [])
        if isinstance(param, click.Option) and param.name == error.setting
    ]
    if flags and error.path is None:
        return f"videoqa: error: {flags[0]}: {error.reason}"
    return f"videoqa: error: {error}"


class _Group(click.Group):
    """A click group that turns our documented errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VideoQAError as error:
            name = ctx.invoked_subcommand
            command = self.get_command(ctx, name) if name else None
            click.echo(error_line(error, command), err=True)
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="videoqa")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Ask questions of video and caption it with Microsoft's GIT.

    Frames are sampled exactly with PyAV; results go to SRT, WebVTT and JSON sidecars.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="videoqa: %(levelname)s: %(message)s", stream=sys.stderr
    )


def _register() -> None:
    from videoqa.cli import (
        find_commands,
        index_commands,
        media_commands,
        qa_commands,
        serve_commands,
        watch_commands,
    )

    for module in (media_commands, qa_commands, watch_commands, serve_commands, find_commands,
                   index_commands):  # fmt: skip
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="videoqa")
