"""Probe a video file and sample exact frames from it with PyAV.

The sampler returns, for each requested time on the project's timeline (seconds from the start
of the video as a player shows it: presentation time minus the container's start time), the
frame a player shows then: the last frame whose presentation time is at or before it. It
decodes as little as it can: targets in the GOP being decoded or the next one are reached by
reading packets ahead (restarting the decoder at a keyframe found among them), farther ones by
seeking to the keyframe before them; non-reference frames shown before a target's frame are not
decoded at all. Frames become RGB only when returned, resized inside swscale to the size asked
for. docs/media.md tells the whole story.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.audio.stream import AudioStream
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from videoqa import ffmpeg_names
from videoqa.av_compat import (
    field_order,
    frame_duration,
    frame_rotation,
    keyframe_timestamps,
    open_input,
    reformat_one_thread,
)
from videoqa.deinterlace import Deinterlacer, check_mode
from videoqa.errors import (
    MediaError,
    NoDecodableFrameError,
    NoVideoStreamError,
    TooLargeError,
    UnsupportedCodecError,
)

log = logging.getLogger("videoqa.media")

DEFAULT_MAX_PIXELS = 8192 * 4320
"""Largest stored frame (width x height) accepted: 8K. Larger files are refused, not decoded."""

DEFAULT_INTERPOLATION = "BICUBIC"
"""swscale filter for resizing; bicubic matches the CLIP/GIT image preprocessing."""

TIME_TOLERANCE = Fraction(1, 1_000_000)
"""A requested time this close before a frame counts as that frame's time.

Times are printed with six decimals; without this, a frame's own rounded time (0.066733 for
2002/30000) could select the frame before it.
"""

NO_INDEX_SEEK_SECONDS = 10
"""Without a keyframe index (e.g. MPEG-TS), targets further ahead than this are sought."""

_MAX_SEEK_RETRIES = 6
_MAX_READ_AHEAD_PACKETS = 1200


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the container; fields that do not apply to its kind are None.

    ``width``/``height`` are the stored frame size; ``upright_width``/``upright_height`` the
    size a player shows: the sample aspect ratio applied (square pixels), then the rotation.
    """

    index: int
    kind: str
    codec: str | None
    """The codec as ffprobe's ``codec_name`` says it (``av1``, not the decoder ``libdav1d``)."""
    time_base: str | None
    start_time: float | None
    duration: float | None
    frame_count: int | None
    language: str | None = None
    # video
    width: int | None = None
    height: int | None = None
    rotation: int | None = None
    upright_width: int | None = None
    upright_height: int | None = None
    average_rate: float | None = None
    pixel_format: str | None = None
    bit_depth: int | None = None
    # audio
    sample_rate: int | None = None
    channels: int | None = None
    # any kind (ffprobe's names); video: aspect, fields, colour; audio: channel layout
    profile: str | None = None
    bit_rate: int | None = None
    title: str | None = None
    creation_time: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    sample_aspect_ratio: str | None = None
    """As declared (``"64:45"``); None: none declared, pixels taken as square."""
    display_aspect_ratio: str | None = None
    field_order: str | None = None
    """``progressive``, ``tt``/``bb`` (interlaced, top/bottom field first), ``tb``/``bt``; None:
    unknown (also with PyAV before 18.1, which cannot read it)."""
    color_range: str | None = None
    color_space: str | None = None
    color_primaries: str | None = None
    color_transfer: str | None = None
    channel_layout: str | None = None
    decoder: str | None = None
    """FFmpeg's decoder for the codec, where it is not the codec's name (``libdav1d``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VideoInfo:
    """What the sampler works with: the container and the video stream it uses.

    ``duration`` is the timeline's length: the used video stream's end (its own duration, or the
    container's when the stream declares none, ``duration_source``) minus the start time.
    ``width``/``height`` are the size a player shows the first frame at: sample aspect ratio
    applied, then the rotation (the stored size is in ``streams``).
    """

    path: str
    format_name: str
    duration: float
    start_time: float
    streams: tuple[StreamInfo, ...]
    video_stream: int
    width: int
    height: int
    rotation: int
    fps: float
    frame_count: int | None
    default_video_stream: int = 0
    duration_source: str = "video stream"
    """``"video stream"`` or ``"container"``: where ``duration`` comes from."""
    container_duration: float | None = None
    """The container's own duration (FFmpeg's: its longest audio or video stream)."""
    bit_rate: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    interlaced: bool = False
    """The stream's field order or its first frame says interlaced (what ``auto`` deinterlaces)."""
    container: str | None = None
    """The container as people name it (``mp4``, ``mov``, ``webm``: ``format_name``'s member
    that the file's brand or DocType names; ``ffmpeg_names.container_name``)."""

    def to_dict(self) -> dict[str, Any]:
        return _info_dict(self)


@dataclass(frozen=True)
class MediaInfo:
    """A media file without a video stream (audio only): what ``videoqa info`` tells of it."""

    path: str
    format_name: str
    duration: float | None
    """The container's duration (seconds); None when it declares none."""
    start_time: float
    streams: tuple[StreamInfo, ...]
    bit_rate: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    note: str = "no video stream: nothing to caption or ask about"
    container: str | None = None
    """As ``VideoInfo.container``."""

    def to_dict(self) -> dict[str, Any]:
        return _info_dict(self)


def _info_dict(info: VideoInfo | MediaInfo) -> dict[str, Any]:
    """The JSON form ``videoqa info --json`` prints: streams as a list of objects."""
    data = asdict(info)
    data["streams"] = [stream.to_dict() for stream in info.streams]
    return data


@dataclass(frozen=True)
class Frame:
    """One sampled frame: the time asked for, the time of the frame shown then, its pixels."""

    time: float
    pts_time: float
    pts: int
    time_base: Fraction
    rgb: np.ndarray
    past_end: bool = False
    """The time lies more than a frame past the last frame that decodes (a truncated file):
    the pixels are that last frame's, which a player would not show at this time."""


def probe(
    path: str | os.PathLike[str], *, stream: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> VideoInfo:
    """Describe a video file; raises the ``MediaError`` family when it cannot be used.

    Decodes the first frame: it carries the display rotation and proves the file decodes.
    """
    with FrameSampler(path, stream=stream, max_pixels=max_pixels, deinterlace="off") as sampler:
        return sampler.info


def describe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe any media file from its headers, without decoding: audio-only files too.

    ``videoqa info`` uses it for files that have no video stream (``probe`` refuses them).
    """
    path = os.fspath(path)
    with _open_container(path) as container:
        start = container.start_time
        return MediaInfo(
            path=path,
            format_name=container.format.name,
            duration=_container_duration(container),
            start_time=start / av.time_base if start is not None else 0.0,
            streams=tuple(_stream_info(stream) for stream in container.streams),
            bit_rate=container.bit_rate or None,
            tags=dict(container.metadata),
            container=_container_name(container, path),
        )


class FrameSampler:
    """Exact frames at given times from one open container.

    ``size`` is the (width, height) of the returned upright frames (None: the size a player
    shows, with square pixels: the sample aspect ratio and the rotation applied).
    ``decoded_frames`` and ``seeks`` count the work done, so callers can hold the
    sampler to the minimum: for each target, the frames from its keyframe up to it. With
    ``skip_non_reference`` the decoder skips frames that nothing needs (non-reference frames
    shown before a target's frame), so it decodes fewer than that. ``threads``: FFmpeg decoding
    threads (0: one per core). ``deinterlace``: ``auto`` (when the stream's field order or its
    first frame says interlaced), ``on`` or ``off``; ``deinterlacing`` says what was decided.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stream: int | None = None,
        size: tuple[int, int] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        interpolation: str = DEFAULT_INTERPOLATION,
        threads: int = 0,
        skip_non_reference: bool = True,
        deinterlace: str = "auto",
    ) -> None:
        self.path = os.fspath(path)
        check_mode(deinterlace)
        self.deinterlacing = False
        """Whether decoded frames go through the deinterlacing filter (``bwdif``)."""
        self._deinterlacer: Deinterlacer | None = None
        self.decoded_frames = 0
        self.seeks = 0
        self.restarts = 0  # decoding restarted at a keyframe found by reading ahead (no seek)
        self.skipped_packets = 0
        self.decodable_end: float | None = None
        """Where decodable video ends (timeline seconds), once decoding has reached it."""
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size must be (width, height) of positive integers, got {size!r}")
        self._size = size
        self._interpolation = interpolation
        self._skip_non_reference = skip_non_reference
        self._reformatter = VideoReformatter()  # keeps its swscale context between frames
        self._container = _open_container(self.path)
        try:
            self._stream = _pick_video_stream(self._container, self.path, stream)
            _check_decodable(self._stream, self.path, max_pixels)
            codec_context = self._stream.codec_context
            codec_context.thread_type = "AUTO"
            codec_context.thread_count = threads
            self._time_base = _time_base(self._stream, self.path)
            self._start = _timeline_start(self._container, self._stream)
            self._stream_sar = _declared_sar(self._stream) or Fraction(1)
            # pts from which the decoder reported each sample aspect ratio (see _sar_at)
            self._decoder_sar_from: dict[int, Fraction | None] = {}
            self._decoder_sar_pts: list[int] = []  # the same keys, sorted
            self._keyframes: list[int] | None = None
            self._packets: Iterator[av.Packet] = self._container.demux(self._stream)
            self._queued: deque[av.Packet] = deque()  # read ahead, not yet decoded
            self._decoded: deque[av.VideoFrame] = deque()  # out of the decoder, not yet seen
            self._current: av.VideoFrame | None = None  # last frame at or before the target
            self._next: av.VideoFrame | None = None  # the frame after it, when decoded
            self._at_end = False
            self._previous_pts = 0
            self._decoded_end: int | None = None  # pts: latest end of a decoded frame
            # pts: display duration of the last frame decoded (from the stream's rate until then)
            rate = self._stream.average_rate or self._stream.guessed_rate
            self._frame_interval = max(1, round(1 / (rate * self._time_base))) if rate else 1
            self._skip_nonref_before: int | None = None  # pts: see _read_ahead
            self._skipping_nonref = False
            self._quiet_skips = True  # a file with no good frame gets one error, no warnings
            first = self._peek()
            self._quiet_skips = False
            if first is None:
                failed = f" ({self.skipped_packets} packets failed)" if self.skipped_packets else ""
                raise NoDecodableFrameError(
                    self.path, f"no frame of the video stream decodes{failed}"
                )
            if self.skipped_packets:
                log.warning(
                    "%s: skipped %d packets that do not decode before the first good frame",
                    self.path,
                    self.skipped_packets,
                )
            self._first_pts = _pts(first)
            interlaced = _says_interlaced(self._stream, first)
            if deinterlace == "on" or (deinterlace == "auto" and interlaced):
                self._start_deinterlacing(every_frame=deinterlace == "on")
            self.info = _video_info(
                self._container, self._stream, self.path, first, self._start, interlaced
            )
        except BaseException:
            self._container.close()
            raise

    # -- public -----------------------------------------------------------------------------

    def sample(self, times: Sequence[float]) -> list[Frame]:
        """One ``Frame`` per time, in request order (times need not be sorted or unique)."""
        targets = [self._target_pts(time) for time in times]
        results: list[Frame | None] = [None] * len(times)
        last_frame: av.VideoFrame | None = None
        last_rgb: np.ndarray | None = None
        for position in sorted(range(len(times)), key=targets.__getitem__):
            frame = self._frame_at(targets[position])
            past_end = self._past_end(targets[position])
            if frame is last_frame and last_rgb is not None:
                rgb = last_rgb.copy()
            else:
                rgb = self._to_rgb(frame)
                last_frame, last_rgb = frame, rgb
            results[position] = Frame(
                time=float(times[position]),
                pts_time=float(_pts(frame) * self._time_base - self._start),
                pts=_pts(frame),
                time_base=self._time_base,
                rgb=rgb,
                past_end=past_end,
            )
        return results  # type: ignore[return-value]

    def frames(self, start: float = 0.0, end: float | None = None) -> Iterator[Frame]:
        """Every frame shown from ``start`` until ``end`` (timeline seconds), in order.

        For passes that must see every frame (shot cut detection): each frame is decoded once,
        none is skipped, and only the frames that fall in the range become RGB. The first is
        the frame shown at ``start``; ``end`` (None: the end of the video) is exclusive.
        """
        frame: av.VideoFrame | None = self._frame_at(self._target_pts(start))
        self._skip_nonref_before = None  # every frame from here on is wanted
        end_pts = None if end is None else self._target_pts(end)
        first = True
        while frame is not None and (first or end_pts is None or _pts(frame) < end_pts):
            first = False
            time = float(_pts(frame) * self._time_base - self._start)
            yield Frame(time, time, _pts(frame), self._time_base, self._to_rgb(frame))
            frame = self._peek()
            if frame is not None:
                self._current, self._next = frame, None

    def close(self) -> None:
        self._current = self._next = None
        self._container.close()

    def __enter__(self) -> FrameSampler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- finding frames -----------------------------------------------------------------------

    def _target_pts(self, time: float) -> int:
        if not math.isfinite(time):
            raise ValueError(f"frame time must be a finite number, got {time!r}")
        return math.floor((Fraction(time) + self._start + TIME_TOLERANCE) / self._time_base)

    def _frame_at(self, target: int) -> av.VideoFrame:
        """The last frame with pts <= target (the first frame when target is earlier)."""
        if not self._can_continue_to(target):
            self._seek_before(target)
        self._read_ahead(target)
        frame = self._decode_up_to(target)
        if frame is None:
            # Decoding restarted at a keyframe that does not decode (a file cut short inside
            # it): the frames before it are what a player shows. Seeking tries earlier
            # keyframes until one decodes, then falls back to the start.
            self._seek_before(target)
            frame = self._decode_up_to(target)
        if frame is None:
            raise NoDecodableFrameError(self.path, "no frame decodes near the requested time")
        return frame

    def _past_end(self, target: int) -> bool:
        """Whether ``target`` lies more than a frame past the end of the last decodable frame.

        Only known once decoding has reached the end of the stream: a truncated file (a
        faststart MP4 cut short keeps its full index) declares more than it can decode.
        """
        if self.decodable_end is None or self._decoded_end is None:
            return False
        return target > self._decoded_end + self._frame_interval

    def _can_continue_to(self, target: int) -> bool:
        """Whether reading on from where we are reaches ``target`` without a seek."""
        if self._current is not None:
            if target < _pts(self._current):
                return False
            if self._at_end or (self._next is not None and _pts(self._next) > target):
                return True
            position = _pts(self._next or self._current)
        elif self._next is not None:
            if target < _pts(self._next):
                return _pts(self._next) == self._first_pts
            position = _pts(self._next)
        else:
            return False
        return not self._far_ahead(position, target)

    def _far_ahead(self, position: int, target: int) -> bool:
        """Two or more keyframes in between: a seek skips whole GOPs that reading would demux.

        Index timestamps are decode times in MP4 (at or before the presentation time), so one
        keyframe in the index between does not prove one lies before the target.
        """
        keyframes = self._keyframe_index()
        if keyframes:
            between = bisect.bisect_right(keyframes, target) - bisect.bisect_right(
                keyframes, position
            )
            return between >= 2
        return (target - position) * self._time_base > NO_INDEX_SEEK_SECONDS

    def _keyframe_index(self) -> list[int]:
        if self._keyframes is None:
            self._keyframes = keyframe_timestamps(self._stream)
        return self._keyframes

    def _read_ahead(self, target: int) -> None:
        """Read packets ahead without decoding them, and use what they say.

        Restart decoding at the last keyframe at or before ``target`` when one is among them
        (the frames before it are not needed), and let the decoder skip non-reference frames
        shown before the last packet at or before ``target``: no later frame needs them, and
        the frame shown at ``target`` is a later one.
        """
        if self._at_end or (self._next is not None and _pts(self._next) > target):
            return
        while len(self._queued) < _MAX_READ_AHEAD_PACKETS:
            if self._queued and _decode_time(self._queued[-1]) > target:
                break  # every later packet is shown after the target
            packet = next(self._packets, None)
            if packet is None:
                break
            self._queued.append(packet)
        keyframe_position = None
        shown_last = None
        for position, packet in enumerate(self._queued):
            if packet.pts is None or packet.pts > target:
                continue
            if packet.is_keyframe:
                keyframe_position = position
            shown_last = packet.pts if shown_last is None else max(shown_last, packet.pts)
        if self._skip_non_reference:
            self._skip_nonref_before = shown_last
        if keyframe_position is None:
            return
        for _ in range(keyframe_position):
            self._queued.popleft()
        self.restarts += 1
        self._stream.codec_context.flush_buffers()
        if self._deinterlacer is not None:
            self._deinterlacer.reset()
        self._decoded.clear()
        self._current = self._next = None

    def _seek_before(self, target: int) -> None:
        """Seek so that the first frame decoded is at or before ``target`` (or the first frame)."""
        seek_pts = target
        step = max(1, int(1 / self._time_base))
        keyframes = self._keyframe_index()
        for _ in range(_MAX_SEEK_RETRIES):
            self._seek(seek_pts)
            first = self._peek()
            if first is not None and (_pts(first) <= target or _pts(first) <= self._first_pts):
                return
            # Landed after the target: the index holds decode times (MP4, AVI), and this
            # keyframe is shown later than it is decoded. Go one keyframe further back.
            earlier = bisect.bisect_right(keyframes, seek_pts) - 2
            if earlier >= 0:
                seek_pts = keyframes[earlier]
            else:
                seek_pts = min(seek_pts, _pts(first) if first is not None else seek_pts) - step
                step *= 2
        log.debug(
            "%s: seeking did not land before pts %d; decoding from the start", self.path, target
        )
        self._seek(self._first_pts - step)

    def _seek(self, pts: int) -> None:
        try:
            self._container.seek(pts, stream=self._stream, backward=True)
        except av.error.FFmpegError as error:
            log.debug("%s: seek to pts %d failed (%s); rewinding", self.path, pts, error)
            self._container.seek(0, backward=True)
        self.seeks += 1
        self._restart_decoding()

    def _restart_decoding(self) -> None:
        self._skip_nonref_before = None
        self._stream.codec_context.flush_buffers()
        if self._deinterlacer is not None:
            self._deinterlacer.reset()
        self._packets = self._container.demux(self._stream)
        self._queued.clear()
        self._decoded.clear()
        self._current = self._next = None
        self._at_end = False

    def _peek(self) -> av.VideoFrame | None:
        """The next frame in presentation order, decoded but not yet consumed."""
        if self._next is None and not self._at_end:
            self._next = self._decode_next()
            self._at_end = self._next is None
        return self._next

    def _decode_up_to(self, target: int) -> av.VideoFrame | None:
        while True:
            upcoming = self._peek()
            if upcoming is None or _pts(upcoming) > target:
                break
            self._current, self._next = upcoming, None
        return self._current if self._current is not None else self._next

    def _decode_next(self) -> av.VideoFrame | None:
        """Decode packets until a frame comes out; a packet that fails is skipped with a warning."""
        while not self._decoded:
            packet = self._queued.popleft() if self._queued else next(self._packets, None)
            if packet is None:
                if self._deinterlacer is not None:  # the filter still holds the last frame
                    self._decoded.extend(self._deinterlacer.flush())
                    if self._decoded:
                        break
                self._note_end_of_stream()
                return None
            skippable = (
                self._skip_nonref_before is not None
                and packet.pts is not None
                and packet.pts < self._skip_nonref_before
            )
            if skippable != self._skipping_nonref:
                self._stream.codec_context.skip_frame = "NONREF" if skippable else "DEFAULT"
                self._skipping_nonref = skippable
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                self.skipped_packets += 1
                log.log(
                    logging.DEBUG if self._quiet_skips else logging.WARNING,
                    "%s: skipped a packet that does not decode (pts %s): %s",
                    self.path,
                    packet.pts,
                    _ffmpeg_reason(error),
                )
                continue
            for frame in frames:
                self.decoded_frames += 1
                duration = frame_duration(frame)
                if frame.pts is None:  # raw streams: continue from the previous frame
                    frame.pts = self._previous_pts + (duration or 1)
                self._frame_interval = duration or self._frame_interval
                end = frame.pts + self._frame_interval
                if self._decoded_end is None or end > self._decoded_end:
                    self._decoded_end = end
                self._previous_pts = frame.pts
                self._note_decoder_sar(frame)
                if self._deinterlacer is not None:
                    self._decoded.extend(self._deinterlacer.push(frame))
                else:
                    self._decoded.append(frame)
        return self._decoded.popleft()

    def _start_deinterlacing(self, *, every_frame: bool) -> None:
        """Send decoded frames through the filter from now on, those already decoded too."""
        self._deinterlacer = Deinterlacer(self._time_base, every_frame=every_frame)
        self.deinterlacing = True
        held = ([self._next] if self._next is not None else []) + list(self._decoded)
        self._next = None
        self._decoded.clear()
        for frame in held:
            self._decoded.extend(self._deinterlacer.push(frame))
        self._at_end = False
        self._peek()

    # -- sample aspect ratio -------------------------------------------------------------------

    def _note_decoder_sar(self, frame: av.VideoFrame) -> None:
        """Remember the decoder's sample aspect ratio from this keyframe on.

        PyAV does not give a frame's own SAR, so the decoder's is read instead. It changes
        when the decoder reads new stream parameters, which start at a keyframe, but a decoder
        that reorders frames reads them before it puts out the last frames shown ahead of that
        keyframe: so it is read at keyframes (and the first frame), and holds until the next.
        """
        if self._decoder_sar_pts and not frame.key_frame:
            return
        pts = _pts(frame)
        sar = _valid_sar(self._stream.codec_context.sample_aspect_ratio)
        if self._decoder_sar_pts and self._decoder_sar_at(pts) == sar:
            return
        if pts not in self._decoder_sar_from:
            bisect.insort(self._decoder_sar_pts, pts)
        self._decoder_sar_from[pts] = sar

    def _decoder_sar_at(self, pts: int) -> Fraction | None:
        position = bisect.bisect_right(self._decoder_sar_pts, pts) - 1
        return self._decoder_sar_from[self._decoder_sar_pts[max(position, 0)]]

    def _sar_at(self, pts: int) -> Fraction:
        """The sample aspect ratio a frame is shown with: the stream's (the container's, when it
        declares one), or the frames' own once they change it from what the first frame had."""
        sar = self._decoder_sar_at(pts)
        if sar is None or sar == self._decoder_sar_at(self._first_pts):
            return self._stream_sar
        return sar

    def _note_end_of_stream(self) -> None:
        """Decoding ran out of packets: the latest frame end seen is where the video ends."""
        if self._decoded_end is not None:
            self.decodable_end = float(self._decoded_end * self._time_base - self._start)

    # -- pixels -----------------------------------------------------------------------------

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """Upright RGB at the requested size, resized by swscale before rotating."""
        turns = (self.info.rotation // 90) % 4
        if self._size is None:
            width, height = _display_size(frame.width, frame.height, self._sar_at(_pts(frame)))
        elif turns % 2:
            height, width = self._size
        else:
            width, height = self._size
        rgb: np.ndarray = reformat_one_thread(
            self._reformatter,
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation=self._interpolation,
        ).to_ndarray()
        if turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
        return rgb


def open_samplers(
    stack: ExitStack,
    path: str | os.PathLike[str],
    sizes: Iterable[tuple[int, int]],
    *,
    stream: int | None,
    deinterlace: str,
    threads: int = 0,
) -> dict[tuple[int, int], FrameSampler]:
    """One ``FrameSampler`` per distinct frame size, closed with ``stack``: models (roles)
    that take frames of one size share a decoder."""
    samplers: dict[tuple[int, int], FrameSampler] = {}
    for size in sizes:
        if size not in samplers:
            samplers[size] = stack.enter_context(
                FrameSampler(path, stream=stream, size=size, deinterlace=deinterlace,
                             threads=threads)  # fmt: skip
            )
    return samplers


def _pts(frame: av.VideoFrame) -> int:
    """A decoded frame's pts: ``_decode_next`` gives every frame one (raw streams too)."""
    assert frame.pts is not None
    return frame.pts


def _time_base(stream: av.stream.Stream, path: str) -> Fraction:
    if not stream.time_base:
        raise MediaError(path, "video stream has no time base")
    return Fraction(stream.time_base)  # PyAV 19 returns an av.AVRational, Frame wants a Fraction


def _decode_time(packet: av.Packet) -> int:
    """When a packet is decoded: no frame shown before this time comes from a later packet."""
    if packet.dts is not None:
        return packet.dts
    return packet.pts if packet.pts is not None else -(2**62)


# -- opening and describing ---------------------------------------------------------------------


def _open_container(path: str) -> av.container.InputContainer:
    file = Path(path)
    if not file.exists():
        raise MediaError(path, "no such file")
    if not file.is_file():
        raise MediaError(path, "not a regular file")
    if file.stat().st_size == 0:
        raise MediaError(path, "empty file")
    try:
        return open_input(path)
    except av.error.FFmpegError as error:
        raise MediaError(path, f"not a readable media file ({_ffmpeg_reason(error)})") from None
    except OSError as error:
        raise MediaError(path, f"cannot be read ({error.strerror or error})") from None


def _ffmpeg_reason(error: av.error.FFmpegError) -> str:
    return (getattr(error, "strerror", None) or str(error)).strip().rstrip(".")


def _pick_video_stream(
    container: av.container.InputContainer, path: str, index: int | None
) -> av.video.stream.VideoStream:
    videos = list(container.streams.video)
    if index is None:
        if not videos:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise NoVideoStreamError(path, f"no video stream ({kinds})")
        best = container.streams.best("video")
        return best if isinstance(best, VideoStream) else videos[0]
    streams = {s.index: s for s in container.streams}
    if index not in streams:
        raise MediaError(path, f"no stream {index} (the file has {len(streams)} streams)")
    chosen = streams[index]
    if not isinstance(chosen, VideoStream):
        raise MediaError(path, f"stream {index} is {chosen.type}, not video")
    return chosen


def _check_decodable(stream: av.video.stream.VideoStream, path: str, max_pixels: int) -> None:
    codec_context = stream.codec_context
    name = codec_context.name if codec_context is not None else None
    if codec_context is None or not name or name == "none":
        raise UnsupportedCodecError(path, "video codec unknown to this FFmpeg build, no decoder")
    try:
        av.codec.Codec(name, "r")
    except (av.error.FFmpegError, ValueError):
        raise UnsupportedCodecError(path, f"no decoder for video codec {name!r}") from None
    width, height = codec_context.width, codec_context.height
    if width <= 0 or height <= 0:
        raise MediaError(path, f"video stream has no frame size ({width}x{height})")
    if width * height > max_pixels:
        raise TooLargeError(
            path, f"frames are {width}x{height}, over the limit of {max_pixels} pixels"
        )


def _timeline_start(container: av.container.InputContainer, stream: av.stream.Stream) -> Fraction:
    """The container's start time: zero on the project's timeline."""
    if container.start_time is not None:
        return Fraction(container.start_time, av.time_base)
    if stream.start_time is not None:
        return stream.start_time * stream.time_base
    return Fraction(0)


def _rotation(frame: av.VideoFrame) -> int:
    """The display rotation as ffprobe prints it, snapped to a quarter turn: -90, 0, 90 or 180.

    Counter-clockwise degrees: the stored frame is turned by this much to show it upright.
    """
    quarter_turns = round(frame_rotation(frame) / 90) % 4
    return {0: 0, 1: 90, 2: 180, 3: -90}[quarter_turns]


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return float(value * time_base) if value is not None and time_base else None


def _valid_sar(value: Any) -> Fraction | None:
    """A sample aspect ratio as a Fraction; None when unset (PyAV 19: a falsy 0/1)."""
    if not value or value <= 0:
        return None
    return Fraction(value.numerator, value.denominator)


def _declared_sar(stream: VideoStream) -> Fraction | None:
    """The stream's sample aspect ratio as FFmpeg guesses it: the container's, else the codec's."""
    return _valid_sar(stream.sample_aspect_ratio)


def _display_size(width: int, height: int, sar: Fraction) -> tuple[int, int]:
    """The frame with square pixels, as players show it: the width stretched (or narrowed)."""
    if sar == 1:
        return width, height
    return max(1, math.floor(width * sar + Fraction(1, 2))), height


def _ratio(value: Fraction) -> str:
    return f"{value.numerator}:{value.denominator}"


def _says_interlaced(stream: VideoStream, first_frame: av.VideoFrame) -> bool:
    """The stream's field order or the first frame's flag says the video is interlaced."""
    order = ffmpeg_names.name_of(ffmpeg_names.FIELD_ORDERS, field_order(stream.codec_context))
    return order in ffmpeg_names.INTERLACED_FIELD_ORDERS or bool(first_frame.interlaced_frame)


def _container_duration(container: av.container.InputContainer) -> float | None:
    return container.duration / av.time_base if container.duration is not None else None


def _container_name(container: av.container.InputContainer, path: str) -> str | None:
    brand = dict(container.metadata).get("major_brand")
    return ffmpeg_names.container_name(container.format.name, brand=brand, path=path)


def _tag_seconds(text: str | None) -> float | None:
    """Seconds from a Matroska ``DURATION`` tag (``00:00:10.333000000``); None if not one."""
    try:
        hours, minutes, seconds = (text or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _stream_info(stream: av.stream.Stream, rotation: int = 0) -> StreamInfo:
    codec_context = stream.codec_context
    tags = dict(stream.metadata)
    lowered = {key.lower(): value for key, value in tags.items()}
    duration = _seconds(stream.duration, stream.time_base)
    decoder = codec_context.name if codec_context is not None else None
    codec = ffmpeg_names.codec_name(decoder)
    common: dict[str, Any] = {
        "index": stream.index,
        "kind": stream.type,
        "codec": codec,
        "decoder": decoder if decoder != codec else None,
        "time_base": str(stream.time_base) if stream.time_base else None,
        "start_time": _seconds(stream.start_time, stream.time_base),
        "duration": duration if duration is not None else _tag_seconds(lowered.get("duration")),
        "frame_count": stream.frames or None,
        "language": stream.language,
        "profile": getattr(stream, "profile", None) or None,
        "bit_rate": getattr(codec_context, "bit_rate", None) or None,
        "title": lowered.get("title") or lowered.get("name"),  # MP4 keeps a track's as name
        "creation_time": lowered.get("creation_time"),
        "tags": tags,
    }
    if isinstance(stream, VideoStream) and codec_context is not None:
        video_context = stream.codec_context
        width, height = video_context.width, video_context.height
        sar = _declared_sar(stream)
        shown_width, shown_height = _display_size(width, height, sar or Fraction(1))
        turned = rotation % 180 == 90
        pixel_format = video_context.pix_fmt
        bit_depth = None
        if pixel_format:
            components = av.VideoFormat(pixel_format).components
            bit_depth = components[0].bits if components else None
        rate = stream.average_rate or stream.guessed_rate
        names = ffmpeg_names
        common.update(
            width=width,
            height=height,
            rotation=rotation,
            upright_width=shown_height if turned else shown_width,
            upright_height=shown_width if turned else shown_height,
            average_rate=float(rate) if rate else None,
            pixel_format=pixel_format,
            bit_depth=bit_depth,
            sample_aspect_ratio=_ratio(sar) if sar else None,
            display_aspect_ratio=_ratio(Fraction(width, height) * (sar or 1)) if height else None,
            field_order=names.name_of(names.FIELD_ORDERS, field_order(video_context)),
            color_range=names.name_of(names.COLOR_RANGES, video_context.color_range),
            color_space=names.name_of(names.COLOR_SPACES, video_context.colorspace),
            color_primaries=names.name_of(names.COLOR_PRIMARIES, video_context.color_primaries),
            color_transfer=names.name_of(names.COLOR_TRANSFERS, video_context.color_trc),
        )
    elif isinstance(stream, AudioStream) and codec_context is not None:
        audio_context = stream.codec_context
        layout = getattr(audio_context, "layout", None)
        common.update(
            sample_rate=audio_context.sample_rate,
            channels=audio_context.channels,
            channel_layout=getattr(layout, "name", None) or None,
        )
    return StreamInfo(**common)


def _video_info(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: str,
    first_frame: av.VideoFrame,
    start: Fraction,
    interlaced: bool,
) -> VideoInfo:
    rotation = _rotation(first_frame)
    streams = tuple(
        _stream_info(s, rotation if s.index == stream.index else 0) for s in container.streams
    )
    chosen = streams[stream.index]
    container_duration = _container_duration(container)
    source = "video stream"
    if stream.duration is not None and stream.start_time is not None and stream.time_base:
        duration = float((stream.start_time + stream.duration) * stream.time_base - start)
    else:
        duration, source = container_duration or 0.0, "container"
    best = container.streams.best("video")
    return VideoInfo(
        path=path,
        format_name=container.format.name,
        duration=duration,
        start_time=float(start),
        streams=streams,
        video_stream=stream.index,
        width=chosen.upright_width or 0,
        height=chosen.upright_height or 0,
        rotation=rotation,
        fps=chosen.average_rate or 0.0,
        frame_count=chosen.frame_count,
        default_video_stream=best.index if best is not None else stream.index,
        duration_source=source,
        container_duration=container_duration,
        bit_rate=container.bit_rate or None,
        tags=dict(container.metadata),
        interlaced=interlaced,
        container=_container_name(container, path),
    )
