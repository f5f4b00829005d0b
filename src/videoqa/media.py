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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np
from av.audio.stream import AudioStream
from av.video.reformatter import VideoReformatter
from av.video.stream import VideoStream

from videoqa.av_compat import (
    frame_duration,
    frame_rotation,
    keyframe_timestamps,
    open_input,
    reformat_one_thread,
)
from videoqa.errors import MediaError, NoDecodableFrameError, TooLargeError, UnsupportedCodecError

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
    """One stream of the container; fields that do not apply to its kind are None."""

    index: int
    kind: str
    codec: str | None
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VideoInfo:
    """What the sampler works with: the container and the video stream it uses."""

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

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["streams"] = [stream.to_dict() for stream in self.streams]
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
    with FrameSampler(path, stream=stream, max_pixels=max_pixels) as sampler:
        return sampler.info


class FrameSampler:
    """Exact frames at given times from one open container.

    ``size`` is the (width, height) of the returned upright frames (None: the upright video
    size). ``decoded_frames`` and ``seeks`` count the work done, so callers can hold the
    sampler to the minimum: for each target, the frames from its keyframe up to it. With
    ``skip_non_reference`` the decoder skips frames that nothing needs (non-reference frames
    shown before a target's frame), so it decodes fewer than that. ``threads``: FFmpeg decoding
    threads (0: one per core).
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
    ) -> None:
        self.path = os.fspath(path)
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
            self.info = _video_info(self._container, self._stream, self.path, first, self._start)
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
                self._decoded.append(frame)
        return self._decoded.popleft()

    def _note_end_of_stream(self) -> None:
        """Decoding ran out of packets: the latest frame end seen is where the video ends."""
        if self._decoded_end is not None:
            self.decodable_end = float(self._decoded_end * self._time_base - self._start)

    # -- pixels -----------------------------------------------------------------------------

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """Upright RGB at the requested size, resized by swscale before rotating."""
        turns = (self.info.rotation // 90) % 4
        if self._size is None:
            width, height = frame.width, frame.height
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
            raise MediaError(path, f"no video stream ({kinds})")
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


def _stream_info(stream: av.stream.Stream, rotation: int = 0) -> StreamInfo:
    codec_context = stream.codec_context
    common: dict[str, Any] = {
        "index": stream.index,
        "kind": stream.type,
        "codec": codec_context.name if codec_context is not None else None,
        "time_base": str(stream.time_base) if stream.time_base else None,
        "start_time": _seconds(stream.start_time, stream.time_base),
        "duration": _seconds(stream.duration, stream.time_base),
        "frame_count": stream.frames or None,
        "language": stream.language,
    }
    if isinstance(stream, VideoStream) and codec_context is not None:
        video_context = stream.codec_context
        width, height = video_context.width, video_context.height
        turned = rotation % 180 == 90
        pixel_format = video_context.pix_fmt
        bit_depth = None
        if pixel_format:
            components = av.VideoFormat(pixel_format).components
            bit_depth = components[0].bits if components else None
        rate = stream.average_rate or stream.guessed_rate
        common.update(
            width=width,
            height=height,
            rotation=rotation,
            upright_width=height if turned else width,
            upright_height=width if turned else height,
            average_rate=float(rate) if rate else None,
            pixel_format=pixel_format,
            bit_depth=bit_depth,
        )
    elif isinstance(stream, AudioStream) and codec_context is not None:
        audio_context = stream.codec_context
        common.update(sample_rate=audio_context.sample_rate, channels=audio_context.channels)
    return StreamInfo(**common)


def _video_info(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    path: str,
    first_frame: av.VideoFrame,
    start: Fraction,
) -> VideoInfo:
    rotation = _rotation(first_frame)
    streams = tuple(
        _stream_info(s, rotation if s.index == stream.index else 0) for s in container.streams
    )
    chosen = streams[stream.index]
    if stream.duration is not None and stream.start_time is not None and stream.time_base:
        duration = float((stream.start_time + stream.duration) * stream.time_base - start)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
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
    )
