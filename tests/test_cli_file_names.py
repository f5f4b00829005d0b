"""``videoqa caption`` on awkward file names: not UTF-8, and two videos with one stem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import srt
from click.testing import CliRunner
from test_watch_daemon import small_video  # noqa: F401  (pytest fixture)
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.cli import cli

LATIN1 = b"latin1_\xff\xe9"
"""A file name stem that is not UTF-8, as an SMB share delivers a Latin-1 ``é``."""


def test_caption_on_a_name_that_is_not_utf8(tmp_path, small_video, tiny_video_git):  # noqa: F811
    video = os.fsencode(tmp_path) + b"/" + LATIN1 + b".mp4"
    shutil.copy(small_video, video)
    # A strict UTF-8 terminal: printing the name as Python holds it would raise.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    command = [sys.executable, "-m", "videoqa", "caption", os.fsdecode(video),
               "--model", str(tiny_video_git)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert b"latin1_\\xff\\xe9.mp4 [00:00:00.000 --> " in result.stdout
    assert b"1 file: 1 done, 0 failed" in result.stderr
    names = set(os.listdir(os.fsencode(tmp_path)))
    assert {LATIN1 + b".srt", LATIN1 + b".vtt", LATIN1 + b".videoqa.json"} <= names
    # The JSON sidecar is valid UTF-8 and gives the exact bytes back.
    report = json.loads((tmp_path / os.fsdecode(LATIN1 + b".videoqa.json")).read_bytes())
    assert os.fsencode(report["video"]["path"]) == video
    assert set(report["sidecars"]) == {os.fsdecode(LATIN1 + b".srt"), os.fsdecode(LATIN1 + b".vtt")}

    # Again, as JSON lines on stdout: the sidecars are ours, so they are replaced.
    again = CliRunner().invoke(cli, ["caption", os.fsdecode(video), "--model", str(tiny_video_git),
                                     "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    assert os.fsencode(json.loads(again.stdout_bytes)["video"]["path"]) == video


def test_two_videos_with_one_stem_keep_both_sidecar_sets(
    tmp_path, small_video, tiny_video_git  # noqa: F811
):
    for name in ("same.mp4", "same.mkv"):
        shutil.copy(small_video, tmp_path / name)
    runner = CliRunner()
    first = runner.invoke(cli, ["caption", str(tmp_path / "same.mp4"), "--model",
                                str(tiny_video_git)])  # fmt: skip
    assert first.exit_code == 0, first.output
    both = runner.invoke(cli, ["caption", str(tmp_path / "same.mkv"), str(tmp_path / "same.mp4"),
                               "--model", str(tiny_video_git)])  # fmt: skip
    assert both.exit_code == 0, both.output
    # The first keeps the plain names (players find same.srt); the second gets its own.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "same.mkv", "same.mkv.srt", "same.mkv.videoqa.json", "same.mkv.vtt",
        "same.mp4", "same.srt", "same.videoqa.json", "same.vtt",
    ]  # fmt: skip
    for stem, video in (("same", "same.mp4"), ("same.mkv", "same.mkv")):
        report = json.loads((tmp_path / f"{stem}.videoqa.json").read_text())
        assert Path(report["video"]["path"]).name == video
        assert report["sidecar_of"] == video
        assert list(srt.parse((tmp_path / f"{stem}.srt").read_text()))
