"""The library's top level: the public names import from ``videoqa``, torch only when needed."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import videoqa

TORCH_FREE = [name for name in videoqa.__all__ if name not in ("VideoQA", "VideoJob")]


def test_importing_videoqa_and_its_torch_free_parts_does_not_import_torch() -> None:
    # A fresh interpreter: this test process may have imported torch already.
    code = (
        "import sys\n"
        "import videoqa, videoqa.media, videoqa.report, videoqa.sidecars, videoqa.cli\n"
        "import videoqa.watch.daemon, videoqa.watch.worker\n"
        f"from videoqa import {', '.join(TORCH_FREE)}\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr


def test_top_level_names_are_the_modules_own() -> None:
    from videoqa import FrameSampler, MediaError, Report, probe, write_sidecars

    assert FrameSampler is importlib.import_module("videoqa.media").FrameSampler
    assert probe is importlib.import_module("videoqa.media").probe
    assert Report is importlib.import_module("videoqa.report").Report
    assert write_sidecars is importlib.import_module("videoqa.sidecars").write_sidecars
    assert issubclass(MediaError, videoqa.VideoQAError)
    assert set(TORCH_FREE) <= set(dir(videoqa))


def test_every_public_name_resolves() -> None:
    pytest.importorskip("torch", reason="VideoQA runs models: it needs torch")
    from videoqa import VideoQA

    assert VideoQA is importlib.import_module("videoqa.pipeline").VideoQA
    missing = [name for name in videoqa.__all__ if getattr(videoqa, name, None) is None]
    assert not missing


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'transcribe'"):
        videoqa.transcribe  # noqa: B018
    with pytest.raises(ImportError):
        from videoqa import transcribe  # noqa: F401
