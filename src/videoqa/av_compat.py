"""The PyAV calls whose spelling differs between the PyAV releases videoqa supports (13 to 19).

Everything else videoqa uses from PyAV is the same in all of them. Each function names the
release that made it necessary, so it can shrink to one line once the floor in pyproject.toml
passes that release. PyAV 12 is not supported: it has no ``StreamContainer.best()``, FFmpeg's
own choice of the main video stream, which the sampler uses by default.
"""

from __future__ import annotations

import math
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

PYAV_VERSION = tuple(int(part) for part in av.__version__.split(".")[:2])
"""(major, minor) of the installed PyAV."""


def open_input(path: str) -> av.container.InputContainer:
    """Open a file for reading; a tag that is not valid UTF-8 must not stop it from opening.

    PyAV 19 removed ``metadata_errors`` (it reads tags with ``surrogateescape`` and never
    fails); PyAV 13-18 raise on such a tag unless told to ignore the bytes that do not decode.
    """
    if PYAV_VERSION >= (19, 0):
        return av.open(path)
    return av.open(path, metadata_errors="ignore")


def keyframe_timestamps(stream: av.stream.Stream) -> list[int]:
    """Sorted timestamps of the demuxer's keyframe index; empty when it has none.

    PyAV 17 added ``Stream.index_entries``. With older releases the index cannot be read, and
    the sampler decides between reading ahead and seeking by distance alone, as it does for
    formats without an index (MPEG-TS): frames are the same, the work done may differ.
    """
    entries = getattr(stream, "index_entries", None)
    if entries is None:
        return []
    return sorted(entry.timestamp for entry in entries if entry.is_keyframe)


def reformat_one_thread(
    reformatter: VideoReformatter,
    frame: av.VideoFrame,
    *,
    width: int,
    height: int,
    format: str,
    interpolation: str,
) -> av.VideoFrame:
    """``reformatter.reformat(...)`` in one thread: a pool per small frame costs more than it saves.

    PyAV 17 added multithreaded reformatting and its ``threads`` argument; before it, reformatting
    always ran in the calling thread and the argument does not exist, and colours need the help
    of ``_source_colours_before_17``.
    """
    extra = {"threads": 1} if PYAV_VERSION >= (17, 0) else _source_colours_before_17(frame)
    return reformatter.reformat(
        frame, width=width, height=height, format=format, interpolation=interpolation, **extra
    )


_SWS_ITU601 = 5
"""swscale's BT.601 coefficients: its default, and also AVCOL_SPC_BT470BG's number."""


def _source_colours_before_17(frame: av.VideoFrame) -> dict[str, Any]:
    """Make PyAV 13-16 convert a Y'CbCr frame with its own matrix and range.

    Before PyAV 17 (which converts with ``sws_scale_frame``, reading both from the frame),
    ``reformat`` applies the frame's colour matrix only when the destination's differs from it
    and reads the source range from the argument alone: a BT.709 frame came out with BT.601's
    coefficients (red 200 as 186). The source matrix stays the frame's (None: the frame's own
    number, which swscale's table shares with FFmpeg's); naming another destination matrix
    (unused for RGB output) makes PyAV pass it on, and the range is the frame's.
    """
    if frame.format.is_rgb or not frame.format.name.startswith(("yuv", "nv")):
        return {}
    full_range = frame.color_range == 2 or frame.format.name.startswith("yuvj")
    return {
        "dst_colorspace": "ITU709" if frame.colorspace == _SWS_ITU601 else "ITU601",
        "src_color_range": "JPEG" if full_range else "MPEG",
        "dst_color_range": "JPEG",
    }


def frame_duration(frame: av.VideoFrame) -> int | None:
    """The frame's duration in its time base, or None when unknown.

    PyAV 15 added ``Frame.duration``; before it, the duration cannot be read (None).
    """
    return getattr(frame, "duration", None)


def frame_rotation(frame: av.VideoFrame) -> float:
    """Counter-clockwise degrees of the frame's display matrix (0 without one), like ffprobe.

    PyAV 14.1 added ``VideoFrame.rotation``; before it, the angle is computed from the
    ``DISPLAYMATRIX`` side data as FFmpeg's ``av_display_rotation_get`` does.
    """
    if hasattr(frame, "rotation"):
        return frame.rotation or 0
    side_data_list: Any = frame.side_data  # PyAV 13-14.0: a sequence of SideData
    for side_data in side_data_list:
        if getattr(side_data.type, "name", str(side_data.type)) == "DISPLAYMATRIX":
            matrix = np.frombuffer(bytes(side_data), dtype=np.int32)[:9] / 65536.0
            scale_x, scale_y = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
            if scale_x and scale_y:
                return -math.degrees(math.atan2(matrix[1] / scale_y, matrix[0] / scale_x))
    return 0


def field_order(codec_context: av.codec.context.CodecContext) -> int | None:
    """FFmpeg's ``AVFieldOrder`` of a video stream (0 unknown, 1 progressive, 2-5 interlaced).

    PyAV 18.1 added ``VideoCodecContext.field_order``; before it, the field order cannot be
    read (None), and only the frames' own ``interlaced_frame`` flag says a video is interlaced.
    """
    value = getattr(codec_context, "field_order", None)
    return int(value) if value is not None else None
