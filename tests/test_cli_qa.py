"""``videoqa ask`` / ``videoqa caption``: many files, sidecars, JSON on stdout, one-line errors."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import re
import select
import struct
import sys
import termios
from pathlib import Path

import pytest
import srt
import webvtt
from click.testing import CliRunner
from test_pipeline import write_test_video
from tiny_git import TINY_VIDEO_FRAMES, tiny_image_git, tiny_video_git  # noqa: F401 (fixtures)

pytest.importorskip("torch", reason="the CLI's model commands need torch")

from videoqa.cli import cli
from videoqa.report import Report


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-videos")
    write_test_video(folder / "first.mp4", seconds=8.0)
    write_test_video(folder / "second.mp4", seconds=4.0, size=(48, 64))
    return folder


@pytest.fixture
def workdir(videos: Path, tmp_path: Path) -> Path:
    """A fresh folder with links to the test videos, so sidecars land somewhere new each test."""
    for video in videos.iterdir():
        (tmp_path / video.name).symlink_to(video)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_ask_writes_all_three_sidecars_with_answers_at_clip_times(workdir, tiny_image_git):  # noqa: F811
    video = workdir / "first.mp4"
    code, out, err = invoke("ask", str(video), "-q", "what is the color?", "-q", "how many?",
                            "--model", str(tiny_image_git), "--clip-length", "3")
    assert code == 0, err
    report = Report.load(workdir / "first.videoqa.json")
    assert [(c.start, c.end) for c in report.clips] == [(0.0, 3.0), (3.0, 6.0), (6.0, 8.0)]
    assert report.model.kind == "image" and report.caption_model is None
    assert all(len(qa.frames) == 3 for clip in report.clips for qa in clip.answers)

    subtitles = list(srt.parse((workdir / "first.srt").read_text(encoding="utf-8")))
    cues = webvtt.read(str(workdir / "first.vtt"))
    # One cue per clip unless neighbours say the same; each starts at a clip start.
    starts = {clip.start for clip in report.clips}
    assert {s.start.total_seconds() for s in subtitles} <= starts
    assert subtitles[-1].end.total_seconds() == 8.0
    assert [s.start.total_seconds() for s in subtitles] == [
        c.start_time.in_milliseconds() / 1000 for c in cues
    ]
    first_clip = report.clips[0]
    assert subtitles[0].content.splitlines() == [
        f"{qa.question}: {qa.answer}" for qa in first_clip.answers
    ]
    # Answers stream to stdout as each clip is done; the summary goes to stderr.
    assert f"first.mp4 [00:00:00.000 --> 00:00:03.000] what is the color?: " \
           f"{first_clip.answers[0].answer}" in out
    assert "videoqa: 1 file: 1 done, 0 failed; 3 clips in" in err


def test_a_bad_file_is_reported_in_one_line_and_the_others_are_processed(
    workdir, tiny_video_git  # noqa: F811
):
    (workdir / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    code, out, err = invoke("caption", str(workdir / "first.mp4"), str(workdir / "broken.mp4"),
                            str(workdir / "nope.mkv"), str(workdir / "second.mp4"),
                            "--model", str(tiny_video_git), "--format", "srt")
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("videoqa: error:")]
    assert len(errors) == 2
    assert errors[0].startswith(f"videoqa: error: {workdir / 'broken.mp4'}: ")
    assert errors[1] == f"videoqa: error: {workdir / 'nope.mkv'}: no such file"
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("videoqa: 4 files: 2 done, 2 failed;")
    assert sorted(p.name for p in workdir.glob("*.srt")) == ["first.srt", "second.srt"]
    assert not list(workdir.glob("*.json"))  # --format srt only


def test_caption_json_lines_on_stdout_with_no_sidecars(workdir, tiny_video_git, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="videoqa.pipeline")
    code, out, err = invoke("caption", str(workdir / "first.mp4"), str(workdir / "second.mp4"),
                            "--model", str(tiny_video_git), "--json", "--format", "none",
                            "--start", "1", "--end", "7", "--stride", "2", "--clip-length", "4")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2
    first, second = (Report.from_dict(json.loads(line)) for line in lines)
    assert first.video.path == str(workdir / "first.mp4")
    assert (second.video.width, second.video.height) == (48, 64)
    assert [(c.start, c.end) for c in first.clips] == [(1.0, 5.0), (3.0, 7.0)]
    assert first.sampling.stride == 2.0 and first.sampling.caption_max_new_tokens == 30
    assert all(len(c.caption.frame_times) == TINY_VIDEO_FRAMES for c in first.clips)
    assert sorted(p.name for p in workdir.iterdir()) == ["first.mp4", "second.mp4"]
    loads = [r for r in caplog.records if r.getMessage().startswith("loading ")]
    assert len(loads) == 1  # one model load for the whole call, not one per file


def test_output_dir_and_users_subtitles(workdir, tiny_video_git):  # noqa: F811
    out_dir = workdir / "subs" / "new"
    code, _, err = invoke("caption", str(workdir / "second.mp4"), "--model", str(tiny_video_git),
                          "--output-dir", str(out_dir))
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "second.srt", "second.videoqa.json", "second.vtt",
    ]
    # Our own subtitles are refreshed on a rerun ...
    code, _, err = invoke("caption", str(workdir / "second.mp4"), "--model", str(tiny_video_git),
                          "--output-dir", str(out_dir), "--max-new-tokens", "2")
    assert code == 0, err
    # ... but a subtitle file of the user's is kept unless --overwrite.
    users = workdir / "second.vtt"
    users.write_text("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nmine\n", encoding="utf-8")
    code, _, err = invoke("caption", str(workdir / "second.mp4"), "--model", str(tiny_video_git))
    assert code == 1
    assert f"videoqa: error: {users}: exists and was not written by videoqa" in err
    assert [c.text for c in webvtt.read(str(users))] == ["mine"]
    assert not (workdir / "second.srt").exists() and not (workdir / "second.videoqa.json").exists()
    code, _, err = invoke("caption", str(workdir / "second.mp4"), "--model", str(tiny_video_git),
                          "--overwrite")
    assert code == 0, err
    assert [c.text for c in webvtt.read(str(users))] != ["mine"]


def test_ask_with_captions_uses_the_caption_model_for_the_cues(
    workdir, tiny_image_git, tiny_video_git  # noqa: F811
):
    code, _, err = invoke("ask", str(workdir / "second.mp4"), "-q", "what is this?",
                          "--model", str(tiny_image_git), "--caption",
                          "--caption-model", str(tiny_video_git), "--format", "json,srt")
    assert code == 0, err
    report = Report.load(workdir / "second.videoqa.json")
    assert report.model.kind == "image" and report.caption_model.kind == "video"
    subtitles = list(srt.parse((workdir / "second.srt").read_text(encoding="utf-8")))
    assert [s.content for s in subtitles] == [" ".join(report.clips[0].caption.text.split())]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/no/such/checkpoint"], "videoqa: error: /no/such/checkpoint: "),
        (["--format", "srt,ass"], "videoqa: error: --format: unknown format ass"),
        (["--frames-per-clip", str(TINY_VIDEO_FRAMES + 2)],
         r"videoqa: error: --frames-per-clip: \S+ is a video checkpoint trained on "
         f"{TINY_VIDEO_FRAMES} frames per clip"),
        (["--start", "5", "--end", "3"], "videoqa: error: --end: 3 s is not after --start 5 s"),
    ],
)
def test_bad_options_end_in_one_line_and_exit_1(workdir, tiny_video_git, args, message):  # noqa: F811
    options = ["--model", str(tiny_video_git), *args] if args[0] != "--model" else args
    code, _, err = invoke("caption", str(workdir / "first.mp4"), *options)
    assert code == 1
    assert re.search(message, err) and len(err.strip().splitlines()) == 1
    assert not list(workdir.glob("first.*[!4]"))  # no sidecar written


def test_a_setting_the_library_refuses_is_named_by_its_flag(workdir, tiny_video_git):  # noqa: F811
    """The library says ``device: ...``; the command line says ``--device: ...``."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, _, err = invoke("caption", str(workdir / "first.mp4"), "--model", str(tiny_video_git),
                          "--device", "cuda")
    assert code == 1
    assert err.strip() == (
        "videoqa: error: --device: cuda asked for, but torch sees no CUDA GPU here"
    )


def test_ask_needs_a_question(workdir):
    code, _, err = invoke("ask", str(workdir / "first.mp4"))
    assert code == 2 and "Missing option '-q' / '--question'" in err


def test_progress_bar_shows_on_a_terminal_only(workdir, tiny_video_git, monkeypatch):  # noqa: F811
    """A real pseudo-terminal as stderr gets the bar: file name, clips done / total."""
    leader, follower = pty.openpty()
    # A fresh pseudo-terminal is 0 columns wide; give it the size of a real one.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    terminal = open(follower, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    try:
        monkeypatch.setattr(sys, "stderr", terminal)
        with pytest.raises(SystemExit) as finished:
            cli.main(["caption", str(workdir / "first.mp4"), "--model", str(tiny_video_git),
                      "--format", "none", "--clip-length", "2"], prog_name="videoqa")
        assert finished.value.code == 0
        terminal.flush()
        shown = b""
        while select.select([leader], [], [], 0.5)[0]:
            shown += os.read(leader, 65536)
    finally:
        terminal.close()
        os.close(leader)
    text = shown.decode("utf-8", "replace")
    assert "first.mp4" in text and "4/4" in text and "clip" in text
    assert "videoqa: 1 file: 1 done, 0 failed; 4 clips in" in text


def test_no_progress_bar_when_stderr_is_not_a_terminal(workdir, tiny_video_git):  # noqa: F811
    code, _, err = invoke("caption", str(workdir / "first.mp4"), "--model", str(tiny_video_git),
                          "--format", "none", "--clip-length", "2")
    assert code == 0
    assert "4/4" not in err and "\r" not in err
    assert err.splitlines() == [err.splitlines()[0]]  # the summary line alone
    assert err.startswith("videoqa: 1 file: 1 done, 0 failed; 4 clips in")
