"""Shared fixtures: the real-world clips folder, a guard against logged errors, torch optional."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

try:
    import torch
except ImportError:
    pass  # tests that need a model skip (tiny_git.NEEDS_TORCH); all the others still run
else:
    # Tiny models are dominated by per-op overhead: one thread is faster than two, and far
    # faster when the machine is shared (measured: 68 s -> 9 s for the engine tests under load).
    torch.set_num_threads(1)

SHARED_MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"

# The test-only model family (tests/mean_colour_engine.py) for this process and every process
# the tests start (the daemon's worker, Ray's workers): registered the way a family that is not
# an installed package is, and importable from this folder.
os.environ["VIDEOQA_ENGINES"] = "mean_colour=mean_colour_engine:MeanColourEngine"
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")])
)


@pytest.fixture
def shared_media() -> Path:
    """``../shared/media`` beside the project; tests that need it skip when it is absent."""
    if not SHARED_MEDIA.is_dir():
        pytest.skip("../shared/media is not present")
    return SHARED_MEDIA


@pytest.fixture(autouse=True)
def _no_logged_errors(caplog: pytest.LogCaptureFixture):
    """Fail any test that logs at ERROR or above unless it asked for that on purpose."""
    yield
    if getattr(caplog, "allow_errors", False):
        return
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR]
    assert not errors, f"unexpected ERROR log: {errors[0].getMessage()}"
