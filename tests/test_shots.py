"""Shot-aligned clips: cuts found where they are, short shots merged, long ones split.

The videos are demo-world scenes cut hard into each other at known times (tests know what each
frame shows), encoded with PyAV, decoded by our sampler, compared by PySceneDetect's detectors.
Tests that need PySceneDetect (the ``shots`` extra) skip without it; the planning arithmetic
and the option checks run everywhere.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from indexed_video import read_index, write_indexed_video

from videoqa.cli import cli
from videoqa.clips import check_clip_options
from videoqa.demo.language import caption_of
from videoqa.demo.world import Scene, random_clip_scene, render
from videoqa.errors import ConfigError
from videoqa.media import FrameSampler, probe
from videoqa.planning import ClipPlan, plan_video_clips
from videoqa.report import Report, Sampling, ShotSampling
from videoqa.shots import shot_windows

FPS = 25
CUTS = (2.21, 4.9, 7.37, 11.0)
"""Where the scenes change (seconds); the first frame of each new scene is the next frame."""
DURATION = 15.0
BACKGROUNDS = ((36, 36, 44), (200, 200, 190), (20, 60, 110), (120, 40, 40), (90, 140, 90))


def needs_scenedetect() -> None:
    pytest.importorskip("scenedetect", reason="shots need PySceneDetect (the shots extra)")


def write_cut_video(
    path: Path, scenes: Sequence[Scene], cuts: Sequence[float], *, duration: float = DURATION
) -> None:
    """Scene k fills ``[cuts[k-1], cuts[k])``, played from its time 0 to 1 over that span."""
    bounds = [0.0, *cuts, duration]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(round(duration * FPS)):
            time = index / FPS
            shot = max(k for k in range(len(scenes)) if bounds[k] <= time)
            local = (time - bounds[shot]) / (bounds[shot + 1] - bounds[shot])
            frame = av.VideoFrame.from_ndarray(render(scenes[shot], local), "rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def first_frames_after(cuts: Sequence[float]) -> list[float]:
    """The time of the first frame at or after each cut: where a detector should put it."""
    return [math.ceil(cut * FPS - 1e-9) / FPS for cut in cuts]


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    rng = np.random.default_rng(3)
    return [random_clip_scene(rng)[0] for _ in range(len(CUTS) + 1)]


@pytest.fixture(scope="module")
def hard_cuts(tmp_path_factory: pytest.TempPathFactory, scenes: list[Scene]) -> Path:
    """Five demo scenes, each over its own background, cut hard into each other at CUTS."""
    path = tmp_path_factory.mktemp("shots") / "hard_cuts.mp4"
    pairs = zip(scenes, BACKGROUNDS, strict=True)
    coloured = [dataclasses.replace(scene, background=colour) for scene, colour in pairs]
    write_cut_video(path, coloured, CUTS)
    return path


@pytest.fixture(scope="module")
def same_background(tmp_path_factory: pytest.TempPathFactory, scenes: list[Scene]) -> Path:
    """The same scenes over the demo world's one background: only the shapes change at a cut."""
    path = tmp_path_factory.mktemp("shots") / "same_background.mp4"
    write_cut_video(path, scenes, CUTS)
    return path


# -- merging and splitting (no video) -------------------------------------------------------


def test_shots_become_clips_from_cut_to_cut():
    assert shot_windows([2.0, 5.0], 0.0, 9.0) == [(0.0, 2.0), (2.0, 5.0), (5.0, 9.0)]


def test_cuts_outside_the_range_and_duplicates_are_ignored():
    assert shot_windows([0.0, 3.0, 3.0, 12.0], 1.0, 8.0) == [(1.0, 3.0), (3.0, 8.0)]


def test_a_short_shot_joins_its_shorter_neighbour():
    # 0-4 | 4-4.5 | 4.5-6: the half-second shot joins the 1.5 s one after it, not the 4 s one.
    assert shot_windows([4.0, 4.5], 0.0, 6.0, min_clip=1.0) == [(0.0, 4.0), (4.0, 6.0)]
    # 0-1.5 | 1.5-2 | 2-6: it joins the one before.
    assert shot_windows([1.5, 2.0], 0.0, 6.0, min_clip=1.0) == [(0.0, 2.0), (2.0, 6.0)]


def test_short_shots_at_the_ends_join_the_only_neighbour_they_have():
    assert shot_windows([0.3, 5.8], 0.0, 6.0, min_clip=1.0) == [(0.0, 6.0)]
    assert shot_windows([0.3, 3.0, 5.8], 0.0, 6.0, min_clip=1.0) == [(0.0, 3.0), (3.0, 6.0)]


def test_a_run_of_flashes_merges_until_no_clip_is_too_short():
    windows = shot_windows([3.0, 3.2, 3.4, 3.6, 3.8], 0.0, 8.0, min_clip=1.0)
    assert all(end - start >= 1.0 for start, end in windows)
    assert windows[0][0] == 0.0 and windows[-1][1] == 8.0
    neighbours = zip(windows, windows[1:], strict=False)
    assert all(a[1] == b[0] for a, b in neighbours)  # still back to back


def test_a_long_shot_is_split_into_equal_parts_no_longer_than_max_clip():
    windows = shot_windows([2.0], 0.0, 27.0, max_clip=10.0)
    assert windows[0] == (0.0, 2.0)
    parts = windows[1:]
    assert len(parts) == 3  # 25 s: three parts of 8.33 s, not 10 + 10 + 5
    assert all(math.isclose(end - start, 25 / 3) for start, end in parts)
    assert parts[-1][1] == 27.0


def test_a_shot_exactly_max_clip_long_stays_whole():
    assert shot_windows([], 0.0, 10.0, max_clip=10.0) == [(0.0, 10.0)]


def test_a_video_shorter_than_min_clip_is_one_clip():
    assert shot_windows([0.2], 0.0, 0.5, min_clip=1.0) == [(0.0, 0.5)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"clips": "scenes"}, "clips: 'scenes' is not one of fixed, shots"),
        ({"detector": "histogram"}, "detector: 'histogram' is not one of content, adaptive"),
        ({"min_clip": 12.0, "max_clip": 10.0}, "min_clip: 12 s is longer than max_clip 10 s"),
        ({"max_clip": 0.0}, "max_clip: must be positive, got 0"),
        ({"clips": "shots", "stride": 2.0}, "stride: applies to fixed clips only"),
    ],
)
def test_clip_options_that_cannot_work_are_refused_naming_the_setting(options, message):
    clips = options.pop("clips", "fixed")
    with pytest.raises(ConfigError) as raised:
        check_clip_options(clips, **options)
    assert str(raised.value).startswith(message)


def test_shots_without_pyscenedetect_say_how_to_install_it():
    code = (
        "import sys; sys.modules['scenedetect'] = None\n"
        "from videoqa.clips import check_clip_options\n"
        "check_clip_options('shots')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "videoqa.errors.ConfigError: clips: shots need PySceneDetect: "
        "pip install 'videoqa[shots]'"
    )


def test_the_report_records_the_clip_mode_and_the_cuts():
    sampling = Sampling(10.0, 10.0, 0.0, 15.0, 20, None, clip_mode="shots",
                        shots=ShotSampling("content", 1.0, 10.0, (2.24, 4.92)))  # fmt: skip
    data = {"clip_length": 10.0, "stride": 10.0, "start": 0.0, "end": 15.0,
            "max_new_tokens": 20, "caption_max_new_tokens": None}  # fmt: skip
    from videoqa.report import _sampling_from_dict, _sampling_to_dict

    written = _sampling_to_dict(sampling)
    assert written["clip_mode"] == "shots"
    assert written["shots"] == {"detector": "content", "min_clip": 1.0, "max_clip": 10.0,
                                "cuts": [2.24, 4.92]}  # fmt: skip
    assert _sampling_from_dict(json.loads(json.dumps(written))) == sampling
    old = _sampling_from_dict(data)  # a 1.1 report: fixed clips
    assert old.clip_mode == "fixed" and old.shots is None


# -- every frame, decoded once ---------------------------------------------------------------


def test_the_sampler_gives_every_frame_of_a_range_once_in_order(tmp_path):
    path = tmp_path / "indexed.mp4"
    times = write_indexed_video(path, frames=48, options={"x264-params": "keyint=12:bframes=3"})
    with FrameSampler(path) as sampler:
        frames = list(sampler.frames(0.5, 1.5))
        assert [read_index(f.rgb) for f in frames] == list(range(12, 36))
        assert [f.pts_time for f in frames] == [float(t) for t in times[12:36]]
    with FrameSampler(path, size=(32, 24)) as sampler:
        every = list(sampler.frames())
        assert len(every) == 48 and sampler.decoded_frames == 48
        assert every[0].rgb.shape == (24, 32, 3)


# -- cut detection ---------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_cuts_between_scenes_are_found_within_one_frame(hard_cuts, detector):
    needs_scenedetect()
    from videoqa.shots import detect_cuts

    found = detect_cuts(hard_cuts, detector=detector)
    assert found.frames == DURATION * FPS
    assert found.size == (256, 192)
    assert len(found.cuts) == len(CUTS)
    for cut, detected in zip(CUTS, found.cuts, strict=True):
        assert abs(detected - cut) <= 1 / FPS, (cut, detected)
    assert list(found.cuts) == first_frames_after(CUTS)


def test_adaptive_finds_cuts_where_only_the_shapes_change_and_content_does_not(same_background):
    """Over one dark background a cut changes a fifth of the picture: ContentDetector's fixed
    threshold misses most such cuts, AdaptiveDetector (relative to the frames around) does not."""
    needs_scenedetect()
    from videoqa.shots import detect_cuts

    assert list(detect_cuts(same_background, detector="adaptive").cuts) == first_frames_after(CUTS)
    assert len(detect_cuts(same_background, detector="content").cuts) < len(CUTS)


def test_shot_clips_start_at_the_cuts_with_every_frame_inside_its_shot(hard_cuts):
    needs_scenedetect()
    info = probe(hard_cuts)
    plan = plan_video_clips(hard_cuts, info, frames_per_clip=6, clips="shots", max_clip=3.0)
    assert isinstance(plan, ClipPlan) and plan.mode == "shots"
    assert plan.shots == ShotSampling("content", 1.0, 3.0, tuple(first_frames_after(CUTS)))
    bounds = [0.0, *first_frames_after(CUTS), DURATION]
    starts = [clip.start for clip in plan.clips]
    for cut in bounds[:-1]:
        assert cut in starts  # every shot begins a clip
    for clip in plan.clips:
        assert clip.end - clip.start <= 3.0 + 1e-6
        shot = max(k for k in range(len(bounds) - 1) if bounds[k] <= clip.start)
        assert all(bounds[shot] < t < bounds[shot + 1] for t in clip.frame_times)
        assert len(clip.frame_times) == 6
    # 11-15 s (4 s) is longer than max_clip 3: two equal halves.
    assert [(c.start, c.end) for c in plan.clips if c.start >= 11.0] == [(11.0, 13.0), (13.0, 15.0)]


def test_shots_in_a_part_of_the_video_and_min_clip_merging(hard_cuts):
    needs_scenedetect()
    plan = plan_video_clips(hard_cuts, probe(hard_cuts), frames_per_clip=2, clips="shots",
                            start=4.0, end=10.0, min_clip=1.5)  # fmt: skip
    # 4-4.92 is shorter than 1.5 s: it joins 4.92-7.4; 7.4-10 stays.
    assert [(c.start, c.end) for c in plan.clips] == [(4.0, 7.4), (7.4, 10.0)]


# -- the daemon -------------------------------------------------------------------------------


def test_the_daemon_config_takes_shots_per_folder_and_refuses_what_cannot_work(tmp_path):
    from videoqa.watch.config import load_config

    (tmp_path / "films").mkdir()
    config_file = tmp_path / "videoqa.toml"
    config_file.write_text(
        '[defaults]\ncaptions = true\n'
        f'[[folders]]\npath = "{tmp_path / "films"}"\nclips = "shots"\ndetector = "adaptive"\n'
        'min_clip = 0\nmax_clip = 6\n'
    )
    if importlib.util.find_spec("scenedetect") is None:
        with pytest.raises(ConfigError, match="'clips': shots need PySceneDetect"):
            load_config(config_file)
        return
    (films,) = load_config(config_file).folders
    assert (films.clips, films.detector, films.min_clip, films.max_clip) == (
        "shots", "adaptive", 0.0, 6.0)
    config_file.write_text(f'[[folders]]\npath = "{tmp_path / "films"}"\nclips = "shots"\n'
                           'stride = 2\n')  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        load_config(config_file)
    assert str(raised.value) == (
        f"{tmp_path / 'films'}: 'stride': applies to fixed clips only, not clips = shots"
    )


def test_the_daemons_worker_plans_shots(same_background, tmp_path):
    needs_scenedetect()
    pytest.importorskip("torch", reason="the worker runs the model")
    from videoqa.watch.config import FolderSettings
    from videoqa.watch.worker import process_file

    settings = FolderSettings(
        folder=same_background.parent, model="demo", caption_model="demo", clips="shots",
        detector="adaptive", max_clip=5.0, adapters=(),
    )
    report = process_file(same_background, settings)
    assert report.sampling.clip_mode == "shots"
    bounds = [0.0, *first_frames_after(CUTS), DURATION]
    assert [(c.start, c.end) for c in report.clips] == list(zip(bounds, bounds[1:], strict=False))


# -- end to end ------------------------------------------------------------------------------


def test_caption_with_shots_captions_each_scene_from_the_command_line(same_background, scenes,
                                                                      tmp_path):
    """``videoqa caption --clips shots`` with the demo model: one cue per scene, each right."""
    needs_scenedetect()
    pytest.importorskip("torch", reason="captions need torch")
    result = CliRunner().invoke(
        cli,
        ["caption", str(same_background), "--model", "demo", "--clips", "shots",
         "--detector", "adaptive", "--max-clip", "5", "-o", str(tmp_path), "-f", "json,srt"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = Report.load(tmp_path / "same_background.videoqa.json")
    assert report.sampling.clip_mode == "shots"
    assert report.sampling.shots is not None and report.sampling.shots.detector == "adaptive"
    bounds = [0.0, *first_frames_after(CUTS), DURATION]
    assert [(c.start, c.end) for c in report.clips] == list(zip(bounds, bounds[1:], strict=False))
    for clip, scene in zip(report.clips, scenes, strict=True):
        assert clip.caption is not None
        local = [(t - clip.start) / (clip.end - clip.start) for t in clip.caption.frame_times]
        assert clip.caption.text == caption_of(scene.truth(local)), clip
    assert (tmp_path / "same_background.srt").read_text().count(" --> ") == len(CUTS) + 1


def test_the_command_line_refuses_stride_with_shots_before_loading_a_model(same_background):
    result = CliRunner().invoke(
        cli,
        ["caption", str(same_background), "--model", "demo", "--clips", "shots", "--stride", "2",
         "-f", "none"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "videoqa: error: --stride: applies to fixed clips only, not clips = shots"
    )
    assert "loading" not in result.stderr
