"""Readability styles: every written cue obeys its preset, read back with srt and webvtt-py;
``videoqa lint-subs`` finds each kind of violation in a hand-made bad SRT."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import srt
import webvtt
from click.testing import CliRunner

from videoqa.cli import cli
from videoqa.formats.cues import (
    ELLIPSIS,
    PRESETS,
    SubtitleStyle,
    break_text,
    resolve_style,
    subtitle_cues,
)
from videoqa.report import (
    Caption,
    ClipResult,
    ModelInfo,
    QuestionAnswer,
    Report,
    Sampling,
    ShotSampling,
    VideoFacts,
)
from videoqa.sidecars import SrtWriter, build_cues, write_sidecars

SAMPLE_MEDIA = Path(__file__).resolve().parent.parent / "sample_media"

LONG = (
    "a man in a red jacket is walking his dog along the river bank while children play "
    "football on the grass, and a woman on a bicycle rides past them towards the old bridge"
)
CAPTIONS = [
    LONG, LONG, "a dog", "a dog", "a dog",
    "the quick brown fox jumps over the lazy dog and then runs into the forest behind the hill",
    "unbelievably", "a cat sits on a mat",
    "supercalifragilisticexpialidocious-and-extraordinarily-long-hyphenated-words here",
]  # fmt: skip


def make_report(captions: list[str], *, clip_length: float = 5.0, fps: float = 25.0,
                cuts: tuple[float, ...] | None = None, answers: bool = False) -> Report:
    clips = []
    for index, text in enumerate(captions):
        start, end = index * clip_length, (index + 1) * clip_length
        caption = None if answers else Caption(text, -0.5)
        qas = (QuestionAnswer("what happens?", text, -0.2),
               QuestionAnswer("where?", "by a river", -0.3)) if answers else ()  # fmt: skip
        clips.append(ClipResult(index, start, end, (start + 0.1,), caption, qas))
    duration = len(captions) * clip_length
    model = ModelInfo("tiny", None, "video", 1, (32, 32))
    sampling = Sampling(clip_length, clip_length, 0.0, duration, 20)
    if cuts is not None:
        sampling = replace(sampling, clip_mode="shots",
                           shots=ShotSampling("content", 1.0, 10.0, cuts))  # fmt: skip
    return Report(
        video=VideoFacts(path="v.mp4", duration=duration, width=64, height=48, fps=fps, stream=0),
        model=model, caption_model=None if answers else model, sampling=sampling,
        questions=("what happens?", "where?") if answers else (), clips=clips,
    )  # fmt: skip


def assert_obeys(cues: list[tuple[float, float, list[str]]], style: SubtitleStyle,
                 fps: float) -> None:  # fmt: skip
    """Each rule of ``style``, checked here on what a reader parsed (not with our checker)."""
    gap = style.min_gap_frames / fps
    for number, (start, end, lines) in enumerate(cues):
        duration = end - start
        text = " ".join(lines)
        where = f"cue {number + 1} {start:.3f}-{end:.3f} {lines}"
        if style.max_line_chars:
            assert all(len(line) <= style.max_line_chars for line in lines), where
        if style.max_lines:
            assert len(lines) <= style.max_lines, where
        if style.max_cps:
            assert len(text) / duration <= style.max_cps * 1.001, where
        if style.max_wpm:
            assert len(text.split()) * 60 / duration <= style.max_wpm * 1.001, where
        if style.min_duration:
            assert duration >= style.min_duration - 0.001, where
        if style.max_duration:
            assert duration <= style.max_duration + 0.001, where
        if number + 1 < len(cues):
            assert cues[number + 1][0] - end >= gap - 0.001, where
        if len(lines) == 2 and any(len(line.split()) == 1 for line in lines):
            words = text.split()  # a one-word line only where no two-word-a-line split fits
            assert not any(
                len(" ".join(words[:k])) <= (style.max_line_chars or 0)
                and len(" ".join(words[k:])) <= (style.max_line_chars or 0)
                for k in range(2, len(words) - 1)
            ), f"one-word line: {where}"


def read_srt(path: Path) -> list[tuple[float, float, list[str]]]:
    return [(s.start.total_seconds(), s.end.total_seconds(), s.content.split("\n"))
            for s in srt.parse(path.read_text(encoding="utf-8"))]  # fmt: skip


def read_vtt(path: Path) -> list[tuple[float, float, list[str]]]:
    return [(c.start_in_seconds + c.start_time.milliseconds / 1000,
             c.end_in_seconds + c.end_time.milliseconds / 1000, c.text.split("\n"))
            for c in webvtt.read(str(path))]  # fmt: skip


@pytest.mark.parametrize("name", ["netflix", "netflix-children", "bbc"])
@pytest.mark.parametrize("fps", [25.0, 30000 / 1001])
def test_every_written_cue_obeys_the_preset_read_back_by_srt_and_webvtt(tmp_path, name, fps):
    style = resolve_style(name)
    report = make_report(CAPTIONS, fps=fps)
    report.subtitles = style.to_dict()
    write_sidecars(report, tmp_path / "v.mp4", formats=("json", "srt", "vtt"))
    from_srt, from_vtt = read_srt(tmp_path / "v.srt"), read_vtt(tmp_path / "v.vtt")
    assert [(round(a, 3), round(b, 3), t) for a, b, t in from_vtt] == from_srt
    assert_obeys(from_srt, style, fps)
    # Nothing is said twice or lost: each caption's words, in order, cue after cue (the
    # repeated "a dog" and LONG once per piece), up to an ellipsis where a clip is too short.
    shown = " ".join(" ".join(lines) for _, _, lines in from_srt)
    assert "towards the old bridge" in shown or ELLIPSIS in shown
    assert shown.startswith("a man in a red jacket is walking")
    # The JSON keeps the model's text as it came, and records the style.
    data = json.loads((tmp_path / "v.videoqa.json").read_text(encoding="utf-8"))
    assert [clip["caption"]["text"] for clip in data["clips"]] == CAPTIONS
    assert data["subtitles"]["name"] == name
    assert Report.from_dict(data).subtitles == style.to_dict()


def test_a_long_caption_splits_into_consecutive_cues_within_its_clip():
    style = resolve_style("netflix")
    report = make_report(["a dog", LONG, "a cat"], clip_length=8.0)
    report.subtitles = style.to_dict()
    cues = subtitle_cues(report)
    middle = [cue for cue in cues if 8.0 <= cue.start < 16.0]
    assert len(middle) >= 2  # 165 characters: more than one cue of 2 x 42 holds
    assert all(cue.start >= 8.0 and cue.end <= 16.0 - 0.08 + 1e-9 for cue in middle)
    said = " ".join(" ".join(cue.lines) for cue in middle)
    assert LONG.startswith(said.rstrip(ELLIPSIS)) or said == LONG
    assert said.endswith(ELLIPSIS) or said == LONG


def test_identical_captions_merge_and_a_merged_cue_longer_than_7_s_splits():
    style = resolve_style("netflix")
    report = make_report(["a dog"] * 3 + ["a cat"], clip_length=2.0)
    report.subtitles = style.to_dict()
    cues = subtitle_cues(report)
    assert [(c.start, c.end, c.lines) for c in cues] == [
        (0.0, 5.92, ("a dog",)), (6.0, 8.0, ("a cat",)),
    ]
    long = make_report(["a dog"] * 6, clip_length=2.0)
    long.subtitles = style.to_dict()
    assert [(c.start, c.end) for c in subtitle_cues(long)] == [(0.0, 5.96), (6.04, 12.0)]


def test_a_cue_never_crosses_a_shot_cut():
    style = resolve_style("netflix")
    # Three shots; the second is long and was split into two clips (no cut at 6.0).
    report = make_report(["a dog", "a dog", "a dog", "a dog"], clip_length=3.0,
                         cuts=(3.0, 9.0))  # fmt: skip
    report.subtitles = style.to_dict()
    cues = subtitle_cues(report)
    for cut in (3.0, 9.0):
        assert not any(c.start < cut - 1e-9 and c.end > cut + 1e-9 for c in cues)
    assert [(c.start, c.end) for c in cues] == [(0.0, 2.92), (3.0, 8.92), (9.0, 12.0)]


def test_line_breaks_fall_at_phrase_boundaries_without_one_word_lines():
    style = resolve_style("netflix")
    assert break_text("a red circle moves right", style) == [("a red circle moves right",)]
    lines = break_text("a red circle moves to the right of the big blue square", style)
    assert lines == [("a red circle moves to the right", "of the big blue square")]
    two = break_text("two people are walking down the street, talking to each other", style)
    assert two == [("two people are walking down the street,", "talking to each other")]
    for cue in break_text(LONG, style):
        for first, second in zip(cue, cue[1:], strict=False):
            assert first.split()[-1] not in {"a", "the", "his", "her"}, cue
            assert len(second.split()) > 1 and len(first.split()) > 1, cue
    # Answers: each question's line is a phrase; a break between two is the best break.
    answers = make_report(["a dog"], answers=True)
    answers.subtitles = style.to_dict()
    (cue,) = subtitle_cues(answers)
    assert cue.lines == ("what happens?: a dog", "where?: by a river")


def test_style_none_writes_the_cues_videoqa_always_wrote():
    report = make_report(CAPTIONS)
    assert subtitle_cues(report) == build_cues(report)
    styled = make_report(CAPTIONS)
    styled.subtitles = PRESETS["none"].to_dict()
    assert SrtWriter().render(styled) == SrtWriter().render(report)


def test_overrides_replace_the_presets_figures_and_bad_values_are_refused():
    from videoqa.errors import ConfigError

    style = resolve_style("netflix", max_line_chars=32, max_lines=3, max_cps=12)
    assert (style.max_line_chars, style.max_lines, style.max_cps) == (32, 3, 12.0)
    assert style.max_duration == 7.0
    with pytest.raises(ConfigError, match="unknown style 'hbo'"):
        resolve_style("hbo")
    with pytest.raises(ConfigError) as error:
        resolve_style("bbc", max_cps=0)
    assert error.value.setting == "max_cps"


def test_lint_subs_finds_each_kind_of_violation_in_a_hand_made_srt(tmp_path):
    bad = tmp_path / "bad.srt"
    bad.write_text(
        "1\n00:00:00,000 --> 00:00:04,000\n"
        "This line is far longer than forty-two characters, by a lot\n\n"  # line-length
        "2\n00:00:04,000 --> 00:00:06,400\nLine one here\nline two here\nline three\n\n"  # lines
        "3\n00:00:06,500 --> 00:00:07,500\n"
        "Thirty-four characters in a second\n\n"  # cps
        "4\n00:00:08,000 --> 00:00:08,400\nHi\n\n"  # min-duration
        "5\n00:00:09,000 --> 00:00:17,000\nA long look\n\n"  # max-duration
        "6\n00:00:16,900 --> 00:00:19,000\nOverlapping\n\n"  # gap: overlaps cue 5
        "7\n00:00:20,000 --> 00:00:23,000\nA short\nsentence\n\n",  # one-word-line
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["lint-subs", str(bad)])
    assert result.exit_code == 1, result.output
    found = {(int(line.split(":")[1]), line.split(": ")[2]) for line in result.stdout.splitlines()}
    assert found == {
        (1, "line-length"), (2, "lines"), (1, "gap"), (3, "cps"), (4, "min-duration"),
        (5, "max-duration"), (5, "gap"), (7, "one-word-line"),
    }
    assert "8 violations of netflix" in result.stderr
    bbc = CliRunner().invoke(cli, ["lint-subs", "--subtitle-style", "bbc", str(bad)])
    assert "wpm" in bbc.stdout and "cps" not in bbc.stdout
    loose = CliRunner().invoke(cli, ["lint-subs", "--max-line-chars", "80", str(bad)])
    assert "line-length" not in loose.stdout


def test_lint_subs_passes_our_own_files_and_reads_vtt(tmp_path):
    report = make_report(CAPTIONS)
    report.subtitles = resolve_style("netflix").to_dict()
    write_sidecars(report, tmp_path / "v.mp4", formats=("srt", "vtt"))
    result = CliRunner().invoke(cli, ["lint-subs", "--fps", "25", str(tmp_path / "v.srt"),
                                      str(tmp_path / "v.vtt")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "0 violations of netflix in 2 files" in result.stderr
    # Without a style, a 165-character caption on one line breaks the rules: lint says so.
    plain = make_report(CAPTIONS)
    write_sidecars(plain, tmp_path / "p.mp4", formats=("vtt",))
    result = CliRunner().invoke(cli, ["lint-subs", str(tmp_path / "p.vtt")])
    assert result.exit_code == 1 and "line-length" in result.stdout


def test_lint_subs_refuses_a_file_it_cannot_read_in_one_line(tmp_path):
    broken = tmp_path / "broken.srt"
    broken.write_text("1\n00:00:01,000 --> later\nhello\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["lint-subs", str(broken)])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"videoqa: error: {broken}: line 2: unreadable timing '00:00:01,000 --> later'"
    )
    missing = CliRunner().invoke(cli, ["lint-subs", str(tmp_path / "none.srt")])
    assert missing.exit_code == 1 and "cannot read" in missing.stderr
    assert "Traceback" not in missing.output


@pytest.mark.skipif(not SAMPLE_MEDIA.is_dir(), reason="sample_media is absent")
def test_the_demo_models_captions_obey_netflix_through_the_cli(tmp_path):
    pytest.importorskip("torch")
    videos = []
    for video in sorted(SAMPLE_MEDIA.iterdir()):
        videos.append(tmp_path / video.name)
        shutil.copy(video, videos[-1])
    result = CliRunner().invoke(cli, ["caption", *map(str, videos), "--model", "demo",
                                      "--subtitle-style", "netflix", "--clip-length", "2",
                                      "-f", "json,srt,vtt"])  # fmt: skip
    assert result.exit_code == 0, result.output
    style = resolve_style("netflix")
    for video in videos:
        report = Report.load(video.with_suffix(".videoqa.json"))
        assert report.subtitles == style.to_dict()
        cues = read_srt(video.with_suffix(".srt"))
        assert cues, video
        assert_obeys(cues, style, report.video.fps)
        assert_obeys(read_vtt(video.with_suffix(".vtt")), style, report.video.fps)
        lint = CliRunner().invoke(cli, ["lint-subs", "--fps", f"{report.video.fps}",
                                        str(video.with_suffix(".srt"))])  # fmt: skip
        assert lint.exit_code == 0, lint.output


def test_cli_refuses_unknown_styles_before_any_model_loads(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    unknown = CliRunner().invoke(cli, ["caption", str(video), "--subtitle-style", "hbo"])
    assert unknown.exit_code == 2 and "'hbo' is not one of" in unknown.stderr
    short = CliRunner().invoke(cli, ["lint-subs", "--max-line-chars", "5", str(video)])
    assert short.exit_code == 2 and "--max-line-chars" in short.stderr


def test_a_later_run_without_a_style_keeps_the_records_style_and_an_edit_too(tmp_path):
    styled = make_report([LONG, "a cat"])
    styled.subtitles = resolve_style("netflix").to_dict()
    write_sidecars(styled, tmp_path / "v.mp4", formats=("json", "srt"))
    first = (tmp_path / "v.srt").read_text(encoding="utf-8")
    write_sidecars(make_report([LONG, "a cat"]), tmp_path / "v.mp4", formats=("json", "srt"))
    assert Report.load(tmp_path / "v.videoqa.json").subtitles == styled.subtitles
    assert (tmp_path / "v.srt").read_text(encoding="utf-8") == first
    assert max(len(line) for line in first.splitlines()) <= 42


def test_without_a_style_identical_shots_are_two_cues_too():
    report = make_report(["a dog"] * 4, clip_length=3.0, cuts=(3.0, 9.0))
    assert [(c.start, c.end) for c in build_cues(report)] == [(0.0, 3.0), (3.0, 9.0), (9.0, 12.0)]
