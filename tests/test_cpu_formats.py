"""The CPU's formats: what ``--dtype auto`` picks (bfloat16 only where the CPU computes it
natively), ``--quantize int8`` (dynamic int8 Linear layers) answering the demo's sample clip
as float32 does, and the one-line refusals of int8 where it does not run."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("torch", reason="the engine needs torch")

import torch
from click.testing import CliRunner
from tiny_git import tiny_image_git, tiny_video_git

from videoqa.cli import cli
from videoqa.distributed import RaySettings, _gpus_per_actor
from videoqa.engine import KEPT_IN_FLOAT, GitEngine
from videoqa.errors import ConfigError
from videoqa.models import (
    CPU_DTYPE_VARIABLE,
    check_quantize,
    check_quantize_device,
    choose_dtype,
    cpu_computes_bfloat16,
)
from videoqa.pipeline import VideoQA
from videoqa.report import Report
from videoqa.watch.config import load_config

__all__ = ["tiny_image_git", "tiny_video_git"]  # fixtures, imported for pytest

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"
QUESTIONS = ["what color is the circle?", "which way does it move?", "how many shapes are there?"]
CPU = torch.device("cpu")


@pytest.fixture
def auto_cpu_dtype(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` as a user gets it: without the suite's float32 setting (conftest.py)."""
    monkeypatch.delenv(CPU_DTYPE_VARIABLE, raising=False)


def cpuinfo_flags() -> set[str] | None:
    """The CPU's flags as the Linux kernel lists them (x86 only), or ``None`` elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() not in ("x86_64", "AMD64") or not cpuinfo.is_file():
        return None
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_auto_is_bfloat16_exactly_where_the_cpu_computes_it_natively(auto_cpu_dtype):
    native = cpu_computes_bfloat16()  # torch.cpu.get_capabilities(), the real query
    flags = cpuinfo_flags()
    if flags is not None:  # the kernel's own word on the same instructions
        assert native == bool({"avx512_bf16", "amx_bf16"} & flags)
    expected = torch.bfloat16 if native else torch.float32
    assert choose_dtype("auto", CPU) == expected
    # The rule on other CPUs' capabilities, and where auto is not bfloat16 anyway.
    assert choose_dtype("auto", CPU, capabilities={"avx2": True, "avx512_f": True}) is (
        torch.float32
    )
    for feature in ("avx512_bf16", "amx_bf16", "bf16"):
        assert choose_dtype("auto", CPU, capabilities={feature: True}) is torch.bfloat16
    assert choose_dtype("auto", CPU, quantize="int8", capabilities={"amx_bf16": True}) is (
        torch.float32
    )
    assert choose_dtype("auto", torch.device("cuda")) is torch.float16


def test_the_cpu_dtype_variable_fixes_auto_and_is_checked(monkeypatch):
    monkeypatch.setenv(CPU_DTYPE_VARIABLE, "float32")
    assert choose_dtype("auto", CPU, capabilities={"avx512_bf16": True}) is torch.float32
    monkeypatch.setenv(CPU_DTYPE_VARIABLE, "bfloat16")
    assert choose_dtype("auto", CPU, capabilities={}) is torch.bfloat16
    assert choose_dtype("float32", CPU) is torch.float32  # an explicit dtype wins
    monkeypatch.setenv(CPU_DTYPE_VARIABLE, "half")
    with pytest.raises(ConfigError, match="VIDEOQA_CPU_DTYPE must be float32 or bfloat16"):
        choose_dtype("auto", CPU)


def test_forced_bfloat16_answers_on_any_cpu_and_auto_loads_what_it_chose(
    tiny_video_git, auto_cpu_dtype
):
    forced = GitEngine.load(str(tiny_video_git), device="cpu", dtype="bfloat16")
    assert forced.dtype == torch.bfloat16 and forced.precision == "bfloat16"
    clips = [[torch.randint(0, 256, (40, 40, 3), dtype=torch.uint8).numpy()] * 3]
    answers = forced.answer(clips, ["what is it ?"], max_new_tokens=3)
    assert len(answers[0]) == 1 and isinstance(answers[0][0].score, float)
    auto = GitEngine.load(str(tiny_video_git), device="cpu")
    assert auto.dtype == choose_dtype("auto", CPU)


def run_demo(**options: str | None) -> Report:
    return VideoQA("demo", caption_model="demo", device="cpu", **options).run(
        SAMPLE, questions=QUESTIONS
    )


def texts(report: Report) -> list[tuple[str | None, list[str]]]:
    return [
        (c.caption.text if c.caption else None, [a.answer for a in c.answers])
        for c in report.clips
    ]


def test_int8_and_bfloat16_answer_the_demo_sample_as_float32_does(auto_cpu_dtype):
    float32 = run_demo(dtype="float32")
    # What the demo's documentation shows for this clip: red, then blue; right, left, right.
    assert texts(float32) == [
        ("a red circle moves right", ["red", "right", "one"]),
        ("a blue circle moves left", ["blue", "left", "one"]),
        ("a blue circle moves right", ["blue", "right", "one"]),
    ]
    int8 = run_demo(quantize="int8")
    bfloat16 = run_demo(dtype="bfloat16")
    assert texts(int8) == texts(float32)
    assert texts(bfloat16) == texts(float32)
    assert float32.model.quantize is None and "quantize" not in float32.to_dict()["model"]
    assert int8.model.quantize == "int8" and int8.caption_model.quantize == "int8"
    assert Report.from_dict(int8.to_dict()).model.quantize == "int8"  # written and read back
    for mine, reference in zip(int8.clips, float32.clips, strict=True):
        for a, b in zip(mine.answers, reference.answers, strict=True):
            assert abs(a.score - b.score) < 0.05  # log-probabilities, near 0 for the demo


def test_int8_quantises_every_linear_layer_but_the_vocabulary_projection(tiny_image_git):
    engine = GitEngine.load(str(tiny_image_git), device="cpu", quantize="int8")
    quantized = torch.ao.nn.quantized.dynamic.Linear
    kinds = {
        name: type(module)
        for name, module in engine.model.named_modules()
        if isinstance(module, (torch.nn.Linear, quantized))
    }
    assert {name for name, kind in kinds.items() if kind is not quantized} == set(KEPT_IN_FLOAT)
    assert len(kinds) > 20  # the vision tower's and the decoder's, not a few of them
    assert engine.quantize == "int8" and engine.precision == "int8"
    assert engine.dtype == torch.float32  # what the rest of the model computes in


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"quantize": "int8", "device": "cuda"}, "quantize: int8 quantisation runs on the CPU"),
        ({"quantize": "int8", "device": "mps"}, "quantize: int8 quantisation runs on the CPU"),
        ({"quantize": "int4"}, "quantize: must be one of int8"),
        ({"quantize": "int8", "dtype": "bfloat16"}, "dtype: int8 quantisation keeps"),
    ],
)
def test_int8_where_it_does_not_run_is_refused_by_the_rule(tiny_image_git, options, message):
    """Refused without a GPU present too: the rule, not the missing device, says no."""
    with pytest.raises(ConfigError, match=message) as caught:
        GitEngine.load(str(tiny_image_git), **options)
    assert "\n" not in str(caught.value)
    if "dtype" not in options:
        with pytest.raises(ConfigError, match=message):
            VideoQA(str(tiny_image_git), **options)  # before anything loads


def test_int8_is_refused_once_auto_has_picked_a_gpu():
    check_quantize_device("int8", CPU)
    check_quantize_device(None, torch.device("cuda"))
    with pytest.raises(ConfigError, match="runs on the CPU only, not cuda"):
        check_quantize_device("int8", torch.device("cuda"))
    assert check_quantize("int8", "auto") == "int8"


def test_the_command_line_refuses_int8_on_a_gpu_in_one_line_before_loading(tmp_path):
    result = CliRunner().invoke(cli, ["caption", str(SAMPLE), "--model", "demo", "--quantize",
                                      "int8", "--device", "cuda", "-o", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "videoqa: error: --quantize: int8 quantisation runs on the CPU only, not cuda: use "
        "device cpu (or no quantize on a GPU, where float16 is the fast format)"
    ]
    assert not list(tmp_path.iterdir())


def test_the_command_line_says_and_records_int8(tmp_path):
    result = CliRunner().invoke(cli, ["caption", str(SAMPLE), "--model", "demo", "--quantize",
                                      "int8", "-o", str(tmp_path), "-f", "json"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "videoqa: loading demo on cpu (int8 Linear layers, float32 elsewhere)..."
    )
    report = json.loads((tmp_path / "circle_turns_blue.videoqa.json").read_text())
    assert report["model"]["quantize"] == "int8"
    assert report["clips"][1]["caption"]["text"] == "a blue circle moves left"


def test_the_daemon_config_takes_quantize_and_refuses_it_on_a_gpu(tmp_path):
    (tmp_path / "in").mkdir()
    config = tmp_path / "videoqa.toml"
    config.write_text('[[folders]]\npath = "in"\nquantize = "int8"\n')
    assert load_config(config).folders[0].quantize == "int8"
    config.write_text('[[folders]]\npath = "in"\nquantize = "int8"\ndevice = "cuda"\n')
    with pytest.raises(ConfigError, match="'quantize': int8 quantisation runs on the CPU"):
        load_config(config)
    config.write_text('[defaults]\nquantize = "int4"\n[[folders]]\npath = "in"\n')
    with pytest.raises(ConfigError, match="'quantize': must be one of int8"):
        load_config(config)


def test_ray_keeps_quantised_actors_off_gpus(tiny_image_git):
    qa = VideoQA(str(tiny_image_git), quantize="int8")
    cluster = SimpleNamespace(cluster_resources=lambda: {"GPU": 4.0, "CPU": 8.0})
    assert _gpus_per_actor(cluster, RaySettings(), qa) == 0.0
    with pytest.raises(ConfigError, match="runs on the CPU only: no gpus_per_actor"):
        _gpus_per_actor(cluster, RaySettings(gpus_per_actor=1), qa)


def test_bfloat16_answers_a_clip_alike_alone_or_batched(tiny_video_git):
    """What auto now picks on such CPUs keeps the collection runner's promise: a clip's answers
    and scores, to the last bit, do not depend on the clips batched with it."""
    import numpy as np

    engine = GitEngine.load(str(tiny_video_git), device="cpu", dtype="bfloat16")
    rng = np.random.default_rng(0)
    frames = engine.frames_per_clip or 1
    clips = [[rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(frames)]
             for _ in range(4)]  # fmt: skip
    questions = ["what is it ?", "how many", "what is the man doing"]
    batched = engine.answer(clips, questions, max_new_tokens=5)
    alone = [engine.answer([clip], questions, max_new_tokens=5)[0] for clip in clips]
    assert batched == alone
    assert len({answer.score for row in batched for answer in row}) > 1  # not degenerate
