"""The collection runner: the reports of one file at a time, bad files alone, bounded memory."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_pipeline import write_test_video
from tiny_git import tiny_image_git  # noqa: F401 (fixture)

pytest.importorskip("torch", reason="the collection runner runs GIT with torch")

from videoqa.cli import cli
from videoqa.collection import (
    ClipDone,
    CollectionRunner,
    FileDone,
    FileFailed,
    FilePlanned,
    find_videos,
    run_collection,
)
from videoqa.demo import Actor, Scene, write_scene_video
from videoqa.demo.world import RADIUS
from videoqa.pipeline import VideoQA
from videoqa.report import Report

SAMPLES = Path(__file__).resolve().parent.parent / "sample_media"
QUESTIONS = ("what color is the circle?", "which way does it move?")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The two sample clips, demo-world videos of other lengths and sizes, a truncated file,
    a broken one and a missing one, in that order among each other."""
    folder = tmp_path_factory.mktemp("collection")
    path = ((0.0, 0.25, 0.5), (6.0, 0.75, 0.5))
    circle = Actor("circle", RADIUS, path, ((0.0, "red"), (3.0, "blue")))
    square = Actor("square", RADIUS, ((0.0, 0.7, 0.4), (6.0, 0.3, 0.6)), ((0.0, "green"),))
    made = []
    for number, (seconds, size, actors) in enumerate(
        [(6.0, (320, 240), (circle,)), (2.5, (640, 360), (circle, square)),
         (9.0, (240, 320), (square,))]
    ):  # fmt: skip
        video = folder / f"scene{number}.mp4"
        write_scene_video(video, Scene(actors), duration=seconds, width=size[0], height=size[1])
        made.append(video)
    whole = folder / "whole.mp4"
    write_scene_video(whole, Scene((circle,)), duration=6.0, options={"g": "25"},
                      container_options={"movflags": "faststart"})  # fmt: skip
    cut = folder / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 45 // 100])
    broken = folder / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    return [SAMPLES / "circle_turns_blue.mp4", made[0], broken, made[1], cut,
            folder / "missing.mkv", SAMPLES / "triangle_joins.webm", made[2]]  # fmt: skip


@pytest.fixture(scope="module")
def demo() -> VideoQA:
    qa = VideoQA("demo", caption_model="demo", device="cpu")
    qa.answer_engine  # noqa: B018 - load once for the module
    return qa


def one_at_a_time(qa: VideoQA, videos: list[Path], **options) -> dict[int, str]:
    """What ``VideoQA.run`` gives each file (its report's JSON, or its error)."""
    expected = {}
    for position, video in enumerate(videos):
        try:
            expected[position] = qa.run(video, **options).to_json()
        except Exception as error:  # noqa: BLE001 - the error is the expected outcome
            expected[position] = str(error)
    return expected


def through_runner(qa: VideoQA, videos: list[Path], **options) -> tuple[dict[int, str], list]:
    outcomes, events = {}, []
    runner_options = {key: options.pop(key) for key in ("workers", "batch_size")}
    with CollectionRunner(qa, **runner_options) as runner:
        for event in runner.run(videos, **options):
            events.append(event)
            if isinstance(event, FileDone):
                outcomes[event.position] = event.report.to_json()
            elif isinstance(event, FileFailed):
                outcomes[event.position] = event.error
        assert runner.largest_batch <= runner_options["batch_size"]
    return outcomes, events


IDENTITY_OPTIONS = dict(questions=QUESTIONS, captions=True, clip_length=2.0)


@pytest.fixture(scope="module")
def one_file_reports(demo, collection) -> dict[int, str]:
    return one_at_a_time(demo, collection, **IDENTITY_OPTIONS)


@pytest.mark.parametrize("workers,batch_size", [(0, 3), (2, 5)])
def test_reports_are_byte_identical_to_one_file_at_a_time(
    demo, collection, one_file_reports, workers, batch_size
):
    """Clips of several files share batches, yet every report is the one-file report to the
    byte (scores to the last digit), the truncated file included; bad files fail alone."""
    options = dict(IDENTITY_OPTIONS)
    expected = one_file_reports
    got, events = through_runner(demo, collection, workers=workers, batch_size=batch_size,
                                 **options)  # fmt: skip
    assert got == expected
    failed = {e.position for e in events if isinstance(e, FileFailed)}
    assert failed == {2, 5}
    assert all(len(e.error.splitlines()) == 1 and e.path in e.error
               for e in events if isinstance(e, FileFailed))  # fmt: skip
    assert "decodable_end" in expected[4] and json.loads(expected[4])["video"]["decodable_end"]
    # Each file's clips come in time order, and after the file was planned.
    for position in set(range(len(collection))) - failed:
        kinds = [e for e in events if e.position == position]
        assert isinstance(kinds[0], FilePlanned) and isinstance(kinds[-1], FileDone)
        indices = [e.result.index for e in kinds if isinstance(e, ClipDone)]
        assert indices == sorted(indices)
        assert len(indices) == len(json.loads(got[position])["clips"])


def test_image_checkpoint_votes_are_identical_too(tiny_image_git, collection):  # noqa: F811
    """An image checkpoint answers each frame and votes: the same through the runner."""
    qa = VideoQA(str(tiny_image_git), device="cpu")
    videos = [collection[0], collection[1], collection[6]]
    options = dict(questions=QUESTIONS[:1], captions=False, clip_length=3.0)
    expected = one_at_a_time(qa, videos, **options)
    got, _ = through_runner(qa, videos, workers=0, batch_size=4, **options)
    assert got == expected


def test_memory_is_bounded_by_the_slot_pool(demo, tmp_path):
    """A long file of many clips goes through two slots per worker: the shared memory is the
    pool's fixed size and never more clips wait for the model than there are slots."""
    long = tmp_path / "long.mp4"
    write_test_video(long, seconds=20.0)
    with CollectionRunner(demo, workers=1, batch_size=2, slots_per_worker=2) as runner:
        events = list(runner.run([long, long], captions=True, clip_length=0.5))
        assert runner.shared_memory_bytes == 2 * 6 * 3 * 32 * 32 * 4  # 2 slots, 6 frames
        assert runner.most_waiting <= 2
    done = [e for e in events if isinstance(e, FileDone)]
    assert [len(e.report.clips) for e in done] == [40, 40]


def test_a_worker_that_dies_fails_its_file_alone(demo, collection):
    """A decoder process killed mid-file (as a crash inside FFmpeg would) costs that file: one
    line, and a new worker goes on with the rest."""
    videos = [collection[0], collection[3], collection[6]]
    options = dict(captions=True, clip_length=1.0)
    expected = one_at_a_time(demo, videos, **options)
    outcomes, killed = {}, False
    with CollectionRunner(demo, workers=1, batch_size=1, slots_per_worker=2) as runner:
        for event in runner.run(videos, **options):
            if isinstance(event, ClipDone) and event.position == 0 and not killed:
                os.kill(runner.worker_pids()[0], signal.SIGKILL)
                killed = True
            if isinstance(event, FileDone):
                outcomes[event.position] = event.report.to_json()
            elif isinstance(event, FileFailed):
                outcomes[event.position] = event.error
    assert outcomes[0] == f"{videos[0]}: worker process died (signal SIGKILL)"
    assert outcomes[1] == expected[1] and outcomes[2] == expected[2]


def test_run_collection_writes_each_files_sidecars(demo, collection, tmp_path):
    """Outcomes come as files end (the broken one first); each good file has its sidecars."""
    outcomes = list(run_collection(demo, collection[:3], captions=True, batch_size=2,
                                   formats=("json", "srt"), output_dir=tmp_path))  # fmt: skip
    by_path = {Path(o.path): o for o in outcomes}
    assert [by_path[video].ok for video in collection[:3]] == [True, True, False]
    assert by_path[collection[1]].written == (tmp_path / "scene0.videoqa.json",
                                              tmp_path / "scene0.srt")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "circle_turns_blue.srt", "circle_turns_blue.videoqa.json",
        "scene0.srt", "scene0.videoqa.json",
    ]  # fmt: skip
    report = by_path[collection[1]].report
    assert Report.load(tmp_path / "scene0.videoqa.json").clips == report.clips


def test_find_videos_searches_folders_recursively(tmp_path):
    for name in ("b.mp4", "a.MOV", "notes.txt", ".hidden.mp4", "sub/c.mkv", "sub/d.txt",
                 ".cache/e.mp4"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    given = tmp_path / "notes.txt"
    assert find_videos([given, tmp_path]) == [
        given, tmp_path / "a.MOV", tmp_path / "b.mp4", tmp_path / "sub" / "c.mkv"
    ]  # fmt: skip
    assert find_videos([tmp_path], glob="sub/*") == [tmp_path / "sub" / "c.mkv",
                                                     tmp_path / "sub" / "d.txt"]  # fmt: skip
    assert find_videos([tmp_path / "missing.mp4"]) == [tmp_path / "missing.mp4"]


def test_cli_takes_a_folder_workers_and_batch_size_and_streams_json(collection, tmp_path):
    folder = tmp_path / "in"
    (folder / "deeper").mkdir(parents=True)
    for source, target in ((collection[0], "a.mp4"), (collection[1], "deeper/b.mp4"),
                           (collection[2], "deeper/c.mp4")):  # fmt: skip
        (folder / target).symlink_to(source)
    result = CliRunner().invoke(cli, ["caption", str(folder), "--model", "demo", "--json",
                                      "--format", "none", "--workers", "1", "--batch-size", "3",
                                      "--glob", "*.mp4"])  # fmt: skip
    assert result.exit_code == 1, result.stderr  # c.mp4 is broken
    reports = [Report.from_dict(json.loads(line)) for line in result.stdout.splitlines()]
    assert sorted(Path(r.video.path).name for r in reports) == ["a.mp4", "b.mp4"]
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"videoqa: error: {folder / 'deeper/c.mp4'}")
    assert result.stderr.splitlines()[-1].startswith("videoqa: 3 files: 2 done, 1 failed;")

    refused = CliRunner().invoke(cli, ["caption", str(folder), "--workers", "-1"])
    assert refused.exit_code == 2 and "--workers" in refused.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = CliRunner().invoke(cli, ["caption", str(empty), "--model", "demo"])
    assert nothing.exit_code == 1
    assert nothing.stderr.strip() == "videoqa: error: --glob: the folders given hold no video files"


def test_the_daemon_batches_through_the_runner_when_configured(demo, collection, tmp_path):
    """``batch_size`` in a folder's config: the worker's ``process_file`` goes through the
    runner (decoding in a thread) and returns the one-file report; errors stay one line."""
    from videoqa.errors import MediaError, VideoQAError
    from videoqa.watch.config import load_config
    from videoqa.watch.worker import process_file

    config = tmp_path / "videoqa.toml"
    config.write_text('[defaults]\nmodel = "demo"\ncaption_model = "demo"\ndevice = "cpu"\n'
                      'questions = ["what color is the circle?"]\nbatch_size = 3\n'
                      'clip_length = 2.0\n')  # fmt: skip
    settings = load_config(config, folders=[collection[1].parent]).folders[0]
    assert settings.batch_size == 3
    report = process_file(collection[1], settings)
    expected = demo.run(collection[1], questions=["what color is the circle?"], clip_length=2.0)
    assert report.to_json() == expected.to_json()
    with pytest.raises(MediaError) as refused:
        process_file(collection[2], settings)
    assert str(refused.value).startswith(f"{collection[2]}: ")

    config.write_text("[defaults]\nbatch_size = 0\n")
    with pytest.raises(VideoQAError, match="'batch_size' must be positive"):
        load_config(config, folders=[tmp_path])
