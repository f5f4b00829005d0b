"""``--ray`` on a user's terminal: our lines only; Ray's own notices go to a log (issue 27).

Ray writes from Python (its logger: token authentication), from C++ straight to descriptor 2
(``core_worker.cc``) and from the cluster processes it starts; a command in a real process is
the only way to see all three, so this test runs ``python -m videoqa`` (a local cluster of its
own: about 30 to 60 s on the 2-core machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="--ray needs the ray extra")
pytest.importorskip("torch", reason="the model actor needs torch")

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"


def test_ray_local_prints_our_lines_only_and_logs_rays(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(SAMPLE.read_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, "-m", "videoqa", "caption", str(video), "--model", "demo",
         "--ray", "local", "-f", "srt"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    ours = ("videoqa: ", f"clip.mp4: wrote {tmp_path / 'clip.srt'}")
    assert [line for line in lines if not line.startswith(ours)] == []
    assert lines[-1].startswith("videoqa: 1 file: 1 done, 0 failed; 3 clips in ")
    assert result.stdout.count("clip.mp4 [") == 3
    assert (tmp_path / "clip.srt").is_file()
    from videoqa.cli.ray_options import RAY_LOG

    assert RAY_LOG.is_file()  # Ray's notices, for whoever wants them (or -v)
