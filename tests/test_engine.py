"""The GIT engine against transformers itself: same tokens as ``generate``, same pixels as the
processor, one image-encoder pass per clip, and clear errors for what a user can get wrong."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest

pytest.importorskip("torch", reason="the engine needs torch")

import torch
import transformers
from tiny_git import TINY_VIDEO_FRAMES, save_tiny_git, tiny_image_git, tiny_video_git

import videoqa
from videoqa.engine import Answer, FramePreprocessing, GitEngine
from videoqa.errors import ConfigError, ModelError
from videoqa.models import resolve_model

__all__ = ["tiny_image_git", "tiny_video_git"]  # fixtures, imported for pytest

QUESTIONS = [
    "what is the color of the car ?",
    "how many",
    "",
    "are there people in the video playing with a ball on the water ?",
    "what is the man doing",
]
MAX_NEW_TOKENS = 8
TRANSFORMERS_VERSION = tuple(int(part) for part in transformers.__version__.split(".")[:2])


def smooth_rgb(height: int, width: int, phase: float = 0.0) -> np.ndarray:
    """A smooth colour picture: interpolation differences between libraries stay small on it."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 127 + 100 * np.sin(x / width * 3.1 + phase) * np.cos(y / height * 2.3)
    green = 255 * x / width
    blue = 200 * (1 - y / height) + 20 * np.sin((x + y) / 17 + phase)
    return np.clip(np.stack([red, green, blue], axis=-1), 0, 255).astype(np.uint8)


def random_clips(count: int, frames: int, seed: int = 0) -> list[list[np.ndarray]]:
    """Clips of noise frames, each of another size (the engine resizes what the sampler did not)."""
    rng = np.random.default_rng(seed)
    sizes = [(48, 64), (64, 48), (40, 40), (90, 160)]
    return [
        [rng.integers(0, 256, (*sizes[(c + f) % 4], 3), dtype=np.uint8) for f in range(frames)]
        for c in range(count)
    ]


@pytest.fixture(scope="module")
def image_engine(tiny_image_git: Path) -> GitEngine:
    return GitEngine.load(str(tiny_image_git), device="cpu")


@pytest.fixture(scope="module")
def video_engine(tiny_video_git: Path) -> GitEngine:
    return GitEngine.load(str(tiny_video_git), device="cpu")


def reference_generate(
    engine: GitEngine, pixel_values: torch.Tensor, question: str | None
) -> tuple[list[int], float]:
    """transformers' own greedy ``generate`` for one clip and one question (None: caption)."""
    tokenizer = engine.tokenizer
    kwargs = {}
    prompt_length = 1
    if question is not None:
        ids = [tokenizer.cls_token_id, *tokenizer(question, add_special_tokens=False).input_ids]
        kwargs["input_ids"] = torch.tensor([ids])
        prompt_length = len(ids)
    output = engine.model.generate(
        pixel_values=pixel_values,
        max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        num_beams=1,
        output_scores=True,
        return_dict_in_generate=True,
        **kwargs,
    )
    transition = engine.model.compute_transition_scores(
        output.sequences, output.scores, normalize_logits=True
    )
    return output.sequences[0, prompt_length:].tolist(), transition[0].mean().item()


@pytest.mark.parametrize("variant", ["image", "video"])
def test_answers_and_captions_are_token_for_token_generate(variant, request):
    if TRANSFORMERS_VERSION < (5, 18):
        pytest.skip("the reference, transformers' GIT generate, misplaces cached tokens until 5.18")
    engine: GitEngine = request.getfixturevalue(f"{variant}_engine")
    clips = random_clips(3, engine.frames_per_clip or 1)
    pixel_values = engine.pixel_values(clips)
    prompts = [
        [engine.tokenizer.cls_token_id, *engine.tokenizer(q, add_special_tokens=False).input_ids]
        for q in QUESTIONS
    ]
    with torch.inference_mode():
        generations = engine.generate(engine.encode(clips), prompts, max_new_tokens=MAX_NEW_TOKENS)
    captions = engine.caption(clips, max_new_tokens=MAX_NEW_TOKENS)
    answers = engine.answer(clips, QUESTIONS, max_new_tokens=MAX_NEW_TOKENS)

    stopped_early = 0
    for clip in range(len(clips)):
        for index, question in enumerate(QUESTIONS):
            expected_ids, expected_score = reference_generate(
                engine, pixel_values[clip : clip + 1], question
            )
            ours = generations[clip][index]
            assert list(ours.token_ids) == expected_ids, (clip, question)
            assert ours.score == pytest.approx(expected_score, abs=1e-4)
            expected_text = engine.tokenizer.decode(expected_ids, skip_special_tokens=True).strip()
            assert answers[clip][index] == Answer(
                expected_text, pytest.approx(expected_score, abs=1e-4)
            )
            stopped_early += len(expected_ids) < MAX_NEW_TOKENS
        caption_ids, caption_score = reference_generate(engine, pixel_values[clip : clip + 1], None)
        caption_text = engine.tokenizer.decode(caption_ids, skip_special_tokens=True).strip()
        assert captions[clip].text == caption_text
        assert captions[clip].score == pytest.approx(caption_score, abs=1e-4)
    # The comparison covered answers cut short by [SEP] and answers that depend on the clip.
    assert stopped_early > 0
    assert len({tuple(g.token_ids) for clip in generations for g in clip}) > len(QUESTIONS)


def test_small_batches_give_the_same_answers(tiny_video_git):
    one_at_a_time = GitEngine.load(str(tiny_video_git), device="cpu", max_clips_per_batch=1)
    all_at_once = GitEngine.load(str(tiny_video_git), device="cpu", max_clips_per_batch=8)
    clips = random_clips(3, TINY_VIDEO_FRAMES, seed=5)
    expected = all_at_once.answer(clips, QUESTIONS[:3], max_new_tokens=MAX_NEW_TOKENS)
    got = one_at_a_time.answer(clips, QUESTIONS[:3], max_new_tokens=MAX_NEW_TOKENS)
    assert [[a.text for a in clip] for clip in got] == [[a.text for a in clip] for clip in expected]
    for got_clip, expected_clip in zip(got, expected, strict=True):
        for got_answer, expected_answer in zip(got_clip, expected_clip, strict=True):
            assert got_answer.score == pytest.approx(expected_answer.score, abs=1e-5)


@pytest.mark.parametrize("variant", ["image", "video"])
def test_each_frame_goes_through_the_image_encoder_once(variant, request):
    engine: GitEngine = request.getfixturevalue(f"{variant}_engine")
    frames_per_clip = engine.frames_per_clip or 1
    batches: list[int] = []
    patch_embedding = engine.model.git.image_encoder.vision_model.embeddings
    hook = patch_embedding.register_forward_hook(
        lambda module, args, kwargs_or_output: batches.append(args[0].shape[0])
    )
    try:
        engine.answer(random_clips(4, frames_per_clip), QUESTIONS, max_new_tokens=MAX_NEW_TOKENS)
    finally:
        hook.remove()
    assert batches == [4 * frames_per_clip]


def test_a_video_checkpoint_takes_exactly_its_frame_count(video_engine):
    assert video_engine.kind == "video"
    assert video_engine.frames_per_clip == TINY_VIDEO_FRAMES
    for frames in (TINY_VIDEO_FRAMES - 1, TINY_VIDEO_FRAMES + 1):
        with pytest.raises(ValueError, match=f"exactly {TINY_VIDEO_FRAMES} frames"):
            video_engine.answer(random_clips(1, frames), ["what is it"])
        with pytest.raises(ValueError, match=f"exactly {TINY_VIDEO_FRAMES} frames"):
            video_engine.caption(random_clips(1, frames))


def test_an_image_checkpoint_answers_one_frame_per_clip(image_engine):
    assert image_engine.kind == "image"
    assert image_engine.frames_per_clip is None
    with pytest.raises(ValueError, match="one frame per clip"):
        image_engine.answer(random_clips(1, 2), ["what is it"])
    assert image_engine.answer(random_clips(2, 1), []) == [[], []]


def test_bad_generation_requests_are_refused(image_engine):
    with pytest.raises(ValueError, match="max_new_tokens"):
        image_engine.caption(random_clips(1, 1), max_new_tokens=0)
    with pytest.raises(ConfigError, match="question is"):
        image_engine.answer(random_clips(1, 1), ["what " * 80], max_new_tokens=4)
    with pytest.raises(ValueError, match="uint8 RGB"):
        image_engine.caption([[np.zeros((32, 32), dtype=np.uint8)]])
    with pytest.raises(ValueError, match="uint8 RGB"):
        image_engine.caption([[np.zeros((32, 32, 3), dtype=np.float32)]])


# --------------------------------------------------------------------------- preprocessing


def pil_clip_processor() -> type:
    """transformers' CLIP image processor that works with PIL: the reference for our preprocessing.

    transformers 5.4 named it ``CLIPImageProcessorPil``; before, ``CLIPImageProcessor`` was it.
    """
    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    except ImportError:
        from transformers import CLIPImageProcessor as CLIPImageProcessorPil
    return CLIPImageProcessorPil


@pytest.mark.parametrize(
    ("processor_size", "image_size"),
    [("shortest_edge", 32), ("shortest_edge", 48), ("height_width", 32)],
)
def test_preprocessing_matches_the_checkpoint_processor(processor_size, image_size, tmp_path):
    folder = save_tiny_git(tmp_path, processor_size=processor_size, image_size=image_size)
    theirs = pil_clip_processor().from_pretrained(folder)
    engine = GitEngine.load(str(folder), device="cpu")
    ours = engine.preprocessing
    for height, width in [(240, 320), (320, 240), (25, 41), (180, 320), (image_size, image_size)]:
        picture = smooth_rgb(height, width, phase=height / 100)
        # The size the sampler is asked for is the processor's own resize size.
        expected_size = theirs.resize(
            np.moveaxis(picture, -1, 0), size=theirs.size, resample=theirs.resample
        ).shape[1:]
        assert engine.frame_size(width, height) == (expected_size[1], expected_size[0])
        # Given the same resized frame, the crop and normalisation are the processor's.
        resized = ours.resize(picture)
        assert resized.shape[:2] == expected_size
        exact = theirs(images=[resized], do_resize=False, return_tensors="pt").pixel_values
        torch.testing.assert_close(torch.from_numpy(ours([resized])), exact, atol=1e-5, rtol=0)
        # From the full-size frame, OpenCV's resize stays within a grey level or two of PIL's.
        whole = theirs(images=[picture], return_tensors="pt").pixel_values
        difference = (torch.from_numpy(ours([picture])) - whole).abs()
        assert difference.shape == (1, 3, image_size, image_size)
        assert difference.mean() < 0.01
        assert difference.max() < 2.5 / 255 / min(theirs.image_std)


@pytest.mark.parametrize(
    ("frames", "processor_size", "preprocessor"),
    [(None, "shortest_edge", True), (4, "height_width", True), (None, "shortest_edge", False)],
)
def test_model_facts_read_from_the_config_files_are_the_loaded_engines(
    frames, processor_size, preprocessor, tmp_path
):
    """What a Ray driver plans with (config files only, no weights) is what loading gives."""
    from videoqa.engines import load_facts

    folder = save_tiny_git(tmp_path, frames=frames, processor_size=processor_size)
    if not preprocessor:
        (folder / "preprocessor_config.json").unlink()
    assert load_facts(str(folder)) == GitEngine.load(str(folder), device="cpu").facts()
    assert load_facts("demo") == GitEngine.load("demo", device="cpu").facts()


def test_model_facts_refuse_what_loading_refuses(tmp_path):
    from videoqa.engines import load_facts

    with pytest.raises(ModelError, match="no such checkpoint folder"):
        load_facts(str(tmp_path / "missing"))
    folder = save_tiny_git(tmp_path / "bert")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ModelError, match="no engine for model_type 'bert'"):
        load_facts(str(folder))


@pytest.mark.parametrize(("height", "width"), [(2, 3), (3, 6), (7, 2), (9, 9)])
def test_centre_crop_is_transformers_one_even_when_padding(height, width):
    from transformers.image_transforms import center_crop

    preprocessing = FramePreprocessing(
        shortest_edge=None, resize_to=None, crop=(4, 5), rescale_factor=None, mean=None, std=None
    )
    frame = np.random.default_rng(height * width).integers(1, 256, (height, width, 3), np.uint8)
    expected = center_crop(frame, (4, 5), input_data_format="channels_last")
    np.testing.assert_array_equal(preprocessing.center_crop(frame), expected)


# --------------------------------------------------------------------------- loading


def test_demo_resolves_to_the_folder_inside_the_package():
    assert resolve_model("demo") == str(Path(videoqa.__file__).parent / "demo_model")
    assert resolve_model("microsoft/git-base-vqav2") == "microsoft/git-base-vqav2"


def test_load_reports_what_it_loaded(image_engine, tiny_image_git):
    assert image_engine.model_id == str(tiny_image_git)
    assert image_engine.revision is None
    assert image_engine.device.type == "cpu"
    assert image_engine.dtype == torch.float32  # dtype auto on the CPU


def test_bfloat16_weights_still_answer(tiny_image_git):
    engine = GitEngine.load(str(tiny_image_git), device="cpu", dtype="bfloat16")
    assert engine.dtype == torch.bfloat16
    answers = engine.answer(random_clips(2, 1), QUESTIONS[:2], max_new_tokens=4)
    assert [len(clip) for clip in answers] == [2, 2]
    assert all(np.isfinite(a.score) and a.score <= 0 for clip in answers for a in clip)


def test_a_missing_folder_is_a_model_error(tmp_path, tiny_image_git):
    with pytest.raises(ModelError, match="no such checkpoint folder"):
        GitEngine.load(str(tmp_path / "nowhere" / "model"), device="cpu")
    with pytest.raises(ModelError, match="not a folder"):
        GitEngine.load(str(tiny_image_git / "model.safetensors"), device="cpu")


def test_pickled_weights_are_not_loaded(tiny_image_git, tmp_path):
    folder = tmp_path / "bin-only"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((tiny_image_git / name).read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="no safetensors weights"):
        GitEngine.load(str(folder), device="cpu")


def test_a_video_checkpoint_saved_before_transformers_4_57_keeps_its_frame_embeddings(
    tiny_video_git, tmp_path
):
    """Microsoft's video checkpoints name the per-frame embeddings ``img_temperal_embedding``
    (transformers' old spelling); they must load, not be drawn at random."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "old-names"
    folder.mkdir()
    for file in tiny_video_git.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    weights = load_file(tiny_video_git / "model.safetensors")
    old = {k.replace("temporal_embedding", "temperal_embedding"): v for k, v in weights.items()}
    assert old.keys() != weights.keys()
    save_file(old, folder / "model.safetensors", metadata={"format": "pt"})
    engine = GitEngine.load(str(folder), device="cpu")
    loaded = engine.model.git.img_temporal_embedding
    for index, parameter in enumerate(loaded):
        expected = weights[f"git.img_temporal_embedding.{index}"]
        assert torch.equal(parameter.detach(), expected)


def test_a_checkpoint_of_another_model_is_refused(tiny_image_git, tmp_path):
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "model.safetensors").write_bytes((tiny_image_git / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="not a GIT checkpoint"):
        GitEngine.load(str(folder), device="cpu")


def test_an_uncached_hub_model_offline_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError) as raised:
        GitEngine.load("microsoft/git-base-vqav2", device="cpu")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("microsoft/git-base-vqav2: not in the local cache")
    assert "hf download microsoft/git-base-vqav2" in message
    assert "or give the model as a local folder" in message and " --model" not in message


def test_bad_device_and_dtype_are_config_errors(tiny_image_git):
    with pytest.raises(ConfigError, match="^device: must be one of"):
        GitEngine.load(str(tiny_image_git), device="tpu")
    with pytest.raises(ConfigError, match="^dtype: must be one of"):
        GitEngine.load(str(tiny_image_git), device="cpu", dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="^device: cuda asked for, but torch sees no"):
            GitEngine.load(str(tiny_image_git), device="cuda")


def test_a_cached_hub_model_loads_offline_and_records_its_commit(
    tiny_video_git, monkeypatch, tmp_path
):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someone--tiny-git-video"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in tiny_video_git.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    engine = GitEngine.load("someone/tiny-git-video", device="cpu")
    assert (engine.model_id, engine.revision, engine.kind) == (
        "someone/tiny-git-video",
        commit,
        "video",
    )
    assert len(engine.caption(random_clips(1, TINY_VIDEO_FRAMES), max_new_tokens=2)) == 1


@pytest.mark.parametrize("image_size", [224, 480])
@pytest.mark.parametrize("name", ["nasa_13013.mp4", "flipping_a_pancake.mkv", "video_90.mov"])
def test_real_footage_decoded_at_frame_size_matches_the_processor(
    shared_media, name, image_size, tmp_path
):
    """The production path: swscale resizes while decoding, we crop and normalise; against
    the processor resizing the full-resolution frame with PIL."""
    from videoqa.media import FrameSampler

    folder = save_tiny_git(tmp_path, image_size=image_size, patch_size=32)
    engine = GitEngine.load(str(folder), device="cpu")
    processor = pil_clip_processor().from_pretrained(folder)
    path = shared_media / name
    times = [0.05, 0.5]
    with FrameSampler(path) as full_size:
        width, height = full_size.info.width, full_size.info.height
        full_frames = [frame.rgb for frame in full_size.sample(times)]
    with FrameSampler(path, size=engine.frame_size(width, height)) as resized:
        resized_frames = [frame.rgb for frame in resized.sample(times)]
    expected = processor(images=full_frames, return_tensors="pt").pixel_values
    difference = (torch.from_numpy(engine.preprocessing(resized_frames)) - expected).abs()
    # swscale scales the subsampled chroma planes itself and PIL scales RGB: a grey level or so
    # on average, more only at small saturated details.
    one_grey_level = 1 / 255 / min(processor.image_std)
    assert difference.mean() < 2 * one_grey_level
    assert difference.quantile(0.99) < 12 * one_grey_level
