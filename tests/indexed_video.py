"""Videos whose every frame shows its own index, so a test can read back which frame it got.

Each frame is grey-level art that survives lossy compression and resizing: the top three
quarters are vertical bands, one per bit of the frame index (most significant bit on the
left), bright for 1 and dark for 0; the bottom quarter is an orientation mark (bright left
half, dark right half). ``read_index`` checks the mark, so a frame returned sideways or upside
down fails loudly instead of reading as a wrong index.

Other tests may reuse ``write_indexed_video``, ``read_index`` and ``expected_index``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videoqa.av_compat import frame_rotation

BRIGHT = 235
DARK = 16


def index_image(index: int, width: int, height: int, bits: int) -> np.ndarray:
    """The upright (height, width) grey image that encodes ``index``."""
    if index >= 2**bits:
        raise ValueError(f"index {index} does not fit in {bits} bits")
    image = np.full((height, width), DARK, dtype=np.uint8)
    band_height = height * 3 // 4
    for bit in range(bits):
        if index >> (bits - 1 - bit) & 1:
            left, right = bit * width // bits, (bit + 1) * width // bits
            image[:band_height, left:right] = BRIGHT
    image[band_height:, : width // 2] = BRIGHT
    return image


def read_index(rgb: np.ndarray, bits: int = 8) -> int:
    """The index shown by an upright RGB frame made by ``write_indexed_video``."""
    grey = rgb.astype(np.float32).mean(axis=2)
    height, width = grey.shape
    band_height = height * 3 // 4
    mark = grey[band_height + (height - band_height) // 4 : height - (height - band_height) // 4]
    left, right = mark[:, width // 8 : width * 3 // 8].mean(), mark[:, width * 5 // 8 :].mean()
    if not (left > 128 > right):
        raise AssertionError(f"orientation mark not found (left {left:.0f}, right {right:.0f})")
    rows = grey[band_height // 8 : band_height * 7 // 8]
    index = 0
    for bit in range(bits):
        band_width = width / bits
        inner = rows[:, int((bit + 0.25) * band_width) : int((bit + 0.75) * band_width)]
        index = index * 2 + int(inner.mean() > 128)
    return index


def write_indexed_video(
    path: str | Path,
    *,
    frames: int = 40,
    width: int = 64,
    height: int = 48,
    codec: str = "libx264",
    rate: int | Fraction = 24,
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int = 0,
    bits: int = 8,
    sample_aspect_ratio: Fraction | None = None,
    first_index: int = 0,
) -> list[Fraction]:
    """Encode ``frames`` indexed frames; returns each frame's presentation time in seconds.

    ``width``/``height`` are the stored size. ``pts`` (in ``time_base``) makes variable frame
    rate or a non-zero start; ``options`` go to the encoder, ``container_options`` to the muxer
    (e.g. ``movflags=faststart``); ``rotation`` writes a display matrix (counter-clockwise degrees,
    as ``frame_rotation`` reads it back): the frames are stored turned the other way so
    that a player applying the matrix shows them upright. ``sample_aspect_ratio`` is declared
    in the bitstream (and by MP4 and Matroska in the container) for anamorphic video; the
    pattern reads the same stretched. ``first_index``: the index the first frame shows.
    """
    if pts is None:
        time_base = Fraction(1, rate) if isinstance(rate, int) else 1 / Fraction(rate)
        pts = list(range(frames))
    elif time_base is None:
        raise ValueError("pts needs a time_base")
    turns = (rotation // 90) % 4
    upright_width, upright_height = (height, width) if turns % 2 else (width, height)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if sample_aspect_ratio is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect_ratio
        if options:
            stream.options = dict(options)
        if rotation:
            if not hasattr(stream, "set_display_rotation"):
                pytest.skip("writing a display matrix needs PyAV 17.1")
            stream.set_display_rotation(rotation)
        for index, frame_pts in enumerate(pts):
            upright = index_image(first_index + index, upright_width, upright_height, bits)
            stored = np.ascontiguousarray(np.rot90(upright, k=-turns))
            frame = av.VideoFrame.from_ndarray(np.repeat(stored[:, :, None], 3, axis=2), "rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = frame_pts, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return [p * time_base for p in pts]


def expected_index(frame_times: Sequence[Fraction | float], time: float) -> int:
    """The frame a player shows at ``time``: the last one at or before it (the first if earlier).

    A time less than a microsecond before a frame counts as that frame's (times are printed
    with six decimals), as in ``videoqa.media.TIME_TOLERANCE``.
    """
    moment = Fraction(time) + Fraction(1, 1_000_000)
    return max(bisect.bisect_right([Fraction(t) for t in frame_times], moment) - 1, 0)


def reference_timeline(
    path: str | Path, *, stream: int = 0, bits: int = 8
) -> list[tuple[Fraction, bool]]:
    """(timeline time, is keyframe) of every frame, by a plain decode of the whole file.

    Times are presentation time minus the container's start time; the helper checks that
    frame k of the decode shows index k, so the encoder and decoder agree with the pattern.
    """
    timeline = []
    with av.open(str(path)) as container:
        video = [s for s in container.streams if s.type == "video"][stream]
        start = Fraction(container.start_time or 0, av.time_base)
        for position, frame in enumerate(container.decode(video)):
            rgb = frame.to_ndarray(format="rgb24")
            shown = read_index(np.rot90(rgb, k=round(frame_rotation(frame) / 90)), bits)
            if shown != position:
                raise AssertionError(f"{path}: decoded frame {position} shows index {shown}")
            timeline.append((frame.pts * video.time_base - start, bool(frame.key_frame)))
    return timeline


def minimum_decodes(timeline: Sequence[tuple[Fraction, bool]], times: Sequence[float]) -> int:
    """Frames any exact sampler must decode: for each time, its keyframe up to its frame."""
    needed: set[int] = set()
    keyframes = [position for position, (_, key) in enumerate(timeline) if key]
    frame_times = [time for time, _ in timeline]
    for time in times:
        index = expected_index(frame_times, time)
        keyframe = keyframes[bisect.bisect_right(keyframes, index) - 1]
        needed.update(range(keyframe, index + 1))
    return len(needed)
