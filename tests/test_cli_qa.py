"""``videoqa ask`` / ``videoqa caption``: many files, sidecars, JSON on stdout, one-line errors."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
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
from videoqa.sidecars import format_timestamp


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
        (["--format", ""], "videoqa: error: --format: no format given"),
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
    *before, last = err.strip().splitlines()
    assert re.match(message, last)
    # A model's error follows the line announcing it; an option's comes before any loading.
    assert all(line.startswith("videoqa: loading ") for line in before)
    assert len(before) == (1 if args[0] in ("--model", "--frames-per-clip") else 0)
    assert not list(workdir.glob("first.*[!4]"))  # no sidecar written


def test_a_setting_the_library_refuses_is_named_by_its_flag(workdir, tiny_video_git):  # noqa: F811
    """The library says ``device: ...``; the command line says ``--device: ...``."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    code, _, err = invoke("caption", str(workdir / "first.mp4"), "--model", str(tiny_video_git),
                          "--device", "cuda")
    assert code == 1
    assert err.strip().splitlines() == [
        f"videoqa: loading {tiny_video_git}",
        "videoqa: error: --device: cuda asked for, but torch sees no CUDA GPU here",
    ]


def test_ask_needs_a_question(workdir):
    code, _, err = invoke("ask", str(workdir / "first.mp4"))
    assert code == 2 and "Missing option '-q' / '--question'" in err


def on_a_terminal(monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """Run the command with a real pseudo-terminal as stderr; what the terminal got."""
    leader, follower = pty.openpty()
    # A fresh pseudo-terminal is 0 columns wide; give it the size of a real one.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    terminal = open(follower, "w", encoding="utf-8", buffering=1)  # noqa: SIM115
    shown = b""
    try:
        monkeypatch.setattr(sys, "stderr", terminal)
        with pytest.raises(SystemExit) as finished:
            cli.main(list(args), prog_name="videoqa")
        assert finished.value.code == 0
        terminal.flush()
        while select.select([leader], [], [], 0.5)[0]:
            shown += os.read(leader, 65536)
    finally:
        terminal.close()
        os.close(leader)
    return shown.decode("utf-8", "replace")


def test_progress_bar_shows_on_a_terminal_only(workdir, tiny_video_git, monkeypatch):  # noqa: F811
    """A real pseudo-terminal as stderr gets the bar: file name, clips done / total."""
    text = on_a_terminal(monkeypatch, "caption", str(workdir / "first.mp4"), "--model",
                         str(tiny_video_git), "--format", "none", "--clip-length", "2")
    assert "first.mp4" in text and "4/4" in text and "clip" in text
    assert "1/1 files" not in text  # one file: the bar says its name
    assert "videoqa: 1 file: 1 done, 0 failed; 4 clips in" in text


def test_many_files_get_one_bar_for_the_whole_run(workdir, tiny_video_git, monkeypatch):  # noqa: F811
    """One bar over the collection: files finished of all, clips, clips/s and the time left."""
    text = on_a_terminal(monkeypatch, "caption", str(workdir / "first.mp4"),
                         str(workdir / "second.mp4"), "--model", str(tiny_video_git),
                         "--format", "none", "--clip-length", "2")
    # first.mp4 (8 s) is 4 clips; until second.mp4 is probed, the run guesses it is 4 too.
    assert re.search(r"0/2 files: +\d+%\|[^|]*\| 0/8 clips \[[0-9:]+<[0-9:?]+, ", text)
    # second.mp4 (4 s) is 2 clips: the total is then exact.
    assert re.search(r"1/2 files: +\d+%\|[^|]*\| [4-5]/6 clips \[[0-9:]+<[0-9:?]+, ", text)
    assert re.search(r"2/2 files: +100%\|[^|]*\| 6/6 clips \[[0-9:]+<00:00, +[0-9.]+clip/s\]",
                     text)
    assert "videoqa: 2 files: 2 done, 0 failed; 6 clips in" in text


def test_no_progress_bar_when_stderr_is_not_a_terminal(workdir, tiny_video_git):  # noqa: F811
    code, _, err = invoke("caption", str(workdir / "first.mp4"), "--model", str(tiny_video_git),
                          "--format", "none", "--clip-length", "2", "--device", "cpu")
    assert code == 0
    assert "4/4" not in err and "\r" not in err
    loading, summary = err.splitlines()  # the model announced, then the summary: no bar
    assert loading == f"videoqa: loading {tiny_video_git} on cpu (float32)..."
    assert summary.startswith("videoqa: 1 file: 1 done, 0 failed; 4 clips in")


def test_short_flags_all_formats_and_txt_with_readable_confidences(workdir, tiny_image_git):  # noqa: F811
    """``-f all -o DIR`` as whisper users type it; ``txt`` is one line per clip; confidences
    (exp of the mean log-probability) are in the answer lines and in the JSON."""
    out = workdir / "out"
    code, stdout, err = invoke("ask", str(workdir / "second.mp4"), "-q", "what is it?",
                               "-q", "how many?", "--model", str(tiny_image_git),
                               "--clip-length", "2", "-f", "all", "-o", str(out))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "second.descriptions.vtt", "second.ebutt.xml", "second.otio", "second.srt",
        "second.ttml", "second.txt", "second.videoqa.json", "second.vtt", "second.xmp",
    ]  # fmt: skip
    report = Report.load(out / "second.videoqa.json")
    assert len(report.clips) == 2

    def span(clip) -> str:
        return f"[{format_timestamp(clip.start)} --> {format_timestamp(clip.end)}]"

    assert (out / "second.txt").read_text(encoding="utf-8").splitlines() == [
        f"{span(clip)} " + " | ".join(f"{qa.question}: {qa.answer}" for qa in clip.answers)
        for clip in report.clips
    ]
    printed = [
        f"second.mp4 {span(clip)} {qa.question}: {qa.answer} (confidence {qa.confidence:.2f})"
        for clip in report.clips
        for qa in clip.answers
    ]
    assert stdout.splitlines() == printed
    data = json.loads((out / "second.videoqa.json").read_text(encoding="utf-8"))
    answer = data["clips"][0]["answers"][0]
    assert answer["confidence"] == round(math.exp(answer["score"]), 4)
    assert 0 < answer["confidence"] <= 1
    assert [f["confidence"] for f in answer["frames"]] == [
        round(math.exp(f["score"]), 4) for f in answer["frames"]
    ]
    assert "second.txt" in data["sidecars"]  # ours: a rerun may replace it
    code, _, err = invoke("ask", str(workdir / "second.mp4"), "-q", "what?", "--model",
                          str(tiny_image_git), "-f", "txt", "-o", str(out))
    assert code == 0, err


def test_the_first_line_comes_before_torch_is_imported(workdir):
    """A call says what it loads, and where, before the seconds torch takes to import."""
    missing = workdir / "no-checkpoint"  # the call ends once torch is imported and device known
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "videoqa", "caption",
         str(workdir / "second.mp4"), "--model", str(missing), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    err = result.stderr  # -X importtime writes a line as each module's import ends
    announced = err.index(f"videoqa: loading {missing}")
    first_torch = re.search(r"^import time:.*\|\s+torch(\.\S+)?$", err, re.MULTILINE)
    assert first_torch and announced < first_torch.start()
    assert " on cpu (float32)...\n" in err[first_torch.start():]
    assert result.returncode == 1
    assert err.splitlines()[-1] == f"videoqa: error: {missing}: no such checkpoint folder"


@pytest.fixture(scope="module")
def demo_videos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four 4 s videos of the demo world: 4 one-second clips each."""
    from videoqa.demo import Actor, Scene, write_scene_video
    from videoqa.demo.world import RADIUS

    folder = tmp_path_factory.mktemp("demo-videos")
    path = ((0.0, 0.25, 0.5), (4.0, 0.75, 0.5))
    scene = Scene((Actor("circle", RADIUS, path, ((0.0, "red"), (2.0, "blue"))),))
    videos = [folder / f"part{number}.mp4" for number in range(4)]
    for video in videos:
        write_scene_video(video, scene, duration=4.0)
    return videos


def test_ctrl_c_keeps_finished_files_whole_prints_the_summary_and_exits_130(
    demo_videos, tmp_path
):
    """A real SIGINT to a real ``videoqa``: whole sidecar sets for the files done, nothing for
    the others (no half file, no temporary file), the summary, exit code 130."""
    out = tmp_path / "out"
    call = subprocess.Popen(
        [sys.executable, "-m", "videoqa", "caption", *map(str, demo_videos), "--model", "demo",
         "--clip-length", "1", "-f", "all", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not (out / "part0.descriptions.vtt").exists():  # the last of part0's set
            assert call.poll() is None and time.monotonic() < deadline, call.stderr.read()
            time.sleep(0.05)
        call.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = call.communicate(timeout=60)
        stopped_in = time.monotonic() - sent
    finally:
        if call.poll() is None:
            call.kill()
            call.wait()
    assert call.returncode == 130, err
    assert stopped_in < 10  # a clip of the demo model takes well under a second
    assert "Traceback" not in err
    summary = re.fullmatch(r"videoqa: interrupted: 4 files: (\d) done, 0 failed, (\d) not done; "
                           r"\d+ clips in [0-9.]+ s", err.splitlines()[-1])  # fmt: skip
    assert summary, err
    done = int(summary[1])
    assert 1 <= done < 4 and done + int(summary[2]) == 4
    # Finished files keep their whole set; the rest have nothing; nothing temporary is left.
    suffixes = (".videoqa.json", ".srt", ".vtt", ".txt", ".otio", ".xmp", ".ttml", ".ebutt.xml",
                ".descriptions.vtt")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"part{number}{suffix}" for number in range(done) for suffix in suffixes
    )
    for number in range(done):
        json_sidecar = out / f"part{number}.videoqa.json"
        report = Report.load(json_sidecar)
        assert len(report.clips) == 4
        recorded = json.loads(json_sidecar.read_text(encoding="utf-8"))["sidecars"]
        for name in (f"part{number}.srt", f"part{number}.vtt", f"part{number}.txt"):
            digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
            assert digest in recorded[name]  # the very file the JSON sidecar announced
        assert len(list(srt.parse((out / f"part{number}.srt").read_text(encoding="utf-8")))) > 0
        assert len((out / f"part{number}.txt").read_text(encoding="utf-8").splitlines()) == 4
    partial = re.findall(r"^videoqa: (\S+): interrupted after (\d) of 4 clips; "
                         r"no sidecars written for it$", err, re.MULTILINE)  # fmt: skip
    assert len(partial) <= 1 and all(name == f"part{done}.mp4" for name, _ in partial)
