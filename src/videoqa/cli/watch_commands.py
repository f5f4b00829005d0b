"""Commands of this step (filled in by its module owner)."""

import click

COMMANDS: list[click.Command] = []
