"""One exception family for everything a user can get wrong.

Every error names the file (or setting) it is about and the reason, in one line, so the CLI
can print ``str(error)`` and exit non-zero without a traceback. A setting is named as Python
callers and the daemon's TOML spell it (``device``, ``frames_per_clip``), never as a command-line
flag: the CLI puts its own flag in its place.
"""

from __future__ import annotations

import os

from videoqa.pathnames import readable


class VideoQAError(Exception):
    """Base of every error videoqa raises on purpose.

    ``str(error)`` is ``"path: reason"``; an error about one setting rather than a file reads
    ``"setting: reason"`` (``"frames_per_clip: must be at least 1, got 0"``).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None, reason: str, *, setting: str | None = None
    ) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.reason = reason
        self.setting = setting
        where = readable(self.path) if self.path else setting  # one line of valid UTF-8
        super().__init__(f"{where}: {reason}" if where else reason)

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled as built, so the error crosses processes whole (a Ray worker's error
        reaches the driver as itself, not as an exception that failed to unpickle)."""
        return _rebuild, (type(self), self.path, self.reason, self.setting)


def _rebuild(
    kind: type[VideoQAError], path: str | None, reason: str, setting: str | None
) -> VideoQAError:
    return kind(path, reason, setting=setting)


class MediaError(VideoQAError):
    """The input file cannot be used as a video (missing, empty, not media, no video, ...)."""


class UnsupportedCodecError(MediaError):
    """The video stream's codec has no decoder in this FFmpeg build."""


class TooLargeError(MediaError):
    """The video exceeds a configured pixel or duration limit."""


class NoVideoStreamError(MediaError):
    """The file holds media but no video stream (audio only): nothing to caption."""


class NoDecodableFrameError(MediaError):
    """The container opened but not a single frame decoded."""


class TruncatedError(MediaError):
    """The file decodes only partway: it ends before the length its index declares."""


class ModelError(VideoQAError):
    """A checkpoint could not be found, downloaded or loaded."""


class OutputError(VideoQAError):
    """A sidecar could not be written (or would overwrite a file of the user's)."""


class DestinationError(OutputError):
    """Results cannot be written where they go right now (a read-only or full file system).

    Unlike a file of the user's in the way, this may pass: the daemon tries again later.
    """


class ConfigError(VideoQAError):
    """A configuration file or option is invalid."""
