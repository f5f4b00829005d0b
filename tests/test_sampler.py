"""FrameSampler: the exact frame a player shows at each time, with the least decoding.

Videos are generated here with every frame showing its own index (tests/indexed_video.py); the
index read back from the returned pixels must be the one the timeline says: the last frame
whose presentation time is at or before the requested time. The timeline is taken from a plain
decode of the whole file, so container rounding (Matroska's milliseconds, AVI's frame counts)
is what a player would see too.
"""

from __future__ import annotations

import bisect
import json
import logging
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import VideoReformatter
from indexed_video import (
    expected_index,
    minimum_decodes,
    read_index,
    reference_timeline,
    write_indexed_video,
)

from videoqa.av_compat import PYAV_VERSION, reformat_one_thread
from videoqa.media import FrameSampler

X264_LONG_GOP = {"x264-params": "keyint=30:min-keyint=30:scenecut=0:bframes=3:b-pyramid=normal"}
X264_SHORT_GOP = {"x264-params": "keyint=8:min-keyint=8:scenecut=0:bframes=2"}
X265 = {"x265-params": "keyint=12:min-keyint=12:scenecut=0:bframes=3:log-level=error"}
VFR_PTS = [0, 30, 45, 100, 110, 200, 205, 300, 420, 430, 440, 600, 610, 700, 960, 1000]

# name -> (file name, write_indexed_video arguments)
CASES: dict[str, tuple[str, dict]] = {
    "h264-bframes-long-gop-mp4": ("a.mp4", {"frames": 60, "options": X264_LONG_GOP}),
    "h264-short-gop-mp4": ("b.mp4", {"options": X264_SHORT_GOP}),
    "h264-mkv": ("c.mkv", {"options": X264_SHORT_GOP}),
    "hevc-mp4": ("d.mp4", {"codec": "libx265", "options": X265}),
    "vp9-webm": ("e.webm", {"codec": "libvpx-vp9", "options": {"g": "10", "deadline": "realtime"}}),
    "mpeg4-avi": ("f.avi", {"codec": "mpeg4", "options": {"g": "10", "bf": "2"}}),
    "av1-mp4": (  # the SVT-AV1 of PyAV 14 refuses frames under 64 pixels high
        "g.mp4",
        {"codec": "libsvtav1", "frames": 24, "height": 64, "options": {"g": "8"}},
    ),
    "h264-10bit-mp4": (
        "h.mp4",
        {"pix_fmt": "yuv420p10le", "options": X264_SHORT_GOP},
    ),
    "hevc-10bit-mkv": (
        "i.mkv",
        {"codec": "libx265", "pix_fmt": "yuv420p10le", "frames": 24, "options": X265},
    ),
    "vfr-mp4": (
        "j.mp4",
        {"frames": len(VFR_PTS), "pts": VFR_PTS, "time_base": Fraction(1, 1000)},
    ),
    "vfr-bframes-mkv": (
        "k.mkv",
        {
            "frames": len(VFR_PTS),
            "pts": VFR_PTS,
            "time_base": Fraction(1, 1000),
            "options": X264_SHORT_GOP,
        },
    ),
    "h264-mpegts-no-index": ("m.ts", {"frames": 60, "options": X264_SHORT_GOP}),
    "start-time-mkv": (
        "l.mkv",
        {
            "frames": 30,
            "pts": [1500 + 40 * i for i in range(30)],
            "time_base": Fraction(1, 1000),
            "options": X264_SHORT_GOP,
        },
    ),
}
END_OF_FILE_FRAMES = 3
"""Frames a decoder with B-frame reordering releases at once when flushed at the end."""
CLOSED_GOP_CASES = [  # x265's open GOPs decode a GOP's leading frames along (see docs/media.md)
    "h264-bframes-long-gop-mp4",
    "h264-short-gop-mp4",
    "h264-mkv",
    "vp9-webm",
    "mpeg4-avi",
    "vfr-bframes-mkv",
]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory):
    """Encode each case once per module, on first use."""
    folder = tmp_path_factory.mktemp("indexed")
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in made:
            file_name, arguments = CASES[name]
            codec = arguments.get("codec", "libx264")
            if codec not in av.codecs_available:
                pytest.skip(f"this FFmpeg build has no {codec} encoder")
            write_indexed_video(folder / file_name, **arguments)
            made[name] = folder / file_name
        return made[name]

    return make


def _times_around(frame_times: list[Fraction]) -> list[float]:
    """Each frame's own time, the middle of each gap, before the start and past the end."""
    times = [float(t) for t in frame_times]
    times += [float((a + b) / 2) for a, b in zip(frame_times, frame_times[1:], strict=False)]
    times += [-1.0, 0.0, float(frame_times[-1]) + 3.0]
    random.Random(7).shuffle(times)
    return times + times[:5]  # and some repeated


@pytest.mark.parametrize("case", list(CASES))
def test_every_time_gets_the_frame_the_timeline_shows(videos, case):
    path = videos(case)
    timeline = reference_timeline(path)
    frame_times = [time for time, _ in timeline]
    times = _times_around(frame_times)
    half = len(times) // 2
    with FrameSampler(path, size=(32, 24)) as sampler:
        frames = sampler.sample(times[:half])
        frames += sampler.sample(times[half:])  # starts over: seeks back
        assert sampler.seeks >= 1
    assert len(frames) == len(times)
    for time, frame in zip(times, frames, strict=True):
        index = expected_index(frame_times, time)
        assert read_index(frame.rgb) == index, f"t={time}"
        assert frame.time == time
        assert frame.pts_time == pytest.approx(float(frame_times[index]), abs=1e-9)
        assert frame.pts * frame.time_base == pytest.approx(
            frame_times[index] + Fraction(sampler.info.start_time), abs=1e-9
        )
        assert frame.rgb.shape == (24, 32, 3) and frame.rgb.dtype == np.uint8
        assert frame.past_end == (time > float(frame_times[-1]) + 1), f"t={time}"
    assert sampler.decodable_end is not None and sampler.decodable_end > float(frame_times[-1])


def test_a_truncated_faststart_mp4_says_where_decodable_video_ends(tmp_path):
    """The index at the front still lists every frame; the data of the later ones is gone."""
    whole = tmp_path / "whole.mp4"
    frame_times = write_indexed_video(
        whole, frames=96, width=320, height=240, options={"g": "12"},
        container_options={"movflags": "faststart"},
    )
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 10])
    times = [0.0, 1.0, 3.0, 3.9]
    with FrameSampler(cut, size=(64, 48)) as sampler:
        assert sampler.info.duration == pytest.approx(4.0)  # what the index declares
        frames = sampler.sample(times)
        end = sampler.decodable_end
    assert end is not None and 0.5 < end < 3.0
    last_index = round(end * 24) - 1
    for time, frame in zip(times, frames, strict=True):
        if time < end:
            assert not frame.past_end and read_index(frame.rgb) == expected_index(frame_times, time)
        else:
            assert frame.past_end, f"t={time} is after the decodable end {end}"
            assert read_index(frame.rgb) == last_index


def test_a_file_cut_inside_a_keyframe_gives_the_frames_before_it(tmp_path):
    """Reading ahead restarts decoding at the last keyframe before a target; when that keyframe
    is cut short and does not decode, the frames before it are still the ones shown."""
    whole = tmp_path / "whole.mp4"
    frame_times = write_indexed_video(
        whole, frames=48, width=320, height=240,
        options={"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0"},
        container_options={"movflags": "faststart"},
    )  # fmt: skip
    with av.open(str(whole)) as container:
        keyframes = [
            (packet.pos, packet.size)
            for packet in container.demux(container.streams.video[0])
            if packet.is_keyframe and packet.size
        ]
    position, size = keyframes[2]  # the keyframe of frame 24
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: position + size // 2])
    with FrameSampler(cut, size=(64, 48)) as sampler:
        frames = sampler.sample([0.5, 1.5, 0.9])
        end = sampler.decodable_end
    # Frame 23 decodes or not, by FFmpeg release (frame threads drop it with the bad packet).
    last = round(end * 24) - 1 if end is not None else None
    assert last in (22, 23) and end == pytest.approx(float(frame_times[last + 1]))
    assert [read_index(frame.rgb) for frame in frames] == [12, last, 21]
    assert [frame.past_end for frame in frames] == [False, True, False]


def test_a_non_zero_start_time_is_zero_on_the_timeline(videos):
    with FrameSampler(videos("start-time-mkv")) as sampler:
        assert sampler.info.start_time == pytest.approx(1.5)
        first, second, last = sampler.sample([0.0, 0.04, 100.0])
    assert type(first.time_base) is Fraction and first.time_base == Fraction(1, 1000)
    assert (first.pts_time, read_index(first.rgb)) == (0.0, 0)
    assert (second.pts_time, read_index(second.rgb)) == (pytest.approx(0.04), 1)
    assert read_index(last.rgb) == 29


@pytest.mark.parametrize("case", CLOSED_GOP_CASES)
def test_decodes_only_from_each_targets_keyframe_up_to_it(videos, case):
    """Without skipping non-reference frames, decoded frames are the minimum, plus one
    look-ahead frame per GOP touched (to know that the target's frame is the last one at or
    before it), the first frame (decoded when opening) and the frames a B-frame decoder hands
    out together at the end of the file. Skipping them decodes no more than that.

    One decoding thread: with FFmpeg's frame threading a run also decodes up to (threads - 1)
    frames ahead of the one it stops at (counted, as they are decoded).
    """
    path = videos(case)
    timeline = reference_timeline(path)
    frame_times = [time for time, _ in timeline]
    keyframes = [position for position, (_, key) in enumerate(timeline) if key]
    end = float(timeline[-1][0])
    rng = random.Random(case)
    for count in (1, 3, 6, 10):
        times = [rng.uniform(0, end) for _ in range(count)]
        gops = {bisect.bisect_right(keyframes, expected_index(frame_times, time)) for time in times}
        minimum = minimum_decodes(timeline, times)
        allowed = minimum + len(gops) + 1 + END_OF_FILE_FRAMES
        decoded = {}
        for skip in (False, True):
            with FrameSampler(path, size=(16, 12), threads=1, skip_non_reference=skip) as sampler:
                frames = sampler.sample(times)
                decoded[skip] = sampler.decoded_frames
            shown = [read_index(frame.rgb) for frame in frames]
            assert shown == [expected_index(frame_times, time) for time in times]
        assert minimum <= decoded[False] <= allowed, times
        assert decoded[True] <= decoded[False]


def test_non_reference_frames_before_the_target_are_not_decoded(videos):
    path = videos("h264-bframes-long-gop-mp4")  # 3 B-frames between references
    with FrameSampler(path, threads=1) as skipping:
        [frame] = skipping.sample([1.1])  # frame 26: its GOP starts at frame 0
    assert read_index(frame.rgb) == 26
    with FrameSampler(path, threads=1, skip_non_reference=False) as plain:
        plain.sample([1.1])
    assert plain.decoded_frames == 28  # frames 0..26, and 27 to know 26 is the one shown
    assert skipping.decoded_frames <= 28 - 6  # at least one B-frame in each group of four


def test_targets_in_one_gop_are_decoded_forward_without_seeking(videos):
    path = videos("h264-bframes-long-gop-mp4")  # keyframes every 30 frames at 24 fps
    with FrameSampler(path, threads=1, skip_non_reference=False) as sampler:
        sampler.sample([0.2, 0.5, 0.9, 1.1])
        assert sampler.seeks == 0 and sampler.restarts == 0
        assert sampler.decoded_frames == round(1.1 * 24) + 2  # frames 0..26, and 27 to know
        sampler.sample([1.3])  # the next GOP: read on to its keyframe, decode from there
        assert sampler.seeks == 0 and sampler.restarts == 1
        assert sampler.decoded_frames == 28 + (31 - 30 + 2)


def test_going_back_or_far_ahead_seeks_to_the_keyframe(videos):
    if PYAV_VERSION < (17, 0):
        pytest.skip("the keyframe index (Stream.index_entries) needs PyAV 17")
    path = videos("h264-short-gop-mp4")  # keyframes every 8 frames
    timeline = reference_timeline(path)
    with FrameSampler(path, threads=1, skip_non_reference=False) as sampler:
        [late] = sampler.sample([1.5])  # frame 36, more than one GOP ahead
        assert read_index(late.rgb) == 36 and sampler.seeks == 1
        [early] = sampler.sample([0.25])  # frame 6, behind
        assert read_index(early.rgb) == 6 and sampler.seeks == 2
        assert sampler.decoded_frames <= minimum_decodes(timeline, [1.5, 0.25]) + 3


def _peak_held(path: Path, times: list[float]) -> tuple[int, int]:
    """Most decoded frames and read-ahead packets the sampler held at once while sampling."""
    with FrameSampler(path, size=(16, 12)) as sampler:
        peak_frames = peak_packets = 0
        decode_next = sampler._decode_next

        def counting():
            nonlocal peak_frames, peak_packets
            frame = decode_next()
            held = len(sampler._decoded) + (frame is not None)
            held += (sampler._current is not None) + (sampler._next is not None)
            peak_frames = max(peak_frames, held)
            peak_packets = max(peak_packets, len(sampler._queued))
            return frame

        sampler._decode_next = counting  # type: ignore[method-assign]
        sampler.sample(times)
    return peak_frames, peak_packets


def test_memory_does_not_grow_with_the_length_of_the_video(tmp_path):
    """Ten times the frames and GOP length: no more decoded frames held at once; read-ahead
    packets (compressed) stay within a GOP."""
    peaks = []
    for frames in (24, 240):
        path = tmp_path / f"{frames}.mp4"
        options = {"x264-params": f"keyint={frames // 2}:min-keyint={frames // 2}:bframes=3"}
        write_indexed_video(path, frames=frames, options=options)
        seconds = frames / 24
        peaks.append(_peak_held(path, [seconds * 0.1, seconds * 0.45, seconds * 0.95]))
    (short_frames, _), (long_frames, long_packets) = peaks
    # current and next frame, and what a flushed B-frame decoder hands out at the end
    assert max(short_frames, long_frames) <= 2 + END_OF_FILE_FRAMES, peaks
    assert long_packets <= 240 // 2 + 8, peaks


def test_results_follow_request_order_and_repeats_are_separate_arrays(videos):
    path = videos("h264-short-gop-mp4")
    with FrameSampler(path, size=(32, 24)) as sampler:
        backwards = sampler.sample([1.0, 0.5, 0.0, 0.5])
    assert [read_index(frame.rgb) for frame in backwards] == [24, 12, 0, 12]
    assert np.array_equal(backwards[1].rgb, backwards[3].rgb)
    assert backwards[1].rgb is not backwards[3].rgb


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_display_rotation_is_applied_and_size_is_the_upright_output(tmp_path, rotation):
    path = tmp_path / "rotated.mp4"
    write_indexed_video(path, frames=6, width=64, height=48, rotation=rotation)
    upright = (48, 64) if rotation % 180 else (64, 48)
    with FrameSampler(path) as sampler:
        assert (sampler.info.width, sampler.info.height) == upright
        assert sampler.info.rotation == rotation
        full = sampler.sample([0.1])[0]
    assert full.rgb.shape == (upright[1], upright[0], 3)
    assert read_index(full.rgb) == 2  # read_index fails on a frame turned the wrong way
    size = (upright[0] // 2, upright[1] // 2 + 2)  # not the same aspect: exact size wins
    with FrameSampler(path, size=size, interpolation="AREA") as sampler:
        small = sampler.sample([0.1])[0]
    assert small.rgb.shape == (size[1], size[0], 3)
    assert read_index(small.rgb) == 2


def test_sampling_an_empty_list_and_bad_arguments(videos):
    with FrameSampler(videos("h264-short-gop-mp4")) as sampler:
        assert sampler.sample([]) == []
        assert sampler.decoded_frames == 1  # the first frame, decoded when opening
        with pytest.raises(ValueError, match="finite"):
            sampler.sample([float("nan")])
    with pytest.raises(ValueError, match="size"):
        FrameSampler(videos("h264-short-gop-mp4"), size=(0, 10))


# -- real-world clips in ../shared/media ----------------------------------------------------------


@pytest.mark.parametrize("stream", [0, 3])
def test_nasa_clip_frames_at_their_given_times(shared_media, stream):
    given = json.loads(
        (shared_media / f"nasa_13013.mp4.stream{stream}.all_frames_info.json").read_text()
    )
    frame_times = [float(frame["pts_time"]) for frame in given]
    times = frame_times + [(a + b) / 2 for a, b in zip(frame_times, frame_times[1:], strict=False)]
    with FrameSampler(shared_media / "nasa_13013.mp4", stream=stream, size=(32, 18)) as sampler:
        assert sampler.info.video_stream == stream
        assert sampler.info.frame_count == len(given)
        frames = sampler.sample(times)
        assert sampler.seeks == 0  # one pass over the stream
        assert sampler.decoded_frames == len(given)
    for time, frame in zip(times, frames, strict=True):
        assert frame.pts_time == pytest.approx(
            frame_times[expected_index(frame_times, time)], abs=1e-6
        )
    # and the pixels are those of that frame, as a plain decode gives them
    with av.open(str(shared_media / "nasa_13013.mp4")) as container:
        plain = [_plain_rgb(f, 32, 18) for f in container.decode(container.streams[stream])]
    for position in (0, 1, 100, len(given) - 1):
        assert np.array_equal(frames[position].rgb, plain[position])


def _plain_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """A plainly decoded frame in RGB, converted as the sampler converts (its own colour matrix:
    PyAV before 17 needs telling, see ``av_compat``)."""
    return reformat_one_thread(
        VideoReformatter(), frame, width=width, height=height, format="rgb24",
        interpolation="BICUBIC",
    ).to_ndarray()  # fmt: skip


def test_pancake_mkv_without_frame_count(shared_media):
    path = shared_media / "flipping_a_pancake.mkv"
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        # FFmpeg 8.0 starts this container 7 ms early (the Opus audio's pre-skip), 8.1 at 0.
        start = Fraction(container.start_time or 0, av.time_base)
        plain_times = [float(f.pts * video.time_base - start) for f in container.decode(video)]
    times = [0.0, 3.3, 5.0, 7.77, 10.2, 60.0]
    with FrameSampler(path, size=(64, 36)) as sampler:
        assert sampler.info.frame_count is None
        assert sampler.info.fps == pytest.approx(30)
        frames = sampler.sample(times)
    for time, frame in zip(times, frames, strict=True):
        assert frame.pts_time == pytest.approx(plain_times[expected_index(plain_times, time)])
    assert frames[-1].pts_time == pytest.approx(plain_times[-1])


def test_phone_clip_is_returned_upright(shared_media):
    path = shared_media / "video_90.mov"
    with FrameSampler(path) as sampler:
        assert (sampler.info.width, sampler.info.height, sampler.info.rotation) == (320, 568, -90)
        [frame] = sampler.sample([0.05])
    with av.open(str(path)) as container:
        stored = next(container.decode(video=0))
        stored = [f for f in [stored, *container.decode(video=0)] if f.pts == frame.pts][0]
        raw = _plain_rgb(stored, stored.width, stored.height)
    assert raw.shape == (320, 568, 3) and frame.rgb.shape == (568, 320, 3)
    # FFmpeg turns a frame whose display matrix reads -90 degrees clockwise to show it
    assert np.array_equal(frame.rgb, np.rot90(raw, k=-1))


def test_corrupted_clip_skips_the_bad_packet_with_a_warning(shared_media, caplog):
    times = [round(0.1 * i, 1) for i in range(50)]
    with (
        caplog.at_level(logging.WARNING, logger="videoqa.media"),
        FrameSampler(shared_media / "corrupted.mp4", size=(64, 36)) as sampler,
    ):
        frames = sampler.sample(times)
        assert sampler.decoded_frames == 49 and sampler.skipped_packets == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "does not decode" in warnings[0].getMessage()
    shown = [frame.pts_time for frame in frames]
    missing = [
        time for time, pts_time in zip(times, shown, strict=True) if pts_time != pytest.approx(time)
    ]
    assert len(missing) == 1  # the frame that failed: its time shows the frame before it
    position = times.index(missing[0])
    assert shown[position] == pytest.approx(times[position - 1])


def test_hevc_clip(shared_media):
    times = [i / 10 for i in range(10)]
    with FrameSampler(shared_media / "h265_video.mp4") as sampler:
        assert sampler.info.streams[0].codec == "hevc"
        assert (sampler.info.width, sampler.info.height, sampler.info.frame_count) == (128, 128, 10)
        frames = sampler.sample(times[::-1])
    assert [frame.pts_time for frame in frames] == pytest.approx(times[::-1])
    assert all(frame.rgb.shape == (128, 128, 3) for frame in frames)


# -- frames as a viewer sees them: sample aspect ratio, interlacing, colour -----------------------


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "ts"])
def test_anamorphic_frames_come_with_square_pixels_at_the_display_aspect(tmp_path, suffix):
    """PAL 16:9 is stored 720x576 with SAR 64:45: shown (and sampled) 1024x576. MP4 and
    Matroska declare the SAR in the container too, MPEG-TS only in the h264 stream."""
    path = tmp_path / f"pal_wide.{suffix}"
    write_indexed_video(path, frames=6, width=720, height=576, sample_aspect_ratio=Fraction(64, 45))
    with FrameSampler(path) as sampler:
        info = sampler.info
        stream = info.streams[info.video_stream]
        [frame] = sampler.sample([0.1])
    assert (info.width, info.height) == (1024, 576)
    assert (stream.width, stream.height, stream.upright_width, stream.upright_height) == (
        720, 576, 1024, 576,
    )  # fmt: skip
    assert (stream.sample_aspect_ratio, stream.display_aspect_ratio) == ("64:45", "16:9")
    assert frame.rgb.shape == (576, 1024, 3) and read_index(frame.rgb) == 2
    with av.open(str(path)) as container:
        stored = list(container.decode(video=0))[2]
    stretched = stored.reformat(1024, 576, "rgb24", interpolation="BICUBIC").to_ndarray()
    assert np.abs(frame.rgb.astype(int) - stretched).max() <= 1
    with FrameSampler(path, size=(224, 126)) as sized:  # an asked-for size is the exact size
        assert sized.sample([0.1])[0].rgb.shape == (126, 224, 3)


def test_an_anamorphic_turned_video_is_stretched_then_turned(tmp_path):
    path = tmp_path / "turned_wide.mp4"
    write_indexed_video(
        path, frames=4, width=720, height=576, rotation=90, sample_aspect_ratio=Fraction(64, 45)
    )
    with FrameSampler(path) as sampler:
        assert (sampler.info.width, sampler.info.height, sampler.info.rotation) == (576, 1024, 90)
        [frame] = sampler.sample([0.05])
    assert frame.rgb.shape == (1024, 576, 3) and read_index(frame.rgb) == 1


@pytest.mark.parametrize("threads", [1, 0])
def test_a_sample_aspect_ratio_that_changes_midstream_is_followed(tmp_path, threads):
    """Two MPEG-TS recordings back to back (a broadcast switching from 4:3 to 16:9): the
    frames after the second one's first keyframe are shown with its SAR, those before with
    the first one's, however the decoder reorders them, and after seeking both ways."""
    options = {"x264-params": "keyint=4:min-keyint=4:scenecut=0:bframes=2"}
    copy_times = {"mpegts_copyts": "1"}
    square, wide = tmp_path / "square.ts", tmp_path / "wide.ts"
    write_indexed_video(square, frames=8, options=options, container_options=copy_times)
    with av.open(str(square)) as container:  # shifted by the B-frame delay: so must be the next
        delay = round(Fraction(container.start_time or 0, av.time_base) * 24)
    write_indexed_video(
        wide, frames=8, pts=range(8 + delay, 16 + delay), time_base=Fraction(1, 24),
        options=options, container_options=copy_times, sample_aspect_ratio=Fraction(64, 45),
        first_index=8,
    )  # fmt: skip
    both = tmp_path / "both.ts"
    both.write_bytes(square.read_bytes() + wide.read_bytes())
    frame_times = [time for time, _ in reference_timeline(both)]
    assert len(frame_times) == 16
    times = [float(time) for time in frame_times]
    random.Random(3).shuffle(times)
    with FrameSampler(both, threads=threads) as sampler:
        assert sampler.info.width == 64
        frames = sampler.sample(times[:8]) + sampler.sample(times[8:])
    for time, frame in zip(times, frames, strict=True):
        index = read_index(frame.rgb)
        assert index == expected_index(frame_times, time)
        assert frame.rgb.shape[1] == (64 if index < 8 else 91), f"frame {index}"


def _field_video(path: Path, *, interlaced: bool, frames: int = 16) -> None:
    """A bright bar moving right over a dark background, 3 pixels per field (1/50 s).

    Interlaced: each frame's even rows show one moment and its odd rows the next (as a
    camera's two fields), coded as interlaced h264, top field first; progressive: the whole
    frame shows one moment.
    """
    width, height = 128, 96

    def picture(moment: int) -> np.ndarray:
        image = np.full((height, width, 3), 16, np.uint8)
        left = 8 + 3 * moment
        image[:, left : left + 32] = 235
        return image

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        params = "keyint=8:min-keyint=8:scenecut=0:crf=10"
        stream.options = {"x264-params": params + (":interlaced=1:tff=1" if interlaced else "")}
        for index in range(frames):
            image = picture(2 * index)
            if interlaced:
                image[1::2] = picture(2 * index + 1)[1::2]
            frame = av.VideoFrame.from_ndarray(image, "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _combing(rgb: np.ndarray) -> float:
    """Energy of row-to-row differences: comb teeth on a moving vertical edge make it large."""
    grey = rgb.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean())


def test_interlaced_video_is_deinterlaced_by_default_and_keeps_its_times(tmp_path):
    path = tmp_path / "fields.mp4"
    _field_video(path, interlaced=True)
    times = [0.2, 0.44, 0.04, 0.6]
    with FrameSampler(path) as auto:
        assert auto.info.interlaced and auto.deinterlacing
        if PYAV_VERSION >= (18, 1):
            assert auto.info.streams[0].field_order == "tt"
        rebuilt = auto.sample(times)
    with FrameSampler(path, deinterlace="off") as off:
        assert not off.deinterlacing
        combed = off.sample(times)
    for frame, raw in zip(rebuilt, combed, strict=True):
        assert frame.pts_time == raw.pts_time  # one frame out per frame in
        assert _combing(raw.rgb) > 5  # the teeth are there to be removed
        assert _combing(frame.rgb) < 0.2 * _combing(raw.rgb), frame.time


def test_progressive_video_is_left_alone_unless_asked(tmp_path):
    path = tmp_path / "progressive.mp4"
    _field_video(path, interlaced=False)
    times = [0.0, 0.3, 0.52]
    with FrameSampler(path) as auto, FrameSampler(path, deinterlace="off") as off:
        assert not auto.info.interlaced and not auto.deinterlacing
        for mine, plain in zip(auto.sample(times), off.sample(times), strict=True):
            assert np.array_equal(mine.rgb, plain.rgb)
    with FrameSampler(path, deinterlace="on") as forced:
        assert forced.deinterlacing
        frames = forced.sample(times)
    assert [frame.pts_time for frame in frames] == pytest.approx([0.0, 0.28, 0.52])
    with pytest.raises(ValueError, match="deinterlace must be one of auto, on, off"):
        FrameSampler(path, deinterlace="yes")


@pytest.mark.parametrize(
    "case", ["h264-bframes-long-gop-mp4", "h264-mpegts-no-index", "vfr-bframes-mkv", "hevc-mp4"]
)
def test_deinterlacing_keeps_every_frame_exact_through_seeks_and_restarts(videos, case):
    path = videos(case)
    frame_times = [time for time, _ in reference_timeline(path)]
    times = _times_around(frame_times)
    half = len(times) // 2
    with FrameSampler(path, size=(32, 24), deinterlace="on") as sampler:
        frames = sampler.sample(times[:half]) + sampler.sample(times[half:])
        assert sampler.deinterlacing and sampler.seeks >= 1
    for time, frame in zip(times, frames, strict=True):
        assert read_index(frame.rgb) == expected_index(frame_times, time), f"t={time}"


# BT.601/BT.709 Y'CbCr of an R'G'B' colour (0-255), limited (16-235/240) or full range
_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}
_TAGS = {  # colorspace, primaries, transfer as FFmpeg numbers them
    "bt601": (5, 5, 6),  # bt470bg matrix and primaries (PAL), smpte170m transfer
    "bt709": (1, 1, 1),
}


def _ycbcr(rgb: tuple[int, int, int], matrix: str, full: bool) -> tuple[int, int, int]:
    kr, kb = _MATRICES[matrix]
    r, g, b = (value / 255 for value in rgb)
    y = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    if full:
        return round(255 * y), round(128 + 255 * cb), round(128 + 255 * cr)
    return round(16 + 219 * y), round(128 + 224 * cb), round(128 + 224 * cr)


@pytest.mark.parametrize(
    ("matrix", "full"), [("bt601", False), ("bt601", True), ("bt709", False), ("bt709", True)]
)
def test_colours_convert_with_the_files_own_matrix_and_range(tmp_path, matrix, full):
    """A 720x576 SD frame (BT.601, limited range: PAL broadcast), and BT.709 / full range:
    a known colour patch comes back within a small tolerance."""
    width, height, patch = 720, 576, (200, 60, 40)
    y, cb, cr = _ycbcr(patch, matrix, full)
    planes = [np.full((height, width), y), np.full((height // 2, width // 2), cb)]
    planes.append(np.full((height // 2, width // 2), cr))
    frame = av.VideoFrame.from_ndarray(
        np.concatenate([plane.ravel() for plane in planes]).astype(np.uint8).reshape(-1, width),
        "yuv420p",
    )
    space, primaries, transfer = _TAGS[matrix]
    frame.colorspace, frame.color_range = space, 2 if full else 1
    path = tmp_path / f"{matrix}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        context = stream.codec_context
        context.colorspace, context.color_range = space, 2 if full else 1
        context.color_primaries, context.color_trc = primaries, transfer
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with FrameSampler(path, size=(64, 48)) as sampler:
        stream_info = sampler.info.streams[0]
        [sampled] = sampler.sample([0.0])
    assert stream_info.color_range == ("pc" if full else "tv")
    assert stream_info.color_space == {"bt601": "bt470bg", "bt709": "bt709"}[matrix]
    assert np.abs(sampled.rgb[24, 32].astype(int) - patch).max() <= 4, sampled.rgb[24, 32]
