"""The SQLite job store: one row per file identity, atomic claims, retries, recovery."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from videoqa.errors import ConfigError
from videoqa.watch.jobstore import Job, JobStore, KeptReport


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


def claim_and_start(store: JobStore) -> Job | None:
    """Claim the next job and count its attempt, as the daemon does once its worker has it."""
    job = store.claim()
    return store.start(job.id) if job is not None else None


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
        assert claimed.attempts == attempt - 1  # counted when a worker starts on it
        assert store.start(claimed.id).attempts == attempt
        failed = store.fail(claimed.id, f"crash {attempt}", retryable=True, max_attempts=3)
        assert failed.state == "queued"
    claim_and_start(store)
    final = store.fail(job.id, "crash 3", retryable=True, max_attempts=3)
    assert (final.state, final.attempts, final.last_error) == ("failed", 3, "crash 3")
    assert store.claim() is None


def test_a_bad_file_fails_at_once_and_a_retry_waits_its_delay(store):
    bad, _ = store.enqueue("/w/bad.mp4", 1, 1, "/w")
    claim_and_start(store)
    assert store.fail(bad.id, "not media", retryable=False, max_attempts=3).state == "failed"
    slow, _ = store.enqueue("/w/slow.mp4", 1, 1, "/w")
    claim_and_start(store)
    store.fail(slow.id, "timeout", retryable=True, max_attempts=3, retry_delay=60)
    assert store.claim() is None
    assert store.has_waiting_work() and not store.has_due_work()


def test_running_jobs_are_requeued_at_start_with_the_attempt_counted(tmp_path):
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as store:
        once, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
        claim_and_start(store)
        twice, _ = store.enqueue("/w/b.mp4", 1, 1, "/w")
        claim_and_start(store)
        store.fail(twice.id, "crash", retryable=True, max_attempts=2)
        claim_and_start(store)
    # The daemon died here; a new one opens the store.
    with JobStore(path) as store:
        recovered = {job.path: job.state for job in store.recover(max_attempts=2)}
        assert recovered == {"/w/a.mp4": "queued", "/w/b.mp4": "failed"}
        assert "/w/b.mp4: interrupted 2 times" in store.get(twice.id).last_error
        assert store.claim().id == once.id


def test_a_daemon_killed_before_its_worker_began_costs_the_file_no_attempt(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    for _ in range(3):  # claimed, then the daemon killed while its worker was starting up
        store.claim()
        (recovered,) = store.recover(max_attempts=2)
        assert (recovered.state, recovered.attempts) == ("queued", 0)


def test_requeue_on_stop_does_not_count_the_attempt(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    claim_and_start(store)
    requeued = store.requeue(job.id)
    assert (requeued.state, requeued.attempts) == ("queued", 0)
    store.claim()  # stopped again, this time before the worker began: nothing to uncount
    assert store.requeue(job.id, delay=60).attempts == 0
    assert store.claim() is None and store.has_waiting_work()


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


def test_counts_cover_every_state_and_a_deleted_file_leaves_the_queue(store):
    store.enqueue("/w/a.mp4", 1, 1, "/w")
    store.enqueue("/w/b.mp4", 1, 1, "/w")
    assert store.counts() == {"queued": 2, "running": 0, "undelivered": 0, "done": 0, "failed": 0}
    store.mark_deleted("/w/b.mp4")
    assert store.counts()["queued"] == 1


def test_an_unusable_store_path_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open job store"):
        JobStore(blocker / "jobs.sqlite")


def test_failed_files_can_be_queued_again_after_a_fix(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    gone, _ = store.enqueue("/w/gone.mp4", 1, 1, "/w")
    for _ in range(2):
        claimed = claim_and_start(store)
        store.fail(claimed.id, "model missing", retryable=False, max_attempts=3)
    store.mark_deleted("/w/gone.mp4")
    assert store.retry_failed() == 1
    again = store.get(job.id)
    assert (again.state, again.attempts) == ("queued", 0)
    assert store.get(gone.id).state == "failed"


def test_an_undelivered_report_is_kept_retried_bounded_and_retried_again_on_request(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    claim_and_start(store)
    report = '{"video": {"path": "/w/a.mp4"}, "clips": []}'
    undelivered = store.record_undelivered(job.id, "adapter sidecars: read-only", ["sidecars"],
                                           report_json=report, max_attempts=3, retry_delay=60)
    assert (undelivered.state, undelivered.attempts) == ("undelivered", 1)
    assert store.claim() is None and store.has_waiting_work()  # waits out the retry delay
    assert store.kept_report(job.id) == KeptReport(report, ("sidecars",), 1)
    assert store.retry_failed() == 1  # due now, its tries counted afresh
    for tries in (1, 2, 3):  # delivery tries are counted on the kept report, not as attempts
        assert claim_and_start(store).attempts == 1
        assert store.kept_report(job.id).tries == tries
        after = store.record_undelivered(job.id, "still read-only", ["sidecars"],
                                         report_json=None, max_attempts=3)
    assert after.state == "failed" and "not delivered after 3 tries" in after.last_error
    assert store.counts()["failed"] == 1
    assert store.retry_failed() == 1  # delivered again, not processed again
    assert store.get(job.id).state == "undelivered" and store.kept_report(job.id).tries == 0
    store.claim()
    store.start(job.id)
    assert store.complete(job.id).state == "done" and store.kept_report(job.id) is None


def test_a_worker_crash_while_delivering_keeps_the_report_waiting(store):
    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w")
    claim_and_start(store)
    store.record_undelivered(job.id, "down", ["webhook"], report_json="{}", max_attempts=2)
    claim_and_start(store)
    crashed = store.fail(job.id, "worker died", retryable=True, max_attempts=2)
    assert crashed.state == "failed"  # two delivery tries spent
    assert store.kept_report(job.id).adapters == ("webhook",)


def test_new_bytes_supersede_an_old_failure_of_the_same_path(store):
    half, _ = store.enqueue("/w/a.mp4", 100, 1, "/w")  # a copy that stalled: read half-written
    claim_and_start(store)
    store.fail(half.id, "/w/a.mp4: truncated", retryable=False, max_attempts=3)
    whole, new = store.enqueue("/w/a.mp4", 200, 2, "/w")
    assert new and [job.id for job in store.jobs()] == [whole.id]
    assert store.counts()["failed"] == 0


def test_a_renamed_file_keeps_its_job_and_its_kept_report(store):
    class Renamed:
        size, mtime_ns, device, inode = 1, 1, 7, 42

    job, _ = store.enqueue("/w/a.mp4", 1, 1, "/w", device=7, inode=42)
    claim_and_start(store)
    store.record_undelivered(job.id, "down", ["sidecars"], max_attempts=3,
                             report_json='{"video": {"path": "/w/a.mp4"}}')  # fmt: skip
    assert store.find_renamed("/w/b.mp4", Renamed, "/w").id == job.id
    assert store.find_renamed("/w/b.mp4", Renamed, "/other") is None
    moved = store.rename(job.id, "/w/b.mp4")
    assert (moved.path, moved.state) == ("/w/b.mp4", "undelivered")
    assert '"/w/b.mp4"' in store.kept_report(job.id).report_json
    Renamed.inode = 43  # a copy, not a rename
    assert store.find_renamed("/w/c.mp4", Renamed, "/w") is None


def test_a_store_of_version_0_is_migrated(tmp_path):
    path = tmp_path / "jobs.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, folder TEXT NOT NULL, state TEXT NOT NULL
            CHECK (state IN ('queued', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at REAL NOT NULL,
            updated_at REAL NOT NULL, started_at REAL, finished_at REAL,
            not_before REAL NOT NULL DEFAULT 0, deleted_at REAL, UNIQUE (path, size, mtime_ns));
            INSERT INTO jobs (path, size, mtime_ns, folder, state, created_at, updated_at)
            VALUES ('/w/a.mp4', 1, 1, '/w', 'done', 0, 0), ('/w/b.mp4', 1, 1, '/w', 'done', 0, 0);
            DELETE FROM jobs WHERE path = '/w/b.mp4';"""
        )
    with JobStore(path) as store:
        assert [(job.id, job.path, job.state) for job in store.jobs()] == [(1, "/w/a.mp4", "done")]
        job, _ = store.enqueue("/w/c.mp4", 1, 1, "/w")
        assert job.id == 3  # ids are never reused
        store.claim()
        store.start(job.id)
        store.record_undelivered(job.id, "down", ["sidecars"], report_json="{}", max_attempts=3)
    with JobStore(path) as store:
        assert store.get(job.id).state == "undelivered"
