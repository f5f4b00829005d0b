"""Issue 20, findings 3 and 4: a broken file fails alike everywhere; a WebM without a Duration.

Real files only: an AV1 Matroska file encoded here and cut short at chosen bytes, and the
sample WebM with its Duration element overwritten by an EBML Void element.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from tiny_git import tiny_video_git  # noqa: F401  (pytest fixture)

from videoqa.cli import cli
from videoqa.media import probe

SAMPLE_WEBM = Path(__file__).resolve().parents[1] / "sample_media" / "triangle_joins.webm"
AV1_SECONDS, AV1_FPS = 5, 10
AV1_ENCODERS = [name for name in ("libsvtav1", "libaom-av1") if name in av.codecs_available]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------- a cut AV1 MKV


@pytest.fixture(scope="module")
def av1_mkv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5 s AV1 video in Matroska (what torchcodec's av1_video.mkv is), a keyframe a second."""
    if not AV1_ENCODERS:
        pytest.skip("this FFmpeg has no AV1 encoder (libsvtav1 or libaom-av1)")
    path = tmp_path_factory.mktemp("av1") / "av1_video.mkv"
    width, height = 128, 96
    with av.open(str(path), "w") as container:
        stream = container.add_stream(AV1_ENCODERS[0], rate=AV1_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = AV1_FPS
        if AV1_ENCODERS[0] == "libsvtav1":
            stream.options = {"preset": "12"}
        for index in range(AV1_SECONDS * AV1_FPS):
            rgb = np.zeros((height, width, 3), np.uint8)
            rgb[..., 0] = index * 7 % 256
            rgb[:, index % width :, 2] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _packet_positions(path: Path) -> dict[float, int]:
    """Byte offset of each video packet, by its presentation time (seconds)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            float(packet.pts * stream.time_base): packet.pos
            for packet in container.demux(stream)
            if packet.pts is not None and packet.pos is not None and packet.pos >= 0
        }


def cut(source: Path, target: Path, at_second: float) -> Path:
    """``source`` cut at the first byte of the packet shown at ``at_second``."""
    positions = _packet_positions(source)
    target.write_bytes(source.read_bytes()[: positions[at_second]])
    return target


@pytest.fixture
def cut_files(av1_mkv: Path, tmp_path: Path) -> dict[str, Path]:
    """``nothing``: only the first 0.3 s decode (no clip of 5 s); ``partial``: 2.5 s of 5;
    ``whole``: the file itself."""
    folder = tmp_path / "videos"
    folder.mkdir()
    whole = folder / "whole.mkv"
    whole.write_bytes(av1_mkv.read_bytes())
    return {
        "nothing": cut(av1_mkv, folder / "nothing.mkv", 0.3),
        "partial": cut(av1_mkv, folder / "partial.mkv", 2.5),
        "whole": whole,
    }


def test_a_file_cut_before_its_first_clip_fails_from_the_cli_with_the_daemons_message(
    cut_files, tmp_path, caplog, tiny_video_git  # noqa: F811
):
    broken = cut_files["nothing"]
    assert probe(broken).duration == pytest.approx(5.0)  # the header still promises 5 s
    out = tmp_path / "out"
    code, _out, err = invoke("caption", str(broken), "--model", str(tiny_video_git),
                             "-o", str(out))  # fmt: skip
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("videoqa: error:")]
    assert errors == [f"videoqa: error: {broken}: truncated at 0.3 s of 5.0 s"]
    assert "Traceback" not in err and "decodes only to" not in caplog.text  # the error alone
    assert not list(out.iterdir())  # no empty .srt, .vtt or 0-clip JSON


def test_a_folder_with_a_broken_file_fails_that_one_and_runs_the_others(
    cut_files, tmp_path, caplog, tiny_video_git  # noqa: F811
):
    folder = cut_files["whole"].parent
    out = tmp_path / "out"
    code, _out, err = invoke("caption", str(folder), "--model", str(tiny_video_git),
                             "--clip-length", "2.5", "-o", str(out))  # fmt: skip
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("videoqa: error:")]
    assert errors == [f"videoqa: error: {cut_files['nothing']}: truncated at 0.3 s of 5.0 s"]
    assert err.splitlines()[-1].startswith("videoqa: 3 files: 2 done, 1 failed;")
    assert sorted(path.name for path in out.iterdir()) == [
        "partial.srt", "partial.videoqa.json", "partial.vtt",
        "whole.srt", "whole.videoqa.json", "whole.vtt",
    ]  # fmt: skip
    # A partial decode keeps its decodable clips and says where the video ends.
    partial = json.loads((out / "partial.videoqa.json").read_text())
    assert partial["video"]["decodable_end"] == pytest.approx(2.5, abs=0.15)
    assert [clip["start"] for clip in partial["clips"]] == [0.0]
    assert "partial.mkv: truncated: video decodes only to 2.5 s of 5.0 s" in caplog.text
    whole = json.loads((out / "whole.videoqa.json").read_text())
    assert whole["video"]["decodable_end"] is None and len(whole["clips"]) == 2


def test_the_library_and_the_daemon_fail_it_with_the_same_error(cut_files, tiny_video_git):  # noqa: F811
    """``VideoQA.run`` (the daemon's ``process_file``) and the runner give the CLI's error."""
    from videoqa.collection import run_collection
    from videoqa.errors import TruncatedError
    from videoqa.pipeline import VideoQA
    from videoqa.watch.config import FolderSettings
    from videoqa.watch.worker import process_file

    qa = VideoQA(str(tiny_video_git), caption_model=str(tiny_video_git), device="cpu")
    broken = cut_files["nothing"]
    with pytest.raises(TruncatedError) as raised:
        qa.run(broken)
    assert str(raised.value) == f"{broken}: truncated at 0.3 s of 5.0 s"
    outcomes = list(run_collection(qa, [broken, cut_files["whole"]], workers=0))
    assert [outcome.error for outcome in outcomes] == [str(raised.value), None]
    settings = FolderSettings(folder=broken.parent, model=str(tiny_video_git),
                              caption_model=str(tiny_video_git), device="cpu")  # fmt: skip
    for partial_too in (broken, cut_files["partial"]):  # the daemon fails a partial one too
        with pytest.raises(TruncatedError, match=r"truncated at \d\.\d s of 5\.0 s"):
            process_file(partial_too, settings)


# --------------------------------------------------------------------------- no Duration


def without_duration(source: Path, target: Path) -> Path:
    """``source`` with its Segment Info's Duration element (ID 0x4489) replaced by an EBML
    Void element (ID 0xEC) of the same size: what a browser's MediaRecorder writes."""
    data = source.read_bytes()
    at = data.index(b"\x44\x89")
    size = data[at + 2]
    assert size & 0x80, "a one-byte size"
    length = 3 + (size & 0x7F)
    void = bytes([0xEC, 0x80 | (length - 2)]) + bytes(length - 2)
    target.write_bytes(data[:at] + void + data[at + length :])
    return target


@pytest.fixture
def no_duration(tmp_path: Path) -> Path:
    path = without_duration(SAMPLE_WEBM, tmp_path / "recorded.webm")
    with av.open(str(path)) as container:  # the file really declares no length any more
        assert container.duration is None and container.streams.video[0].duration is None
    return path


def test_info_finds_the_end_of_a_webm_without_duration_from_its_packets(no_duration):
    info = probe(no_duration)
    assert (info.duration, info.duration_source) == (pytest.approx(10.0), "packets")
    assert info.container_duration is None
    code, out, err = invoke("info", str(no_duration))
    assert code == 0, err
    assert "duration    10.000 s (00:00:10.000), from video stream 0's packets" in out
    code, out, err = invoke("info", "--json", str(no_duration))
    data = json.loads(out)
    assert (data["duration"], data["duration_source"]) == (pytest.approx(10.0), "packets")
    original = probe(SAMPLE_WEBM)
    assert original.duration_source == "container"  # one that declares it still says so


def test_frames_every_second_of_a_webm_without_duration(no_duration, tmp_path):
    out = tmp_path / "frames"
    code, _out, err = invoke("frames", str(no_duration), "--every", "1", "--out", str(out))
    assert code == 0, err
    assert len(list(out.glob("*.png"))) == 10


def test_caption_a_webm_without_duration_like_the_original(no_duration, tmp_path, caplog):
    pytest.importorskip("torch", reason="the demo model captions with torch")
    caplog.set_level(logging.WARNING)
    out = tmp_path / "out"
    code, _out, err = invoke("caption", str(no_duration), str(SAMPLE_WEBM), "--model", "demo",
                             "-o", str(out), "--format", "srt")  # fmt: skip
    assert code == 0, err
    recorded = (out / "recorded.srt").read_text()
    assert recorded == (out / "triangle_joins.srt").read_text()
    assert "00:00:05,000 --> 00:00:10,000" in recorded
