"""Event ids (the same event announced twice carries the same id) and ``watch --once``'s exit
code and log lines, with real daemons (subprocesses), a real job store and a real webhook
receiver."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from test_adapters import hook_server, hook_url, make_report  # noqa: F401  (pytest fixture)
from test_watch_daemon import events, jobs_of, small_video, wait_for, write_config  # noqa: F401
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)
from videoqa_plugins.jsonl_log import JsonLinesAdapter

from videoqa.events import EventScope, announcing
from videoqa.watch.config import load_config
from videoqa.watch.jobstore import JobStore


def watch(config_path: Path, folder: Path, log: Path, *options: str) -> subprocess.Popen:
    """``videoqa watch FOLDER --config CONFIG [options]`` as a process of its own."""
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "videoqa", "watch", str(folder), "--config", str(config_path),
             *options],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


def test_an_event_announced_again_after_a_kill_mid_delivery_carries_the_same_id(
    tmp_path, small_video, tiny_video_git, hook_server  # noqa: F811
):
    """The daemon is SIGKILLed while its worker posts the ``done`` event (the jsonl line is
    written, the job not yet recorded): the restarted daemon finds the job running, processes
    the file again and announces it again. Both jsonl lines and both POSTs carry one id (also
    the ``Idempotency-Key`` header), so a consumer drops the repeat."""
    watched = tmp_path / "watched"
    watched.mkdir()
    config_path = write_config(tmp_path, tiny_video_git, webhook=hook_url(hook_server))
    config = load_config(config_path, folders=[watched])
    shutil.copyfile(small_video, watched / "clip.mp4")
    log = tmp_path / "daemon.log"
    killed = threading.Event()
    daemon = watch(config_path, watched, log)

    def kill_the_daemon() -> None:  # the first POST: before it is answered
        if not killed.is_set():
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            killed.set()

    hook_server.on_post = kill_the_daemon
    try:
        assert killed.wait(120), log.read_text()
    finally:
        daemon.kill()
        daemon.wait()
    assert jobs_of(config)["clip.mp4"][:2] == ("running", 1)  # as a kill leaves it
    (first,) = events(config)

    hook_server.on_post = None
    again = watch(config_path, watched, log, "--once")
    assert again.wait(120) == 0, log.read_text()
    assert jobs_of(config)["clip.mp4"][:2] == ("done", 2)
    announced = events(config)
    assert [e["event"] for e in announced] == ["done", "done"]
    assert announced[0]["id"] == announced[1]["id"] == first["id"]
    with JobStore(config.jobstore) as store:
        (job,) = store.jobs()
        assert first["id"] == f"{store.store_id}-{job.id}-0-done"
    posted = [body for _, body in hook_server.received]
    assert [body["event"] for body in posted] == ["done", "done"]
    assert {body["id"] for body in posted} == set(hook_server.keys) == {first["id"]}
    assert "clip.mp4: found queued after a restart" in log.read_text()


def test_each_event_has_its_own_id_and_a_retry_after_a_failure_starts_new_ones(tmp_path):
    """Ids of one job: ``done``, ``failed`` and each rename differ; the same event announced
    twice (the adapter called twice for the job) repeats its id; ``--retry-failed`` starts a
    new generation for a failed job (new events), not for an undelivered one (its report is
    the same); two stores never share ids; outside a job, the file's identity names it."""
    video = tmp_path / "a.mp4"
    video.write_bytes(b"0" * 10)
    log = tmp_path / "events.jsonl"
    adapter = JsonLinesAdapter({"path": str(log)})
    with JobStore(tmp_path / "jobs.sqlite") as store, JobStore(tmp_path / "b.sqlite") as other:
        job, _ = store.enqueue(video, 10, 1, tmp_path)
        scope = EventScope.of(store, job)
        for _ in range(2):  # the same event, announced twice
            with announcing(scope):
                adapter.handle_report(make_report(video), video, None)
        with announcing(scope):
            adapter.handle_failure(video, "a.mp4: broken")
        for moment in (1.0, 2.0):
            with announcing(scope.renamed(moment)):
                adapter.handle_rename(video, tmp_path / "b.mp4", None)
        ids = [json.loads(line)["id"] for line in log.read_text().splitlines()]
        assert ids[0] == ids[1] == f"{store.store_id}-{job.id}-0-done"
        assert len(set(ids[1:])) == 4

        store.claim()
        store.start(job.id)
        store.fail(job.id, "a.mp4: broken", retryable=False, max_attempts=3)
        undelivered, _ = store.enqueue(tmp_path / "u.mp4", 1, 1, tmp_path)
        store.claim(undelivered.id)
        store.record_undelivered(undelivered.id, "down", ["webhook"], report_json="{}",
                                 max_attempts=3)  # fmt: skip
        assert store.retry_failed() == 2
        assert store.generation(job.id) == 1
        assert store.generation(undelivered.id) == 0
        assert EventScope.of(store, store.get(job.id)).event_id("done") not in ids
        assert other.store_id != store.store_id and len(store.store_id) == 16
    outside = JsonLinesAdapter({"path": str(tmp_path / "outside.jsonl")})
    for _ in range(2):
        outside.handle_report(make_report(video), video, None)
    first, second = (json.loads(line) for line in (tmp_path / "outside.jsonl").open())
    assert first["id"] == second["id"] and first["id"].startswith("file-")


def test_a_store_of_version_1_gets_generations_and_an_id_and_its_jobs_table_stays(tmp_path):
    """Version 2 only adds tables: a store of version 1 is brought up to date, and the jobs
    table keeps its columns, so an older videoqa still reads a store of version 2."""
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store:
        job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
        columns = [row[1] for row in store._db.execute("PRAGMA table_info(jobs)")]
    with sqlite3.connect(path) as db:  # back to version 1
        db.execute("DROP TABLE meta")
        db.execute("DROP TABLE generations")
        db.execute("PRAGMA user_version = 1")
    with JobStore(path) as store:
        assert store.generation(job.id) == 0
        assert len(store.store_id) == 16
        store.claim()
        store.start(job.id)
        store.fail(job.id, "/w/a.mp4: broken", retryable=False, max_attempts=3)
        store.retry_failed()
        assert store.generation(job.id) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert [row[1] for row in db.execute("PRAGMA table_info(jobs)")] == columns
        assert "generation" not in columns


def test_watch_once_exits_1_when_a_file_failed_and_every_failure_line_names_the_file(
    tmp_path, small_video, tiny_video_git  # noqa: F811
):
    """``watch --once`` over a file that is not a video (named .mp4) and a good one whose
    webhook answers nowhere: exit 1 with one line naming both; the failure lines name their
    file, also the delivery's last one (its error names the webhook's URL)."""
    watched = tmp_path / "watched"
    watched.mkdir()
    nowhere = "http://127.0.0.1:9/videoqa"  # the discard port: nothing listens
    config_path = write_config(tmp_path, tiny_video_git, webhook=nowhere, max_attempts=2)
    (watched / "bad.mp4").write_bytes(b"this is not a video at all")
    shutil.copyfile(small_video, watched / "good.mp4")
    log = tmp_path / "once.log"
    done = watch(config_path, watched, log, "--once")
    assert done.wait(180) == 1, log.read_text()
    lines = log.read_text().splitlines()
    assert "Traceback" not in log.read_text()
    bad, good = str(watched / "bad.mp4"), str(watched / "good.mp4")
    assert lines[-1] == f"videoqa: error: 2 files failed: {bad}, {good}" or lines[-1] == (
        f"videoqa: error: 2 files failed: {good}, {bad}"
    )
    failures = [line for line in lines if "WARNING" in line or "ERROR" in line]
    assert failures and all(bad in line or good in line for line in failures), failures
    (last,) = [line for line in lines if "failed: " in line and "not delivered after" in line]
    assert f"failed: {good}: adapter webhook: " in last
    config = load_config(config_path, folders=[watched])
    assert {name: state for name, (state, _, _) in jobs_of(config).items()} == {
        "bad.mp4": "failed", "good.mp4": "failed"
    }
    assert os.path.exists(watched / "good.videoqa.json")  # the sidecars were delivered
