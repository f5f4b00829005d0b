"""``make demo`` and ``make test``, the README's first two commands, in a fresh clone (issue 27).

The demo runs for real in a ``git clone`` of this checkout, in this test's interpreter
(``INSTALL=no``: installing torch again would take minutes); the setup steps a fresh clone goes
through, and their reuse on a second run, are checked with ``make -n``, which prints the
commands without running them. CI's main stage runs ``make test`` from a fresh clone, setup
included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("git") is None
    or not (ROOT / ".git").exists(),
    reason="needs make, git and a git checkout",
)  # fmt: skip


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A fresh clone of this checkout's committed state, as a newcomer gets it."""
    target = tmp_path / "videoqa"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True, timeout=120)
    return target


def make(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Not what an outer make passes on: its flags, and the variables given on its command line
    # (CI runs this suite under `make test VENV=... PIP_OPTIONS=...`, and make exports those).
    ours = {"PYTHON", "VENV", "INSTALL", "TORCH", "TORCH_CPU_INDEX", "OUT", "PIP_OPTIONS",
            "PYTEST_ARGS", "PY", "MFLAGS"}
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MAKE") and key not in ours}
    env.pop("PYTHONPATH", None)  # the Makefile puts the clone's code first on its own
    return subprocess.run(["make", "--no-print-directory", *args], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_make_demo_captions_the_sample_clip_into_three_sidecars(clone, tmp_path):
    pytest.importorskip("torch", reason="the demo checkpoint runs with torch")
    out = tmp_path / "demo-out"
    run = ["demo", f"VENV={sys.prefix}", f"PY={sys.executable}", "INSTALL=no", f"OUT={out}"]
    result = make(clone, *run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"make: using {sys.prefix} as it is (INSTALL=no): Python "
        f"{'.'.join(map(str, sys.version_info[:3]))}",
        f"make: captioning sample_media/circle_turns_blue.mp4 with the demo checkpoint into {out}",
        "circle_turns_blue.mp4 [00:00:00.000 --> 00:00:05.000] a red circle moves right "
        "(confidence 1.00)",
        "circle_turns_blue.mp4 [00:00:05.000 --> 00:00:10.000] a blue circle moves left "
        "(confidence 1.00)",
        "circle_turns_blue.mp4 [00:00:10.000 --> 00:00:15.000] a blue circle moves right "
        "(confidence 1.00)",
    ]
    assert sorted(path.name for path in out.iterdir()) == [
        "circle_turns_blue.srt", "circle_turns_blue.videoqa.json", "circle_turns_blue.vtt"]
    report = json.loads((out / "circle_turns_blue.videoqa.json").read_text())
    assert [clip["caption"]["text"] for clip in report["clips"]] == [
        "a red circle moves right", "a blue circle moves left", "a blue circle moves right"]
    # The clone's code ran, not whatever the interpreter has installed.
    assert report["video"]["path"] == str(clone / "sample_media" / "circle_turns_blue.mp4")
    srt = (out / "circle_turns_blue.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> 00:00:05,000\na red circle moves right\n")
    assert "WEBVTT" in (out / "circle_turns_blue.vtt").read_text()


def test_a_fresh_clone_sets_up_in_steps_and_a_second_run_reuses_them(clone):
    demo = make(clone, "-n", "demo", "PYTHON=python3.11").stdout
    for step in ('python3.11 -m venv ".venv"', "import torch", 'torch==2.13.0',
                 '-m pip install -q -e ".[dev]"', "-m videoqa caption sample_media/"):
        assert step in demo, step
    test = make(clone, "-n", "test").stdout
    for step in ('-e ".[dev,shots,web,ray,speech]"',
                 "-m ruff check src plugins tests benchmarks tools", "bin/lint-imports",
                 "-m mypy src plugins", "-m pytest -q"):
        assert step in test, step
    # What a first run leaves: the venv, torch and videoqa with its extras installed.
    (clone / ".venv" / "bin").mkdir(parents=True)
    (clone / ".venv" / "bin" / "python").symlink_to(sys.executable)
    time.sleep(0.01)
    for stamp in (".torch", ".videoqa-dev"):
        (clone / ".venv" / stamp).touch()
    again = make(clone, "-n", "demo").stdout
    assert "-m venv" not in again and "pip install" not in again
    assert "-m videoqa caption sample_media/" in again
    ignored = subprocess.run(["git", "check-ignore", "-q", ".venv/.torch"], cwd=clone)
    assert ignored.returncode == 0  # git status stays clean


def test_install_no_with_a_missing_interpreter_says_so(clone, tmp_path):
    result = make(clone, "demo", f"VENV={tmp_path / 'none'}", "INSTALL=no")
    assert result.returncode != 0
    assert f"make: INSTALL=no, but {tmp_path / 'none'}/bin/python does not exist" in result.stderr
