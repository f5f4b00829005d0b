"""Which files are videos, by name: the suffixes the collection runner and the daemon look for.

A module of its own, at the ground floor: the daemon's config reads it without av, and the
collection runner without the daemon.
"""

DEFAULT_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mxf", ".mts", ".m2ts", ".ts",
    ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv",
)  # fmt: skip
"""File suffixes treated as videos (case-insensitive); ``[]`` in the daemon's config means any."""

__all__ = ["DEFAULT_EXTENSIONS"]
