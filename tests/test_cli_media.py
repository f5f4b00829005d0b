"""``videoqa info`` and ``videoqa frames`` from the command line.

Most tests run the click group in-process; one runs ``python -m videoqa`` to check what a user
sees on a bad file: one line on stderr, exit code 1, no traceback, nothing written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import cv2
import pytest
from click.testing import CliRunner
from indexed_video import minimum_decodes, read_index, reference_timeline, write_indexed_video
from test_media import BAD_INPUTS, make_bad_input

from videoqa.av_compat import PYAV_VERSION
from videoqa.cli import cli


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("cli") / "indexed.mp4"
    write_indexed_video(
        path, frames=48, options={"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=2"}
    )
    return path


def _run(*args: str):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def test_info_prints_a_table_and_json(indexed):
    table = _run("info", indexed)
    assert table.exit_code == 0, table.output
    assert "h264" in table.stdout and "64x48" in table.stdout and "48 frames" in table.stdout
    assert "[default, used]" in table.stdout
    as_json = _run("info", indexed, "--json")
    info = json.loads(as_json.stdout)
    assert (info["width"], info["height"], info["frame_count"]) == (64, 48, 48)
    assert info["streams"][0]["pixel_format"] == "yuv420p"


def test_info_stream_choice(shared_media):
    result = _run("info", shared_media / "nasa_13013.mp4", "--stream", "0", "--json")
    info = json.loads(result.stdout)
    assert (info["video_stream"], info["default_video_stream"], info["width"]) == (0, 3, 320)
    table = _run("info", shared_media / "nasa_13013.mp4", "--stream", "0").stdout
    assert "#0  video" in table and "[used]" in table and "[default]" in table


def test_frames_writes_the_frame_shown_at_each_time(indexed, tmp_path):
    out = tmp_path / "frames"
    times = ["1.0", "0.04", "0.0", "1.9", "5"]
    args = ["frames", indexed, "--out", out, "--size", "32x24", "--json"]
    for time in times:
        args += ["--at", time]
    result = _run(*args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    timeline = reference_timeline(indexed)
    frame_times = [time for time, _ in timeline]
    expected = [24, 0, 0, 45, 47]  # 24 fps; 0.04 s is before frame 1 (0.0417 s); 5 s: the last
    assert [entry["time"] for entry in report["frames"]] == [float(t) for t in times]
    for entry, index in zip(report["frames"], expected, strict=True):
        assert entry["pts_time"] == pytest.approx(float(frame_times[index]))
        rgb = cv2.imread(entry["path"])[:, :, ::-1]
        assert rgb.shape == (24, 32, 3) and read_index(rgb) == index
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.rsplit("/", 1)[-1] for p in (e["path"] for e in report["frames"])
    )
    minimum = minimum_decodes(timeline, [float(t) for t in times])  # 14 of the 48
    assert 0 < report["decoded_frames"] <= minimum + 8  # non-reference frames may be skipped
    assert report["seeks"] + report["restarts"] >= 1


def test_frames_every(indexed, tmp_path):
    result = _run("frames", indexed, "--every", "0.5", "--out", tmp_path, "--json")
    report = json.loads(result.stdout)
    assert [entry["time"] for entry in report["frames"]] == [0.0, 0.5, 1.0, 1.5]
    rgb = cv2.imread(report["frames"][1]["path"])
    assert rgb.shape == (48, 64, 3) and read_index(rgb[:, :, ::-1]) == 12


def test_frames_without_json_prints_one_line_per_frame(indexed, tmp_path):
    result = _run("frames", indexed, "--at", "0.5", "--out", tmp_path)
    assert result.exit_code == 0
    assert "0.500 s -> frame at 0.500000 s" in result.stdout
    assert "1 frames written" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "o"], "either --at SECONDS"),
        (["--at", "1", "--every", "1", "--out", "o"], "either --at SECONDS"),
        (["--at", "1", "--out", "o", "--size", "big"], "WIDTHxHEIGHT"),
        (["--at", "nan", "--out", "o"], "finite"),
    ],
)
def test_frames_usage_errors(indexed, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["frames", str(indexed), *args], catch_exceptions=False)
    assert result.exit_code == 2 and message in result.stderr


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
@pytest.mark.parametrize("command", ["info", "frames"])
def test_bad_input_is_one_line_exit_1_and_nothing_written(tmp_path, kind, command):
    if (command, kind) == ("info", "audio-only"):
        pytest.skip("info describes an audio-only file (the next test)")
    path = make_bad_input(kind, tmp_path)
    out = tmp_path / "out"
    args = [command, path] + (["--at", "1", "--out", out] if command == "frames" else [])
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 1
    assert result.stderr == f"videoqa: error: {path}: {result.stderr.split(': ', 3)[-1]}"
    assert result.stderr.count("\n") == 1 and BAD_INPUTS[kind][1] in result.stderr
    assert result.stdout == "" and not out.exists()


def test_info_describes_an_audio_only_file_with_a_note(tmp_path):
    path = make_bad_input("audio-only", tmp_path)
    table = _run("info", path)
    assert table.exit_code == 0, table.output
    assert "note        no video stream: nothing to caption" in table.stdout
    assert "#0  audio     aac (LC), 8000 Hz, mono (1 ch)" in table.stdout
    data = json.loads(_run("info", path, "--json").stdout)
    assert data["streams"][0]["channel_layout"] == "mono" and "nothing to caption" in data["note"]


def test_info_tells_durations_aspect_fields_colour_and_audio(shared_media):
    table = _run("info", shared_media / "nasa_13013.mp4").stdout
    lines = table.splitlines()
    assert "duration    13.013 s (00:00:13.013), video stream 3's: the timeline" in table
    assert any(
        line.startswith("container   13.056 s (00:00:13.056)")
        and "longest stream #2 subtitle, 16.570 s" in line
        for line in lines
    ), table
    position = next(n for n, line in enumerate(lines) if line.startswith("  #3  video"))
    assert "h264 (High), 480x270, 29.970 fps, 390 frames, 129 kb/s" in lines[position]
    fields = "progressive" if PYAV_VERSION >= (18, 1) else "field order unknown"
    assert lines[position + 1].split() == (
        f"yuv420p (8-bit, tv, bt709, {fields}), SAR 1:1, DAR 16:9".split()
    )
    assert "language eng" in lines[position + 2]
    assert "#1  audio     aac (LC), 8000 Hz, stereo (2 ch), 72 kb/s, 13.056 s" in table
    data = json.loads(_run("info", shared_media / "nasa_13013.mp4", "--json").stdout)
    assert (data["duration_source"], data["container_duration"]) == ("video stream", 13.056)
    assert data["streams"][3]["display_aspect_ratio"] == "16:9"


def test_anamorphic_interlaced_video_from_the_command_line(tmp_path):
    path = tmp_path / "pal.mkv"
    write_indexed_video(
        path, frames=6, width=720, height=576, sample_aspect_ratio=Fraction(64, 45),
        options={"x264-params": "interlaced=1:tff=1"},
    )  # fmt: skip
    table = _run("info", path).stdout
    assert "1024x576 upright (SAR 64:45, DAR 16:9)" in table
    assert "interlaced (deinterlaced by default)" in table
    out = tmp_path / "frames"
    result = _run("frames", path, "--at", "0.1", "--out", out, "--json")
    summary = json.loads(result.stdout)
    assert summary["deinterlaced"] is True
    png = cv2.imread(summary["frames"][0]["path"])
    assert png.shape == (576, 1024, 3) and read_index(png[:, :, ::-1]) == 2
    off = json.loads(_run("frames", path, "--at", "0", "--out", out, "--deinterlace", "off",
                          "--json").stdout)  # fmt: skip
    assert off["deinterlaced"] is False


def test_too_large_from_the_cli(indexed, tmp_path):
    result = _run("frames", indexed, "--at", "0", "--out", tmp_path / "o", "--max-pixels", "100")
    assert result.exit_code == 1 and "over the limit of 100 pixels" in result.stderr
    assert not (tmp_path / "o").exists()


def test_a_real_process_prints_no_traceback(tmp_path):
    path = make_bad_input("random-bytes", tmp_path)
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "videoqa", "frames", str(path), "--at", "0", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert completed.stderr.splitlines() == [
        f"videoqa: error: {path}: not a readable media file "
        "(Invalid data found when processing input)"
    ]
    assert completed.stdout == "" and not out.exists()


def test_ask_and_caption_without_torch_say_what_is_missing_in_one_line(indexed, tmp_path):
    """The base install runs info and frames without torch; the model commands say so."""
    hide_torch = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None; "
        "from videoqa.cli import main; sys.argv[0] = 'videoqa'; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide_torch, "caption", str(indexed), "--model", "demo",
         "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith("videoqa: error: torch is not installed: ")
    assert list(tmp_path.iterdir()) == []
