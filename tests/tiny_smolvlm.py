"""Tiny randomly initialised SmolVLM checkpoints, saved like real ones, for the SmolVLM2 tests.

Real SmolVLM2 weights cannot be downloaded here, so this builds ``SmolVLMForConditionalGeneration``
from the real config classes (``SmolVLMConfig`` with a Llama text config), shrunk, and saves it
with a byte-level BPE tokenizer that has SmolVLM2's special tokens (``<|im_start|>``,
``<end_of_utterance>``, ``<image>``, ``<fake_token_around_image>``, ``<global-img>``,
``<row_i_col_j>``) and a chat template of the model card's form, plus a processor config with
``video_sampling``. ``load_engine(folder)`` then loads it as it would a hub checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The chat template of HuggingFaceTB/SmolVLM2-*-Video-Instruct (tokenizer_config/chat_template).
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}"
    "{{ '<video>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>",
           "<fake_token_around_image>", "<global-img>", "<image>", "<video>",
           *[f"<row_{r}_col_{c}>" for r in range(1, 4) for c in range(1, 4)]]  # fmt: skip
CORPUS = [
    "You are provided the following series of frames from a video. Frame from 00:01:",
    "What is the colour of the circle? Yes No yes no. Describe this clip in one sentence.",
    "User: Assistant: a red blue green ball moves on the left right of the screen.",
    " Yes. No. A man is running with a dog in the park, there are two three people.",
]
NEEDS_TORCH = "a tiny SmolVLM checkpoint needs torch"
TINY_FRAMES = 3


def smolvlm_tokenizer() -> Any:
    """A byte-level BPE tokenizer (a few hundred tokens) with SmolVLM2's special tokens, their
    names as the processor reads them, and the model card's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>", unk_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<image>",
                              "fake_image_token": "<fake_token_around_image>",
                              "global_image_token": "<global-img>",
                              "end_of_utterance_token": "<end_of_utterance>"},
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tiny_smolvlm(folder: str | Path, *, frames: int = TINY_FRAMES, image_size: int = 32,
                      patch_size: int = 8, scale_factor: int = 2, seed: int = 0) -> Path:
    """Build and save a tiny random SmolVLM2-shaped checkpoint (weights, tokenizer, processor).

    ``image_size / patch_size`` patches per side, pixel-shuffled by ``scale_factor``: 4 image
    tokens per frame with the defaults. Weights are drawn with a larger spread than the
    default so that answers depend on the frames and the question.
    """
    import torch
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = smolvlm_tokenizer()
    vocab = len(tokenizer)
    eou = tokenizer.convert_tokens_to_ids("<end_of_utterance>")
    config = SmolVLMConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": image_size,
                       "patch_size": patch_size},
        text_config={"model_type": "llama", "vocab_size": vocab, "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "max_position_embeddings": 1024,
                     "rms_norm_eps": 1e-5, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": eou},
        scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.3)
    model.generation_config.eos_token_id = eou
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor = {
        "image_processor_type": "SmolVLMImageProcessor", "processor_class": "SmolVLMProcessor",
        "do_resize": True, "size": {"longest_edge": image_size * 4}, "resample": 1,
        "do_image_splitting": True, "max_image_size": {"longest_edge": image_size},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": True,
        "do_pad": True,
        "video_sampling": {"fps": 1, "max_frames": frames,
                           "video_size": {"longest_edge": image_size}},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return folder

