"""``--ray``: the collection runner's stages on a Ray cluster give the local runner's results.

One local cluster (``ray.init(num_cpus=2)``) serves the whole module: starting one takes
seconds, and every run starts its own model actors besides. Without the ray extra every test
here skips, saying so, except the one that checks the error saying how to install it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "sample_media"
TIMING_KEYS = ("timing", "elapsed", "seconds_taken")
"""Report keys that hold how long something took (they may differ between runs)."""


RUN_KEYS = ("run", "runs")
"""Which run made an entry, and when (schema 1.3): random ids and clock times, not results."""


def _without_timing(data: object) -> object:
    if isinstance(data, dict):
        return {key: _without_timing(value) for key, value in data.items()
                if key not in (*TIMING_KEYS, *RUN_KEYS)}  # fmt: skip
    if isinstance(data, list):
        return [_without_timing(value) for value in data]
    return data


def test_without_the_extra_ray_is_a_one_line_error_saying_how_to_install(tmp_path):
    """``--ray`` on an install without Ray: one line naming the extra, exit 1, nothing written
    (said before any model loads, so this needs no torch either)."""
    hide_ray = (
        "import sys; sys.modules['ray'] = None; "
        "from videoqa.cli import main; sys.argv[0] = 'videoqa'; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide_ray, "caption", str(SAMPLES / "circle_turns_blue.mp4"),
         "--model", "demo", "--ray", "local", "--output-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        'videoqa: error: --ray: Ray is not installed: pip install "videoqa[ray]"'
    )
    assert list(tmp_path.iterdir()) == []


def test_ray_only_options_without_ray_are_refused(tmp_path):
    from click.testing import CliRunner

    from videoqa.cli import cli

    result = CliRunner().invoke(cli, ["caption", str(SAMPLES / "circle_turns_blue.mp4"),
                                      "--model", "demo", "--model-actors", "2",
                                      "-o", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip() == "videoqa: error: --model-actors: needs --ray"
    assert list(tmp_path.iterdir()) == []


def test_planning_and_decoding_run_without_torch(demo, tmp_path):
    """What a planning/decoding process gets (Ray's planning copy of ``VideoQA``, and the
    ``FilePlan`` the local runner's decoding processes get) works in a process where torch and
    transformers cannot be imported, and gives the model the bits this process gives it; a
    Ray driver reads the checkpoint's facts there too."""
    import pickle

    import numpy as np

    from videoqa.collection import decode_clips, plan_file
    from videoqa.distributed import planning_copy

    video = SAMPLES / "circle_turns_blue.mp4"
    plan = plan_file(demo, video, questions=("what color is the circle?",), captions=True)
    here = [item.pixels for item in decode_clips(plan) if hasattr(item, "pixels")]
    (tmp_path / "planner.pickle").write_bytes(pickle.dumps(planning_copy(demo)))
    script = (
        "import pickle, sys\n"
        "sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "from videoqa.collection import decode_clips, plan_file\n"
        "planner = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "plan = plan_file(planner, sys.argv[2], questions=('what color is the circle?',),"
        " captions=True)\n"
        "clips = [item.pixels for item in decode_clips(pickle.loads(pickle.dumps(plan)))"
        " if hasattr(item, 'pixels')]\n"
        "from videoqa.engines import load_facts\n"
        "facts = load_facts('demo')\n"
        "open(sys.argv[3], 'wb').write(pickle.dumps((plan, clips, facts)))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "planner.pickle"), str(video),
                    str(tmp_path / "out.pickle")], check=True, timeout=120)  # fmt: skip
    there_plan, there, facts = pickle.loads((tmp_path / "out.pickle").read_bytes())
    assert there_plan == plan
    assert facts == demo.caption_engine.facts()
    assert len(there) == len(here) == len(plan.clips)
    for ours, theirs in zip(here, there, strict=True):
        assert ours.keys() == theirs.keys()
        for task in ours:
            assert ours[task].dtype == theirs[task].dtype == np.float32
            assert np.array_equal(ours[task].view(np.uint32), theirs[task].view(np.uint32))


@pytest.mark.parametrize("shadow", ["empty folder", "package"])
def test_ray_local_from_a_folder_holding_a_videoqa_folder(tmp_path, shadow):
    """``caption --ray local`` run from a folder that holds a ``videoqa`` folder (the folder
    holding a clone, say), with relative paths: Ray puts the driver's working directory first
    on each worker's import path, and the workers imported that folder in place of the
    installed package (``cannot import name '__version__' from 'videoqa' (unknown
    location)``, 40 lines of traceback). Now the sidecars are written where the relative
    paths say, exit 0. An empty folder shadows an installed or editable package only (not one
    on PYTHONPATH, as in a checkout's test run); a folder with an ``__init__.py`` shadows any,
    so that case fails without the fix everywhere. The CLI starts its own cluster: this runs
    before the module's cluster starts."""
    pytest.importorskip("ray", reason='the ray extra is not installed: pip install "videoqa[ray]"')
    pytest.importorskip("ray.data", reason='Ray Data is missing: pip install "videoqa[ray]"')
    pytest.importorskip("torch", reason="the models need torch")
    (tmp_path / "videoqa").mkdir()
    if shadow == "package":
        (tmp_path / "videoqa" / "__init__.py").write_text(
            "raise ImportError('this is not the videoqa package')\n"
        )
    shutil.copy(SAMPLES / "circle_turns_blue.mp4", tmp_path / "clip.mp4")
    script = Path(sys.executable).with_name("videoqa")  # as a user runs it: not from the cwd
    command = [str(script)] if script.exists() else [sys.executable, "-P", "-m", "videoqa"]
    done = subprocess.run(
        [*command, "caption", "clip.mp4", "--model", "demo", "--ray", "local",
         "-o", "out", "-f", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "out" / "clip.videoqa.json").read_text())
    assert report["video"]["path"] == str(tmp_path / "clip.mp4")
    assert len(report["clips"]) > 0


# --------------------------------------------------------------------------- on a cluster


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster with two CPUs for the module (what CI's machine has)."""
    ray = pytest.importorskip(
        "ray", reason='the ray extra is not installed: pip install "videoqa[ray]"'
    )
    pytest.importorskip("ray.data", reason='Ray Data is missing: pip install "videoqa[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def demo():
    """The demo checkpoint, loaded once for the module (the driver's copy)."""
    pytest.importorskip("torch", reason="the models need torch")
    from videoqa.pipeline import VideoQA

    qa = VideoQA("demo", caption_model="demo")
    qa.caption_engine  # noqa: B018 - load it now
    return qa


def _children(pid: int) -> dict[int, str]:
    """Processes whose parent or grandparent is ``pid`` (a local cluster's workers are the
    raylet's children, the raylet ours), with their titles."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = (parent, title)
    ours = {child for child, (parent, _) in found.items() if parent == pid}
    return {
        child: title for child, (parent, title) in found.items() if parent in ours | {pid}
    }


def test_workers_killed_at_work_lose_no_file_and_write_none_twice(
    cluster, demo, tmp_path, caplog
):
    """``caption --ray --json`` while a decoding task's process is SIGKILLed as it decodes,
    and the model actor's as it answers a batch: Ray runs the task again and restarts the
    actor, which takes the batch again; every file still arrives once, complete, as the local
    runner gives it (rows that come twice are dropped), no half-written or temporary sidecar is
    left, and stdout holds only the reports (Ray's notices of the dead workers go to stderr)."""
    from click.testing import CliRunner

    from videoqa.cli import cli
    from videoqa.collection import run_collection

    caplog.allow_errors = True  # Ray logs the dead workers
    folder = tmp_path / "videos"
    folder.mkdir()
    for number in range(6):
        shutil.copy(SAMPLES / "circle_turns_blue.mp4", folder / f"take{number}.mp4")
    # One clip a batch: the actor's tasks then last long enough for the watcher to catch one.
    (reference,) = run_collection(demo, [folder / "take0.mp4"], captions=True,
                                  clip_length=0.5, batch_size=1)  # fmt: skip
    expected = reference.report.to_dict()

    killed: dict[str, int] = {}
    actors: set[int] = set()
    done = threading.Event()

    def kill_workers_at_work() -> None:
        """Kill the first decoding task seen at work, then the model actor the first time
        its title says it runs a batch (.submit)."""
        while not done.is_set():
            for pid, title in _children(os.getpid()).items():
                if "_decode_rows" in title and "decode" not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed["decode"] = pid
                if "_EngineActor" not in title:
                    continue
                actors.add(pid)
                if "actor" not in killed and "decode" in killed and ".submit" in title:
                    os.kill(pid, signal.SIGKILL)
                    killed["actor"] = pid
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_workers_at_work, daemon=True)
    watcher.start()
    out = tmp_path / "out"
    try:
        result = CliRunner().invoke(cli, ["caption", str(folder), "--model", "demo",
                                          "--clip-length", "0.5", "--batch-size", "1",
                                          "-f", "json,srt", "-o", str(out), "--json",
                                          "--ray", "local"])  # fmt: skip
    finally:
        done.set()
        watcher.join()

    assert "decode" in killed, "never saw a decoding task at work"
    assert "actor" in killed, "never saw the model actor at work"
    assert actors - {killed["actor"]}, "no model actor took over from the killed one"
    assert result.exit_code == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]  # nothing else there
    assert sorted(Path(r["video"]["path"]).name for r in reports) == [
        f"take{n}.mp4" for n in range(6)
    ]
    for report in reports:
        name = Path(report["video"]["path"]).stem
        report["video"]["path"] = expected["video"]["path"]
        assert _without_timing(report) == _without_timing(expected)
        written = json.loads((out / f"{name}.videoqa.json").read_text())
        assert _without_timing(written["clips"]) == _without_timing(expected["clips"])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"take{n}.{suffix}" for n in range(6) for suffix in ("videoqa.json", "srt")
    )


def test_ray_local_writes_the_local_runners_sidecars_and_fails_a_bad_file_alone(
    cluster, demo, tmp_path
):
    """``ask --caption`` over the sample media and a file that is not a video, on one machine
    (a folder) and with ``--ray local`` (the same files from ``--paths-from``): the same
    sidecars (JSON byte for byte apart from timing fields), the same printed lines, the same
    one-line error for the bad file, exit 1 both times; ``--db`` indexed each report."""
    from click.testing import CliRunner

    from videoqa.cli import cli

    folder = tmp_path / "media"
    folder.mkdir()
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, folder / sample.name)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    # A file cut short: its report says where video ends, which rides on its last clip's row.
    from videoqa.demo import Actor, Scene, write_scene_video
    from videoqa.demo.world import RADIUS

    circle = Actor("circle", RADIUS, ((0.0, 0.25, 0.5), (12.0, 0.75, 0.5)), ((0.0, "red"),))
    whole = tmp_path / "whole.mp4"
    write_scene_video(whole, Scene((circle,)), duration=12.0, options={"g": "25"},
                      container_options={"movflags": "faststart"})  # fmt: skip
    (folder / "cut.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size * 55 // 100])
    listing = tmp_path / "paths.txt"  # the Ray run takes the files from a list
    names = ("broken.mp4", "cut.mp4", *sorted(p.name for p in SAMPLES.iterdir()))
    listing.write_text("# the archive\n\n" + "".join(f"{folder / name}\n" for name in names))
    common = ["ask", "-q", "what color is the circle?", "--caption",
              "--model", "demo", "--caption-model", "demo", "-f", "json,srt,vtt"]  # fmt: skip
    runs = {}
    index = tmp_path / "index.sqlite"
    for name, extra in (
        ("local", [str(folder)]),
        ("ray", ["--ray", "local", "--paths-from", str(listing), "--db", str(index)]),
    ):
        result = CliRunner().invoke(cli, [*common, "-o", str(tmp_path / name), *extra])
        runs[name] = result
        assert result.exit_code == 1, result.output
    local, on_ray = runs["local"], runs["ray"]
    assert sorted(on_ray.stdout.splitlines()) == sorted(local.stdout.splitlines())
    cut = json.loads((tmp_path / "local" / "cut.videoqa.json").read_text())
    assert 0 < cut["video"]["decodable_end"] < 12 and len(cut["clips"]) == 2
    assert len(local.stdout.splitlines()) == 2 * (3 + 2 + 2)  # a caption and an answer per clip
    errors = [line for line in on_ray.stderr.splitlines() if line.startswith("videoqa: error:")]
    assert errors == [
        line for line in local.stderr.splitlines() if line.startswith("videoqa: error:")
    ]
    assert len(errors) == 1 and "broken.mp4: " in errors[0]
    assert on_ray.stderr.splitlines()[-1].startswith("videoqa: 4 files: 3 done, 1 failed; 7 clips")

    names = sorted(path.name for path in (tmp_path / "local").iterdir())
    assert names == sorted(path.name for path in (tmp_path / "ray").iterdir())
    assert len(names) == 9
    for name in names:
        ours = (tmp_path / "ray" / name).read_bytes()
        theirs = (tmp_path / "local" / name).read_bytes()
        if name.endswith(".json"):
            mine, local_report = json.loads(ours), json.loads(theirs)
            for clip, local_clip in zip(mine["clips"], local_report["clips"], strict=True):
                assert _without_timing(clip) == _without_timing(local_clip), (name, clip)
            assert _without_timing(mine) == _without_timing(local_report)
        else:
            assert ours == theirs

    from videoqa.index import ArchiveIndex  # --db: each delivered report is indexed

    archive = ArchiveIndex(index)
    try:
        assert sorted(Path(video.path).name for video in archive.videos()) == [
            "circle_turns_blue.mp4", "cut.mp4", "triangle_joins.webm"
        ]
        hits = archive.search("blue circle")
        assert hits and all(Path(hit.video).name == "circle_turns_blue.mp4" for hit in hits)
    finally:
        archive.close()


def test_a_model_actor_that_cannot_load_the_checkpoint_stops_the_run_in_one_line(
    cluster, tmp_path, caplog
):
    """The driver loaded the checkpoint, but the node a model actor starts on cannot (here:
    its weights are gone by then): one ``ModelError`` line saying so and why, not Ray's
    traceback of an exception it could not unpickle."""
    from videoqa.distributed import RaySettings, run_on_ray
    from videoqa.errors import ModelError
    from videoqa.models import resolve_model
    from videoqa.pipeline import VideoQA

    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(resolve_model("demo"), checkpoint)
    qa = VideoQA(str(checkpoint), caption_model=str(checkpoint))
    qa.caption_engine  # noqa: B018 - the driver's copy loads
    (checkpoint / "model.safetensors").unlink()
    caplog.allow_errors = True  # Ray Data logs the failed actor
    with pytest.raises(ModelError) as raised:
        list(run_on_ray(qa, [SAMPLES / "circle_turns_blue.mp4"], settings=RaySettings()))
    message = str(raised.value)
    assert message.startswith(f"model: a model actor could not start: {checkpoint}: ")
    assert "\n" not in message and "Traceback" not in message


def test_gpus_that_the_local_cluster_cannot_have_are_refused(cluster, demo, tmp_path):
    """``--gpus-per-actor`` on a cluster started here without GPUs: one line, before any
    actor waits for ever."""
    import ray
    from click.testing import CliRunner

    from videoqa.cli import cli

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this cluster has GPUs")
    result = CliRunner().invoke(cli, ["caption", str(SAMPLES / "circle_turns_blue.mp4"),
                                      "--model", "demo", "--ray", "local",
                                      "--gpus-per-actor", "0.5", "-o", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "videoqa: error: --gpus-per-actor: 0.5 asked for, but the Ray cluster started here "
        "has no GPU"
    )
    assert list(tmp_path.iterdir()) == []


def test_more_model_actors_than_the_local_cluster_can_hold_are_refused(cluster, tmp_path):
    """Two model actors on a two-CPU cluster leave no CPU to decode on, and Ray would wait for
    ever: one line instead, before any actor starts."""
    import ray
    from click.testing import CliRunner

    from videoqa.cli import cli

    cpus = int(ray.cluster_resources()["CPU"])
    video = str(SAMPLES / "circle_turns_blue.mp4")
    arguments = ["caption", video, "--model", "demo", "--ray", "local",
                 "--model-actors", str(cpus), "-o", str(tmp_path)]  # fmt: skip
    result = CliRunner().invoke(cli, arguments)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"videoqa: error: --model-actors: {cpus} model actors and a decoding task need "
        f"{cpus + 1} CPUs, the Ray cluster started here has {cpus}"
    )
    assert list(tmp_path.iterdir()) == []



def test_ray_local_builds_the_same_record_as_the_command_line(cluster, demo, tmp_path):
    """The one-record sequence with ``--ray local`` for ask and caption: ask, caption,
    find --db, an edit, ask another question: one record holding all of it."""
    from test_record import COLOUR, SAMPLE, WAY, check_record, run

    from videoqa.web.edits import edit_clip

    shutil.copyfile(SAMPLE, tmp_path / "v.mp4")
    db = tmp_path / "i.db"
    ray = ["--model", "demo", "--ray", "local", "--db", str(db)]
    run("ask", "v.mp4", "-q", COLOUR, *ray, cwd=tmp_path)
    run("caption", "v.mp4", *ray, cwd=tmp_path)
    run("find", "v.mp4", "--model", "demo", "--what", "a blue circle", "--db", str(db),
        cwd=tmp_path)
    edit_clip(tmp_path / "v.videoqa.json", tmp_path / "v.mp4", 1, caption="a cobalt disc")
    run("ask", "v.mp4", "-q", WAY, *ray, cwd=tmp_path)
    check_record(json.loads((tmp_path / "v.videoqa.json").read_text()), db, tmp_path,
                 "a cobalt disc")


def test_a_file_that_decodes_to_no_clip_fails_on_ray_as_it_does_locally(cluster, tmp_path):
    """Issue 20 (3): a file that ends before its first clip (here: decodable to under 2 s,
    asked from --start 5) fails with the daemon's one line on Ray as on one machine, exit 1,
    no sidecar for it; the other file is done."""
    import re

    from click.testing import CliRunner

    from videoqa.cli import cli
    from videoqa.demo import Actor, Scene, write_scene_video
    from videoqa.demo.world import RADIUS

    circle = Actor("circle", RADIUS, ((0.0, 0.25, 0.5), (12.0, 0.75, 0.5)), ((0.0, "red"),))
    folder = tmp_path / "media"
    folder.mkdir()
    whole = folder / "whole.mp4"
    write_scene_video(whole, Scene((circle,)), duration=12.0, options={"g": "25"},
                      container_options={"movflags": "faststart"})  # fmt: skip
    cut = folder / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 26 // 100])
    listing = tmp_path / "paths.txt"
    listing.write_text(f"{cut}\n{whole}\n")
    lines = {}
    for name, extra in (
        ("local", [str(folder)]),
        ("ray", ["--ray", "local", "--paths-from", str(listing)]),
    ):
        result = CliRunner().invoke(cli, ["caption", "--model", "demo", "--start", "5", "-f",
                                          "json", "-o", str(tmp_path / name), *extra])  # fmt: skip
        assert result.exit_code == 1, result.output
        lines[name] = [line for line in result.stderr.splitlines()
                       if line.startswith("videoqa: error:")]  # fmt: skip
        assert [path.name for path in (tmp_path / name).iterdir()] == ["whole.videoqa.json"]
    assert lines["ray"] == lines["local"]
    assert len(lines["ray"]) == 1
    assert re.fullmatch(rf"videoqa: error: {re.escape(str(cut))}: truncated at 1\.\d s of 12\.0 s",
                        lines["ray"][0])  # fmt: skip


def test_ray_runs_another_model_family_through_the_engine_seam(cluster, tmp_path):
    """The test-only family (tests/mean_colour_engine.py) on Ray's planning tasks and model
    actors, unchanged: its facts are read on the driver without loading it, the actors load it
    through the registry."""
    pytest.importorskip("torch", reason="the CLI picks a device with torch")
    from click.testing import CliRunner
    from mean_colour_engine import save_checkpoint

    from videoqa.cli import cli

    family = save_checkpoint(tmp_path / "mean-colour")
    shutil.copyfile(SAMPLES / "circle_turns_blue.mp4", tmp_path / "v.mp4")
    result = CliRunner().invoke(cli, ["caption", str(tmp_path / "v.mp4"), "--model",
                                      str(family), "--ray", "local"])  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "v.videoqa.json").read_text())
    assert [c["caption"]["text"] for c in record["clips"]] == [
        "a red thing", "a blue thing", "a blue thing"]


def test_ray_shapes_subtitles_as_the_local_runner_does(cluster, demo, tmp_path):
    """--subtitle-style on Ray: the same delivery step shapes the files (they were refused)."""
    from click.testing import CliRunner

    from videoqa.cli import cli

    files = {}
    for name, extra in (("local", []), ("ray", ["--ray", "local"])):
        out = tmp_path / name
        shutil.copyfile(SAMPLES / "circle_turns_blue.mp4", tmp_path / f"{name}.mp4")
        result = CliRunner().invoke(cli, ["caption", str(tmp_path / f"{name}.mp4"), "--model",
                                          "demo", "--subtitle-style", "netflix",
                                          "--max-line-chars", "12", "-o", str(out), *extra])
        assert result.exit_code == 0, result.output
        record = json.loads((out / f"{name}.videoqa.json").read_text())
        assert record["subtitles"]["max_line_chars"] == 12
        files[name] = (out / f"{name}.srt").read_text()
    assert files["ray"] == files["local"]
    texts = [line for line in files["ray"].splitlines()
             if line and "-->" not in line and not line.isdigit()]
    assert texts and all(len(line) <= 12 for line in texts)
