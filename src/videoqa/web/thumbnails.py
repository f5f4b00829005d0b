"""Thumbnails of moments: the frame a player shows at a time, from the sampler, cached as JPEG.

Why the sampler and not the browser: a search page shows twenty moments of twenty videos,
some in codecs no browser plays; one exact frame each, decoded once and kept on disk, costs
less than twenty players seeking. A cached file is named by a digest of the video's path,
size, modification time, the frame and the width, so a replaced video gets new thumbnails.

Bounded: a time is snapped to the frame it falls in (the stream's frame grid: a thousand
``?t=`` within one frame are one file and one decode), and the folder is kept under
``max_bytes`` by removing the least recently used files.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from videoqa.errors import MediaError
from videoqa.media import FrameSampler
from videoqa.sidecars import create_temporary

THUMBNAIL_WIDTH = 240
"""Pixels; the height follows the video's shown aspect."""

JPEG_QUALITY = 82

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""The cache folder's size cap (``videoqa serve --cache-size``, in MiB)."""

_GRIDS = 256
"""Videos whose frame grid (rate, last frame) is remembered between requests."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/videoqa/thumbnails`` (``~/.cache/videoqa/thumbnails``)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "videoqa" / "thumbnails"


class ThumbnailCache:
    """JPEG frames of videos at times, made on first request and kept in ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], *, width: int = THUMBNAIL_WIDTH,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.width = width
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._grids: OrderedDict[tuple[bytes, int, int], tuple[float, float | None]] = (
            OrderedDict())
        self._size: int | None = None  # bytes in the folder, counted on the first write

    def thumbnail(self, video: str | os.PathLike[str], time: float) -> Path:
        """The JPEG of ``video``'s frame shown at ``time`` seconds (clamped to the video).

        Raises ``MediaError`` when the video cannot be decoded.
        """
        try:
            stat = os.stat(video)
        except OSError as error:
            raise MediaError(video, f"cannot read: {error.strerror or error}") from None
        identity = (os.fsencode(video), stat.st_size, stat.st_mtime_ns)
        grid = self._grid(identity)
        if grid is None:  # first request for this video: open it once to learn its rate
            with FrameSampler(video, deinterlace="auto") as sampler:
                grid = self._remember(identity, sampler)
                return self._cached(identity, snap(time, *grid), sampler)
        return self._cached(identity, snap(time, *grid), None, video)

    def _cached(self, identity: tuple[bytes, int, int], time: float,
                sampler: FrameSampler | None, video: str | os.PathLike[str] | None = None,
                ) -> Path:  # fmt: skip
        path, size, mtime = identity
        name = hashlib.sha256(
            f"{path!r}\0{size}\0{mtime}\0{time:.6f}\0{self.width}".encode()
        ).hexdigest()
        target = self.folder / name[:2] / f"{name}.jpg"
        if target.is_file():
            with contextlib.suppress(OSError):
                os.utime(target)  # recently used: evicted last
            return target
        if sampler is None:
            with FrameSampler(video or os.fsdecode(path), deinterlace="auto") as opened:
                rgb = opened.sample([time])[0].rgb
        else:
            rgb = sampler.sample([time])[0].rgb
        jpeg = self._encode(rgb)
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_bytes(target, jpeg)
        self._account(len(jpeg))
        return target

    def _grid(self, identity: tuple[bytes, int, int]) -> tuple[float, float | None] | None:
        with self._lock:
            grid = self._grids.get(identity)
            if grid is not None:
                self._grids.move_to_end(identity)
            return grid

    def _remember(self, identity: tuple[bytes, int, int],
                  sampler: FrameSampler) -> tuple[float, float | None]:  # fmt: skip
        info = sampler.info
        rate = info.fps if info.fps and math.isfinite(info.fps) and info.fps > 0 else 25.0
        last = max(0.0, info.duration - 1.0 / rate) if info.duration else None
        with self._lock:
            self._grids[identity] = (rate, last)
            while len(self._grids) > _GRIDS:
                self._grids.popitem(last=False)
        return rate, last

    def _account(self, added: int) -> None:
        """Add a new file's bytes; over ``max_bytes``, remove the least recently used files
        down to three quarters of it."""
        with self._lock:
            if self._size is None:
                self._size = sum(f.stat().st_size for f in _files(self.folder))
            else:
                self._size += added
            if self._size <= self.max_bytes:
                return
            files = sorted(_files(self.folder), key=lambda f: f.stat().st_mtime_ns)
            self._size = sum(f.stat().st_size for f in files)
            for old in files:
                if self._size <= self.max_bytes * 3 // 4:
                    break
                with contextlib.suppress(OSError):
                    size = old.stat().st_size
                    old.unlink()
                    self._size -= size

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


def snap(time: float, rate: float, last: float | None) -> float:
    """The start of the frame slot ``time`` falls in on a grid of ``rate`` frames a second
    (clamped to the last frame): every time within one frame gives one number, so one cache
    file. A time less than 1 µs before a slot counts as that slot's (as the sampler does)."""
    time = min(max(0.0, time), 1e9)  # a video of unknown length: still a finite slot
    if last is not None:
        time = min(time, last)
    slot = math.floor(time * rate + 1e-6 * rate)
    return round(slot / rate, 6)


def _files(folder: Path) -> list[Path]:
    return [f for f in folder.glob("*/*.jpg") if f.is_file()] if folder.is_dir() else []


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
