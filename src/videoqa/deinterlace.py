"""Deinterlacing decoded frames with FFmpeg's ``bwdif`` filter, one frame out per frame in.

Interlaced video (SD broadcast, tape transfers) stores two fields taken 1/50 or 1/60 s apart
in one frame; shown as it is, anything moving has comb teeth, and the model sees them.
``bwdif`` in ``send_frame`` mode rebuilds each frame from its first field (using the fields
around it), so every frame keeps its own time: the sampler's exactness does not change.

The filter needs the next frame to finish the current one, so a frame comes out one frame
late; ``flush`` hands out the last one at the end of the stream, and ``reset`` forgets
everything after the decoder was flushed (a seek or a restart at a keyframe), as the frames
before it are not the neighbours of the frames after it.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import av
import av.error
import av.filter

DEINTERLACE_MODES = ("auto", "on", "off")
"""``auto``: when the stream's field order or its first frame says interlaced; ``on``: every
frame; ``off``: never."""


def check_mode(deinterlace: str) -> str:
    """``deinterlace`` itself, or ValueError when it is not one of ``DEINTERLACE_MODES``."""
    if deinterlace not in DEINTERLACE_MODES:
        raise ValueError(
            f"deinterlace must be one of {', '.join(DEINTERLACE_MODES)}, got {deinterlace!r}"
        )
    return deinterlace


class Deinterlacer:
    """Frames in, deinterlaced frames out (each with its input's pts), one frame late.

    ``every_frame``: deinterlace frames that say they are progressive too (``--deinterlace
    on``); otherwise those pass unchanged (``bwdif``'s ``deint=interlaced``).
    """

    def __init__(self, time_base: Fraction, *, every_frame: bool) -> None:
        self._time_base = time_base
        which = "all" if every_frame else "interlaced"
        self._arguments = f"mode=send_frame:parity=auto:deint={which}"
        self._graph: av.filter.Graph | None = None
        self._shape: tuple[int, int, str] | None = None
        self._pending: deque[int] = deque()  # pts of the frames pushed and not yet out
        self._flushed = False

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        """Hand one decoded frame to the filter; returns the frames ready (usually one)."""
        ready = []
        shape = (frame.width, frame.height, frame.format.name)
        if self._graph is not None and shape != self._shape:
            ready = self.flush()  # the size or pixel format changed: a new graph for the new one
        if self._graph is None or self._flushed:
            self._start(frame, shape)
        assert self._graph is not None and frame.pts is not None
        self._pending.append(frame.pts)
        self._graph.push(frame)
        return ready + self._pull()

    def flush(self) -> list[av.VideoFrame]:
        """The end of the stream: the frames still held. Empty when already flushed."""
        if self._graph is None or self._flushed:
            return []
        self._flushed = True
        self._graph.push(None)
        return self._pull()

    def reset(self) -> None:
        """Forget the frames held: the decoder was flushed, what comes next is not adjacent."""
        self._graph = None
        self._pending.clear()
        self._flushed = False

    def _start(self, frame: av.VideoFrame, shape: tuple[int, int, str]) -> None:
        graph = av.filter.Graph()
        source = graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format, time_base=self._time_base
        )
        bwdif = graph.add("bwdif", self._arguments)
        sink = graph.add("buffersink")
        source.link_to(bwdif)
        bwdif.link_to(sink)
        graph.configure()
        self._graph, self._shape = graph, shape
        self._pending.clear()
        self._flushed = False

    def _pull(self) -> list[av.VideoFrame]:
        assert self._graph is not None
        frames: list[av.VideoFrame] = []
        while True:
            try:
                frame = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return frames
            assert isinstance(frame, av.VideoFrame)
            # bwdif counts time in half frames (for its send_field mode): give back the input's.
            frame.pts = self._pending.popleft()
            frame.time_base = self._time_base
            frames.append(frame)
