"""The daemon hands a backlog of one folder's files to its worker at once (``backlog``).

Real daemons, real worker processes, real sidecars. The demo checkpoint shows that a backlog
run through the collection runner writes byte for byte what one file at a time writes; the
tiny checkpoint with the ``noting`` processor (``faulty``'s crashes, a log of every file it
is given) shows the crash isolation: a file that kills the worker mid-backlog fails alone,
and the others are neither charged an attempt nor processed twice once reported.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from records import comparable
from test_watch_daemon import (  # noqa: F401  (pytest fixtures)
    jobs_of,
    running,
    small_video,
    wait_for,
    watched,
    write_config,
)
from test_watch_worker import faulty
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.demo import Actor, Scene, write_scene_video
from videoqa.demo.world import RADIUS
from videoqa.watch.config import FolderSettings, WatchConfig, load_config
from videoqa.watch.daemon import WatchDaemon
from videoqa.watch.jobstore import Job, JobStore

pytest.importorskip("torch", reason="the worker runs GIT with torch")

SAMPLES = Path(__file__).resolve().parent.parent / "sample_media"
NOTING = 'processor = "test_watch_backlog:noting"'


def noting(path: Path, settings: FolderSettings):
    """``faulty``, each file it is given first noted in ``given.txt`` beside the watched
    folder; a ``nap*`` file takes 1.5 s more."""
    name = Path(path).name
    with open(Path(settings.folder).parent / "given.txt", "a") as handle:
        handle.write(f"{name}\n")
    if name.startswith("nap"):
        time.sleep(1.5)
    return faulty(path, settings)


def given(folder: Path) -> Counter[str]:
    log = folder.parent / "given.txt"
    return Counter(log.read_text().split() if log.exists() else [])


def store_jobs(config: WatchConfig) -> list[Job]:
    with JobStore(config.jobstore) as store:
        return store.jobs()


def one_batch(jobs: list[Job]) -> bool:
    """Whether every job was started before any finished (handed over together)."""
    return max(j.started_at or 0 for j in jobs) < min(j.finished_at or 0 for j in jobs)


def one_by_one(jobs: list[Job]) -> bool:
    """Whether each job started only after the one before it finished."""
    ordered = sorted(jobs, key=lambda j: j.started_at or 0)
    return all((a.finished_at or 0) <= (b.started_at or 0) for a, b in pairwise(ordered))


def sidecars(folder: Path) -> dict[str, object]:
    """The sidecars' contents as results (records without run ids and times)."""
    return {p.name: comparable(p.name, p.read_bytes()) for p in folder.iterdir()
            if p.suffix in (".json", ".srt", ".vtt")}  # fmt: skip


def four_naps(
    tmp_path: Path, folder: Path, video: Path, model: Path, **daemon: object
) -> tuple[list[str], WatchConfig]:
    """Four copies of ``video`` named ``nap*`` (1.5 s each) and a config that notes them."""
    names = [f"nap{number}.mp4" for number in range(4)]
    for name in names:
        shutil.copyfile(video, folder / name)
    config = load_config(write_config(tmp_path, model, NOTING, **daemon), folders=[folder])
    return names, config


def test_a_backlog_runs_as_one_batch_and_writes_what_one_at_a_time_writes(tmp_path, watched):  # noqa: F811
    circle = Actor("circle", RADIUS, ((0.0, 0.25, 0.5), (6.0, 0.75, 0.5)),
                   ((0.0, "red"), (3.0, "blue")))  # fmt: skip
    square = Actor("square", RADIUS, ((0.0, 0.7, 0.4), (6.0, 0.3, 0.6)), ((0.0, "green"),))
    write_scene_video(watched / "both.mp4", Scene((circle, square)), duration=2.5, width=320,
                      height=180)  # fmt: skip
    write_scene_video(watched / "square.mp4", Scene((square,)), duration=7.0, width=240,
                      height=320)  # fmt: skip
    for sample in ("circle_turns_blue.mp4", "triangle_joins.webm"):
        shutil.copyfile(SAMPLES / sample, watched / sample)
    (tmp_path / "alone").mkdir()
    (tmp_path / "together").mkdir()
    extra = 'questions = ["what color is the circle?", "how many shapes are there?"]'

    alone = load_config(write_config(tmp_path / "alone", "demo", extra, backlog=1),
                        folders=[watched])  # fmt: skip
    WatchDaemon(alone, once=True).run()
    jobs = store_jobs(alone)
    assert [(j.state, j.attempts) for j in jobs] == [("done", 1)] * 4
    assert one_by_one(jobs) and not one_batch(jobs)
    expected = sidecars(watched)
    assert len(expected) == 12  # json, srt, vtt of each

    for sidecar in expected:
        (watched / sidecar).unlink()
    together = load_config(write_config(tmp_path / "together", "demo", extra, backlog=8),
                           folders=[watched])  # fmt: skip
    WatchDaemon(together, once=True).run()
    jobs = store_jobs(together)
    assert [(j.state, j.attempts) for j in jobs] == [("done", 1)] * 4
    assert one_batch(jobs)
    assert sidecars(watched) == expected


@pytest.mark.parametrize("backlog", [8, 1])
def test_a_file_that_crashes_the_worker_in_a_backlog_fails_alone(
    tmp_path,
    watched,  # noqa: F811
    small_video,  # noqa: F811
    tiny_video_git,  # noqa: F811
    backlog,
):
    """With one attempt a file, any charge to a bystander would fail it."""
    names = ["a1.mp4", "a2.mp4", "crash.mp4", "z1.mp4", "z2.mp4"]
    for name in names:
        shutil.copyfile(small_video, watched / name)
    config = load_config(write_config(tmp_path, tiny_video_git, NOTING, backlog=backlog,
                                      max_attempts=1), folders=[watched])  # fmt: skip
    WatchDaemon(config, once=True).run()
    jobs = jobs_of(config)
    crashed = jobs.pop("crash.mp4")
    assert crashed[:2] == ("failed", 1)
    assert crashed[2] is not None and crashed[2].endswith("worker process died (signal SIGSEGV)")
    assert jobs == {name: ("done", 1, None) for name in names if name != "crash.mp4"}
    for name in jobs:
        assert (watched / name).with_suffix(".videoqa.json").is_file()
    assert not (watched / "crash.videoqa.json").exists()
    # Each bystander was processed once: reported before the crash, or never begun on then.
    # The crashing file was given twice with a backlog (in it, then alone), else once.
    assert given(watched) == {**dict.fromkeys(jobs, 1), "crash.mp4": 2 if backlog > 1 else 1}


def test_the_time_limit_of_a_backlog_counts_from_the_last_file_done(
    tmp_path,
    watched,  # noqa: F811
    small_video,  # noqa: F811
    tiny_video_git,  # noqa: F811
):
    """Four 1.5 s files under a 4 s limit: the backlog takes longer, no file does."""
    names, config = four_naps(tmp_path, watched, small_video, tiny_video_git, time_limit=4)
    WatchDaemon(config, once=True).run()
    assert jobs_of(config) == dict.fromkeys(names, ("done", 1, None))
    jobs = store_jobs(config)
    assert one_batch(jobs)
    assert max(j.finished_at or 0 for j in jobs) - min(j.started_at or 0 for j in jobs) > 4
    assert given(watched) == dict.fromkeys(names, 1)  # none interrupted and run again


def test_backlog_must_be_positive(tmp_path, watched):  # noqa: F811
    from videoqa.errors import ConfigError

    with pytest.raises(ConfigError, match="'backlog' must be positive, got 0"):
        load_config(write_config(tmp_path, "demo", backlog=0), folders=[watched])
    assert load_config(write_config(tmp_path, "demo"), folders=[watched]).backlog == 8


def test_stopping_during_a_backlog_puts_every_unreported_file_back_uncounted(
    tmp_path,
    watched,  # noqa: F811
    small_video,  # noqa: F811
    tiny_video_git,  # noqa: F811
):
    names, config = four_naps(tmp_path, watched, small_video, tiny_video_git)
    with running(config):
        wait_for(lambda: "done" in {state for state, _, _ in jobs_of(config).values()},
                 show=lambda: jobs_of(config))  # fmt: skip
    jobs = jobs_of(config)
    done = {name for name, (state, _, _) in jobs.items() if state == "done"}
    assert 1 <= len(done) < len(names)
    assert {name: jobs[name] for name in names if name not in done} == {
        name: ("queued", 0, None) for name in names if name not in done
    }
