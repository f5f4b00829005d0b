"""``videoqa info`` and ``videoqa frames``: what is in a video, and which frame the sampler returns.

``frames`` is how a person (and a test) checks the sampler: it writes the frame shown at each
requested time as a PNG and, with ``--json``, reports the time of each frame and the decoding
work done.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import cv2

from videoqa.deinterlace import DEINTERLACE_MODES
from videoqa.errors import NoVideoStreamError, OutputError
from videoqa.media import (
    DEFAULT_MAX_PIXELS,
    FrameSampler,
    MediaInfo,
    StreamInfo,
    VideoInfo,
    describe,
    probe,
)
from videoqa.pathnames import readable

_WRITE_BATCH = 32
"""Frames sampled before they are written: memory stays bounded for ``--every`` on long files."""


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        width, height = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, e.g. 224x224, got {value!r}") from None
    if width < 1 or height < 1:
        raise click.BadParameter(f"width and height must be positive, got {value!r}")
    return width, height


_stream_option = click.option(
    "--stream",
    type=click.IntRange(min=0),
    default=None,
    help="Index of the video stream to use [default: the best one, as FFmpeg picks it].",
)
_deinterlace_option = click.option(
    "--deinterlace",
    type=click.Choice(DEINTERLACE_MODES),
    default="auto",
    show_default=True,
    help="Rebuild interlaced frames with FFmpeg's bwdif (auto: when the video says it is "
    "interlaced; one frame out per frame in, times unchanged).",
)
_max_pixels_option = click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse videos whose frames have more pixels than this.",
)


@click.command("info")
@click.argument("video", type=click.Path(path_type=Path))
@_stream_option
@_max_pixels_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info_command(video: Path, stream: int | None, max_pixels: int, as_json: bool) -> None:
    """Describe VIDEO: container, durations, start time and every stream.

    A file without a video stream (audio only) is described too, with a note that there is
    nothing to caption in it.
    """
    media_info: VideoInfo | MediaInfo
    try:
        media_info = probe(video, stream=stream, max_pixels=max_pixels)
    except NoVideoStreamError:
        media_info = describe(video)
    if as_json:
        click.echo(json.dumps(media_info.to_dict(), indent=2))
    elif isinstance(media_info, VideoInfo):
        click.echo(_info_table(media_info))
    else:
        click.echo(_media_table(media_info))


def _info_table(info: VideoInfo) -> str:
    used = info.streams[info.video_stream]
    if info.duration_source == "container":
        source = f"the container's (video stream {info.video_stream} declares none)"
    else:
        source = f"video stream {info.video_stream}'s"
    interlaced = "interlaced (deinterlaced by default)" if info.interlaced else "progressive"
    lines = [
        f"file        {readable(info.path)}",
        f"format      {_format(info)}{_bit_rate(info.bit_rate, ', ')}",
        f"duration    {_duration(info.duration)}, {source}: the timeline (clips end there)",
        f"container   {_duration(info.container_duration)}, start time "
        f"{info.start_time:.3f} s{_longest(info.streams, info.container_duration)}",
        f"video       stream {info.video_stream}: {info.width}x{info.height} upright"
        f"{_aspect(used)}, {info.fps:.3f} fps, "
        f"{info.frame_count if info.frame_count else 'unknown'} frames, {interlaced}",
    ]
    return "\n".join(lines + _tags_and_streams(info.tags, info.streams, info))


def _format(info: VideoInfo | MediaInfo) -> str:
    """``mp4 (mov,mp4,m4a,3gp,3g2,mj2)``: the container people name, then FFmpeg's demuxer."""
    if info.container and info.container != info.format_name:
        return f"{info.container} ({info.format_name})"
    return info.format_name


def _media_table(info: MediaInfo) -> str:
    lines = [
        f"file        {readable(info.path)}",
        f"format      {_format(info)}{_bit_rate(info.bit_rate, ', ')}",
        f"duration    {_duration(info.duration)} (the container's), start time "
        f"{info.start_time:.3f} s{_longest(info.streams, info.duration)}",
        f"note        {info.note}",
    ]
    return "\n".join(lines + _tags_and_streams(info.tags, info.streams, None))


def _tags_and_streams(
    tags: dict[str, str], streams: tuple[StreamInfo, ...], info: VideoInfo | None
) -> list[str]:
    lines = [f"tags        {_tags(tags)}"] if tags else []
    lines.append("streams")
    for stream in streams:
        marks = []
        if info is not None and stream.index == info.default_video_stream:
            marks.append("default")
        if info is not None and stream.index == info.video_stream:
            marks.append("used")
        suffix = f"  [{', '.join(marks)}]" if marks else ""
        first, *more = _stream_lines(stream)
        lines.append(f"  #{stream.index:<2} {stream.kind:<9} {first}{suffix}")
        lines.extend(f"{'':15}{line}" for line in more)
    return lines


def _stream_lines(stream: StreamInfo) -> list[str]:
    """A stream in two or three lines: what it is; how it looks or sounds; where it is from."""
    codec = stream.codec or "unknown codec"
    parts = [f"{codec} ({stream.profile})" if stream.profile else codec]
    if stream.decoder:
        parts[0] += f", decoder {stream.decoder}"
    details = []
    if stream.kind == "video":
        parts.append(f"{stream.width}x{stream.height}")
        if stream.rotation:
            parts.append(f"rotation {stream.rotation}")
        if (stream.upright_width, stream.upright_height) != (stream.width, stream.height):
            parts.append(f"shown {stream.upright_width}x{stream.upright_height}")
        if stream.average_rate:
            parts.append(f"{stream.average_rate:.3f} fps")
        parts.append(f"{stream.frame_count} frames" if stream.frame_count else "frames unknown")
        details.append(f"{stream.pixel_format} ({_picture(stream)})")
        details.append(f"SAR {stream.sample_aspect_ratio or '1:1 (none declared)'}")
        details.append(f"DAR {stream.display_aspect_ratio}")
    elif stream.kind == "audio":
        layout = f"{stream.channel_layout} " if stream.channel_layout else ""
        parts.append(f"{stream.sample_rate} Hz, {layout}({stream.channels} ch)")
    if stream.bit_rate:
        parts.append(_bit_rate(stream.bit_rate))
    parts.append(_duration(stream.duration))
    origin = [f"time base {stream.time_base}"]
    for name, value in (
        ("language", stream.language),
        ("title", stream.title),
        ("created", stream.creation_time),
    ):
        if value:
            origin.append(f"{name} {value}")
    return [", ".join(parts)] + ([", ".join(details)] if details else []) + [", ".join(origin)]


def _duration(seconds: float | None) -> str:
    """``13.013 s (00:00:13.013)``; ``unknown`` when there is none."""
    if seconds is None:
        return "duration unknown"
    millis = round(seconds * 1000)
    sign = "-" if millis < 0 else ""
    hours, rest = divmod(abs(millis), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    clock = f"{sign}{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
    return f"{seconds:.3f} s ({clock})"


def _picture(stream: StreamInfo) -> str:
    """Bit depth, colour and field order as ``ffmpeg -i`` shows them: ``8-bit, tv, bt709,
    progressive``; matrix/primaries/transfer spelt out when they differ."""
    parts = [f"{stream.bit_depth}-bit"]
    if stream.color_range:
        parts.append(stream.color_range)
    colours = [stream.color_space, stream.color_primaries, stream.color_transfer]
    if len(set(colours)) == 1 and colours[0]:
        parts.append(colours[0])
    elif any(colours):
        parts.append("/".join(colour or "unspecified" for colour in colours))
    else:
        parts.append("colours unspecified")
    parts.append(_FIELD_ORDER_WORDS.get(stream.field_order or "", "field order unknown"))
    return ", ".join(parts)


_FIELD_ORDER_WORDS = {
    "progressive": "progressive",
    "tt": "interlaced, top first",
    "bb": "interlaced, bottom first",
    "tb": "interlaced, top coded first (swapped)",
    "bt": "interlaced, bottom coded first (swapped)",
}
"""ffprobe's field order names as ``ffmpeg -i`` words them."""


def _longest(streams: tuple[StreamInfo, ...], container: float | None) -> str:
    """``; longest stream #2 subtitle, 16.570 s`` when a stream outlasts the container's
    duration (FFmpeg leaves long subtitle streams out of it)."""
    timed = [stream for stream in streams if stream.duration is not None]
    if not timed or container is None:
        return ""
    longest = max(timed, key=lambda stream: stream.duration or 0.0)
    if (longest.duration or 0.0) <= container + 0.0005:
        return ""
    return f"; longest stream #{longest.index} {longest.kind}, {longest.duration:.3f} s"


def _bit_rate(bits_per_second: int | None, prefix: str = "") -> str:
    if not bits_per_second:
        return ""
    if bits_per_second < 10_000:
        return f"{prefix}{bits_per_second} b/s"
    return f"{prefix}{bits_per_second / 1000:.0f} kb/s"


def _aspect(stream: StreamInfo) -> str:
    """`` (SAR 64:45, DAR 16:9)`` for non-square pixels: why the upright size is not stored one."""
    sar = stream.sample_aspect_ratio
    if not sar or sar == "1:1":
        return ""
    return f" (SAR {sar}, DAR {stream.display_aspect_ratio})"


def _tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{key}={readable(str(value))}" for key, value in tags.items())


@click.command("frames")
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--at", "at_times", type=float, multiple=True, help="A time in seconds (repeatable).")
@click.option(
    "--every",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Sample every SECONDS from the start to the end of the video.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the PNG files (created when needed).",
)
@click.option(
    "--size",
    callback=_parse_size,
    default=None,
    help="WIDTHxHEIGHT of the written frames, upright [default: the size a player shows: "
    "square pixels, rotation applied].",
)
@_stream_option
@_deinterlace_option
@_max_pixels_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def frames_command(
    video: Path,
    at_times: tuple[float, ...],
    every: float | None,
    out_dir: Path,
    size: tuple[int, int] | None,
    stream: int | None,
    deinterlace: str,
    max_pixels: int,
    as_json: bool,
) -> None:
    """Write the frames shown at the given times of VIDEO as PNG files into --out."""
    if bool(at_times) == (every is not None):
        raise click.UsageError("give either --at SECONDS (repeatable) or --every SECONDS")
    if any(not math.isfinite(time) for time in at_times):
        raise click.BadParameter("times must be finite numbers", param_hint="--at")
    # Opening decodes the first frame: a file that cannot be used fails before anything is
    # written.
    with FrameSampler(
        video, stream=stream, size=size, max_pixels=max_pixels, deinterlace=deinterlace
    ) as sampler:
        times = list(at_times) if every is None else _every(every, sampler.info.duration)
        written = []
        out_dir.mkdir(parents=True, exist_ok=True)
        for batch_start in range(0, len(times), _WRITE_BATCH):
            batch = times[batch_start : batch_start + _WRITE_BATCH]
            for position, frame in enumerate(sampler.sample(batch), start=batch_start):
                path = out_dir / f"frame-{position:05d}-{_millis(frame.time)}ms.png"
                if not cv2.imwrite(str(path), frame.rgb[:, :, ::-1]):
                    raise OutputError(path, "could not write the PNG file")
                written.append({"time": frame.time, "pts_time": frame.pts_time, "path": str(path)})
                if not as_json:
                    click.echo(f"{frame.time:.3f} s -> frame at {frame.pts_time:.6f} s: {path}")
        summary = {
            "frames": written,
            "decoded_frames": sampler.decoded_frames,
            "seeks": sampler.seeks,
            "restarts": sampler.restarts,
            "deinterlaced": sampler.deinterlacing,
        }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{len(written)} frames written to {out_dir} "
            f"({sampler.decoded_frames} decoded, {sampler.seeks} seeks)",
            err=True,
        )


def _every(step: float, duration: float) -> list[float]:
    count = max(1, math.ceil(duration / step - 1e-9))
    return [round(index * step, 6) for index in range(count)]


def _millis(time: float) -> str:
    sign = "-" if time < 0 else ""
    return f"{sign}{round(abs(time) * 1000):08d}"


COMMANDS: list[click.Command] = [info_command, frames_command]
