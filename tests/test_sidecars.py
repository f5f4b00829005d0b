"""Sidecars: cues read back with independent parsers (srt, webvtt-py), atomic and careful writes."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import srt
import webvtt

from videoqa.errors import OutputError
from videoqa.report import (
    Caption,
    ClipResult,
    ModelInfo,
    QuestionAnswer,
    Report,
    Sampling,
    VideoFacts,
)
from videoqa.sidecars import (
    FORMATS,
    TEMP_SUFFIX,
    atomic_write_text,
    build_cues,
    create_temporary,
    format_timestamp,
    is_stale_temporary,
    move_sidecars,
    parse_formats,
    remove_stale_temporaries,
    sidecar_paths,
    write_sidecars,
)

QUESTIONS = ("what is it?", "what color?")


def make_report(captions: list[str] | None, answers: list[tuple[str, str]] | None = None,
                *, clip_length: float = 2.5, stride: float | None = None,
                duration: float = 12.345) -> Report:
    """Clips over ``duration`` with given captions (or answers per clip)."""
    stride = stride or clip_length
    count = len(captions if captions is not None else answers)
    clips = []
    for index in range(count):
        start = round(index * stride, 6)
        end = round(min(start + clip_length, duration), 6)
        caption = Caption(captions[index], -0.5) if captions is not None else None
        qas = ()
        if answers is not None:
            pairs = zip(QUESTIONS, answers[index], strict=True)
            qas = tuple(QuestionAnswer(q, a, -0.1) for q, a in pairs)
        clips.append(ClipResult(index, start, end, (start + 0.1,), caption, qas))
    model = ModelInfo("tiny", None, "video", 1, (32, 32))
    return Report(
        video=VideoFacts(path="v.mp4", duration=duration, width=64, height=48, fps=25.0, stream=0),
        model=model,
        caption_model=model if captions is not None else None,
        sampling=Sampling(clip_length, stride, 0.0, duration, 20),
        questions=QUESTIONS if answers is not None else (),
        clips=clips,
    )


def test_one_timestamp_formatter_in_whole_milliseconds():
    assert format_timestamp(0.0) == "00:00:00.000"
    assert format_timestamp(3723.4567) == "01:02:03.457"
    assert format_timestamp(59.9996, decimal_marker=",") == "00:01:00,000"
    assert format_timestamp(65.5, always_include_hours=False) == "01:05.500"
    assert format_timestamp(36000.001, always_include_hours=False) == "10:00:00.001"
    with pytest.raises(ValueError):
        format_timestamp(-1.0)


def test_srt_and_vtt_read_back_with_one_cue_per_clip_at_clip_times(tmp_path):
    video = tmp_path / "ball.mp4"
    report = make_report(["a dog", "a cat", "a bird", "a fish", "a cow", "a hen"], duration=14.2)
    paths = write_sidecars(report, video)
    assert [p.name for p in paths] == ["ball.videoqa.json", "ball.srt", "ball.vtt"]

    subtitles = list(srt.parse((tmp_path / "ball.srt").read_text(encoding="utf-8")))
    names = ["a dog", "a cat", "a bird", "a fish", "a cow", "a hen"]
    assert [s.content for s in subtitles] == names
    for subtitle, clip in zip(subtitles, report.clips, strict=True):
        assert subtitle.start == timedelta(seconds=clip.start)
        assert subtitle.end == timedelta(milliseconds=round(clip.end * 1000))
    assert subtitles[-1].end == timedelta(seconds=14.2)

    captions = webvtt.read(str(tmp_path / "ball.vtt"))
    assert [c.text for c in captions] == names
    for caption, clip in zip(captions, report.clips, strict=True):
        assert caption.start_time.in_milliseconds() == round(clip.start * 1000)
        assert caption.end_time.in_milliseconds() == round(clip.end * 1000)

    data = json.loads((tmp_path / "ball.videoqa.json").read_text(encoding="utf-8"))
    assert Report.from_dict(data) == report


def test_consecutive_clips_with_the_same_caption_merge_into_one_cue(tmp_path):
    report = make_report(["a dog", "a dog", "a dog", "a cat", "a dog"], clip_length=2.0)
    write_sidecars(report, tmp_path / "v.mp4", formats=("srt", "vtt"))
    subtitles = list(srt.parse((tmp_path / "v.srt").read_text(encoding="utf-8")))
    assert [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subtitles] == [
        (0.0, 6.0, "a dog"), (6.0, 8.0, "a cat"), (8.0, 10.0, "a dog"),
    ]
    assert [s.index for s in subtitles] == [1, 2, 3]
    captions = webvtt.read(str(tmp_path / "v.vtt"))
    assert [(c.start, c.end, c.text) for c in captions] == [
        ("00:00:00.000", "00:00:06.000", "a dog"),
        ("00:00:06.000", "00:00:08.000", "a cat"),
        ("00:00:08.000", "00:00:10.000", "a dog"),
    ]


def test_same_captions_across_a_gap_stay_apart_and_overlapping_clips_do_not_stack():
    gaps = make_report(["a dog", "a dog"], clip_length=2.0, stride=5.0)
    assert [(c.start, c.end) for c in build_cues(gaps)] == [(0.0, 2.0), (5.0, 7.0)]
    overlapping = make_report(["a dog", "a cat", "a cow"], clip_length=4.0, stride=2.0)
    assert [(c.start, c.end, c.lines) for c in build_cues(overlapping)] == [
        (0.0, 2.0, ("a dog",)), (2.0, 4.0, ("a cat",)), (4.0, 8.0, ("a cow",)),
    ]


def test_answers_become_question_lines_unless_captions_were_made_too(tmp_path):
    answers = [("a dog", "brown"), ("a dog", "brown"), ("a cat", "black")]
    report = make_report(None, answers)
    write_sidecars(report, tmp_path / "q.mp4", formats="srt,vtt")
    subtitles = list(srt.parse((tmp_path / "q.srt").read_text(encoding="utf-8")))
    assert [(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles] == [
        (0.0, 5.0), (5.0, 7.5),
    ]
    assert subtitles[0].content == "what is it?: a dog\nwhat color?: brown"
    captions = webvtt.read(str(tmp_path / "q.vtt"))
    assert captions[1].lines == ["what is it?: a cat", "what color?: black"]

    both = make_report(["a dog runs", "a dog runs", "a cat sits"], answers)
    assert [cue.lines for cue in build_cues(both)] == [("a dog runs",), ("a cat sits",)]


def test_text_that_would_break_a_cue_is_kept_on_one_line_and_escaped_in_vtt(tmp_path):
    report = make_report(["a <b>bold</b> &\n\nmulti line", "", "x --> y"])
    write_sidecars(report, tmp_path / "t.mp4", formats=["srt", "vtt"])
    subtitles = list(srt.parse((tmp_path / "t.srt").read_text(encoding="utf-8")))
    # The empty caption gets no cue; the other two stay whole.
    assert [s.content for s in subtitles] == ["a <b>bold</b> & multi line", "x -> y"]
    vtt_text = (tmp_path / "t.vtt").read_text(encoding="utf-8")
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; multi line" in vtt_text
    assert len(webvtt.read(str(tmp_path / "t.vtt"))) == 2


def test_formats_and_output_dir_choose_what_goes_where(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert parse_formats("vtt,json, SRT") == ("json", "srt", "vtt")
    assert parse_formats("none") == ()
    with pytest.raises(OutputError, match=r"^formats: unknown format ass \(choose from json"):
        parse_formats("srt,ass")
    paths = sidecar_paths(tmp_path / "in" / "my.clip.mov", formats=["vtt"], output_dir=out)
    assert paths == {"vtt": out / "my.clip.vtt"}
    written = write_sidecars(make_report(["x"]), tmp_path / "my.clip.mov", formats=["json"],
                             output_dir=out)
    assert written == [out / "my.clip.videoqa.json"]
    assert sorted(p.name for p in out.iterdir()) == ["my.clip.videoqa.json"]
    assert parse_formats("all") == parse_formats(
        "txt,json,srt,vtt,otio,xmp,ttml,ebutt,descriptions") == FORMATS
    assert FORMATS == ("json", "srt", "vtt", "txt", "otio", "xmp", "ttml", "ebutt", "descriptions")
    for nothing in ("", " , "):
        with pytest.raises(OutputError, match=r"^formats: no format given \(choose from json"):
            parse_formats(nothing)


def test_write_sidecars_creates_the_output_folder(tmp_path):
    """From Python as on the command line: a missing ``output_dir`` is made, parents too."""
    out = tmp_path / "subs" / "new"
    written = write_sidecars(make_report(["x"]), tmp_path / "a.mp4", output_dir=out)
    assert written == [out / "a.videoqa.json", out / "a.srt", out / "a.vtt"]
    assert sorted(p.name for p in out.iterdir()) == ["a.srt", "a.videoqa.json", "a.vtt"]
    (tmp_path / "file").write_text("", encoding="utf-8")
    with pytest.raises(OutputError, match=r"file: not a folder$"):
        write_sidecars(make_report(["x"]), tmp_path / "a.mp4", output_dir=tmp_path / "file")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        write_sidecars(make_report(["x"]), tmp_path / "a.mp4", output_dir=tmp_path / "file" / "x")
    with pytest.raises(OutputError, match="output folder does not exist"):
        write_sidecars(make_report(["x"]), tmp_path / "gone" / "a.mp4")  # beside a lost video


def test_txt_is_one_line_per_clip_with_its_time_range(tmp_path):
    report = make_report(["a dog runs", "a dog runs", "", "a cat\nsits"], clip_length=2.5)
    write_sidecars(report, tmp_path / "t.mp4", formats="txt")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == (
        "[00:00:00.000 --> 00:00:02.500] a dog runs\n"
        "[00:00:02.500 --> 00:00:05.000] a dog runs\n"
        "[00:00:05.000 --> 00:00:07.500]\n"
        "[00:00:07.500 --> 00:00:10.000] a cat sits\n"
    )
    answers = make_report(None, [("a dog", "brown"), ("a cat", "black")])
    write_sidecars(answers, tmp_path / "q.mp4", formats="txt")
    assert (tmp_path / "q.txt").read_text(encoding="utf-8").splitlines() == [
        "[00:00:00.000 --> 00:00:02.500] what is it?: a dog | what color?: brown",
        "[00:00:02.500 --> 00:00:05.000] what is it?: a cat | what color?: black",
    ]


def test_txt_is_protected_like_the_subtitles_and_follows_twin_names(tmp_path):
    notes = tmp_path / "film.txt"
    notes.write_text("my notes about the film\n", encoding="utf-8")
    with pytest.raises(OutputError, match="film.txt: exists and was not written by videoqa"):
        write_sidecars(make_report(["a dog"]), tmp_path / "film.mkv", formats="all")
    assert notes.read_text(encoding="utf-8") == "my notes about the film\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.txt"]
    notes.unlink()
    write_sidecars(make_report(["a dog"]), tmp_path / "film.mkv", formats="all")
    recorded = json.loads((tmp_path / "film.videoqa.json").read_text(encoding="utf-8"))
    assert set(recorded["sidecars"]) == {"film.srt", "film.vtt", "film.txt", "film.otio",
                                         "film.xmp", "film.ttml", "film.ebutt.xml",
                                         "film.descriptions.vtt"}  # fmt: skip
    write_sidecars(make_report(["a cat"]), tmp_path / "film.mkv", formats="all")  # ours: replaced
    assert notes.read_text(encoding="utf-8").endswith("] a cat\n")
    write_sidecars(make_report(["a cow"]), tmp_path / "film.mp4", formats="txt,json")
    assert (tmp_path / "film.mp4.txt").read_text(encoding="utf-8").endswith("] a cow\n")
    assert notes.read_text(encoding="utf-8").endswith("] a cat\n")


def test_a_users_subtitle_file_is_not_overwritten_without_overwrite(tmp_path):
    video = tmp_path / "film.mkv"
    users = tmp_path / "film.srt"
    users.write_text("1\n00:00:01,000 --> 00:00:02,000\nmy own words\n", encoding="utf-8")
    (tmp_path / "film.videoqa.json").write_text("{}", encoding="utf-8")  # our old JSON
    with pytest.raises(OutputError) as caught:
        write_sidecars(make_report(["a dog"]), video)
    assert str(caught.value) == f"{users}: exists and was not written by videoqa " \
                                "(set overwrite to replace it)"
    assert caught.value.setting == "overwrite"
    # Nothing at all was written: not the VTT, not the JSON.
    assert users.read_text(encoding="utf-8").endswith("my own words\n")
    assert not (tmp_path / "film.vtt").exists()
    assert (tmp_path / "film.videoqa.json").read_text(encoding="utf-8") == "{}"

    write_sidecars(make_report(["a dog"]), video, overwrite=True)
    assert [s.content for s in srt.parse(users.read_text(encoding="utf-8"))] == ["a dog"]


def test_our_own_subtitles_are_replaced_on_a_rerun_but_not_once_the_user_edits_them(tmp_path):
    video = tmp_path / "film.mkv"
    write_sidecars(make_report(["a dog"]), video)
    write_sidecars(make_report(["a cat"]), video)  # ours, unchanged: replaced
    vtt = tmp_path / "film.vtt"
    assert [c.text for c in webvtt.read(str(vtt))] == ["a cat"]
    vtt.write_text(vtt.read_text(encoding="utf-8").replace("a cat", "a lion"), encoding="utf-8")
    with pytest.raises(OutputError, match="film.vtt: exists and was not written by videoqa"):
        write_sidecars(make_report(["a cow"]), video)
    assert [c.text for c in webvtt.read(str(vtt))] == ["a lion"]


def test_atomic_write_leaves_the_old_file_whole_when_writing_fails(tmp_path):
    target = tmp_path / "x.srt"
    target.write_text("old and good\n", encoding="utf-8")
    os.chmod(target, 0o640)

    # A lone surrogate cannot be encoded: the write fails after the temp file was opened.
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "new text \udcff broken")
    assert target.read_text(encoding="utf-8") == "old and good\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.srt"]  # no temp file left behind

    atomic_write_text(target, "new\n")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640  # permissions kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.srt"]


def test_a_folder_we_cannot_write_to_is_a_one_line_output_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        with pytest.raises(OutputError, match="cannot write here"):
            write_sidecars(make_report(["x"]), Path(locked / "v.mp4"), formats=["json"])
    finally:
        os.chmod(locked, 0o700)


def test_a_crash_between_two_files_leaves_sidecars_we_still_recognise(tmp_path, monkeypatch):
    """Killed after the JSON (and maybe one subtitle): the next run replaces them all."""
    import videoqa.sidecars as sidecars

    real_write = sidecars.atomic_write_text
    video = tmp_path / "film.mkv"
    write_sidecars(make_report(["a dog"]), video)
    for files_before_the_crash in (1, 2):
        calls = []

        def crash_after(target, text, limit=files_before_the_crash, calls=calls):
            if len(calls) == limit:
                raise KeyboardInterrupt  # the process dies here
            calls.append(Path(target).name)
            real_write(target, text)

        monkeypatch.setattr(sidecars, "atomic_write_text", crash_after)
        with pytest.raises(KeyboardInterrupt):
            write_sidecars(make_report(["a cat"]), video)
        assert calls[0] == "film.videoqa.json"
        monkeypatch.setattr(sidecars, "atomic_write_text", real_write)
        write_sidecars(make_report([f"a cow {files_before_the_crash}"]), video)  # no --overwrite
        assert [c.text for c in webvtt.read(str(tmp_path / "film.vtt"))] == [
            f"a cow {files_before_the_crash}"
        ]


def test_writing_only_json_keeps_our_subtitles_ours(tmp_path):
    video = tmp_path / "film.mkv"
    write_sidecars(make_report(["a dog"]), video)
    write_sidecars(make_report(["a cat"]), video, formats=["json"])
    write_sidecars(make_report(["a cow"]), video, formats=["srt", "vtt"])
    assert [s.content for s in srt.parse((tmp_path / "film.srt").read_text())] == ["a cow"]


def test_videos_with_one_stem_never_share_sidecars(tmp_path):
    write_sidecars(make_report(["a dog"]), tmp_path / "same.mp4")
    write_sidecars(make_report(["a cat"]), tmp_path / "same.mkv")
    write_sidecars(make_report(["a cow"]), tmp_path / "same.mp4")  # its own set, replaced
    assert [s.content for s in srt.parse((tmp_path / "same.srt").read_text())] == ["a cow"]
    assert [s.content for s in srt.parse((tmp_path / "same.mkv.srt").read_text())] == ["a cat"]
    assert sidecar_paths(tmp_path / "same.mkv", formats=["vtt"]) == {
        "vtt": tmp_path / "same.mkv.vtt"
    }
    # Both names taken (the stem of two.mkv.mp4 is two.mkv): refused, nothing overwritten.
    write_sidecars(make_report(["a hen"]), tmp_path / "two.mp4")
    write_sidecars(make_report(["a pig"]), tmp_path / "two.mkv.mp4")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(OutputError, match="sidecar names taken by two.mp4 and two.mkv.mp4"):
        write_sidecars(make_report(["a fox"]), tmp_path / "two.mkv")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_renamed_videos_sidecars_follow_it_and_only_ours_move(tmp_path, monkeypatch):
    def names() -> list[str]:
        return sorted(p.name for p in tmp_path.iterdir())

    write_sidecars(make_report(["a dog"]), tmp_path / "a.mp4")
    moved = move_sidecars(tmp_path / "a.mp4", tmp_path / "b.mp4")
    assert names() == ["b.srt", "b.videoqa.json", "b.vtt"] == sorted(p.name for p in moved)
    data = json.loads((tmp_path / "b.videoqa.json").read_text())
    assert (data["video"]["path"], data["sidecar_of"]) == (str(tmp_path / "b.mp4"), "b.mp4")
    assert set(data["sidecars"]) == {"b.srt", "b.vtt"}
    write_sidecars(make_report(["a cat"]), tmp_path / "b.mp4")  # still ours, same names
    assert names() == ["b.srt", "b.videoqa.json", "b.vtt"]
    move_sidecars(tmp_path / "b.mp4", tmp_path / "b.mkv")  # same stem: same names
    assert json.loads((tmp_path / "b.videoqa.json").read_text())["sidecar_of"] == "b.mkv"
    # Killed after the JSON and one subtitle moved: the next call finishes the move.
    real_replace, calls = os.replace, []

    def killed_on_the_third(source, target):
        calls.append(target)
        if len(calls) == 3:
            raise SystemExit("killed")
        real_replace(source, target)

    monkeypatch.setattr("videoqa.sidecars.os.replace", killed_on_the_third)
    with pytest.raises(SystemExit):
        move_sidecars(tmp_path / "b.mkv", tmp_path / "c.mkv")
    monkeypatch.undo()
    assert names() == ["b.videoqa.json", "b.vtt", "c.srt", "c.videoqa.json"]
    move_sidecars(tmp_path / "b.mkv", tmp_path / "c.mkv")
    assert names() == ["c.srt", "c.videoqa.json", "c.vtt"]
    assert set(json.loads((tmp_path / "c.videoqa.json").read_text())["sidecars"]) == {
        "c.srt", "c.vtt"
    }
    # A subtitle the user edited is no longer ours: it stays where it is.
    (tmp_path / "c.vtt").write_text("WEBVTT\n\nmine\n")
    move_sidecars(tmp_path / "c.mkv", tmp_path / "d.mkv")
    assert names() == ["c.vtt", "d.srt", "d.videoqa.json"]
    assert set(json.loads((tmp_path / "d.videoqa.json").read_text())["sidecars"]) == {"d.srt"}
    # A file of the user's already has the new name: nothing moves.
    (tmp_path / "e.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nmine\n")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(OutputError, match="e.srt: exists and was not written by videoqa"):
        move_sidecars(tmp_path / "d.mkv", tmp_path / "e.mkv")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_temporary_files_say_who_writes_them_and_only_a_dead_writers_are_removed(tmp_path):
    descriptor, live = create_temporary(tmp_path, "x.srt")
    os.close(descriptor)
    assert live.name.startswith(f".x.srt.{os.getpid()}-") and live.name.endswith(TEMP_SUFFIX)
    ended = subprocess.Popen(["true"])
    ended.wait()
    stale = tmp_path / live.name.replace(f".{os.getpid()}-", f".{ended.pid}-")
    stale.write_text("half")
    others = [".x.srt.abc123.tmp", f".x.srt.{ended.pid}-zzzzzzzz.abcd1234{TEMP_SUFFIX}",
              f"x.srt.{ended.pid}{TEMP_SUFFIX}", "x.srt"]  # fmt: skip
    for name in others:
        (tmp_path / name).write_text("not ours to remove")
    assert is_stale_temporary(stale.name) and not is_stale_temporary(live.name)
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, *others])
