"""Thumbnails of moments: the frame a player shows at a time, from the sampler, cached as JPEG.

Why the sampler and not the browser: a search page shows twenty moments of twenty videos,
some in codecs no browser plays; one exact frame each, decoded once and kept on disk, costs
less than twenty players seeking. A cached file is named by a digest of the video's path,
size, modification time, the time and the width, so a replaced video gets new thumbnails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from videoqa.errors import MediaError
from videoqa.media import FrameSampler
from videoqa.sidecars import create_temporary

THUMBNAIL_WIDTH = 240
"""Pixels; the height follows the video's shown aspect."""

JPEG_QUALITY = 82


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/videoqa/thumbnails`` (``~/.cache/videoqa/thumbnails``)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "videoqa" / "thumbnails"


class ThumbnailCache:
    """JPEG frames of videos at times, made on first request and kept in ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], *, width: int = THUMBNAIL_WIDTH) -> None:
        self.folder = Path(folder)
        self.width = width

    def thumbnail(self, video: str | os.PathLike[str], time: float) -> Path:
        """The JPEG of ``video``'s frame shown at ``time`` seconds (clamped to the video).

        Raises ``MediaError`` when the video cannot be decoded.
        """
        try:
            stat = os.stat(video)
        except OSError as error:
            raise MediaError(video, f"cannot read: {error.strerror or error}") from None
        time = round(max(0.0, time), 3)
        name = hashlib.sha256(
            f"{os.fsencode(video)!r}\0{stat.st_size}\0{stat.st_mtime_ns}\0{time}\0{self.width}"
            .encode()
        ).hexdigest()  # fmt: skip
        target = self.folder / name[:2] / f"{name}.jpg"
        if target.is_file():
            return target
        jpeg = self._encode(self._frame(video, time))
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_bytes(target, jpeg)
        return target

    def _frame(self, video: str | os.PathLike[str], time: float) -> np.ndarray:
        with FrameSampler(video, deinterlace="auto") as sampler:
            end = sampler.info.duration
            last = max(0.0, end - 1.0 / (sampler.info.fps or 25.0)) if end else time
            return sampler.sample([min(time, last)])[0].rgb

    def _encode(self, rgb: np.ndarray) -> bytes:
        height, width = rgb.shape[:2]
        size = (self.width, max(1, round(height * self.width / width)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
        )  # fmt: skip
        if not ok:
            raise MediaError(None, "cannot encode a thumbnail as JPEG")
        return data.tobytes()


def _write_bytes(target: Path, data: bytes) -> None:
    """All at once (temporary file, rename): two requests for one thumbnail never see half."""
    descriptor, temp_path = create_temporary(target.parent, target.name)
    try:
        with open(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise
