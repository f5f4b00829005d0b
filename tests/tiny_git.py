"""Tiny randomly initialised GIT checkpoints, saved like real ones, for tests that need a model.

A real checkpoint cannot be downloaded here, so tests build one from ``GitConfig`` with a tiny
vocabulary and save it with its tokenizer and image-processor config beside the weights:
``GitEngine.load(folder)`` then works offline exactly as it does for a hub checkpoint. Building
and saving takes well under a second.

Use the fixtures (session-scoped) in a test module::

    from tiny_git import tiny_image_git, tiny_video_git  # noqa: F401  (pytest fixtures)

    def test_something(tiny_video_git):   # a Path to the checkpoint folder
        engine = GitEngine.load(str(tiny_video_git))

or call :func:`save_tiny_git` for a variant of your own (another image size, a processor with
``{"height", "width"}`` instead of shortest edge + crop, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

#: Words of the tiny vocabulary, after the five BERT special tokens (ids 0..4).
TINY_WORDS = tuple(
    " ".join(
        (
            "what is the color of a an cat dog man woman car ball red blue green yellow black",
            "white there how many one two three four sky water tree doing running playing",
            "sitting in on are people animal video this ? . ,",
        )
    ).split(" ")
)
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

#: Why a test that asks for a tiny checkpoint skips where torch is not installed.
NEEDS_TORCH = "a tiny GIT checkpoint needs torch"

#: Frames per clip of the tiny video variant (the Microsoft video checkpoints use 6).
TINY_VIDEO_FRAMES = 3


def save_tiny_git(
    folder: str | Path,
    *,
    frames: int | None = None,
    image_size: int = 32,
    patch_size: int = 8,
    processor_size: str = "shortest_edge",
    seed: int = 0,
    sep_bias: float = 4.0,
) -> Path:
    """Build a tiny random GIT checkpoint and save it (weights, tokenizer, processor) to ``folder``.

    ``frames`` set makes the video variant (``num_image_with_embedding``). ``processor_size`` is
    ``"shortest_edge"`` (resize the short side, then centre crop, like git-base) or
    ``"height_width"`` (resize straight to the square, no crop). Weights are drawn with a larger
    spread than GitConfig's default so that answers depend on the image and the question, and
    ``sep_bias`` makes ``[SEP]`` likely enough that some answers stop before the token limit.
    """
    import torch
    from transformers import BertTokenizer, GitConfig, GitForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *TINY_WORDS))}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    config = GitConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
        },
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.5,
        pad_token_id=vocab["[PAD]"],
        bos_token_id=vocab["[CLS]"],
        eos_token_id=vocab["[SEP]"],
        num_image_with_embedding=frames,
    )
    torch.manual_seed(seed)
    model = GitForCausalLM(config).eval()
    with torch.no_grad():
        # Random (not zero) temporal embeddings, so frame order matters in the video variant.
        if frames:
            for embedding in model.git.img_temporal_embedding:
                embedding.normal_(0.0, 0.5)
        model.output.bias.zero_()
        model.output.bias[vocab["[SEP]"]] = sep_bias
        model.output.bias[vocab["[PAD]"]] = -10.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if processor_size == "shortest_edge":
        size: dict[str, int] = {"shortest_edge": image_size}
        do_center_crop = True
    elif processor_size == "height_width":
        size = {"height": image_size, "width": image_size}
        do_center_crop = False
    else:
        raise ValueError(f"processor_size: shortest_edge or height_width, not {processor_size}")
    preprocessor = {
        "image_processor_type": "CLIPImageProcessor",
        "processor_class": "GitProcessor",
        "do_resize": True,
        "size": size,
        "resample": 3,
        "do_center_crop": do_center_crop,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": True,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2))
    return folder


@pytest.fixture(scope="session")
def tiny_image_git(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny image GIT checkpoint (one 32x32 frame per answer), like git-base-vqav2 in shape."""
    pytest.importorskip("torch", reason=NEEDS_TORCH)
    return save_tiny_git(tmp_path_factory.mktemp("tiny-git-image"))


@pytest.fixture(scope="session")
def tiny_video_git(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny video GIT checkpoint: ``TINY_VIDEO_FRAMES`` frames per clip, like git-base-vatex."""
    pytest.importorskip("torch", reason=NEEDS_TORCH)
    return save_tiny_git(tmp_path_factory.mktemp("tiny-git-video"), frames=TINY_VIDEO_FRAMES)
