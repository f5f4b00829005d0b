"""The daemon and the files it meets: names that are not UTF-8, its own temporary files left by
a killed worker, two videos with one stem, and a second daemon on the same job store.

Daemons run as real subprocesses (``python -m videoqa watch``; the twins test in a thread) with
a real watchdog observer, a real SQLite store, real worker processes and the real pipeline on
the tiny GIT checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from test_watch_daemon import (  # noqa: F401  (small_video: a pytest fixture)
    events,
    jobs_of,
    running,
    small_video,
    wait_for,
    write_config,
)
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.sidecars import TEMP_SUFFIX
from videoqa.watch.config import FolderSettings, WatchConfig, load_config
from videoqa.watch.worker import process_file

TESTS = Path(__file__).resolve().parent

LATIN1 = b"latin1_\xff\xe9"
"""A file name stem that is not UTF-8, as an SMB share delivers a Latin-1 ``é``."""


def start_daemon(config_path: Path, folder: Path, log: Path, **env: str) -> subprocess.Popen:
    """``videoqa watch FOLDER`` as a subprocess, its stderr appended to ``log``."""
    python_path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "videoqa", "watch", str(folder), "--config", str(config_path)],
            stdout=subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, "PYTHONPATH": python_path, **env},
        )  # fmt: skip


def wait_alive(condition, daemon: subprocess.Popen, log: Path, *, show=None) -> None:
    """Wait for ``condition``, failing at once (with the log) should the daemon exit."""

    def check() -> bool:
        assert daemon.poll() is None, f"the daemon exited: {log.read_text(errors='replace')}"
        return condition()

    wait_for(check, timeout=90, show=show)


@contextmanager
def daemon_process(
    config_path: Path, folder: Path, log: Path, **env: str
) -> Iterator[subprocess.Popen]:
    """A ``videoqa watch`` subprocess, ready (watching); stopped with SIGTERM at the end."""
    daemon = start_daemon(config_path, folder, log, **env)
    try:
        wait_alive(lambda: "watching" in log.read_text(errors="replace"), daemon, log)
        yield daemon
        assert daemon.poll() is None, log.read_text(errors="replace")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0, log.read_text(errors="replace")
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def done(config: WatchConfig, *names: bytes) -> bool:
    jobs = jobs_of(config)
    return all(jobs.get(os.fsdecode(name), ("",))[0] == "done" for name in names)


def test_a_name_that_is_not_utf8_is_processed_and_never_stops_the_daemon(
    tmp_path, small_video, tiny_video_git  # noqa: F811
):
    watched = tmp_path / "watched"
    watched.mkdir()
    config_path = write_config(tmp_path, tiny_video_git)
    config = load_config(config_path, folders=[watched])
    first = LATIN1 + b".mp4"
    log = tmp_path / "first.log"
    with daemon_process(config_path, watched, log) as daemon:
        shutil.copy(small_video, os.fsencode(watched) + b"/" + first)
        shutil.copy(small_video, watched / "after.mp4")
        wait_alive(lambda: done(config, first, b"after.mp4"), daemon, log)
    # Sidecars named from the same bytes; the report and the event log name the exact file.
    names = set(os.listdir(os.fsencode(watched)))
    assert {LATIN1 + b".srt", LATIN1 + b".vtt", LATIN1 + b".videoqa.json"} <= names
    report = json.loads((watched / os.fsdecode(LATIN1 + b".videoqa.json")).read_bytes())
    assert os.fsencode(report["video"]["path"]) == os.fsencode(watched) + b"/" + first
    logged = {os.fsencode(Path(e["video"]).name): e["event"] for e in events(config)}
    assert logged == {first: "done", b"after.mp4": "done"}

    # A restart rescans a folder holding such names (and finds one more, added meanwhile).
    second = b"caf\xe9.mkv"
    shutil.copy(small_video, os.fsencode(watched) + b"/" + second)
    log = tmp_path / "second.log"
    with daemon_process(config_path, watched, log) as daemon:
        wait_alive(lambda: done(config, first, second), daemon, log)
    assert "caf\\xe9.mkv: settled, queued" in log.read_text()  # shown readably
    assert (watched / os.fsdecode(b"caf\xe9.srt")).exists()
    logged = sorted(os.fsencode(Path(e["video"]).name) for e in events(config))
    assert logged == sorted([first, b"after.mp4", second])  # none processed twice

    # `videoqa jobs` lists them on a strict UTF-8 terminal, as text and as JSON.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    command = [sys.executable, "-m", "videoqa", "jobs", "--config", str(config_path)]
    listed = subprocess.run(command, capture_output=True, env=env, check=True)
    assert b"latin1_\\xff\\xe9.mp4" in listed.stdout and b"caf\\xe9.mkv" in listed.stdout
    as_json = subprocess.run([*command, "--json"], capture_output=True, env=env, check=True)
    paths = {os.fsencode(job["path"]) for job in json.loads(as_json.stdout)["jobs"]}
    assert os.fsencode(watched) + b"/" + first in paths


def die_writing(path: Path, settings: FolderSettings):
    """A processor: the real pipeline, then the worker dies by SIGKILL in the middle of writing
    the results, at the N-th ``fsync`` of a file, N the digit that ends the video's stem."""
    report = process_file(path, settings)
    if not Path(path).stem[-1].isdigit():
        return report
    limit, calls, real_fsync = int(Path(path).stem[-1]), [], os.fsync

    def fsync(descriptor: int) -> None:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            calls.append(descriptor)
            if len(calls) == limit:  # written, not yet synced nor renamed
                os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(descriptor)

    os.fsync = fsync  # the worker dies with it
    return report


def ended_pid() -> int:
    """The process id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_no_temporary_file_is_left_after_a_worker_is_killed_mid_write(
    tmp_path, small_video, tiny_video_git  # noqa: F811
):
    watched = tmp_path / "watched"
    watched.mkdir()
    processor = 'processor = "test_watch_paths:die_writing"'
    config_path = write_config(tmp_path, tiny_video_git, processor, max_attempts=2)
    config = load_config(config_path, folders=[watched])
    # Left by an earlier crash: ours (its writer gone) goes at start; the rest is not ours to
    # remove (the journal a killed attempt left is kept: the next attempt needs it).
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    stale = f".old.srt.{ended_pid()}-{host}.abcd1234{TEMP_SUFFIX}"
    not_ours = [
        f".live.srt.{os.getpid()}-{host}.abcd1234{TEMP_SUFFIX}",  # a writer still at work
        f".far.srt.{ended_pid()}-0123abcd.abcd1234{TEMP_SUFFIX}",  # another machine's
        ".clip.srt.abc123.tmp", "notes.tmp", ".hidden",  # another program's
    ]  # fmt: skip
    for name in [stale, *not_ours]:
        (watched / name).write_text("x")
    log = tmp_path / "daemon.log"
    with daemon_process(config_path, watched, log) as daemon:
        assert not (watched / stale).exists()
        # Killed once writing the sidecar adapter's journal, once writing the JSON sidecar.
        for name in ("diewriting1.mp4", "diewriting2.mp4", "fine.mp4"):
            shutil.copyfile(small_video, watched / name)
        names = [os.fsencode(name) for name in ("diewriting1.mp4", "diewriting2.mp4", "fine.mp4")]
        wait_alive(lambda: finished(config, names), daemon, log, show=lambda: jobs_of(config))
    jobs = jobs_of(config)
    for name in ("diewriting1.mp4", "diewriting2.mp4"):
        state, _, error = jobs[name]
        assert state == "failed" and "worker process died (signal SIGKILL)" in error
    assert jobs["fine.mp4"][0] == "done"
    assert log.read_text().count("(left by a writer that died)") >= 5  # 1 at start, 4 deaths
    left = sorted(p.name for p in watched.iterdir() if p.name.startswith("."))
    assert left == sorted(
        [".diewriting2.mp4.videoqa-pending", *[n for n in not_ours if n.startswith(".")]]
    )


def finished(config: WatchConfig, names: list[bytes]) -> bool:
    jobs = jobs_of(config)
    return all(jobs.get(os.fsdecode(name), ("",))[0] in ("done", "failed") for name in names)


def test_two_videos_with_one_stem_keep_both_sidecar_sets(
    tmp_path, small_video, tiny_video_git  # noqa: F811
):
    watched = tmp_path / "watched"
    watched.mkdir()
    config = load_config(write_config(tmp_path, tiny_video_git), folders=[watched])
    with running(config):
        for name in ("same.mp4", "same.mkv"):
            shutil.copyfile(small_video, watched / name)
        wait_for(lambda: done(config, b"same.mp4", b"same.mkv"), show=lambda: jobs_of(config))
    reports = {p.name: json.loads(p.read_text()) for p in watched.glob("*.videoqa.json")}
    owners = {name: report["sidecar_of"] for name, report in reports.items()}
    # The first to arrive keeps the plain names (players find same.srt); the other its own.
    first = owners["same.videoqa.json"]
    second = ({"same.mp4", "same.mkv"} - {first}).pop()
    assert owners == {"same.videoqa.json": first, f"{second}.videoqa.json": second}
    assert sorted(p.name for p in watched.iterdir()) == sorted([
        "same.mp4", "same.mkv", "same.srt", "same.vtt", "same.videoqa.json",
        f"{second}.srt", f"{second}.vtt", f"{second}.videoqa.json",
    ])  # fmt: skip
    assert all(Path(r["video"]["path"]).name == r["sidecar_of"] for r in reports.values())


ISO_8601 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d videoqa: ")


def test_a_second_daemon_on_the_same_job_store_is_refused(
    tmp_path, small_video, tiny_video_git  # noqa: F811
):
    watched = tmp_path / "watched"
    watched.mkdir()
    config_path = write_config(tmp_path, tiny_video_git)
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = start_daemon(config_path, watched, first_log)
    try:
        wait_alive(lambda: "watching" in first_log.read_text(), first, first_log)
        second = start_daemon(config_path, watched, second_log)
        try:
            assert second.wait(60) == 1
        finally:  # not refused (a regression): it must not outlive the test
            if second.poll() is None:
                second.kill()
                second.wait()
        store = tmp_path / "state" / "jobs.sqlite"
        assert second_log.read_text() == (
            f"videoqa: error: {store}: in use by another videoqa watch (pid {first.pid}); "
            "one daemon per job store\n"
        )
    finally:
        first.send_signal(signal.SIGKILL)  # the kernel releases the lock
        first.wait()
    # Every line of a daemon's log starts with an ISO-8601 time, unless journald adds its own.
    assert all(ISO_8601.match(line) for line in first_log.read_text().splitlines())

    third_log = tmp_path / "third.log"
    third_log.touch()
    journal = os.stat(third_log)
    with daemon_process(config_path, watched, third_log,
                        JOURNAL_STREAM=f"{journal.st_dev}:{journal.st_ino}"):  # fmt: skip
        shutil.copyfile(small_video, watched / "clip.mp4")
        wait_for(lambda: "clip.mp4: done" in third_log.read_text())
        listed = subprocess.run([sys.executable, "-m", "videoqa", "jobs", "--config",
                                 str(config_path)], capture_output=True, text=True)  # fmt: skip
        assert listed.returncode == 0 and "done" in listed.stdout  # jobs works meanwhile
        other = subprocess.run(
            [sys.executable, "-m", "videoqa", "process", str(watched / "clip.mp4"),
             "--config", str(config_path)], capture_output=True, text=True,
        )  # fmt: skip
        assert other.returncode == 1 and other.stderr.count("\n") == 1
        assert "in use by videoqa watch (pid " in other.stderr
    assert third_log.read_text().startswith("videoqa: INFO: watching ")
    assert not any(ISO_8601.search(line) for line in third_log.read_text().splitlines())
