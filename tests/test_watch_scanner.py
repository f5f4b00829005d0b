"""Which files count, symlink safety, and the settle check."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from videoqa.watch.config import FolderSettings
from videoqa.watch.daemon import wait_until_settled
from videoqa.watch.scanner import (
    SettleTracker,
    is_candidate,
    iter_candidates,
    real_path_inside,
)


@pytest.mark.parametrize(
    "relative",
    [
        "clip.mp4.part", "clip.mp4.crdownload", "clip.tmp", ".syncthing.clip.mp4.tmp",
        "~clip.mp4", ".hidden.mp4", ".cache/clip.mp4", "@eaDir/clip.mp4/SYNOFILE_THUMB.mp4",
        "clip.srt", "clip.vtt", "clip.videoqa.json", "notes.txt",
    ],
)  # fmt: skip
def test_temporary_hidden_housekeeping_and_own_output_files_are_ignored(tmp_path, relative):
    assert not is_candidate(tmp_path / relative, FolderSettings(folder=tmp_path))


def test_videos_count_in_subfolders_unless_not_recursive(tmp_path):
    settings = FolderSettings(folder=tmp_path)
    assert is_candidate(tmp_path / "Clip.MP4", settings)
    assert is_candidate(tmp_path / "day 1" / "clip.mkv", settings)
    flat = FolderSettings(folder=tmp_path, recursive=False)
    assert not is_candidate(tmp_path / "day 1" / "clip.mkv", flat)
    assert not is_candidate(Path("/elsewhere/clip.mp4"), settings)


def test_a_folder_walk_prunes_ignored_folders(tmp_path):
    for relative in ("a.mp4", "sub/b.mov", "@eaDir/c.mp4", ".trash/d.mp4", "sub/e.mp4.part"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_candidates(FolderSettings(tmp_path))]
    assert found == ["a.mp4", "sub/b.mov"]


def test_symlinks_whose_real_path_leaves_the_folder_are_refused(tmp_path):
    watched, outside = tmp_path / "watched", tmp_path / "outside"
    watched.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"x")
    (watched / "inside.mp4").write_bytes(b"x")
    os.symlink(outside / "secret.mp4", watched / "escape.mp4")
    os.symlink(watched / "inside.mp4", watched / "alias.mp4")
    os.symlink(outside, watched / "linked-folder")
    assert not real_path_inside(watched / "escape.mp4", watched)
    assert not real_path_inside(watched / "linked-folder" / "secret.mp4", watched)
    assert real_path_inside(watched / "alias.mp4", watched)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_released_only_after_staying_unchanged_for_the_settle_time(tmp_path):
    clock = Clock()
    tracker = SettleTracker(2.0, clock=clock)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"a" * 10)
    tracker.touch(path)
    for step in range(1, 4):  # still growing every second
        clock.now = float(step)
        with open(path, "ab") as handle:
            handle.write(b"b")
        assert tracker.settled() == []
    clock.now = 4.5
    assert tracker.settled() == []
    clock.now = 5.0
    (identity,) = tracker.settled()
    assert (identity.path, identity.size) == (path, 13)
    assert len(tracker) == 0


def test_a_file_that_vanishes_while_settling_is_dropped(tmp_path):
    clock = Clock()
    tracker = SettleTracker(1.0, clock=clock)
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x")
    tracker.touch(path)
    path.unlink()
    clock.now = 5.0
    assert tracker.settled() == [] and len(tracker) == 0


def test_process_settle_waits_for_a_file_still_being_written(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"x")
    last_write: list[float] = []

    def append() -> None:
        for _ in range(4):
            time.sleep(0.1)
            with open(path, "ab") as handle:
                handle.write(b"y")
            last_write.append(time.monotonic())

    writer = threading.Thread(target=append)
    writer.start()
    try:
        wait_until_settled(path, 0.3)
    finally:
        writer.join()
    assert time.monotonic() >= last_write[-1] + 0.3
    assert path.stat().st_size == 5
