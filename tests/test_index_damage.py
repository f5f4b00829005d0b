"""Issue 20, finding 6: a damaged index is one line naming the file and what to do.

A real index built from real JSON sidecars, then 64 KiB of (seeded) random bytes written over
the middle of the file; the commands run as a person runs them, through the real CLI.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_index import archive_video

from videoqa.cli import cli
from videoqa.index import ArchiveIndex, IndexDamagedError, find_sidecars, ingest, rebuild_index

WORDS = ("red", "blue", "green", "car", "dog", "person", "walks", "runs", "jumps", "street",
         "house", "tree", "sky", "river", "boat")  # fmt: skip
VIDEOS, CLIPS = 40, 20


def build_archive(folder: Path) -> Path:
    """Sidecars of ``VIDEOS`` videos of ``CLIPS`` captioned clips each, in five folders."""
    rng = random.Random(20)
    for number in range(VIDEOS):
        captions = [" ".join(rng.choice(WORDS) for _ in range(6)) + f" {number}-{clip}"
                    for clip in range(CLIPS)]  # fmt: skip
        archive_video(folder / f"day{number % 5}", f"video{number}.mp4", captions,
                      content=f"video {number}".encode())  # fmt: skip
    return folder


def damage(path: Path, *, seed: int = 6) -> None:
    """64 KiB of random bytes over the middle of ``path``."""
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 65536, "the file is big enough to have a middle"
    middle = len(data) // 2 - 32768
    data[middle : middle + 65536] = random.Random(seed).randbytes(65536)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_archive(tmp_path_factory.mktemp("damage") / "archive")


@pytest.fixture
def damaged(archive: Path, tmp_path: Path) -> Path:
    db = tmp_path / "index.sqlite"
    with ArchiveIndex(db) as index:
        assert ingest(index, find_sidecars([archive])).indexed == VIDEOS
    damage(db)
    return db


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def one_line_about(db: Path, err: str) -> None:
    assert "Traceback" not in err
    assert err.splitlines() == [
        f"videoqa: error: {db}: the index is damaged (database disk image is malformed); run "
        f"'videoqa index --rebuild DIR --db {db}' to make it again from the JSON sidecars under "
        "DIR"
    ]


def test_search_on_a_damaged_index_is_one_line_not_a_traceback(damaged):
    before = damaged.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "videoqa", "search", "car", "--db", str(damaged)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    one_line_about(damaged, result.stderr)
    assert damaged.read_bytes() == before  # nothing written into it


@pytest.mark.parametrize("args", [
    ("index", "--prune"),
    ("index", "--check"),
    ("index", "{archive}"),
    ("find", "--what", "car", "--model", "demo", "{archive}/day0/video0.mp4"),
    ("caption", "--model", "demo", "{archive}/day0/video0.mp4", "-o", "{out}"),
    ("ask", "-q", "what color?", "--model", "demo", "{archive}/day0/video0.mp4", "-o", "{out}"),
])  # fmt: skip
def test_commands_that_use_a_damaged_index_say_so_in_one_line(damaged, archive, tmp_path, args):
    before = damaged.read_bytes()
    out = tmp_path / "out"
    args = tuple(arg.format(archive=archive, out=out) for arg in args)
    code, _out, err = run_cli(*args, "--db", str(damaged))
    assert code == 1
    one_line_about(damaged, err if args[0] == "index" else err.splitlines()[-1])
    assert "Traceback" not in err
    assert damaged.read_bytes() == before
    assert not out.exists() or not list(out.iterdir())  # refused before any model ran


def test_index_check_passes_a_sound_index(archive, tmp_path):
    db = tmp_path / "index.sqlite"
    code, _out, err = run_cli("index", str(archive), "--db", str(db))
    assert code == 0, err
    code, _out, err = run_cli("index", "--check", "--db", str(db))
    assert (code, err) == (0, f"videoqa: {db}: the index is sound ({VIDEOS} videos, "
                              f"{VIDEOS * CLIPS} clip rows)\n")  # fmt: skip


def test_rebuild_makes_a_damaged_index_whole_again(damaged, archive):
    code, _out, err = run_cli("index", "--rebuild", str(archive), "--db", str(damaged))
    assert code == 0, err
    assert f"rebuilt the index from {VIDEOS} report(s) ({VIDEOS * CLIPS} clip rows)" in err
    assert run_cli("index", "--check", "--db", str(damaged))[0] == 0
    code, out, err = run_cli("search", "car 7-3", "--db", str(damaged))
    assert code == 0 and "video7.mp4" in out.splitlines()[0]
    assert sorted(p.name for p in damaged.parent.iterdir() if "rebuild" in p.name) == []


def test_a_rebuild_that_fails_leaves_the_old_file_as_it_was(damaged, archive):
    before = damaged.read_bytes()
    seen = []

    def fail_midway() -> None:
        seen.append(1)
        if len(seen) == VIDEOS // 2:
            raise RuntimeError("the disk went away")

    with pytest.raises(RuntimeError):
        rebuild_index(damaged, [archive], on_file=fail_midway)
    assert damaged.read_bytes() == before
    assert sorted(p.name for p in damaged.parent.iterdir()) == [damaged.name]
    with pytest.raises(IndexDamagedError):
        ArchiveIndex(damaged).check()


def test_rebuild_refuses_to_replace_a_file_that_is_not_an_index(archive, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not an index\n" * 100)
    code, _out, err = run_cli("index", "--rebuild", str(archive), "--db", str(notes))
    assert code == 1
    assert err == (f"videoqa: error: {notes}: not a videoqa index (not an SQLite database): "
                   "left as it is; name another --db\n")  # fmt: skip
    assert notes.read_text() == "my notes, not an index\n" * 100


def _newer_layout(db: Path) -> Path:
    with ArchiveIndex(db):
        pass
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA user_version = 2")
    connection.close()
    return db


@pytest.mark.parametrize("kind", ["damaged", "newer layout", "not an index", "not sqlite"])
def test_serve_refuses_a_bad_index_before_it_listens(kind, damaged, tmp_path):
    pytest.importorskip("starlette", reason="videoqa serve is the web extra")
    db = {
        "damaged": lambda: damaged,
        "newer layout": lambda: _newer_layout(tmp_path / "newer.sqlite"),
        "not an index": lambda: _other_tables(tmp_path / "jobs.sqlite"),
        "not sqlite": lambda: _text(tmp_path / "notes.sqlite"),
    }[kind]()
    result = subprocess.run(
        [sys.executable, "-m", "videoqa", "serve", "--db", str(db), "--port", "0",
         "--root", str(tmp_path), "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "serving" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"videoqa: error: {db}: ")
    expected = {
        "damaged": "the index is damaged (database disk image is malformed)",
        "newer layout": "an index of another layout (version 2;",
        "not an index": "not a videoqa index (it holds other tables)",
        "not sqlite": "not a videoqa index (not an SQLite database)",
    }[kind]
    assert expected in lines[0]


def _other_tables(db: Path) -> Path:
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, path TEXT)")
    connection.close()
    return db


def _text(path: Path) -> Path:
    path.write_text("not a database at all\n" * 200)
    return path
