"""probe(): what the container and its streams say; and every kind of bad input, refused with
one error of the ``MediaError`` family naming the file and the reason."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from indexed_video import write_indexed_video

from videoqa.av_compat import PYAV_VERSION
from videoqa.errors import (
    MediaError,
    NoDecodableFrameError,
    NoVideoStreamError,
    TooLargeError,
    UnsupportedCodecError,
    VideoQAError,
)
from videoqa.media import FrameSampler, describe, probe


def _with_audio(path: Path, *, video: bool = True, seconds: float = 1.0) -> Path:
    """A file with (optionally) a 32x24 h264 stream and a mono AAC stream."""
    with av.open(str(path), "w") as container:
        audio = container.add_stream("aac", rate=8000)
        audio.layout = "mono"
        if video:
            picture = container.add_stream("libx264", rate=10)
            picture.width, picture.height, picture.pix_fmt = 32, 24, "yuv420p"
            for index in range(round(seconds * 10)):
                frame = av.VideoFrame.from_ndarray(
                    np.full((24, 32, 3), index * 20, np.uint8), "rgb24"
                )
                frame.pts = index
                container.mux(picture.encode(frame))
            container.mux(picture.encode(None))
        for index in range(round(seconds * 8)):
            samples = np.zeros((1, 1024), np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, index * 1024
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path


def test_probe_describes_container_and_streams(tmp_path):
    path = _with_audio(tmp_path / "av.mp4")
    info = probe(path)
    assert info.path == str(path)
    assert "mp4" in info.format_name
    assert info.duration == pytest.approx(1.0, abs=0.05)
    assert info.start_time == 0.0
    assert (info.width, info.height, info.rotation) == (32, 24, 0)
    assert info.fps == pytest.approx(10)
    assert info.frame_count == 10
    kinds = {stream.kind: stream for stream in info.streams}
    assert set(kinds) == {"video", "audio"}
    video, audio = kinds["video"], kinds["audio"]
    assert info.video_stream == info.default_video_stream == video.index
    assert (video.codec, video.width, video.height) == ("h264", 32, 24)
    assert (video.pixel_format, video.bit_depth) == ("yuv420p", 8)
    assert Fraction(video.time_base) > 0
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 8000, 1)
    assert audio.width is None and video.sample_rate is None
    data = info.to_dict()
    assert data["streams"][video.index]["codec"] == "h264"
    assert data["width"] == 32


def test_probe_reports_bit_depth_rotation_and_start_time(tmp_path):
    ten_bit = tmp_path / "ten.mkv"
    write_indexed_video(
        ten_bit,
        frames=5,
        pix_fmt="yuv420p10le",
        pts=[700 + 40 * i for i in range(5)],
        time_base=Fraction(1, 1000),
    )
    info = probe(ten_bit)
    stream = info.streams[info.video_stream]
    assert (stream.pixel_format, stream.bit_depth) == ("yuv420p10le", 10)
    assert info.start_time == pytest.approx(0.7)
    assert info.frame_count is None  # Matroska does not store it
    turned = tmp_path / "turned.mp4"
    write_indexed_video(turned, frames=3, width=64, height=48, rotation=90)
    info = probe(turned)
    stream = info.streams[0]
    assert (stream.width, stream.height, stream.rotation) == (64, 48, 90)
    assert (stream.upright_width, stream.upright_height) == (48, 64)
    assert (info.width, info.height) == (48, 64)


def test_the_best_video_stream_is_the_default_and_another_can_be_chosen(shared_media):
    path = shared_media / "nasa_13013.mp4"
    info = probe(path)
    assert info.default_video_stream == info.video_stream == 3  # as FFmpeg picks it
    assert (info.width, info.height, info.frame_count) == (480, 270, 390)
    assert info.fps == pytest.approx(30000 / 1001)
    chosen = probe(path, stream=0)
    assert (chosen.video_stream, chosen.default_video_stream) == (0, 3)
    assert (chosen.width, chosen.height, chosen.frame_count, chosen.fps) == (320, 180, 325, 25)
    kinds = [stream.kind for stream in info.streams]
    assert kinds == ["video", "audio", "subtitle", "video", "audio", "subtitle"]
    assert info.streams[2].codec == "mov_text"


def test_real_clips_probe(shared_media):
    pancake = probe(shared_media / "flipping_a_pancake.mkv")
    assert (pancake.width, pancake.height, pancake.frame_count) == (426, 240, None)
    assert pancake.duration == pytest.approx(10.4, abs=0.1)
    phone = probe(shared_media / "video_90.mov")
    assert (phone.width, phone.height, phone.rotation) == (320, 568, -90)
    assert phone.streams[0].width == 568
    hevc = probe(shared_media / "h265_video.mp4")
    assert (hevc.streams[0].codec, hevc.frame_count) == ("hevc", 10)


# -- bad input ------------------------------------------------------------------------------------


def _encoded(tmp_path: Path) -> bytes:
    path = tmp_path / "good.mp4"
    write_indexed_video(path, frames=10)
    return path.read_bytes()


def _mdat_payload(data: bytes) -> slice:
    at = data.index(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    return slice(at + 4, at - 4 + size)


def make_bad_input(kind: str, folder: Path) -> Path:
    """Files a user could hand us that are not usable videos (shared with the CLI tests)."""
    path = folder / {"audio-only": "sound.m4a", "text": "notes.mp4"}.get(kind, f"{kind}.mp4")
    if kind == "missing":
        return path
    if kind == "empty":
        path.touch()
    elif kind == "random-bytes":
        path.write_bytes(np.random.default_rng(1).bytes(4096))
    elif kind == "text":
        path.write_text("These are my notes, not a video.\n" * 20)
    elif kind == "truncated":
        data = _encoded(folder)  # a download cut short: the index (moov) at the end is lost
        path.write_bytes(data[: len(data) // 2])
    elif kind == "audio-only":
        _with_audio(path, video=False)
    elif kind == "unknown-codec":
        path.write_bytes(_encoded(folder).replace(b"avc1", b"qqq9"))
    elif kind == "no-decodable-frame":
        data = bytearray(_encoded(folder))
        payload = _mdat_payload(bytes(data))
        noise = np.random.default_rng(2).integers(0, 256, payload.stop - payload.start, np.uint8)
        data[payload] = noise.tobytes()
        path.write_bytes(bytes(data))
    else:
        raise ValueError(kind)
    return path


BAD_INPUTS = {
    "missing": (MediaError, "no such file"),
    "empty": (MediaError, "empty file"),
    "random-bytes": (MediaError, "not a readable media file"),
    "text": (MediaError, "not a readable media file"),
    "truncated": (MediaError, "not a readable media file"),
    "audio-only": (MediaError, "no video stream (audio)"),
    "unknown-codec": (UnsupportedCodecError, "video codec unknown"),
    "no-decodable-frame": (NoDecodableFrameError, "no frame of the video stream decodes"),
}


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_bad_input_raises_one_line_error_naming_file_and_reason(tmp_path, kind):
    path = make_bad_input(kind, tmp_path)
    error_type, reason = BAD_INPUTS[kind]
    for open_it in (probe, FrameSampler):
        with pytest.raises(error_type) as caught:
            open_it(path)
        message = str(caught.value)
        assert message.startswith(f"{path}: ") and reason in message
        assert "\n" not in message
        assert isinstance(caught.value, VideoQAError) and caught.value.path == str(path)


def test_a_file_with_no_decodable_frame_gives_the_error_without_warnings(tmp_path, caplog):
    path = make_bad_input("no-decodable-frame", tmp_path)
    with pytest.raises(NoDecodableFrameError, match="packets failed"):
        probe(path)
    assert not [record for record in caplog.records if record.levelname == "WARNING"]


def test_frames_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    path = tmp_path / "big.mp4"
    write_indexed_video(path, frames=3, width=64, height=48)
    assert probe(path, max_pixels=64 * 48).width == 64
    with pytest.raises(TooLargeError, match=r"64x48, over the limit of 3000 pixels"):
        probe(path, max_pixels=3000)
    with pytest.raises(TooLargeError):
        FrameSampler(path, max_pixels=3000)


def test_bad_stream_choices_and_folders(tmp_path, shared_media):
    with pytest.raises(MediaError, match="stream 1 is audio, not video"):
        probe(shared_media / "nasa_13013.mp4", stream=1)
    with pytest.raises(MediaError, match="no stream 9"):
        probe(shared_media / "nasa_13013.mp4", stream=9)
    with pytest.raises(MediaError, match="not a regular file"):
        probe(tmp_path)


# -- what ffprobe tells: durations, aspect, fields, colour, tags, audio ---------------------------


def test_durations_container_and_streams_and_which_one_is_the_timeline(shared_media):
    nasa = probe(shared_media / "nasa_13013.mp4")
    assert (nasa.duration, nasa.duration_source) == (pytest.approx(13.013), "video stream")
    assert nasa.container_duration == pytest.approx(13.056)  # FFmpeg's: audio and video only
    assert [stream.duration for stream in nasa.streams] == pytest.approx(
        [13.0, 13.056, 16.57, 13.013, 13.056, 16.57]
    )
    assert nasa.bit_rate and nasa.tags["encoder"].startswith("Lavf")
    pancake = probe(shared_media / "flipping_a_pancake.mkv")  # no stream duration in Matroska
    assert (pancake.duration_source, pancake.duration) == ("container", pancake.container_duration)
    assert pancake.streams[0].duration == pytest.approx(10.333)  # its DURATION tag


def test_video_and_audio_streams_of_a_real_clip_as_ffprobe_describes_them(shared_media):
    info = probe(shared_media / "nasa_13013.mp4")
    video, audio = info.streams[3], info.streams[1]
    assert (video.profile, video.sample_aspect_ratio, video.display_aspect_ratio) == (
        "High", "1:1", "16:9",
    )  # fmt: skip
    assert 100_000 < (video.bit_rate or 0) < 150_000
    colours = (video.color_range, video.color_space, video.color_primaries, video.color_transfer)
    assert colours == ("tv", "bt709", "bt709", "bt709")
    assert video.field_order == ("progressive" if PYAV_VERSION >= (18, 1) else None)
    assert not info.interlaced
    assert (audio.codec, audio.profile, audio.sample_rate) == ("aac", "LC", 8000)
    assert (audio.channels, audio.channel_layout, audio.language) == (2, "stereo", "eng")
    assert audio.sample_aspect_ratio is None and video.channel_layout is None
    data = info.to_dict()
    assert data["container_duration"] == pytest.approx(13.056)
    assert data["streams"][3]["color_space"] == "bt709"


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
def test_titles_languages_and_creation_times(tmp_path, suffix):
    path = tmp_path / f"tagged.{suffix}"
    created = "1987-09-12T10:00:00.000000Z"
    with av.open(str(path), "w") as container:
        container.metadata.update({"title": "Harvest festival 1987", "creation_time": created})
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        stream.metadata.update({"title": "camera A", "language": "deu"})
        for index in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((24, 32, 3), np.uint8), "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    info = probe(path)
    assert (info.tags["title"], info.tags["creation_time"]) == ("Harvest festival 1987", created)
    video = info.streams[0]
    assert video.language == "deu"
    if suffix == "mp4":  # MP4 dates every track as the file; Matroska tracks carry no date
        assert video.creation_time == created
        assert video.title in ("camera A", None)  # FFmpeg 7.0 (PyAV 13) skips MP4 track names
    else:
        assert video.title == "camera A"


def test_an_audio_only_file_is_described_but_not_sampled(tmp_path):
    path = _with_audio(tmp_path / "interview.m4a", video=False)
    described = describe(path)
    assert described.duration == pytest.approx(1.0, abs=0.2)
    [audio] = described.streams
    assert (audio.kind, audio.codec, audio.sample_rate) == ("audio", "aac", 8000)
    assert (audio.channels, audio.channel_layout) == (1, "mono")
    assert "nothing to caption" in described.note and described.to_dict()["note"]
    with pytest.raises(NoVideoStreamError, match="no video stream"):
        probe(path)
