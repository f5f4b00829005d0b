"""One exception family for everything a user can get wrong.

Every error names the file (or setting) it is about and the reason, in one line, so the CLI
can print ``str(error)`` and exit non-zero without a traceback.
"""

from __future__ import annotations

import os


class VideoQAError(Exception):
    """Base of every error videoqa raises on purpose."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class MediaError(VideoQAError):
    """The input file cannot be used as a video (missing, empty, not media, no video, ...)."""


class UnsupportedCodecError(MediaError):
    """The video stream's codec has no decoder in this FFmpeg build."""


class TooLargeError(MediaError):
    """The video exceeds a configured pixel or duration limit."""


class NoDecodableFrameError(MediaError):
    """The container opened but not a single frame decoded."""


class ModelError(VideoQAError):
    """A checkpoint could not be found, downloaded or loaded."""


class OutputError(VideoQAError):
    """A sidecar could not be written (or would overwrite a file of the user's)."""


class ConfigError(VideoQAError):
    """A configuration file or option is invalid."""
