"""The worker process: outcomes, crash isolation, the time limit, and no orphans.

``faulty`` is a processor the tests point the daemon at through ``FolderSettings.processor``:
it crashes, hangs or dawdles on files named so, and runs the real pipeline on the others.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from indexed_video import write_indexed_video
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.errors import MediaError
from videoqa.watch.config import FolderSettings
from videoqa.watch.worker import Worker, process_file


def faulty(path: Path, settings: FolderSettings):
    """A processor with faults on demand, else the real pipeline.

    ``crash*`` dies by SIGSEGV (like a crash inside FFmpeg), ``hang*`` never returns, ``slow*``
    first sleeps ``VIDEOQA_TEST_SLOW`` seconds (when set), ``oops*`` and ``bad*`` raise.
    """
    name = Path(path).name
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("hang"):
        time.sleep(3600)
    if name.startswith("slow"):
        time.sleep(float(os.environ.get("VIDEOQA_TEST_SLOW", "0")))
    if name.startswith("oops"):
        raise RuntimeError("unexpected")
    if name.startswith("bad"):
        raise MediaError(path, "not a video")
    return process_file(path, settings)


def settings_for(folder: Path, model: Path, **changes) -> FolderSettings:
    """Tiny, fast, real: captions from the tiny checkpoint, one torch thread, no adapters."""
    return FolderSettings(
        folder=folder, model=str(model), caption_model=str(model), captions=True, threads=1,
        adapters=(), processor="test_watch_worker:faulty", **changes,
    )  # fmt: skip


def finish(worker: Worker, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = worker.wait(0.2)
        if outcome is not None:
            return outcome
    raise AssertionError("no outcome in time")


def test_crashes_hangs_and_errors_cost_one_file_each(tmp_path, tiny_video_git):  # noqa: F811
    video = tmp_path / "clip.mp4"
    write_indexed_video(video, frames=6, width=32, height=32)
    settings = settings_for(tmp_path, tiny_video_git)
    with Worker(time_limit=20.0) as worker:
        worker.submit(1, video, settings)
        done = finish(worker)
        assert done.ok and done.details == {"clips": 1} and done.rss_bytes > 0
        first_pid = worker.pid

        worker.submit(2, tmp_path / "crash.mp4", settings)
        crashed = finish(worker)
        assert (crashed.job_id, crashed.ok, crashed.retryable) == (2, False, True)
        assert "worker process died (signal SIGSEGV)" in crashed.error

        worker.submit(3, tmp_path / "bad.mp4", settings)
        bad = finish(worker)
        assert worker.pid != first_pid  # a fresh process took over
        assert not bad.ok and not bad.retryable and bad.error.endswith("bad.mp4: not a video")

        worker.submit(4, tmp_path / "oops.mp4", settings)
        oops = finish(worker)
        assert oops.retryable and "RuntimeError: unexpected" in oops.error

        worker.time_limit = 1.0
        worker.submit(5, tmp_path / "hang.mp4", settings)
        hung_pid = worker.pid
        hung = finish(worker)
        assert hung.retryable and "time limit of 1 s exceeded" in hung.error
        assert not Path(f"/proc/{hung_pid}").exists() or _is_zombie(hung_pid)

        worker.time_limit = 20.0
        worker.submit(6, video, settings)
        assert finish(worker).ok


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True
