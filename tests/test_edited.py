"""Edited captions and answers: marked in the report (schema 1.2), written through the sidecar
writers, and never replaced by a later run (which keeps them and says so)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from videoqa.media import probe
from videoqa.report import (
    SCHEMA_VERSION,
    Caption,
    ClipResult,
    ModelInfo,
    QuestionAnswer,
    Report,
    Sampling,
    VideoFacts,
)
from videoqa.sidecars import write_sidecars
from videoqa.web.edits import EditError, edit_clip

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"
QUESTION = "what color is the circle?"
CAPTIONS = ("a red circle moves right", "a blue circle moves left", "a blue circle moves right")
COLOURS = ("red", "blue", "blue")


def circle_report(video: Path, *, clip_length: float = 5.0, captions=CAPTIONS) -> Report:
    """What the demo model says of the sample clip, clip by clip, as a report."""
    clips = []
    for index, (caption, colour) in enumerate(zip(captions, COLOURS, strict=True)):
        start, end = index * clip_length, (index + 1) * clip_length
        clips.append(ClipResult(
            index, start, end, (start + clip_length / 2,), Caption(caption, -0.05),
            (QuestionAnswer(QUESTION, colour, -0.02),),
        ))  # fmt: skip
    model = ModelInfo("demo", None, "video", 6, (32, 32), "pad")
    sampling = Sampling(clip_length, clip_length, 0.0, 15.0, 20, 30)
    return Report(VideoFacts.from_info(probe(video)), model, sampling, (QUESTION,), model, clips)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "circle.mp4"
    shutil.copyfile(SAMPLE, path)
    return path


def sidecar_texts(video: Path) -> tuple[list[str], list[str]]:
    srt_cues = [cue.content for cue in srt.parse(video.with_suffix(".srt").read_text())]
    vtt_cues = [cue.text for cue in webvtt.read(str(video.with_suffix(".vtt")))]
    return srt_cues, vtt_cues


def test_edited_is_written_only_when_true_and_read_back():
    report = circle_report(SAMPLE)
    clip = report.clips[1]
    report.clips[1] = ClipResult(
        clip.index, clip.start, clip.end, clip.frame_times,
        Caption("a blue disc moves left", -0.05, edited=True),
        (QuestionAnswer(QUESTION, "navy", -0.02, edited=True),),
    )  # fmt: skip
    data = json.loads(report.to_json())
    assert data["schema_version"] == SCHEMA_VERSION == "1.3"
    assert "edited" not in data["clips"][0]["caption"]
    assert "edited" not in data["clips"][0]["answers"][0]
    assert data["clips"][1]["caption"]["edited"] is True
    assert data["clips"][1]["answers"][0]["edited"] is True
    back = Report.from_dict(data)
    assert back.clips[1].caption.edited and back.clips[1].answers[0].edited
    assert not back.clips[0].caption.edited and not back.clips[0].answers[0].edited
    assert back.to_dict() == data


def test_an_edit_rewrites_json_srt_and_vtt_and_marks_the_clip(video):
    write_sidecars(circle_report(video), video)
    json_path = video.with_suffix(".videoqa.json")
    result = edit_clip(json_path, video, 1, caption="  a blue disc\n\nglides left ",
                       answers={QUESTION: "navy"})  # fmt: skip
    assert [path.name for path in result.written] == [
        "circle.videoqa.json", "circle.srt", "circle.vtt"
    ]
    data = json.loads(json_path.read_text())
    assert data["clips"][1]["caption"] == {**data["clips"][1]["caption"],
                                           "text": "a blue disc glides left", "edited": True}
    assert data["clips"][1]["answers"][0]["answer"] == "navy"
    assert data["clips"][1]["answers"][0]["edited"] is True
    assert "edited" not in data["clips"][0]["caption"]
    expected = [CAPTIONS[0], "a blue disc glides left", CAPTIONS[2]]
    assert sidecar_texts(video) == (expected, expected)
    # The same text again changes nothing and writes nothing.
    before = json_path.read_bytes()
    assert edit_clip(json_path, video, 1, caption="a blue disc glides left").written == ()
    assert json_path.read_bytes() == before


def test_a_bad_edit_is_one_line_and_writes_nothing(video):
    write_sidecars(circle_report(video), video)
    json_path = video.with_suffix(".videoqa.json")
    before = {path.name: path.read_bytes() for path in video.parent.iterdir()}
    for kwargs, reason in (
        ({"caption": " \n "}, "an empty caption is not a correction"),
        ({"answers": {"how many?": "two"}}, "clip 1 has no answer to 'how many?'"),
    ):
        with pytest.raises(EditError) as caught:
            edit_clip(json_path, video, 1, **kwargs)
        assert str(caught.value) == f"{json_path}: {reason}"
    with pytest.raises(EditError, match="has no clip 7$"):
        edit_clip(json_path, video, 7, caption="x")
    other = video.with_name("other.mp4")
    with pytest.raises(EditError, match="is not the JSON sidecar of other.mp4$"):
        edit_clip(json_path, other, 1, caption="x")
    assert {path.name: path.read_bytes() for path in video.parent.iterdir()} == before


def test_an_edit_leaves_a_subtitle_file_the_user_changed_alone(video):
    write_sidecars(circle_report(video), video)
    users = "1\n00:00:00,000 --> 00:00:15,000\nmy own words\n"
    video.with_suffix(".srt").write_text(users)
    written = edit_clip(video.with_suffix(".videoqa.json"), video, 0, caption="a red dot").written
    assert [path.name for path in written] == ["circle.videoqa.json", "circle.vtt"]
    assert video.with_suffix(".srt").read_text() == users


def test_a_later_run_keeps_edited_texts_and_says_so(video, caplog):
    write_sidecars(circle_report(video), video)
    json_path = video.with_suffix(".videoqa.json")
    edit_clip(json_path, video, 1, caption="a blue disc glides left", answers={QUESTION: "navy"})
    rerun = circle_report(video, captions=("red again", "blue again", "blue once more"))
    with caplog.at_level(logging.WARNING, logger="videoqa.sidecars"):
        write_sidecars(rerun, video)
    # The report handed on (printed with --json, given to adapters) holds the kept text too.
    assert [clip.caption.text for clip in rerun.clips] == [
        "red again", "a blue disc glides left", "blue once more"
    ]
    assert rerun.clips[1].caption.edited and rerun.clips[1].answers[0].answer == "navy"
    assert not rerun.clips[0].caption.edited
    expected = ["red again", "a blue disc glides left", "blue once more"]
    assert sidecar_texts(video) == (expected, expected)
    assert Report.load(json_path).clips[1].caption.edited
    assert [record.getMessage() for record in caplog.records] == [
        "circle.mp4: kept 1 edited caption and 1 edited answer from circle.videoqa.json "
        "instead of the model's new text (remove their \"edited\" mark there to let the "
        "model's in)"
    ]


def test_edited_texts_of_another_clip_plan_are_kept_as_alternatives(video, caplog):
    write_sidecars(circle_report(video), video)
    edit_clip(video.with_suffix(".videoqa.json"), video, 1, caption="a blue disc")
    shorter = circle_report(video, clip_length=4.0)  # clips 0-4, 4-8, 8-12: none is 5-10
    with caplog.at_level(logging.WARNING, logger="videoqa.sidecars"):
        write_sidecars(shorter, video)
    assert [clip.caption.text for clip in shorter.clips] == list(CAPTIONS)
    assert [record.getMessage() for record in caplog.records] == [
        "circle.mp4: 1 edited text in circle.videoqa.json belongs to another clip plan than "
        'this run\'s; kept under "alternatives" there, not in the subtitles'
    ]
    record = Report.load(video.with_suffix(".videoqa.json"))
    edited = [(alt.kind, text.start, text.end, text.text) for alt in record.alternatives
              for text in alt.texts if text.edited]
    assert edited == [("caption", 5.0, 10.0, "a blue disc")]
    assert sidecar_texts(video)[0] == list(CAPTIONS)  # the subtitles hold the new plan only


def test_videoqa_caption_keeps_an_edited_caption_end_to_end(video):
    """The demo model captions, a person corrects clip 1, ``videoqa caption`` runs again."""
    pytest.importorskip("torch", reason="captions come from the demo model: needs torch")

    from click.testing import CliRunner

    from videoqa.cli import cli

    first = CliRunner().invoke(cli, ["caption", str(video), "--model", "demo"])
    assert first.exit_code == 0, first.stderr
    assert sidecar_texts(video)[0] == list(CAPTIONS)
    edit_clip(video.with_suffix(".videoqa.json"), video, 1, caption="a sky blue circle")
    # Again in a process of its own: what a user sees on stderr.
    again = subprocess.run([sys.executable, "-m", "videoqa", "caption", str(video), "--model",
                            "demo"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 0, again.stderr
    stderr = again.stderr
    assert "videoqa: WARNING: circle.mp4: kept 1 edited caption and 0 edited answers from " \
        "circle.videoqa.json instead of the model's new text" in stderr
    expected = [CAPTIONS[0], "a sky blue circle", CAPTIONS[2]]
    assert sidecar_texts(video) == (expected, expected)
