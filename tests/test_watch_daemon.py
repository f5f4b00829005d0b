"""The daemon with a real watchdog observer on temporary folders and the real pipeline.

Every test runs the tiny random GIT checkpoint (captions, one torch thread) on small videos
generated here; the worker is a real process. Each daemon runs in a thread and is stopped and
joined in ``finally``; no observer thread or worker process may outlive a test.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import numpy as np
import pytest
import srt
from indexed_video import write_indexed_video
from test_adapters import hook_server, hook_url  # noqa: F401  (pytest fixture)
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.errors import ModelError
from videoqa.watch.config import WatchConfig, load_config
from videoqa.watch.daemon import WatchDaemon
from videoqa.watch.jobstore import JobStore


def write_config(
    root: Path, model: Path, extra: str = "", *, webhook: str | None = None, **daemon: object
) -> Path:
    """A config file: the tiny model, captions only, fast settle, jsonl log in ``root``."""
    settings = {"jobstore": str(root / "state" / "jobs.sqlite"), "settle": 0.3,
                "time_limit": 60, "retry_delay": 0, **daemon}  # fmt: skip
    lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    lines += [
        "[defaults]",
        f'model = "{model}"',
        f'caption_model = "{model}"',
        "captions = true",
        "threads = 1",
        "caption_max_new_tokens = 3",
        f"adapters = {json.dumps(['sidecars', 'jsonl'] + (['webhook'] if webhook else []))}",
        extra,
        "[adapters.jsonl]",
        f'path = "{root / "state" / "events.jsonl"}"',
    ]
    if webhook:
        lines += ["[adapters.webhook]", f'url = "{webhook}"', "retries = 0"]
    path = root / "videoqa.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    folder = tmp_path / "watched"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quarter of a second of 32x32 H.264: the cheapest real video."""
    path = tmp_path_factory.mktemp("media") / "small.mp4"
    write_indexed_video(path, frames=6, width=32, height=32)
    return path


@contextmanager
def running(config: WatchConfig) -> Iterator[WatchDaemon]:
    """A daemon in a thread, ready (observer started, first scan done); stopped and joined."""
    threads_before = set(threading.enumerate())
    daemon = WatchDaemon(config)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            daemon.run()
        except BaseException as error:  # surfaced in the test below
            errors.append(error)

    thread = threading.Thread(target=run, name="test-daemon")
    thread.start()
    try:
        assert daemon.ready.wait(30) or errors, "the daemon did not start"
        yield daemon
    finally:
        daemon.stop()
        thread.join(30)
        if errors:
            raise errors[0]
    assert not thread.is_alive()
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(5)  # short-lived threads (an HTTP server's request handlers) may finish
    leaked = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"
    assert not multiprocessing.active_children(), "a worker process was left running"


def jobs_of(config: WatchConfig) -> dict[str, tuple[str, int, str | None]]:
    """``{file name: (state, attempts, last_error)}`` from the store, as another process sees it."""
    with JobStore(config.jobstore) as store:
        return {Path(j.path).name: (j.state, j.attempts, j.last_error) for j in store.jobs()}


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, *, show=None) -> None:
    deadline = time.monotonic() + timeout
    daemons = [t for t in threading.enumerate() if t.name == "test-daemon"]
    while not condition():
        if time.monotonic() > deadline or not all(t.is_alive() for t in daemons):
            raise AssertionError(f"condition not reached in time: {show() if show else ''}")
        time.sleep(0.05)


def finished(config: WatchConfig, count: int) -> Callable[[], bool]:
    def check() -> bool:
        states = [state for state, _, _ in jobs_of(config).values()]
        return len(states) >= count and all(s in ("done", "failed") for s in states)

    return check


def events(config: WatchConfig) -> list[dict]:
    log = config.jobstore.parent / "events.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_file_copied_slowly_is_processed_once_after_it_settles(
    tmp_path,
    watched,
    small_video,
    tiny_video_git,  # noqa: F811
):
    config = load_config(write_config(tmp_path, tiny_video_git, settle=0.6), folders=[watched])
    data = small_video.read_bytes()
    target = watched / "arriving.mp4"
    with running(config):
        with open(target, "wb") as handle:
            for start in range(0, len(data), 128):  # about 1.4 s of dribbling, 0.1 s apart
                handle.write(data[start : start + 128])
                handle.flush()
                time.sleep(0.1)
        last_write = time.time()
        wait_for(finished(config, 1))
        time.sleep(0.6)  # a late duplicate would show up here
    with JobStore(config.jobstore) as store:
        (job,) = store.jobs()
    assert (job.state, job.attempts, job.size) == ("done", 1, len(data))
    assert job.started_at >= last_write + 0.6
    assert [e["event"] for e in events(config)] == ["done"]
    cues = list(srt.parse((watched / "arriving.srt").read_text()))
    assert len(cues) == 1 and cues[0].content.strip()


def test_a_burst_of_200_files_loses_none(tmp_path, watched, small_video, tiny_video_git):  # noqa: F811
    config = load_config(
        write_config(tmp_path, tiny_video_git, extra='formats = ["json"]'), folders=[watched]
    )
    with running(config):
        for index in range(200):
            shutil.copyfile(small_video, watched / f"burst-{index:03d}.mp4")
        wait_for(finished(config, 200), timeout=180)
    jobs = jobs_of(config)
    assert len(jobs) == 200
    assert {state for state, _, _ in jobs.values()} == {"done"}
    assert len(list(watched.glob("burst-*.videoqa.json"))) == 200
    assert sorted(e["video"] for e in events(config)) == sorted(
        str(watched / f"burst-{index:03d}.mp4") for index in range(200)
    )


def test_files_added_while_stopped_are_found_at_start_and_renames_are_noticed(
    tmp_path,
    watched,
    small_video,
    tiny_video_git,  # noqa: F811
):
    config = load_config(write_config(tmp_path, tiny_video_git), folders=[watched])
    shutil.copyfile(small_video, watched / "first.mp4")
    with running(config):
        wait_for(finished(config, 1))
        # A download in progress, then renamed to its final name.
        shutil.copyfile(small_video, watched / "download.mp4.part")
        time.sleep(0.6)
        assert "download.mp4.part" not in jobs_of(config)
        os.rename(watched / "download.mp4.part", watched / "download.mp4")
        wait_for(finished(config, 2))
    # While the daemon is down: two new files, one deleted.
    (watched / "later").mkdir()
    shutil.copyfile(small_video, watched / "later" / "second.mp4")
    shutil.copyfile(small_video, watched / "third.mov")
    os.remove(watched / "first.mp4")
    with running(config):
        wait_for(finished(config, 4))
    jobs = jobs_of(config)
    assert {name: state for name, (state, _, _) in jobs.items()} == {
        "first.mp4": "done", "download.mp4": "done", "second.mp4": "done", "third.mov": "done",
    }  # fmt: skip
    assert (watched / "later" / "second.srt").exists()
    with JobStore(config.jobstore) as store:
        assert store.latest(watched / "first.mp4").deleted_at is not None
        assert store.latest(watched / "third.mov").deleted_at is None
    assert len(events(config)) == 4


def write_audio_only(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 8000), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def test_bad_files_end_failed_with_a_clear_error_and_the_daemon_goes_on(
    tmp_path, watched, small_video, tiny_video_git, hook_server  # noqa: F811
):
    config = load_config(write_config(tmp_path, tiny_video_git, webhook=hook_url(hook_server)),
                         folders=[watched])  # fmt: skip
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(small_video, outside / "private.mp4")
    with running(config):
        (watched / "empty.mp4").write_bytes(b"")
        (watched / "random.mp4").write_bytes(np.random.default_rng(0).bytes(20_000))
        (watched / "truncated.mp4").write_bytes(small_video.read_bytes()[:600])
        write_audio_only(watched / "audio-only.m4v")
        os.symlink(outside / "private.mp4", watched / "escape.mp4")
        (watched / "subtitled.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nmine\n")
        shutil.copyfile(small_video, watched / "subtitled.mp4")
        shutil.copyfile(small_video, watched / "good.mp4")
        wait_for(finished(config, 7), show=lambda: jobs_of(config))
    jobs = jobs_of(config)
    assert jobs["good.mp4"][0] == "done"
    for name in ("empty.mp4", "random.mp4", "truncated.mp4", "audio-only.m4v", "escape.mp4"):
        state, attempts, error = jobs[name]
        assert state == "failed" and error.startswith(str(watched / name)), (name, error)
        assert attempts <= 1 and "\n" not in error  # a bad file is not retried
    assert (
        "refused" in jobs["escape.mp4"][2] and "outside the watched folder" in jobs["escape.mp4"][2]
    )
    assert "no video stream" in jobs["audio-only.m4v"][2] or "video" in jobs["audio-only.m4v"][2]
    assert not list(watched.glob("escape.*.json")) and not (watched / "escape.srt").exists()
    # A subtitle file of the user's own is left alone, and no inference is spent on the video.
    state, attempts, error = jobs["subtitled.mp4"]
    assert (state, attempts) == ("failed", 1) and "not written by videoqa" in error
    assert (watched / "subtitled.srt").read_text().endswith("mine\n")
    assert sorted(e["event"] for e in events(config)) == ["done"] + ["failed"] * 6
    # The webhook heard the same: the report from the worker, the failures from the daemon.
    posted = {Path(body["video"]).name: body for _, body in hook_server.received}
    assert posted["good.mp4"]["event"] == "done" and posted["good.mp4"]["report"]["clips"]
    assert {name for name, body in posted.items() if body["event"] == "failed"} == {
        "empty.mp4", "random.mp4", "truncated.mp4", "audio-only.m4v", "escape.mp4",
        "subtitled.mp4",
    }  # fmt: skip


def test_a_file_that_crashes_or_hangs_the_worker_fails_and_the_next_is_processed(
    tmp_path,
    watched,
    small_video,
    tiny_video_git,  # noqa: F811
):
    config = load_config(
        write_config(
            tmp_path,
            tiny_video_git,
            'processor = "test_watch_worker:faulty"',
            max_attempts=2,
            time_limit=3,
        ),  # fmt: skip
        folders=[watched],
    )
    with running(config):
        shutil.copyfile(small_video, watched / "crash.mp4")
        shutil.copyfile(small_video, watched / "hang.mp4")
        time.sleep(0.1)
        shutil.copyfile(small_video, watched / "next.mp4")
        wait_for(finished(config, 3))
    jobs = jobs_of(config)
    assert jobs["next.mp4"][0] == "done"
    assert jobs["crash.mp4"][:2] == ("failed", 2)
    assert "worker process died (signal SIGSEGV)" in jobs["crash.mp4"][2]
    assert jobs["hang.mp4"][:2] == ("failed", 2)
    assert "time limit of 3 s exceeded" in jobs["hang.mp4"][2]


def test_without_inotify_watches_the_daemon_polls_and_says_so(
    tmp_path, watched, small_video, tiny_video_git, monkeypatch, caplog  # noqa: F811
):
    """The OS refusing more inotify watches (ENOSPC) is simulated; polling itself is real."""
    from watchdog.observers import Observer

    from videoqa.watch import watcher

    class ExhaustedObserver(Observer):
        def start(self) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watcher, "Observer", ExhaustedObserver)
    config = load_config(write_config(tmp_path, tiny_video_git, poll_interval=0.2),
                         folders=[watched])  # fmt: skip
    with running(config) as daemon:
        assert daemon.watcher.polling
        shutil.copyfile(small_video, watched / "polled.mp4")
        wait_for(finished(config, 1))
    assert jobs_of(config)["polled.mp4"][0] == "done"
    assert "polling every 0.2 s instead" in caplog.text


def test_the_periodic_rescan_finds_files_whose_events_were_lost(
    tmp_path, watched, small_video, tiny_video_git  # noqa: F811
):
    # A poller that never gets round to polling stands for an event source that lost events.
    config = load_config(
        write_config(tmp_path, tiny_video_git, poll=True, poll_interval=1000, rescan_interval=0.5),
        folders=[watched],
    )
    with running(config):
        shutil.copyfile(small_video, watched / "unannounced.mp4")
        wait_for(finished(config, 1))
        os.remove(watched / "unannounced.mp4")
        wait_for(lambda: _deleted(config, watched / "unannounced.mp4"))


def _deleted(config: WatchConfig, path: Path) -> bool:
    with JobStore(config.jobstore) as store:
        return store.latest(path).deleted_at is not None


def test_a_model_that_cannot_load_stops_the_daemon_instead_of_failing_every_file(
    tmp_path, watched, small_video
):
    pytest.importorskip("torch", reason="telling a broken checkpoint needs torch to load it")
    broken = tmp_path / "broken-checkpoint"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert"}')
    config = load_config(write_config(tmp_path, broken), folders=[watched])
    shutil.copyfile(small_video, watched / "first.mp4")
    shutil.copyfile(small_video, watched / "second.mp4")
    with pytest.raises(ModelError, match="broken-checkpoint: "):
        WatchDaemon(config, once=True).run()
    jobs = jobs_of(config)
    assert {name: state[:2] for name, state in jobs.items()} == {
        "first.mp4": ("queued", 0), "second.mp4": ("queued", 0),
    }  # fmt: skip
    assert not multiprocessing.active_children()


def test_a_truncated_file_is_failed_with_where_it_ends_not_done(
    tmp_path,
    watched,
    tiny_video_git,  # noqa: F811
):
    """A faststart MP4 cut short declares 4 s but decodes about 1 s: never silently done."""
    whole = tmp_path / "whole.mp4"
    write_indexed_video(
        whole, frames=96, width=320, height=240, options={"g": "12"},
        container_options={"movflags": "faststart"},
    )  # fmt: skip
    (watched / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 10])
    config = load_config(write_config(tmp_path, tiny_video_git), folders=[watched])
    with running(config):
        wait_for(finished(config, 1), show=lambda: jobs_of(config))
    state, _, error = jobs_of(config)["cut.mp4"]
    assert state == "failed"
    assert error is not None and "truncated at " in error and " s of 4.0 s" in error
    assert [e["event"] for e in events(config)] == ["failed"]
    assert sorted(p.name for p in watched.iterdir()) == ["cut.mp4"]  # no sidecar of it
