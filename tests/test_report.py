"""Report dataclasses and their versioned JSON form."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from videoqa.errors import VideoQAError
from videoqa.report import (
    SCHEMA_VERSION,
    Caption,
    ClipResult,
    FrameAnswer,
    ModelInfo,
    QuestionAnswer,
    Report,
    ReportFormatError,
    Sampling,
    VideoFacts,
)


def make_report() -> Report:
    voted = QuestionAnswer(
        question="what color is the ball?",
        answer="red",
        score=-0.25,
        frames=(
            FrameAnswer(time=0.8333, answer="red", score=-0.2),
            FrameAnswer(time=2.5, answer="blue", score=-1.5),
            FrameAnswer(time=4.1667, answer="red", score=-0.3),
        ),
    )
    return Report(
        video=VideoFacts(
            path="/videos/ball.mp4", duration=9.5, width=320, height=240, fps=25.0, stream=0,
            codec="h264", format_name="mov,mp4,m4a,3gp,3g2,mj2", frame_count=237,
        ),
        model=ModelInfo(id="microsoft/git-base-vqav2", revision="main", kind="image",
                        frames_per_clip=3, frame_size=(480, 480)),
        caption_model=ModelInfo(id="microsoft/git-base-vatex", revision=None, kind="video",
                                frames_per_clip=6, frame_size=(224, 224)),
        sampling=Sampling(clip_length=5.0, stride=5.0, start=0.0, end=9.5, max_new_tokens=20,
                          caption_max_new_tokens=30),
        questions=("what color is the ball?",),
        clips=[
            ClipResult(index=0, start=0.0, end=5.0, frame_times=(0.8333, 2.5, 4.1667),
                       caption=Caption("a red ball rolls", -0.5,
                                       frame_times=(0.4167, 1.25, 2.0833, 2.9167, 3.75, 4.5833)),
                       answers=(voted,)),
            ClipResult(index=1, start=5.0, end=9.5, frame_times=(5.75, 7.25, 8.75),
                       caption=None,
                       answers=(QuestionAnswer("what color is the ball?", "blue", -0.1),)),
        ],
    )


def test_json_round_trip_gives_back_an_equal_report():
    report = make_report()
    text = report.to_json()
    again = Report.from_dict(json.loads(text))
    assert again == report
    assert again.clips[0].answers[0].frames[1] == FrameAnswer(2.5, "blue", -1.5)
    assert again.caption_model.frame_size == (224, 224)


def test_json_form_holds_the_documented_keys():
    data = make_report().to_dict()
    assert data["schema_version"] == SCHEMA_VERSION
    assert set(data) >= {"video", "model", "caption_model", "sampling", "questions", "clips"}
    assert data["video"]["path"] == "/videos/ball.mp4"
    assert data["video"]["fps"] == 25.0 and data["video"]["stream"] == 0
    assert (data["video"]["width"], data["video"]["height"]) == (320, 240)
    assert data["model"] == {
        "id": "microsoft/git-base-vqav2", "revision": "main", "kind": "image",
        "frames_per_clip": 3, "frame_size": [480, 480], "fit": None,
    }
    clip = data["clips"][0]
    assert clip["frame_times"] == [0.8333, 2.5, 4.1667]
    assert clip["caption"]["text"] == "a red ball rolls"
    assert clip["answers"][0]["frames"][0] == {
        "time": 0.8333, "answer": "red", "score": -0.2, "confidence": 0.8187,
    }  # fmt: skip
    assert data["clips"][1]["caption"] is None
    # Only JSON types: it survives a strict dump.
    json.dumps(data, allow_nan=False)


def test_confidence_is_the_geometric_mean_token_probability_in_python_and_json():
    """exp(score): a mean log-probability of -0.25 is a confidence of 0.78 (1.1 adds it)."""
    report = make_report()
    first = report.clips[0]
    assert first.answers[0].confidence == pytest.approx(0.7788007831)
    assert first.answers[0].frames[1].confidence == pytest.approx(0.2231301601)
    assert first.caption.confidence == pytest.approx(0.6065306597)
    data = report.to_dict()
    assert data["clips"][0]["answers"][0]["confidence"] == 0.7788
    assert [f["confidence"] for f in data["clips"][0]["answers"][0]["frames"]] == [
        0.8187, 0.2231, 0.7408,
    ]  # fmt: skip
    assert data["clips"][0]["caption"]["confidence"] == 0.6065
    assert data["clips"][1]["answers"][0]["confidence"] == 0.9048
    # Derived, not stored: reading it back gives the same report, and 1.0 reports read too.
    assert Report.from_dict(json.loads(report.to_json())) == report
    del data["clips"][0]["caption"]["confidence"]
    assert Report.from_dict(data).clips[0].caption.confidence == pytest.approx(0.6065306597)


def test_newer_minor_version_with_extra_keys_is_read():
    data = make_report().to_dict()
    data["schema_version"] = "1.7"
    data["something_new"] = {"x": 1}
    data["clips"][0]["also_new"] = True
    report = Report.from_dict(data)
    assert report.schema_version == "1.7"
    assert report.clips[0].caption.text == "a red ball rolls"


def test_other_major_version_is_refused_in_one_line():
    data = make_report().to_dict()
    data["schema_version"] = "2.0"
    with pytest.raises(ReportFormatError) as caught:
        Report.from_dict(data, source="ball.videoqa.json")
    assert str(caught.value).startswith("ball.videoqa.json: schema version 2.0")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("clips"),
        lambda d: d["model"].update(kind="audio"),
        lambda d: d["clips"][0].update(start="soon"),
        lambda d: d.pop("schema_version"),
    ],
)
def test_damaged_reports_raise_the_error_family(damage):
    data = make_report().to_dict()
    damage(data)
    with pytest.raises(VideoQAError):
        Report.from_dict(data)


def test_load_reads_a_sidecar_and_names_bad_files(tmp_path):
    path = tmp_path / "clip.videoqa.json"
    path.write_text(make_report().to_json(), encoding="utf-8")
    assert Report.load(path) == make_report()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ReportFormatError, match="clip.videoqa.json: not JSON"):
        Report.load(path)
    with pytest.raises(ReportFormatError, match="cannot read"):
        Report.load(tmp_path / "missing.json")


def test_video_facts_come_from_a_video_info_and_name_the_used_stream_codec():
    info = SimpleNamespace(
        path="a.mkv", format_name="matroska,webm", duration=10.4, start_time=0.0,
        streams=(SimpleNamespace(index=0, kind="audio", codec="aac"),
                 SimpleNamespace(index=1, kind="video", codec="h264")),
        video_stream=1, width=426, height=240, rotation=0, fps=30.0, frame_count=None,
    )
    facts = VideoFacts.from_info(info)
    assert facts.codec == "h264" and facts.stream == 1 and facts.frame_count is None
    assert (facts.width, facts.height, facts.fps) == (426, 240, 30.0)


def test_answer_for_finds_a_question():
    clip = make_report().clips[0]
    assert clip.answer_for("what color is the ball?").answer == "red"
    assert clip.answer_for("how many?") is None
