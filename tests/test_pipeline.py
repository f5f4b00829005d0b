"""VideoQA: clips planned, frames sampled in time order, engines run, image frames voted."""

from __future__ import annotations

import inspect
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from indexed_video import write_indexed_video
from tiny_git import (  # noqa: F401 (fixtures)
    TINY_VIDEO_FRAMES,
    save_tiny_git,
    tiny_image_git,
    tiny_video_git,
)

pytest.importorskip("torch", reason="the pipeline runs a model: needs torch")

from videoqa.clips import frame_times_in
from videoqa.errors import ConfigError, MediaError
from videoqa.media import FrameSampler
from videoqa.pipeline import VideoQA, vote
from videoqa.report import FrameAnswer, Report

QUESTIONS = ("what is the color?", "how many dogs are there?", "what is the man doing?")


def write_test_video(path: Path, *, seconds: float = 12.0, fps: int = 10,
                     size: tuple[int, int] = (64, 48)) -> Path:
    """Frames whose colours and a moving bar change over time, so answers vary by frame."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * fps)):
            rgb = np.zeros((height, width, 3), np.uint8)
            rgb[..., 0] = index * 7 % 256
            rgb[..., 1] = index * 13 % 256
            rgb[:, index % width :, 2] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("pipeline") / "colors.mp4")


@pytest.fixture(scope="module")
def qa(tiny_image_git: Path, tiny_video_git: Path) -> VideoQA:  # noqa: F811
    """Answers with the image checkpoint, captions with the video one (like vqav2 + vatex)."""
    return VideoQA(str(tiny_image_git), caption_model=str(tiny_video_git), device="cpu")


def sampled(engine, video: Path, times) -> list[np.ndarray]:
    """Frames at ``times``, decoded independently of the pipeline at the engine's size."""
    with FrameSampler(video) as probe_sampler:
        size = engine.frame_size(probe_sampler.info.width, probe_sampler.info.height)
    with FrameSampler(video, size=size) as sampler:
        return [frame.rgb for frame in sampler.sample(times)]


def test_vote_weighs_each_frame_by_its_probability():
    frames = [
        FrameAnswer(1.0, "red", math.log(0.4)),
        FrameAnswer(2.0, "blue", math.log(0.9)),
        FrameAnswer(3.0, "red", math.log(0.6)),
    ]
    # red: 0.4 + 0.6 = 1.0 beats blue: 0.9; the score is the mean of red's frames.
    assert vote(frames) == ("red", pytest.approx((math.log(0.4) + math.log(0.6)) / 2))
    one_confident = [FrameAnswer(1.0, "red", math.log(0.2)), FrameAnswer(2.0, "red", math.log(0.2)),
                     FrameAnswer(3.0, "blue", math.log(0.95))]
    assert vote(one_confident)[0] == "blue"
    tie = [FrameAnswer(1.0, "cat", -1.0), FrameAnswer(2.0, "dog", -1.0)]
    assert vote(tie)[0] == "cat"  # the earlier answer wins a tie
    with pytest.raises(ValueError):
        vote([])


def test_image_checkpoint_answers_every_frame_and_the_clip_votes(qa, video):
    results, info = qa.ask(video, QUESTIONS, clip_length=4.0)
    assert info.duration == pytest.approx(12.0, abs=0.15)
    results = list(results)
    assert [(r.start, r.end) for r in results] == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    engine = qa.answer_engine
    assert engine.kind == "image"
    for result in results:
        assert result.frame_times == frame_times_in(result.start, result.end, 3)
        frames = sampled(engine, video, result.frame_times)
        expected = engine.answer([[f] for f in frames], QUESTIONS)  # [frame][question]
        assert [qa_.question for qa_ in result.answers] == list(QUESTIONS)
        for column, answer in enumerate(result.answers):
            assert [f.time for f in answer.frames] == list(result.frame_times)
            assert [f.answer for f in answer.frames] == [row[column].text for row in expected]
            assert [f.score for f in answer.frames] == pytest.approx(
                [row[column].score for row in expected]
            )
            assert (answer.answer, answer.score) == vote(answer.frames)
        assert result.caption is None


def test_video_checkpoint_gets_its_frames_in_time_order_as_one_clip(tiny_video_git, video):  # noqa: F811
    qa = VideoQA(str(tiny_video_git), caption_model=str(tiny_video_git), device="cpu")
    results, _ = qa.ask(video, QUESTIONS[:2], clip_length=5.0, start=1.0, end=11.0)
    results = list(results)
    engine = qa.answer_engine
    assert engine.kind == "video" and engine.frames_per_clip == TINY_VIDEO_FRAMES
    assert [(r.start, r.end) for r in results] == [(1.0, 6.0), (6.0, 11.0)]
    frames = [sampled(engine, video, r.frame_times) for r in results]
    expected = engine.answer(frames, QUESTIONS[:2])
    for result, answers in zip(results, expected, strict=True):
        assert len(result.frame_times) == TINY_VIDEO_FRAMES
        # Same text; scores equal up to float noise from batching the two clips here.
        assert [a.answer for a in result.answers] == [e.text for e in answers]
        assert [a.score for a in result.answers] == pytest.approx([e.score for e in answers])
        assert all(a.frames == () for a in result.answers)  # nothing to vote on
    captions = list(qa.caption(video, clip_length=5.0, start=1.0, end=11.0)[0])
    assert [c.caption.text for c in captions] == [a.text for a in engine.caption(frames)]
    assert [c.caption.frame_times for c in captions] == [r.frame_times for r in results]


def test_options_are_named_keywords_and_a_captions_length_is_its_max_new_tokens(
    tiny_video_git, video  # noqa: F811
):
    for method in (VideoQA.ask, VideoQA.caption, VideoQA.run):
        kinds = [p.kind for p in inspect.signature(method).parameters.values()]
        assert inspect.Parameter.VAR_KEYWORD not in kinds, method.__name__
    qa = VideoQA(str(tiny_video_git), caption_model=str(tiny_video_git), device="cpu")
    with pytest.raises(TypeError, match="clip_lenght"):
        qa.ask(video, QUESTIONS[:1], clip_lenght=3.0)
    results = list(qa.caption(video, clip_length=6.0, max_new_tokens=2)[0])
    engine = qa.caption_engine
    frames = [sampled(engine, video, r.caption.frame_times) for r in results]
    short = [a.text for a in engine.caption(frames, max_new_tokens=2)]
    assert [r.caption.text for r in results] == short
    assert short != [a.text for a in engine.caption(frames)]  # the limit mattered


def test_an_image_caption_checkpoint_captions_every_frame_and_the_clip_votes(
    tiny_image_git, video  # noqa: F811
):
    qa = VideoQA(str(tiny_image_git), caption_model=str(tiny_image_git), device="cpu")
    results, _ = qa.caption(video, clip_length=6.0, frames_per_clip=4)
    engine = qa.caption_engine
    for result in results:
        times = frame_times_in(result.start, result.end, 4)
        assert result.caption.frame_times == times == result.frame_times
        per_frame = engine.caption([[f] for f in sampled(engine, video, times)])
        votes = [FrameAnswer(t, c.text, c.score) for t, c in zip(times, per_frame, strict=True)]
        text, score = vote(votes)
        assert result.caption.text == text
        assert result.caption.score == pytest.approx(score)


def test_results_stream_lazily_clip_by_clip(qa, video):
    job = qa.plan(video, questions=QUESTIONS[:1], captions=False, clip_length=3.0)
    assert len(job.clips) == 4
    seen = []
    results = job.results(progress=lambda done, total: seen.append((done, total)))
    assert inspect.isgenerator(results) and seen == []  # nothing decoded or run yet
    first = next(results)
    assert first.index == 0 and seen == [(1, 4)]
    rest = list(results)
    assert [r.index for r in rest] == [1, 2, 3] and seen[-1] == (4, 4)
    with pytest.raises(RuntimeError):
        job.results()


def test_run_builds_a_report_with_answers_captions_and_both_models(qa, video):
    report = qa.run(video, questions=QUESTIONS[:2], captions=True, clip_length=6.0)
    assert isinstance(report, Report)
    assert report.video.path == str(video.resolve())
    assert (report.video.width, report.video.height, report.video.fps) == (64, 48, 10.0)
    assert report.video.codec == "h264"
    assert report.model.kind == "image" and report.model.frames_per_clip == 3
    assert report.caption_model.kind == "video"
    assert report.caption_model.frames_per_clip == TINY_VIDEO_FRAMES
    assert report.model.frame_size == tuple(qa.answer_engine.frame_size(64, 48))
    assert report.sampling.clip_length == 6.0 and report.sampling.stride == 6.0
    assert report.questions == QUESTIONS[:2]
    assert len(report.clips) == 2
    engine = qa.caption_engine
    for clip in report.clips:
        assert len(clip.answers) == 2
        # The captioning model saw its own frames of the same window.
        times = frame_times_in(clip.start, clip.end, TINY_VIDEO_FRAMES)
        assert clip.caption.frame_times == times
        [expected] = engine.caption([sampled(engine, video, times)])
        assert clip.caption.text == expected.text
        assert clip.caption.score == pytest.approx(expected.score)
    assert Report.from_dict(report.to_dict()) == report


def test_models_with_different_input_sizes_each_get_frames_at_their_own_size(
    tiny_image_git, tmp_path, video  # noqa: F811
):
    larger = save_tiny_git(tmp_path / "video-48", frames=2, image_size=48, patch_size=16)
    qa = VideoQA(str(tiny_image_git), caption_model=str(larger), device="cpu")
    report = qa.run(video, questions=QUESTIONS[:1], captions=True, clip_length=6.0)
    assert report.model.frame_size != report.caption_model.frame_size
    assert min(report.caption_model.frame_size) == 48
    engine = qa.caption_engine
    for clip in report.clips:
        assert clip.caption.frame_times == frame_times_in(clip.start, clip.end, 2)
        [expected] = engine.caption([sampled(engine, video, clip.caption.frame_times)])
        assert clip.caption.text == expected.text
        assert len(clip.answers[0].frames) == 3


def test_models_load_once_and_are_reused(qa, video):
    engine = qa.answer_engine
    list(qa.ask(video, QUESTIONS[:1], clip_length=6.0)[0])
    assert qa.answer_engine is engine
    assert qa.engine(qa.model) is engine


def test_image_checkpoint_frames_per_clip_is_a_choice(qa, video):
    results, _ = qa.ask(video, QUESTIONS[:1], clip_length=6.0, frames_per_clip=5)
    for result in results:
        assert len(result.frame_times) == 5 and len(result.answers[0].frames) == 5


def test_a_video_checkpoint_refuses_another_frame_count(qa, video):
    trained = f"trained on {TINY_VIDEO_FRAMES} frames per clip"
    with pytest.raises(ConfigError, match=f"^frames_per_clip: .* {trained}"):  # not a CLI flag
        qa.caption(video, frames_per_clip=TINY_VIDEO_FRAMES + 1)


def test_bad_inputs_fail_before_any_work_in_one_line(qa, video, tmp_path):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video")
    with pytest.raises(MediaError) as caught:
        qa.ask(not_video, QUESTIONS[:1])
    assert str(caught.value).startswith(str(not_video))
    with pytest.raises(MediaError):
        qa.caption(tmp_path / "missing.mp4")
    with pytest.raises(ConfigError, match="nothing to do"):
        qa.plan(video, questions=(), captions=False)
    with pytest.raises(ConfigError, match="not before end"):
        qa.ask(video, QUESTIONS[:1], start=30.0)
    with pytest.raises(ConfigError, match="^questions: a question is empty$"):
        qa.ask(video, ["  "])
    with pytest.raises(ConfigError, match="^max_new_tokens: must be at least 1, got 0$"):
        qa.ask(video, QUESTIONS[:1], max_new_tokens=0)


def test_real_rotated_phone_clip_is_seen_upright(qa, shared_media):
    report = qa.run(shared_media / "video_90.mov", questions=QUESTIONS[:1], captions=False)
    assert (report.video.width, report.video.height) == (320, 568)
    assert report.video.rotation in (90, -90, 270)
    width, height = report.model.frame_size
    assert height > width  # decoded upright, at the checkpoint's size
    assert len(report.clips) == 1 and report.clips[0].answers[0].frames


def test_a_chosen_stream_of_a_real_clip_is_used_and_reported(qa, shared_media):
    report = qa.run(shared_media / "nasa_13013.mp4", captions=True, stream=3, clip_length=5.0)
    assert report.video.stream == 3
    assert report.video.fps == pytest.approx(30000 / 1001)
    assert (report.video.width, report.video.height) == (480, 270)
    assert [c.index for c in report.clips] == list(range(len(report.clips)))
    assert report.clips[-1].end == pytest.approx(report.video.duration, abs=1e-3)


def test_from_engines_reuses_loaded_engines(qa, video):
    reused = VideoQA.from_engines(qa.answer_engine, qa.caption_engine)
    assert reused.answer_engine is qa.answer_engine
    assert reused.caption_engine is qa.caption_engine
    report = reused.run(video, questions=QUESTIONS[:1], clip_length=6.0)
    assert report.model.id == qa.answer_engine.model_id
    assert report.caption_model.id == qa.caption_engine.model_id
    with pytest.raises(ValueError):
        VideoQA.from_engines()


def test_an_anamorphic_interlaced_archive_clip_is_seen_as_a_viewer_sees_it(qa, tmp_path):
    """PAL 16:9 (720x576 stored, SAR 64:45) and interlaced: the model's frames are sized from
    the 1024x576 display size, and deinterlacing (auto by default) can be set per call."""
    path = tmp_path / "tape.ts"
    write_indexed_video(
        path, frames=30, width=720, height=576, rate=25, sample_aspect_ratio=Fraction(64, 45),
        options={"x264-params": "interlaced=1:tff=1"},
    )  # fmt: skip
    report = qa.run(path, questions=QUESTIONS[:1], captions=False, clip_length=0.6)
    assert (report.video.width, report.video.height) == (1024, 576)
    width, height = report.model.frame_size
    assert width / height == pytest.approx(16 / 9, abs=0.1)  # not 720x576's 5:4
    for mode in ("auto", "on", "off"):
        job = qa.plan(
            path, questions=QUESTIONS[:1], captions=False, clip_length=0.6, deinterlace=mode
        )
        assert job.deinterlace == mode and len(list(job.results())) == 2
    with pytest.raises(ConfigError, match="^deinterlace: must be auto, on or off, got 'yes'$"):
        qa.ask(path, QUESTIONS[:1], deinterlace="yes")
