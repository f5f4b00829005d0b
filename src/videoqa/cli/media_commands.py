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

from videoqa.errors import OutputError
from videoqa.media import DEFAULT_MAX_PIXELS, FrameSampler, StreamInfo, VideoInfo, probe
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
    """Describe VIDEO: container, duration, start time and every stream."""
    video_info = probe(video, stream=stream, max_pixels=max_pixels)
    if as_json:
        click.echo(json.dumps(video_info.to_dict(), indent=2))
    else:
        click.echo(_info_table(video_info))


def _info_table(info: VideoInfo) -> str:
    lines = [
        f"file        {readable(info.path)}",
        f"format      {info.format_name}",
        f"duration    {info.duration:.3f} s (start time {info.start_time:.3f} s)",
        f"video       stream {info.video_stream}: {info.width}x{info.height} upright, "
        f"{info.fps:.3f} fps, {info.frame_count if info.frame_count else 'unknown'} frames",
        "streams",
    ]
    for stream in info.streams:
        marks = []
        if stream.index == info.default_video_stream:
            marks.append("default")
        if stream.index == info.video_stream:
            marks.append("used")
        suffix = f"  [{', '.join(marks)}]" if marks else ""
        lines.append(f"  #{stream.index:<2} {stream.kind:<9} {_stream_summary(stream)}{suffix}")
    return "\n".join(lines)


def _stream_summary(stream: StreamInfo) -> str:
    parts = [stream.codec or "unknown codec"]
    if stream.kind == "video":
        parts.append(f"{stream.width}x{stream.height}")
        if stream.rotation:
            parts.append(
                f"rotation {stream.rotation} (upright {stream.upright_width}x"
                f"{stream.upright_height})"
            )
        if stream.average_rate:
            parts.append(f"{stream.average_rate:.3f} fps")
        parts.append(f"{stream.frame_count} frames" if stream.frame_count else "frames unknown")
        parts.append(f"{stream.pixel_format} ({stream.bit_depth}-bit)")
    elif stream.kind == "audio":
        parts.append(f"{stream.sample_rate} Hz, {stream.channels} ch")
    if stream.duration is not None:
        parts.append(f"{stream.duration:.3f} s")
    parts.append(f"time base {stream.time_base}")
    if stream.language:
        parts.append(stream.language)
    return ", ".join(parts)


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
    help="WIDTHxHEIGHT of the written frames, upright [default: the video's size].",
)
@_stream_option
@_max_pixels_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def frames_command(
    video: Path,
    at_times: tuple[float, ...],
    every: float | None,
    out_dir: Path,
    size: tuple[int, int] | None,
    stream: int | None,
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
    with FrameSampler(video, stream=stream, size=size, max_pixels=max_pixels) as sampler:
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
