"""The commands: ``watch`` under SIGTERM and SIGKILL (real subprocesses), ``process``,
``jobs``, ``adapters``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_watch_daemon import events, jobs_of, small_video, wait_for, write_config  # noqa: F401
from test_watch_worker import _is_zombie
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.cli import cli
from videoqa.watch.config import load_config
from videoqa.watch.daemon import WatchDaemon
from videoqa.watch.jobstore import JobStore

TESTS = Path(__file__).resolve().parent


def start_daemon(config_path: Path, folder: Path, log: Path) -> subprocess.Popen:
    python_path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": python_path, "VIDEOQA_TEST_SLOW": "5"}
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "videoqa", "watch", str(folder), "--config", str(config_path)],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env,
        )  # fmt: skip


def wait_running(config, name: str, daemon: subprocess.Popen, log: Path) -> int:
    """Wait until the daemon's worker is on ``name``; returns the worker's process id."""

    def running() -> bool:
        assert daemon.poll() is None, log.read_text()
        return config.jobstore.exists() and jobs_of(config).get(name, ("",))[0] == "running"

    wait_for(running, timeout=60)
    wait_for(lambda: "worker pid" in log.read_text(), timeout=60)
    return int(re.findall(r"worker pid (\d+)", log.read_text())[-1])


def test_sigterm_requeues_and_sigkill_mid_file_then_restart_leaves_one_complete_set(
    tmp_path, small_video, tiny_video_git  # noqa: F811
):
    watched = tmp_path / "watched"
    watched.mkdir()
    config_path = write_config(tmp_path, tiny_video_git, 'processor = "test_watch_worker:faulty"')
    config = load_config(config_path, folders=[watched])
    shutil.copyfile(small_video, watched / "slow.mp4")
    log = tmp_path / "stopped.log"

    # SIGTERM while the file is being processed: a clean stop, the file back in the queue.
    daemon = start_daemon(config_path, watched, log)
    try:
        wait_running(config, "slow.mp4", daemon, log)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, log.read_text()
    finally:
        daemon.kill()
        daemon.wait()
    assert jobs_of(config)["slow.mp4"][:2] == ("queued", 0)
    assert "back in the queue" in log.read_text()

    # SIGKILL in the middle of the file: the worker must not go on without its daemon.
    log = tmp_path / "killed.log"
    daemon = start_daemon(config_path, watched, log)
    try:
        worker_pid = wait_running(config, "slow.mp4", daemon, log)
    finally:
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
    wait_for(lambda: _is_zombie(worker_pid), timeout=10)
    assert jobs_of(config)["slow.mp4"][0] == "running"
    assert not list(watched.glob("slow.*[!4]"))  # nothing was written for it

    # The restart finds the interrupted job and finishes it, once.
    WatchDaemon(config, once=True).run()
    state, attempts, _ = jobs_of(config)["slow.mp4"]
    assert (state, attempts) == ("done", 2)
    names = sorted(p.name for p in watched.iterdir())
    assert names == ["slow.mp4", "slow.srt", "slow.videoqa.json", "slow.vtt"]
    report = json.loads((watched / "slow.videoqa.json").read_text())
    assert report["clips"] and set(report["sidecars"]) == {"slow.srt", "slow.vtt"}
    assert [e["event"] for e in events(config)] == ["done"]


@pytest.fixture
def store_config(tmp_path, tiny_video_git):  # noqa: F811
    return write_config(tmp_path, tiny_video_git)


def test_process_is_idempotent_and_shares_the_store_with_jobs(
    tmp_path, small_video, store_config  # noqa: F811
):
    folder = tmp_path / "mam"
    folder.mkdir()
    video = folder / "asset.mp4"
    shutil.copyfile(small_video, video)
    runner = CliRunner()
    first = runner.invoke(cli, ["process", str(video), "--config", str(store_config)])
    assert first.exit_code == 0, first.output
    assert first.output.startswith(f"done: {video}")
    assert (folder / "asset.srt").exists()
    again = runner.invoke(cli, ["process", str(video), "--config", str(store_config), "--json"])
    assert again.exit_code == 0
    assert json.loads(again.output)["attempts"] == 1  # not processed a second time
    config = load_config(store_config)
    assert [e["event"] for e in events(config)] == ["done"]

    (folder / "broken.mp4").write_bytes(b"\x00" * 100)
    bad = runner.invoke(cli, ["process", str(folder / "broken.mp4"), "--config", str(store_config)])
    assert bad.exit_code == 1
    assert "failed" in bad.output and "broken.mp4: " in bad.output

    listed = runner.invoke(cli, ["jobs", "--config", str(store_config), "--json"])
    data = json.loads(listed.output)
    assert data["counts"] == {"queued": 0, "running": 0, "undelivered": 0, "done": 1, "failed": 1}
    assert {Path(j["path"]).name: j["state"] for j in data["jobs"]} == {
        "asset.mp4": "done", "broken.mp4": "failed",
    }  # fmt: skip
    failed = runner.invoke(cli, ["watch", "--status", "--config", str(store_config)])
    assert "done: 1" in failed.output and "failed: 1" in failed.output
    assert "broken.mp4" in failed.output
    retried = runner.invoke(cli, ["jobs", "--retry-failed", "--config", str(store_config)])
    assert retried.output.startswith(
        "queued 1 failed or undelivered file(s) again\nqueued: 1  running: 0"
    )


def test_jobs_and_status_list_the_store_while_a_watched_folder_is_absent(tmp_path):
    """An unmounted share must not hide the job store; only the daemon needs the folder."""
    share = tmp_path / "share"
    store_path = tmp_path / "state" / "jobs.sqlite"
    config = tmp_path / "videoqa.toml"
    config.write_text(f"jobstore = {json.dumps(str(store_path))}\n"
                      f"[[folders]]\npath = {json.dumps(str(share))}\n")  # fmt: skip
    with JobStore(store_path) as store:  # what a daemon left before the share went away
        done, _ = store.enqueue(share / "asset.mp4", 100, 1, share)
        store.claim(done.id)
        store.start(done.id)
        store.complete(done.id)
        failed, _ = store.enqueue(share / "broken.mp4", 100, 1, share)
        store.claim(failed.id)
        store.start(failed.id)
        store.fail(failed.id, "broken.mp4: not a video", retryable=False, max_attempts=3)
    runner = CliRunner()

    listed = runner.invoke(cli, ["jobs", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "queued: 0  running: 0  undelivered: 0  done: 1  failed: 1"
    assert {line.split()[0]: line.split()[-1] for line in lines[1:] if "/" in line} == {
        "done": str(share / "asset.mp4"), "failed": str(share / "broken.mp4"),
    }  # fmt: skip
    status = runner.invoke(cli, ["watch", "--status", "--json", "--config", str(config)])
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert data["counts"]["done"] == 1 and data["counts"]["failed"] == 1
    assert sorted(Path(job["path"]).name for job in data["jobs"]) == ["asset.mp4", "broken.mp4"]
    # The daemon itself still refuses to watch a folder that is not there.
    daemon = runner.invoke(cli, ["watch", "--config", str(config)])
    assert daemon.exit_code == 1
    assert daemon.output.strip() == f"videoqa: error: {share}: watched folder does not exist"


def test_process_refuses_a_missing_file_in_one_line(tmp_path, store_config):
    result = CliRunner().invoke(cli, ["process", str(tmp_path / "nope.mp4"),
                                      "--config", str(store_config)])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip() == f"videoqa: error: {tmp_path / 'nope.mp4'}: no such file"


def test_adapters_lists_the_bundled_plugins():
    result = CliRunner().invoke(cli, ["adapters", "--json"])
    listed = {entry["name"]: entry for entry in json.loads(result.output)}
    assert {"sidecars", "jsonl", "webhook"} <= set(listed)
    assert listed["sidecars"]["object"] == "videoqa_plugins.sidecars:SidecarAdapter"


def test_a_bad_config_is_a_one_line_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("settle = 'soon'\n")
    result = CliRunner().invoke(cli, ["watch", str(tmp_path), "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.strip() == f"videoqa: error: {config}: 'settle' must be float, got 'soon'"
