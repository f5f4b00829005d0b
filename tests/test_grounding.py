"""``videoqa find``: the engine's yes/no score against transformers, how moments become time
ranges, and the command's options and errors (on the demo checkpoint and the sample video:
tests/test_end_to_end.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from videoqa.errors import ConfigError
from videoqa.grounding import Moment, TimeRange, plan_moments, presence_question, ranges_over

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_media" / "circle_turns_blue.mp4"  # red 0-5 s, then blue to 15 s


# --------------------------------------------------------------------------- moments to ranges


def moments(*scores: float, step: float = 1.0) -> list[Moment]:
    return [Moment((k + 0.5) * step, score) for k, score in enumerate(scores)]


def test_a_run_over_the_threshold_spans_halfway_to_its_neighbours():
    found = ranges_over(moments(0.1, 0.2, 0.9, 0.7, 0.3, 0.1), 0.5, 6.0)
    assert found == (TimeRange(2.0, 4.0, pytest.approx(0.8), 0.9),)


def test_the_first_range_starts_at_zero_and_the_last_ends_at_the_end():
    found = ranges_over(moments(0.8, 0.2, 0.6, 0.9), 0.5, 4.3)
    assert found == (TimeRange(0.0, 1.0, 0.8, 0.8), TimeRange(2.0, 4.3, pytest.approx(0.75), 0.9))


def test_ranges_need_scores_over_the_threshold():
    assert ranges_over(moments(0.5, 0.5, 0.2), 0.5, 3.0) == ()
    assert ranges_over(moments(0.5, 0.51), 0.5, 2.0) == (TimeRange(1.0, 2.0, 0.51, 0.51),)
    assert ranges_over([], 0.5, 3.0) == ()
    assert ranges_over(moments(0.9), 0.5, 0.4) == (TimeRange(0.0, 0.4, 0.9, 0.9),)


def test_presence_questions_are_tidied():
    assert presence_question("a blue circle") == "is there a blue circle?"
    assert presence_question("  a dog   on the beach? ") == "is there a dog on the beach?"
    with pytest.raises(ConfigError):
        presence_question(" ? ")


def test_moments_are_frames_every_step_or_the_clips():
    frames = plan_moments("image", 3.4, frames_per_clip=1, step=1.0)
    assert frames == [(0.5, (0.5,)), (1.5, (1.5,)), (2.5, (2.5,))]
    assert plan_moments("image", 0.2, frames_per_clip=1, step=1.0) == [(0.1, (0.1,))]
    clips = plan_moments("video", 15.0, frames_per_clip=2, clip_length=5.0)
    assert clips == [(2.5, (1.25, 3.75)), (7.5, (6.25, 8.75)), (12.5, (11.25, 13.75))]
    sliding = plan_moments("video", 10.0, frames_per_clip=2, clip_length=4.0, stride=2.0)
    assert [time for time, _ in sliding] == [2.0, 4.0, 6.0, 8.0]  # the last one ends at 10 s
    with pytest.raises(ConfigError):
        plan_moments("image", 3.0, frames_per_clip=1, step=0.0)


# --------------------------------------------------------------------------- the engine's score

torch = pytest.importorskip("torch", reason="the engine needs torch")

from tiny_git import TINY_VIDEO_FRAMES, save_tiny_git  # noqa: E402

from videoqa.cli import cli  # noqa: E402
from videoqa.engine import GitEngine  # noqa: E402
from videoqa.errors import ModelError  # noqa: E402

QUESTIONS = ["is there a cat ?", "are there people in the video playing with a ball ?", "red"]


def yes_no_checkpoint(folder: Path, frames: int | None) -> Path:
    """A tiny GIT whose vocabulary has "yes" and "no" (two words renamed, ids unchanged)."""
    save_tiny_git(folder, frames=frames, seed=3)
    tokenizer_file = folder / "tokenizer.json"
    data = json.loads(tokenizer_file.read_text())
    vocab = data["model"]["vocab"]
    vocab["yes"], vocab["no"] = vocab.pop("woman"), vocab.pop("tree")
    tokenizer_file.write_text(json.dumps(data))
    return folder


def reference_yes_probability(engine: GitEngine, pixels: torch.Tensor, question: str) -> float:
    """From transformers' own forward pass: the next-token distribution after the question."""
    tokenizer = engine.tokenizer
    ids = [tokenizer.cls_token_id, *tokenizer(question, add_special_tokens=False).input_ids]
    with torch.inference_mode():
        logits = engine.model(input_ids=torch.tensor([ids]), pixel_values=pixels).logits[0, -1]
    probs = torch.softmax(logits.float(), dim=-1)
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    return float(probs[yes] / (probs[yes] + probs[no]))


@pytest.mark.parametrize("frames", [None, TINY_VIDEO_FRAMES], ids=["image", "video"])
def test_yes_probability_is_transformers_first_token_distribution(frames, tmp_path):
    engine = GitEngine.load(str(yes_no_checkpoint(tmp_path / "git", frames)), device="cpu")
    engine.max_clips_per_batch = 2  # five clips: three batches
    rng = np.random.default_rng(5)
    clips = [
        [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8) for _ in range(frames or 1)]
        for _ in range(5)
    ]
    scores = engine.yes_probability(clips, QUESTIONS)
    pixels = engine.pixel_values(clips)
    for clip in range(len(clips)):
        for index, question in enumerate(QUESTIONS):
            expected = reference_yes_probability(engine, pixels[clip : clip + 1], question)
            assert scores[clip][index] == pytest.approx(expected, abs=1e-5)
    flat = [score for row in scores for score in row]
    assert all(0.0 < score < 1.0 for score in flat)
    assert max(flat) - min(flat) > 0.01  # the score depends on the clip and the question


def test_a_checkpoint_without_yes_and_no_cannot_score(tmp_path):
    engine = GitEngine.load(str(save_tiny_git(tmp_path / "git")), device="cpu")
    with pytest.raises(ModelError, match="'yes' is not one word"):
        engine.yes_probability([[np.zeros((32, 32, 3), np.uint8)]], ["is there a cat ?"])


# --------------------------------------------------------------------------- the command
# (on the demo checkpoint and the sample video: tests/test_end_to_end.py)


def run_find(*args: str):
    return CliRunner().invoke(cli, ["find", *args], catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--what", "a dog", "--question", "is it?"], "--what: give --what or --question"),
        ([], "--what: give --what or --question"),
        (["--what", " ? "], "--what: is empty"),
        (["--question", "  "], "--question: is empty"),
        (["--what", "a dog", "--fit", "stretch"], "--fit"),
    ],
)
def test_find_refuses_bad_options_before_loading(args, message):
    result = run_find(str(SAMPLE), "--model", "demo", *args)
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert "loading" not in result.stderr


def test_find_with_a_checkpoint_that_has_no_yes_says_it_cannot_score(tmp_path):
    folder = save_tiny_git(tmp_path / "git")
    result = run_find(str(SAMPLE), "--model", str(folder), "--what", "a cat")
    assert result.exit_code == 1
    assert "cannot score yes/no questions: 'yes' is not one word" in result.stderr
    assert result.stdout == ""


def test_find_scores_every_step_with_an_image_checkpoint(tmp_path):
    folder = yes_no_checkpoint(tmp_path / "git", None)
    result = run_find(str(SAMPLE), "--model", str(folder), "--what", "a cat", "--step", "2.5",
                      "--threshold", "0", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert [time for time, _ in found["scores"]] == [1.25, 3.75, 6.25, 8.75, 11.25, 13.75]
    # Every score is over 0: one range over the whole video, its mean and peak from the scores.
    scores = [p for _, p in found["scores"]]
    (whole,) = found["ranges"]
    assert (whole["start"], whole["end"]) == (0.0, 15.0)
    assert whole["peak"] == max(scores)
    assert whole["score"] == pytest.approx(sum(scores) / len(scores), abs=1e-4)
