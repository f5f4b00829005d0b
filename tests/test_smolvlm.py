"""The SmolVLM2 engine on tiny random SmolVLM checkpoints saved to disk (tests/tiny_smolvlm.py):
loaded through ``load_engine(folder)`` like a real one, it equals transformers' ``generate``
token for token, encodes each clip's frames and prefix once, batches clips without changing a
token, and runs ``ask``, ``caption`` and ``find`` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tiny_smolvlm import NEEDS_TORCH, TINY_FRAMES, save_tiny_smolvlm

from videoqa.engines import load_engine, load_facts
from videoqa.engines.smolvlm_facts import number_in_words, video_text

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_media" / "circle_turns_blue.mp4"
QUESTIONS = ["What is the colour of the circle?", "Is there a dog? Yes or no.",
             "How many people are there?", "ball",
             "What is on the left of the screen?"]  # fmt: skip
NEW_TOKENS = 8


def clips_of(count: int, frames: int, seed: int = 0) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(frames)]
            for _ in range(count)]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_smolvlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 frames of 32 px per clip, 4 image tokens each (pixel shuffle 2 of 4x4 patches)."""
    return save_tiny_smolvlm(tmp_path_factory.mktemp("tiny-smolvlm"))


@pytest.fixture(scope="module")
def two_frame_smolvlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another frame count and image size: 2 frames of 48 px, 9 image tokens each."""
    return save_tiny_smolvlm(tmp_path_factory.mktemp("tiny-smolvlm-2"), frames=2, image_size=48,
                             seed=1)  # fmt: skip


def reference(engine, pixels, text, timestamps=None):
    """transformers' greedy ``generate`` on the whole prompt, one clip and one text at a time."""
    ids = torch.tensor([engine.prompt_ids(text, timestamps or engine.default_timestamps())])
    out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                pixel_values=pixels[None], max_new_tokens=NEW_TOKENS,
                                do_sample=False, output_scores=True,
                                return_dict_in_generate=True)  # fmt: skip
    tokens = out.sequences[0, ids.shape[1]:].tolist()
    scores = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, tokens,
                                                                          strict=True)]
    return tokens, scores


@pytest.mark.parametrize("which", ["tiny_smolvlm", "two_frame_smolvlm"])
def test_answers_and_captions_equal_generate_token_for_token(which, request):
    engine = load_engine(str(request.getfixturevalue(which)), device="cpu")
    clips = clips_of(3, engine.frames_per_clip)
    texts = [*QUESTIONS, engine.caption_prompt]
    pixels = engine._pixels(clips, None)
    rows = engine.generate_ids(pixels, texts, max_new_tokens=NEW_TOKENS)
    for clip, row in enumerate(rows):
        for text, generated in zip(texts, row, strict=True):
            tokens, scores = reference(engine, pixels[clip], text)
            assert [t for t, _ in generated] == tokens[: len(generated)]
            assert len(generated) == len(tokens) or generated[-1][0] in engine.eos_token_ids
            assert [s for _, s in generated] == pytest.approx(scores[: len(generated)], abs=1e-4)
    # The same texts from one shared pass as from answer() and caption() apart (the scores
    # differ in the last float32 bits: another batch shape).
    answers, captions = engine.answer_and_caption(clips, QUESTIONS, max_new_tokens=NEW_TOKENS)
    alone = engine.answer(clips, QUESTIONS, max_new_tokens=NEW_TOKENS)
    assert [[a.text for a in row] for row in answers] == [[a.text for a in row] for row in alone]
    assert [c.text for c in captions] == [c.text for c in engine.caption(clips,
                                                                          max_new_tokens=NEW_TOKENS)]
    assert [c.score for c in captions] == pytest.approx([sum(
        s for _, s in row[-1]) / len(row[-1]) for row in rows], abs=1e-5)


def test_timestamps_reach_the_prompt_and_the_answers_equal_generate(tiny_smolvlm):
    engine = load_engine(str(tiny_smolvlm), device="cpu")
    clips = clips_of(2, TINY_FRAMES, seed=3)
    times = [[0.0, 5.0, 10.0], [61.0, 75.5, 90.0]]
    pixels = engine._pixels(clips, None)
    rows = engine.generate_ids(pixels, QUESTIONS[:2], max_new_tokens=NEW_TOKENS, timestamps=times)
    for clip in range(2):
        text = engine.tokenizer.decode(engine.prompt_ids(QUESTIONS[0], times[clip]))
        assert ("Frame from 01:01:" in text) == (clip == 1)
        for question, generated in zip(QUESTIONS[:2], rows[clip], strict=True):
            tokens, _ = reference(engine, pixels[clip], question, times[clip])
            assert [t for t, _ in generated] == tokens[: len(generated)]


def test_the_pipeline_gives_each_frame_its_time_in_the_clip(tiny_smolvlm, tmp_path):
    from videoqa.pipeline import VideoQA

    engine = load_engine(str(tiny_smolvlm), device="cpu")
    prompts: list[str] = []
    hook = engine.model.model.text_model.get_input_embeddings().register_forward_hook(
        lambda _m, args, _o: prompts.extend(engine.tokenizer.batch_decode(args[0]))
        if args[0].shape[1] > 20 else None)  # fmt: skip
    try:
        results, _ = VideoQA.from_engines(engine).ask(SAMPLE, ["What colour is it?"],
                                                      clip_length=6.0, max_new_tokens=2)
        clips = list(results)
    finally:
        hook.remove()
    assert [(c.start, c.end) for c in clips][:2] == [(0.0, 6.0), (6.0, 12.0)]
    # 3 frames at the centres of thirds of 6 s: 1, 3 and 5 s into every clip.
    stamps = ["Frame from 00:01:", "Frame from 00:03:", "Frame from 00:05:"]
    assert len(prompts) == len(clips) and all(stamp in prompt for prompt in prompts[:2]
                                              for stamp in stamps)  # fmt: skip


def test_the_prompt_has_the_processor_form(tiny_smolvlm):
    engine = load_engine(str(tiny_smolvlm), device="cpu")
    text = engine.tokenizer.decode(engine.prompt_ids("What is it?", [0.0, 1.0, 2.0]))
    frame = "<fake_token_around_image><global-img>" + "<image>" * 4 + "<fake_token_around_image>"
    assert text == ("<|im_start|>User: You are provided the following series of three frames "
                    "from a 0:00:02 [H:MM:SS] video.\n" + "".join(
                        f"\nFrame from 00:0{s}:{frame}" for s in range(3)) +
                    "\n\nWhat is it?<end_of_utterance>\nAssistant:")  # fmt: skip
    # transformers' SmolVLMProcessor renders video turns with its DEFAULT_CHAT_TEMPLATE: the same.
    from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

    engine.chat_template = DEFAULT_CHAT_TEMPLATE
    assert engine.tokenizer.decode(engine.prompt_ids("What is it?", [0.0, 1.0, 2.0])) == text
    assert number_in_words(64) == "sixty-four" and number_in_words(8) == "eight"
    assert video_text([0.0], image_tokens=1).count("<image>") == 1


def test_frames_and_prefix_are_computed_once_per_clip(tiny_smolvlm):
    engine = load_engine(str(tiny_smolvlm), device="cpu")
    images: list[int] = []
    prefix_rows: list[int] = []
    hook = engine.model.model.vision_model.register_forward_hook(
        lambda _m, args, kwargs, _out: images.append(kwargs["pixel_values"].shape[0]),
        with_kwargs=True)  # fmt: skip
    text_hook = engine.model.model.text_model.register_forward_hook(
        lambda _m, _a, kwargs, _o: prefix_rows.append(kwargs["inputs_embeds"].shape[0])
        if kwargs.get("inputs_embeds") is not None else None, with_kwargs=True)  # fmt: skip
    try:
        engine.answer_and_caption(clips_of(3, TINY_FRAMES), QUESTIONS, max_new_tokens=NEW_TOKENS)
        assert images == [3 * TINY_FRAMES]  # one vision pass: every frame of every clip once
        assert prefix_rows == [3]  # one prefix pass, one row per clip (not per question)
        images.clear()
        prefix_rows.clear()
        engine.max_clips_per_batch = 2
        engine.answer(clips_of(3, TINY_FRAMES), QUESTIONS, max_new_tokens=NEW_TOKENS)
        assert images == [2 * TINY_FRAMES, TINY_FRAMES] and prefix_rows == [2, 1]
    finally:
        hook.remove()
        text_hook.remove()


def test_batched_equals_one_clip_at_a_time(two_frame_smolvlm):
    engine = load_engine(str(two_frame_smolvlm), device="cpu")
    clips = clips_of(4, 2, seed=5)
    together = engine.generate_ids(engine._pixels(clips, None), QUESTIONS,
                                   max_new_tokens=NEW_TOKENS)  # fmt: skip
    alone = [engine.generate_ids(engine._pixels([clip], None), [question],
                                 max_new_tokens=NEW_TOKENS)[0][0]
             for clip in clips for question in QUESTIONS]  # fmt: skip
    assert [[t for t, _ in row] for clip in together for row in clip] == \
        [[t for t, _ in row] for row in alone]


def test_yes_probability_is_the_yes_token_against_no(tiny_smolvlm):
    engine = load_engine(str(tiny_smolvlm), device="cpu")
    clips = clips_of(2, TINY_FRAMES)
    yes, no = engine.yes_no_ids()
    assert engine.tokenizer.convert_ids_to_tokens([yes, no]) == ["ĠYes", "ĠNo"]
    pixels = engine._pixels(clips, None)
    found = engine.yes_probability(clips, QUESTIONS[:2])
    for clip in range(2):
        for question, probability in zip(QUESTIONS[:2], found[clip], strict=True):
            ids = torch.tensor([engine.prompt_ids(question, engine.default_timestamps())])
            logits = engine.model(input_ids=ids, pixel_values=pixels[clip][None]).logits[0, -1]
            assert probability == pytest.approx(torch.sigmoid(logits[yes] - logits[no]).item(),
                                                abs=1e-5)  # fmt: skip


def test_facts_are_read_without_loading(tiny_smolvlm):
    facts = load_facts(str(tiny_smolvlm))
    assert (facts.kind, facts.frames_per_clip, facts.image_size) == ("video", TINY_FRAMES, 32)
    assert facts.frame_size(640, 360) == (32, 32)  # the processor's square, no crop
    pixels = facts.preprocessing([np.full((32, 32, 3), 255, np.uint8)])
    assert pixels.shape == (1, 3, 32, 32) and float(pixels.max()) == pytest.approx(1.0)


def test_the_caption_instruction_is_an_option_and_a_checkpoint_setting(tiny_smolvlm, tmp_path):
    engine = load_engine(str(tiny_smolvlm), device="cpu", caption_prompt="What happens here?")
    assert engine.caption_prompt == "What happens here?"
    folder = shutil.copytree(tiny_smolvlm, tmp_path / "own-caption")
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config["videoqa_caption_prompt"] = "Say what you see."
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    engine = load_engine(str(folder), device="cpu")
    assert engine.caption_prompt == "Say what you see."
    assert load_engine(str(tiny_smolvlm), device="cpu").caption_prompt == \
        "Describe this clip in one sentence."


def test_facts_need_no_torch(tiny_smolvlm):
    """Planning processes read a SmolVLM checkpoint's facts where torch cannot be imported."""
    code = ("import sys; sys.modules['torch'] = sys.modules['transformers'] = None\n"
            "from videoqa.engines import load_facts\n"
            f"facts = load_facts({str(tiny_smolvlm)!r})\n"
            "print(facts.frames_per_clip, facts.image_size)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(TINY_FRAMES), "32"]


def invoke(*args: str) -> object:
    from videoqa.cli import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_ask_caption_and_find_run_end_to_end(tiny_smolvlm, tmp_path):
    video = tmp_path / "v.mp4"
    shutil.copyfile(SAMPLE, video)
    invoke("ask", str(video), "--model", str(tiny_smolvlm), "-q", "What colour is the circle?",
           "--max-new-tokens", "4")  # fmt: skip
    invoke("caption", str(video), "--model", str(tiny_smolvlm), "--max-new-tokens", "4")
    record = json.loads(video.with_suffix(".videoqa.json").read_text())
    assert record["model"]["frames_per_clip"] == TINY_FRAMES
    assert all(clip["answers"][0]["answer"] is not None for clip in record["clips"])
    assert all("text" in clip["caption"] for clip in record["clips"])
    # The collection runner (what the CLI runs) gives the frames the pipeline's times: the
    # same captions as VideoQA.caption (the scores to float32 rounding: other batch shapes).
    from videoqa.pipeline import VideoQA

    engine = load_engine(str(tiny_smolvlm), device="cpu")
    results, _ = VideoQA.from_engines(engine).caption(video, max_new_tokens=4)
    expected = [clip.caption for clip in results]
    assert [c["caption"]["text"] for c in record["clips"]] == [e.text for e in expected]
    assert [c["caption"]["score"] for c in record["clips"]] == pytest.approx(
        [e.score for e in expected], abs=1e-5)
    found = invoke("find", str(video), "--model", str(tiny_smolvlm), "--what", "a blue circle",
                   "--json")  # fmt: skip
    line = json.loads(found.stdout.splitlines()[-1])  # type: ignore[attr-defined]
    assert "ranges" in line
