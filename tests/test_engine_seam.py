"""The engine seam: a model family is one file. The test-only family (mean_colour_engine.py)
runs through ``ask``, ``caption`` over a folder (the collection runner with worker processes),
``find --db`` and the daemon's ``process`` unchanged (``--ray``: tests/test_distributed.py);
a checkpoint of an unknown family is refused in one line naming its ``model_type``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from mean_colour_engine import save_checkpoint

from videoqa.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_media" / "circle_turns_blue.mp4"
COLOURS = ["red", "blue", "blue"]  # the circle of the sample clip, clip by clip


@pytest.fixture
def family(tmp_path: Path) -> Path:
    pytest.importorskip("torch", reason="ask and caption pick a device with torch")
    return save_checkpoint(tmp_path / "mean-colour")


def invoke(*args: str) -> object:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_ask_and_caption_run_another_family(family, tmp_path):
    video = tmp_path / "v.mp4"
    shutil.copyfile(SAMPLE, video)
    invoke("ask", str(video), "--model", str(family), "-q", "what color is it?")
    invoke("caption", str(video), "--model", str(family))
    record = json.loads(video.with_suffix(".videoqa.json").read_text())
    assert [c["answers"][0]["answer"] for c in record["clips"]] == COLOURS
    assert [c["caption"]["text"] for c in record["clips"]] == [f"a {c} thing" for c in COLOURS]
    assert {run["model"]["id"] for run in record["runs"]} == {str(family)}
    assert record["model"]["frames_per_clip"] == 2


def test_the_collection_runner_and_find_run_another_family(family, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copyfile(SAMPLE, folder / name)
    invoke("caption", str(folder), "--model", str(family), "--workers", "2", "-f", "json")
    for name in ("a", "b"):
        record = json.loads((folder / f"{name}.videoqa.json").read_text())
        assert [c["caption"]["text"] for c in record["clips"]] == [f"a {c} thing"
                                                                   for c in COLOURS]
    db = tmp_path / "i.db"
    invoke("find", str(folder / "a.mp4"), "--model", str(family), "--what", "blue",
           "--db", str(db))  # fmt: skip
    [found] = json.loads((folder / "a.videoqa.json").read_text())["findings"]
    assert [(r["start"], r["end"]) for r in found["ranges"]] == [(5.0, 15.0)]


def test_the_daemon_runs_another_family(family, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(SAMPLE, folder / "v.mp4")
    config = tmp_path / "videoqa.toml"
    config.write_text(f'[defaults]\nmodel = "{family}"\ncaption_model = "{family}"\n'
                      'questions = ["what color is it?"]\ncaptions = true\n'
                      'adapters = ["sidecars"]\n')  # fmt: skip
    invoke("process", str(folder / "v.mp4"), "--config", str(config), "--jobstore",
           str(tmp_path / "jobs.sqlite"))  # fmt: skip
    record = json.loads((folder / "v.videoqa.json").read_text())
    assert [c["answers"][0]["answer"] for c in record["clips"]] == COLOURS
    assert [c["caption"]["text"] for c in record["clips"]] == [f"a {c} thing" for c in COLOURS]


def test_a_checkpoint_of_an_unknown_family_is_refused_in_one_line(tmp_path):
    pytest.importorskip("torch", reason="caption picks a device with torch before the model")
    folder = save_checkpoint(tmp_path / "llama")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    shutil.copyfile(SAMPLE, tmp_path / "v.mp4")
    result = CliRunner().invoke(cli, ["caption", str(tmp_path / "v.mp4"), "--model",
                                      str(folder)])  # fmt: skip
    assert result.exit_code == 1
    [line] = [line for line in result.stderr.splitlines() if "error" in line]
    assert line.startswith(f"videoqa: error: {folder}: no engine for model_type 'llama'")
    assert "Traceback" not in result.output


def test_only_the_git_module_and_the_registry_name_the_git_engine():
    """A runner that named GitEngine would be wired to one family again."""
    naming = sorted(
        str(path.relative_to(ROOT))
        for folder in ("src", "plugins")
        for path in (ROOT / folder).rglob("*.py")
        if "GitEngine" in path.read_text(encoding="utf-8")
    )
    assert naming == ["src/videoqa/engine.py", "src/videoqa/engines/__init__.py"]
