"""What the daemon does with a job when things go wrong around the file rather than in it.

A destination that cannot be written (a read-only mount), a daemon killed while its worker is
still starting up, a file renamed after (or while) it was processed, a copy that stalled.
Real daemon (in a thread, or a subprocess where it is killed), real watchdog, real SQLite,
real worker processes running the real pipeline on the tiny GIT checkpoint.

``counted`` is the processor these tests point the daemon at: it notes every inference in
``inferences.txt`` beside the watched folder, so a test can tell that a file was not
processed twice, and it can hold a file at a gate while the test changes something.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_watch_cli import start_daemon
from test_watch_daemon import (  # noqa: F401  (pytest fixtures)
    events,
    finished,
    jobs_of,
    running,
    small_video,
    wait_for,
    watched,
    write_config,
)
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.cli import cli
from videoqa.watch.config import FolderSettings, WatchConfig, load_config
from videoqa.watch.daemon import WatchDaemon
from videoqa.watch.jobstore import JobStore
from videoqa.watch.worker import process_file

COUNTED = 'processor = "test_watch_jobs:counted"'


def counted(path: Path, settings: FolderSettings):
    """The real pipeline, each inference noted in ``inferences.txt`` beside the watched folder.

    An ``early*`` file stops at a gate before it is even opened; a ``gated*`` one after
    inference, before its results are delivered.
    """
    here, name = Path(settings.folder).parent, Path(path).name
    if name.startswith("early"):
        _gate(here, name)
    report = process_file(path, settings)
    with open(here / "inferences.txt", "a") as handle:
        handle.write(f"{name}\n")
    if name.startswith("gated"):
        _gate(here, name)
    return report


def _gate(here: Path, name: str) -> None:
    """Say so (``at-<name>``), then wait for the test's cue (``go-<name>``)."""
    (here / f"at-{name}").touch()
    deadline = time.monotonic() + 60
    while not (here / f"go-{name}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def inferences(folder: Path) -> list[str]:
    log = folder.parent / "inferences.txt"
    return log.read_text().split() if log.exists() else []


@contextmanager
def read_only_mount(folder: Path) -> Iterator[Callable[[bool], None]]:
    """``folder`` bind-mounted onto itself read-only; yields ``set_writable(bool)``.

    Permission bits do not stop root; a read-only mount does. Skips where mounting is not
    permitted (not root, a container without CAP_SYS_ADMIN).
    """
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only mount needs root and mount(8)")

    def mount(*args: str) -> None:
        result = subprocess.run(["mount", *args], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"mounting is not permitted here: {result.stderr.strip()}")

    def set_writable(writable: bool) -> None:
        mount("-o", f"remount,bind,{'rw' if writable else 'ro'}", str(folder))

    mount("--bind", str(folder), str(folder))

    try:
        set_writable(False)
        with pytest.raises(OSError, match="Read-only file system"):
            (folder / "probe").write_text("x")
        yield set_writable
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def state_of(config: WatchConfig, name: str) -> str | None:
    return jobs_of(config).get(name, (None,))[0]


def delivery_tries(config: WatchConfig) -> int:
    """Delivery tries of the store's one job (0 while no report is kept)."""
    with JobStore(config.jobstore) as store:
        (job,) = store.jobs()
        kept = store.kept_report(job.id)
        return kept.tries if kept is not None else 0


def test_a_read_only_video_folder_costs_no_inference_and_the_file_is_done_once_writable(
    tmp_path, watched, small_video, tiny_video_git  # noqa: F811
):
    shutil.copyfile(small_video, watched / "clip.mp4")
    config = load_config(write_config(tmp_path, tiny_video_git, COUNTED, retry_delay=0.3,
                                      max_attempts=100), folders=[watched])  # fmt: skip
    with read_only_mount(watched) as set_writable, running(config):
        wait_for(lambda: "Read-only" in (jobs_of(config).get("clip.mp4", ("",) * 3)[2] or ""))
        state, attempts, error = jobs_of(config)["clip.mp4"]
        assert state in ("queued", "running") and error.startswith(f"{watched}: cannot write")
        assert inferences(watched) == [] and events(config) == []  # refused before inference
        set_writable(True)
        wait_for(lambda: state_of(config, "clip.mp4") == "done")
    assert inferences(watched) == ["clip.mp4"]
    assert [e["event"] for e in events(config)] == ["done"]
    assert {p.name for p in watched.iterdir()} == {
        "clip.mp4", "clip.srt", "clip.vtt", "clip.videoqa.json",
    }  # fmt: skip


def test_results_that_cannot_be_written_are_undelivered_not_done_and_delivered_later(
    tmp_path, watched, small_video, tiny_video_git  # noqa: F811
):
    output = tmp_path / "out"
    output.mkdir()
    config_path = write_config(tmp_path, tiny_video_git, f'{COUNTED}\noutput_dir = "{output}"',
                               retry_delay=0.5, max_attempts=100)  # fmt: skip
    config = load_config(config_path, folders=[watched])
    with running(config):
        shutil.copyfile(small_video, watched / "gated.mp4")
        wait_for((tmp_path / "at-gated.mp4").exists)  # inference done; prepare() found it writable
        with read_only_mount(output) as set_writable:
            (tmp_path / "go-gated.mp4").touch()
            wait_for(lambda: state_of(config, "gated.mp4") == "undelivered")
            _, attempts, error = jobs_of(config)["gated.mp4"]
            assert attempts == 1 and "adapter sidecars" in error and "Read-only" in error
            assert events(config) == []  # the event log does not say "done" about nothing
            wait_for(lambda: f"undelivered 1  {watched / 'gated.mp4'}\n" in CliRunner().invoke(
                cli, ["jobs", "--config", str(config_path)]).output)  # fmt: skip
            wait_for(lambda: delivery_tries(config) >= 3)  # tried again, refused again
            assert state_of(config, "gated.mp4") in ("undelivered", "running")
            assert not list(output.iterdir())
            set_writable(True)
            wait_for(lambda: state_of(config, "gated.mp4") == "done")
    assert inferences(watched) == ["gated.mp4"]  # delivered again without inference
    assert [e["event"] for e in events(config)] == ["done"]
    assert sorted(p.name for p in output.iterdir()) == [
        "gated.srt", "gated.videoqa.json", "gated.vtt",
    ]  # fmt: skip
    with JobStore(config.jobstore) as store:
        (job,) = store.jobs()
        assert store.kept_report(job.id) is None and job.last_error is None


def test_three_kills_while_the_worker_starts_up_cost_the_file_nothing(
    tmp_path, watched, small_video, tiny_video_git  # noqa: F811
):
    config_path = write_config(tmp_path, tiny_video_git)
    config = load_config(config_path, folders=[watched])
    shutil.copyfile(small_video, watched / "good.mp4")
    for kill in range(3):
        log = tmp_path / f"daemon-{kill}.log"
        daemon = start_daemon(config_path, watched, log)
        try:  # claimed by this daemon (after its recovery and first scan), worker starting up
            wait_for(lambda log=log: "watching " in log.read_text())
            wait_for(lambda: state_of(config, "good.mp4") == "running")
        finally:
            daemon.kill()
            daemon.wait()
        assert "processing (attempt" not in log.read_text(), "the worker began before the kill"
    WatchDaemon(config, once=True).run()
    assert jobs_of(config)["good.mp4"][:2] == ("done", 1)
    assert [e["event"] for e in events(config)] == ["done"]


def test_a_failure_found_at_restart_is_reported_like_any_other(
    tmp_path, watched, small_video, tiny_video_git  # noqa: F811
):
    config = load_config(write_config(tmp_path, tiny_video_git, max_attempts=2),
                         folders=[watched])  # fmt: skip
    shutil.copyfile(small_video, watched / "deadly.mp4")
    identity = os.stat(watched / "deadly.mp4")
    with JobStore(config.jobstore) as store:  # twice the daemon died while working on it
        job, _ = store.enqueue(watched / "deadly.mp4", identity.st_size, identity.st_mtime_ns,
                               watched)  # fmt: skip
        for _ in range(2):
            store.recover(max_attempts=2)
            store.claim()
            store.start(job.id)
    WatchDaemon(config, once=True).run()
    state, attempts, error = jobs_of(config)["deadly.mp4"]
    assert (state, attempts) == ("failed", 2) and "interrupted 2 times" in error
    assert [(e["event"], e["error"]) for e in events(config)] == [("failed", error)]


def test_a_renamed_file_keeps_its_results_and_is_not_processed_again(
    tmp_path, watched, small_video, tiny_video_git  # noqa: F811
):
    config = load_config(write_config(tmp_path, tiny_video_git, COUNTED), folders=[watched])

    def sidecars() -> list[str]:
        return sorted(p.name for p in watched.iterdir() if not p.name.endswith(".mp4"))

    with running(config):
        shutil.copyfile(small_video, watched / "first.mp4")
        wait_for(lambda: state_of(config, "first.mp4") == "done")
        os.rename(watched / "first.mp4", watched / "renamed.mp4")
        wait_for(lambda: state_of(config, "renamed.mp4") == "done", show=lambda: jobs_of(config))
        # Renamed while it is being processed: its results follow it once written.
        shutil.copyfile(small_video, watched / "gated.mp4")
        wait_for((tmp_path / "at-gated.mp4").exists)
        os.rename(watched / "gated.mp4", watched / "moved.mp4")
        (tmp_path / "go-gated.mp4").touch()
        wait_for(lambda: state_of(config, "moved.mp4") == "done", show=lambda: jobs_of(config))
        wait_for(lambda: "moved.srt" in sidecars(), show=sidecars)
        # Renamed after its worker took it, before the file was opened: processed once, as
        # the new name, with no failure on the way.
        shutil.copyfile(small_video, watched / "early.mp4")
        wait_for((tmp_path / "at-early.mp4").exists)
        os.rename(watched / "early.mp4", watched / "arrived.mp4")
        (tmp_path / "go-early.mp4").touch()
        wait_for(lambda: state_of(config, "arrived.mp4") == "done", show=lambda: jobs_of(config))
    # Renamed while the daemon is down: found by the rescan at start.
    os.rename(watched / "renamed.mp4", watched / "later.mp4")
    with running(config):
        wait_for(lambda: state_of(config, "later.mp4") == "done", show=lambda: jobs_of(config))
    assert inferences(watched) == ["first.mp4", "gated.mp4", "arrived.mp4"]
    assert set(jobs_of(config)) == {"later.mp4", "moved.mp4", "arrived.mp4"}
    assert sidecars() == [
        "arrived.srt", "arrived.videoqa.json", "arrived.vtt",
        "later.srt", "later.videoqa.json", "later.vtt",
        "moved.srt", "moved.videoqa.json", "moved.vtt",
    ]  # fmt: skip
    report = json.loads((watched / "later.videoqa.json").read_text())
    assert report["video"]["path"] == str(watched / "later.mp4")
    assert set(report["sidecars"]) == {"later.srt", "later.vtt"}
    assert [e["event"] for e in events(config)] == [
        "done", "renamed", "done", "renamed", "done", "renamed",
    ]  # fmt: skip


def test_a_copy_read_while_it_stalled_is_no_longer_a_failure_once_complete(
    tmp_path, watched, small_video, tiny_video_git  # noqa: F811
):
    config_path = write_config(tmp_path, tiny_video_git)
    config = load_config(config_path, folders=[watched])
    data = small_video.read_bytes()
    target = watched / "stalled.mp4"
    with running(config):
        target.write_bytes(data[:600])  # the copy stalls longer than the settle time
        wait_for(lambda: state_of(config, "stalled.mp4") == "failed")
        with open(target, "ab") as handle:
            handle.write(data[600:])
        wait_for(lambda: state_of(config, "stalled.mp4") == "done")
    assert [e["event"] for e in events(config)] == ["failed", "done"]
    listed = json.loads(
        CliRunner().invoke(cli, ["jobs", "--config", str(config_path), "--json"]).output
    )
    assert listed["counts"]["failed"] == 0
    assert [(j["state"], j["size"]) for j in listed["jobs"]] == [("done", len(data))]
