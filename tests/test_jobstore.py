"""The SQLite job store: one row per file identity, atomic claims, retries, recovery."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from videoqa.errors import ConfigError
from videoqa.watch.jobstore import JobStore


@pytest.fixture
def store(tmp_path):
    with JobStore(tmp_path / "state" / "jobs.sqlite") as opened:
        yield opened


def test_the_store_is_sqlite_in_wal_mode(tmp_path):
    path = tmp_path / "jobs.sqlite"
    JobStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_one_row_per_identity_and_a_changed_file_is_a_new_job(store):
    job, new = store.enqueue("/w/a.mp4", 100, 1, "/w")
    assert new and job.state == "queued" and job.attempts == 0
    again, new_again = store.enqueue("/w/a.mp4", 100, 1, "/w")
    assert not new_again and again.id == job.id
    changed, new_changed = store.enqueue("/w/a.mp4", 120, 2, "/w")
    assert new_changed and changed.id != job.id
    # The old identity never ran, so only the current bytes are left to process.
    assert [j.id for j in store.jobs()] == [changed.id]


def test_a_finished_identity_is_not_queued_again(store):
    job, _ = store.enqueue("/w/a.mp4", 100, 1, "/w")
    assert store.claim().id == job.id
    store.complete(job.id)
    again, new = store.enqueue("/w/a.mp4", 100, 1, "/w")
    assert not new and again.state == "done"
    assert store.claim() is None


def test_claims_are_exclusive_across_connections(tmp_path):
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store:
        for index in range(40):
            store.enqueue(f"/w/{index}.mp4", 1, 1, "/w")
    claimed: list[int] = []

    def claim_all() -> None:
        with JobStore(path) as mine:
            while (job := mine.claim()) is not None:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(1, 41))


def test_retryable_failures_are_bounded_and_keep_the_last_error(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    for attempt in (1, 2):
        claimed = store.claim()
        assert claimed.attempts == attempt
        failed = store.fail(claimed.id, f"crash {attempt}", retryable=True, max_attempts=3)
        assert failed.state == "queued"
    store.claim()
    final = store.fail(job.id, "crash 3", retryable=True, max_attempts=3)
    assert (final.state, final.attempts, final.last_error) == ("failed", 3, "crash 3")
    assert store.claim() is None


def test_a_bad_file_fails_at_once_and_a_retry_waits_its_delay(store):
    bad, _ = store.enqueue("/w/bad.mp4", 1, 1, "/w")
    store.claim()
    assert store.fail(bad.id, "not media", retryable=False, max_attempts=3).state == "failed"
    slow, _ = store.enqueue("/w/slow.mp4", 1, 1, "/w")
    store.claim()
    store.fail(slow.id, "timeout", retryable=True, max_attempts=3, retry_delay=60)
    assert store.claim() is None
    assert store.has_waiting_work() and not store.has_due_work()


def test_running_jobs_are_requeued_at_start_with_the_attempt_counted(tmp_path):
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store:
        once, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
        store.claim()
        twice, _ = store.enqueue("/w/b.mp4", 1, 1, "/w")
        store.claim()
        store.fail(twice.id, "crash", retryable=True, max_attempts=2)
        store.claim()
    # The daemon died here; a new one opens the store.
    with JobStore(path) as store:
        recovered = {job.path: job.state for job in store.recover(max_attempts=2)}
        assert recovered == {"/w/a.mp4": "queued", "/w/b.mp4": "failed"}
        assert "interrupted 2 times" in store.get(twice.id).last_error
        assert store.claim().id == once.id


def test_requeue_on_stop_does_not_count_the_attempt(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    store.claim()
    requeued = store.requeue(job.id)
    assert (requeued.state, requeued.attempts) == ("queued", 0)


def test_deleted_files_are_marked_and_their_queued_jobs_skipped(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    assert store.present_paths("/w") == {"/w/a.mp4"}
    assert store.mark_deleted("/w/a.mp4") == 1
    assert store.get(job.id).deleted_at is not None
    assert store.present_paths("/w") == set()
    assert store.claim() is None
    # The same bytes coming back (a restore) make the row live again.
    back, new = store.enqueue("/w/a.mp4", 1, 1, "/w")
    assert not new and back.deleted_at is None and store.claim().id == job.id


def test_counts_cover_every_state(store):
    store.enqueue("/w/a.mp4", 1, 1, "/w")
    assert store.counts() == {"queued": 1, "running": 0, "done": 0, "failed": 0}


def test_an_unusable_store_path_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open job store"):
        JobStore(blocker / "jobs.sqlite")


def test_failed_files_can_be_queued_again_after_a_fix(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    gone, _ = store.enqueue("/w/gone.mp4", 1, 1, "/w")
    for _ in range(2):
        claimed = store.claim()
        store.fail(claimed.id, "model missing", retryable=False, max_attempts=3)
    store.mark_deleted("/w/gone.mp4")
    assert store.retry_failed() == 1
    again = store.get(job.id)
    assert (again.state, again.attempts) == ("queued", 0)
    assert store.get(gone.id).state == "failed"
