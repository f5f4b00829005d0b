"""The GIT engine: encode each clip once, then answer many questions and caption from that cache.

GIT puts a clip's image tokens before the text, and its attention mask lets image tokens attend
only to image tokens. So the keys and values of the image tokens, in every decoder layer, do
not depend on the question: :meth:`GitEngine.answer` computes them once per clip (one image
encoder pass, one decoder pass over the image tokens) and reuses them for every question, the
caption and every generated token. Questions of different lengths share one forward pass:
prompts are right-padded, each row keeps its own positions, and padding is masked out.

The weights are transformers' ``GitForCausalLM`` (so any GIT checkpoint works); only the
decoding loop is ours, and the tests hold it to token-for-token agreement with ``generate``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from videoqa.errors import ConfigError, ModelError
from videoqa.fit import FITS, check_fit
from videoqa.models import (
    Checkpoint,
    choose_device,
    choose_dtype,
    locate_checkpoint,
    resolve_model,
)

if TYPE_CHECKING:
    from transformers import GitConfig, GitForCausalLM, PreTrainedTokenizerBase
    from transformers.models.git.modeling_git import GitLayer

__all__ = ["Answer", "FramePreprocessing", "GitEngine", "resolve_model"]

logger = logging.getLogger("videoqa.engine")

MIN_GEMM_ROWS = 16
"""Rows from which CPU matrix products round each row alike however many (_batch_invariant)."""

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

FIT_KEY = "videoqa_fit"
"""``preprocessor_config.json`` key naming a checkpoint's default fit (``crop`` without it)."""


@dataclass(frozen=True)
class Answer:
    """Generated text and its score: the mean log-probability of the generated tokens.

    The tokens scored are those of the text plus the ``[SEP]`` that ended it (when it did
    end before the token limit), as ``generate``'s transition scores count them.
    """

    text: str
    score: float


@dataclass(frozen=True)
class Generation:
    """What greedy decoding produced for one prompt: token ids (ending ``[SEP]`` included)."""

    token_ids: tuple[int, ...]
    score: float


# --------------------------------------------------------------------------- frames into GIT


def _height_width(value: int | dict[str, int] | None) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    return int(value["height"]), int(value["width"])


@dataclass(frozen=True)
class FramePreprocessing:
    """The checkpoint's CLIP-style image processor, redone on numpy arrays without PIL.

    The resize is meant to happen while decoding (the sampler asks swscale for
    :meth:`frame_size`), so only the centre crop and the normalisation remain here; a frame of
    another size is resized with OpenCV first. Both forms of ``size`` are read:
    ``{"shortest_edge": S}`` (short side to S, then centre crop) and ``{"height", "width"}``.

    With the ``pad`` fit the processor's resize and crop are replaced: the frame is scaled to fit
    inside the model's input (:meth:`letterbox_size`, again while decoding) and centred on
    black, so nothing of a widescreen or vertical frame is cut off. Black, not the checkpoint's
    mean colour: letterboxed video already looks like that (films on television, 4:3 material
    in 16:9 streams), so a letterbox in the file looks the same as one added here.
    """

    shortest_edge: int | None
    resize_to: tuple[int, int] | None  # (height, width)
    crop: tuple[int, int] | None  # (height, width)
    rescale_factor: float | None
    mean: tuple[float, ...] | None  # per channel (R, G, B)
    std: tuple[float, ...] | None
    model_input: tuple[int, int] | None = None
    """(height, width) the model takes, which ``pad`` fills; ``None``: the crop size."""
    default_fit: str = "crop"
    """The fit used when none is asked for (``videoqa_fit`` in the processor config)."""

    @classmethod
    def from_config(cls, config: dict, *, image_size: int) -> FramePreprocessing:
        """Read a ``preprocessor_config.json`` dict (CLIPImageProcessor keys)."""
        shortest_edge = resize_to = None
        if config.get("do_resize", True):
            size = config.get("size", {"shortest_edge": image_size})
            if isinstance(size, int):  # old configs: an int meant the shortest edge for CLIP
                size = {"shortest_edge": size}
            if "shortest_edge" in size:
                shortest_edge = int(size["shortest_edge"])
            elif "height" in size and "width" in size:
                resize_to = (int(size["height"]), int(size["width"]))
            else:
                raise ModelError(None, f"preprocessor size {size} is not supported")
        crop = None
        if config.get("do_center_crop", True):
            crop = _height_width(config.get("crop_size", image_size))
        rescale = (
            float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else None
        )
        mean = std = None
        if config.get("do_normalize", True):
            mean = tuple(float(v) for v in config.get("image_mean", OPENAI_CLIP_MEAN))
            std = tuple(float(v) for v in config.get("image_std", OPENAI_CLIP_STD))
        default_fit = config.get(FIT_KEY, "crop")
        if default_fit not in FITS:
            raise ModelError(None, f"preprocessor {FIT_KEY} {default_fit!r} is not one of {FITS}")
        model_input = crop or resize_to or (image_size, image_size)
        return cls(shortest_edge, resize_to, crop, rescale, mean, std, model_input, default_fit)

    def check_fit(self, fit: str | None) -> str:
        """``fit``, or the checkpoint's default for ``None``; ``ConfigError`` when unknown."""
        return check_fit(fit) or self.default_fit

    def frame_size(self, width: int, height: int, fit: str | None = None) -> tuple[int, int]:
        """(width, height) a frame of this size is resized to: for ``crop`` the processor's
        resize (before its crop), for ``pad`` the :meth:`letterbox_size`."""
        if self.check_fit(fit) == "pad":
            return self.letterbox_size(width, height)
        if self.shortest_edge is not None:
            short, long = (width, height) if width <= height else (height, width)
            new_long = int(self.shortest_edge * long / short)
            if width <= height:
                return self.shortest_edge, new_long
            return new_long, self.shortest_edge
        if self.resize_to is not None:
            return self.resize_to[1], self.resize_to[0]
        return width, height

    def letterbox_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the whole frame scaled to fit inside the model's input."""
        box_height, box_width = self._box()
        scale = min(box_width / width, box_height / height)
        return (
            max(1, min(box_width, round(width * scale))),
            max(1, min(box_height, round(height * scale))),
        )

    def letterbox(self, rgb: np.ndarray) -> np.ndarray:
        """The whole frame centred on black in the model's input (resized first if need be)."""
        height, width = rgb.shape[:2]
        target = self.letterbox_size(width, height)
        if target != (width, height):
            shrinking = target[0] * target[1] < width * height
            rgb = cv2.resize(
                rgb, target, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
            )
        box_height, box_width = self._box()
        if (box_height, box_width) == rgb.shape[:2]:
            return rgb
        boxed = np.zeros((box_height, box_width, rgb.shape[2]), dtype=rgb.dtype)
        top, left = (box_height - target[1]) // 2, (box_width - target[0]) // 2
        boxed[top : top + target[1], left : left + target[0]] = rgb
        return boxed

    def _box(self) -> tuple[int, int]:
        box = self.model_input or self.crop or self.resize_to
        if box is None:
            raise ValueError("this preprocessing does not know the model's input size")
        return box

    def output_size(self, width: int, height: int, fit: str | None = None) -> tuple[int, int]:
        """(height, width) of the model input made from a frame of this size."""
        if self.check_fit(fit) == "pad":
            return self._box()
        if self.crop is not None:
            return self.crop
        resized_width, resized_height = self.frame_size(width, height, "crop")
        return resized_height, resized_width

    def resize(self, rgb: np.ndarray) -> np.ndarray:
        """The processor's resize (a no-op for a frame the sampler already resized)."""
        height, width = rgb.shape[:2]
        target = self.frame_size(width, height, "crop")
        if target == (width, height):
            return rgb
        shrinking = target[0] * target[1] < width * height
        return cv2.resize(
            rgb, target, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        )

    def center_crop(self, rgb: np.ndarray) -> np.ndarray:
        """Centre crop as transformers does it (zero padding when the frame is smaller)."""
        if self.crop is None:
            return rgb
        crop_height, crop_width = self.crop
        height, width = rgb.shape[:2]
        if height < crop_height or width < crop_width:
            pad_height, pad_width = max(crop_height, height), max(crop_width, width)
            padded = np.zeros((pad_height, pad_width, rgb.shape[2]), dtype=rgb.dtype)
            top, left = math.ceil((pad_height - height) / 2), math.ceil((pad_width - width) / 2)
            padded[top : top + height, left : left + width] = rgb
            rgb, height, width = padded, pad_height, pad_width
        top, left = (height - crop_height) // 2, (width - crop_width) // 2
        return rgb[top : top + crop_height, left : left + crop_width]

    def __call__(self, frames: Sequence[np.ndarray], fit: str | None = None) -> torch.Tensor:
        """Frames (H, W, 3) uint8 RGB into a float32 (N, 3, h, w) batch of model inputs."""
        pad = self.check_fit(fit) == "pad"
        crops = []
        for rgb in frames:
            if not (
                isinstance(rgb, np.ndarray)
                and rgb.ndim == 3
                and rgb.shape[2] == 3
                and rgb.dtype == np.uint8
            ):
                shape = getattr(rgb, "shape", type(rgb).__name__)
                dtype = getattr(rgb, "dtype", "")
                raise ValueError(
                    f"frames must be (height, width, 3) uint8 RGB arrays, got {shape} {dtype}"
                )
            crops.append(self.letterbox(rgb) if pad else self.center_crop(self.resize(rgb)))
        sizes = {crop.shape for crop in crops}
        if len(sizes) > 1:
            raise ValueError(f"frames preprocess to different sizes {sorted(sizes)}")
        pixels = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).to(torch.float32)
        if self.rescale_factor is not None:
            pixels = pixels * self.rescale_factor
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
            pixels = (pixels - mean) / std
        return pixels.contiguous()


# --------------------------------------------------------------------------- the engine


@dataclass
class ImageCache:
    """Per decoder layer, the keys and values of each clip's image tokens: (clips, heads, N, d)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    @property
    def clips(self) -> int:
        return self.keys[0].shape[0]


TextCache = list[tuple[torch.Tensor, torch.Tensor]]
"""Per decoder layer, the keys and values of the text tokens so far: (rows, heads, slots, d)."""


def _split_heads(states: torch.Tensor, heads: int) -> torch.Tensor:
    batch, length, _ = states.shape
    return states.view(batch, length, heads, -1).transpose(1, 2)


def _merge_heads(states: torch.Tensor) -> torch.Tensor:
    batch, heads, length, head_size = states.shape
    return states.transpose(1, 2).reshape(batch, length, heads * head_size)


class GitEngine:
    """A GIT checkpoint (image or video variant) that answers questions about clips of frames."""

    def __init__(
        self,
        model: GitForCausalLM,
        tokenizer: PreTrainedTokenizerBase,
        preprocessing: FramePreprocessing,
        *,
        model_id: str,
        revision: str | None = None,
        max_clips_per_batch: int = 8,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.preprocessing = preprocessing
        self.model_id = model_id
        self.revision = revision
        self.max_clips_per_batch = max_clips_per_batch
        config = model.config
        self.frames_per_clip: int | None = config.num_image_with_embedding
        self.kind: Literal["image", "video"] = "video" if self.frames_per_clip else "image"
        self.device = model.device
        self.dtype = model.dtype
        generation = model.generation_config
        self.bos_token_id = _first(generation.bos_token_id, config.bos_token_id)
        self.prompt_start_id = _first(tokenizer.cls_token_id, self.bos_token_id)
        eos = (
            generation.eos_token_id if generation.eos_token_id is not None else config.eos_token_id
        )
        eos_ids = (
            eos if isinstance(eos, list) else [eos if eos is not None else tokenizer.sep_token_id]
        )
        self.eos_token_ids = torch.tensor(eos_ids, device=self.device)
        self.pad_token_id = _first(tokenizer.pad_token_id, config.pad_token_id, 0)
        self.max_positions = config.max_position_embeddings
        self.image_size = _image_size(config)
        self._layers = list(model.git.encoder.layer)

    @classmethod
    def load(
        cls,
        model: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_clips_per_batch: int = 8,
    ) -> GitEngine:
        """Load a GIT checkpoint by hub id or folder (``"demo"``: the shipped one).

        Weights load from safetensors only and never with remote code; raises ``ModelError``
        when the checkpoint cannot be found or read, ``ConfigError`` for a bad device/dtype.
        """
        torch_device = choose_device(device)
        torch_dtype = choose_dtype(dtype, torch_device)
        checkpoint = locate_checkpoint(model, revision=revision)
        git_model, tokenizer = _load_weights_and_tokenizer(checkpoint, torch_dtype)
        preprocessing = _load_preprocessing(checkpoint, image_size=_image_size(git_model.config))
        # transformers declares .to through functools.wraps, which mypy reads as unbound.
        git_model.to(torch_device)  # type: ignore[arg-type]
        logger.info(
            "loaded %s (%s, %s) on %s in %s",
            checkpoint.model_id,
            "video" if git_model.config.num_image_with_embedding else "image",
            checkpoint.folder,
            torch_device,
            torch_dtype,
        )
        return cls(
            git_model,
            tokenizer,
            preprocessing,
            model_id=checkpoint.model_id,
            revision=checkpoint.revision,
            max_clips_per_batch=max_clips_per_batch,
        )

    @property
    def default_fit(self) -> str:
        """The checkpoint's own fit: ``crop`` unless its processor config says ``videoqa_fit``."""
        return self.preprocessing.default_fit

    def resolve_fit(self, fit: str | None) -> str:
        """``fit`` checked (``ConfigError`` naming the setting), or :attr:`default_fit`."""
        return self.preprocessing.check_fit(fit)

    def frame_size(self, width: int, height: int, fit: str | None = None) -> tuple[int, int]:
        """(width, height) the sampler should decode a ``width`` x ``height`` video to."""
        return self.preprocessing.frame_size(width, height, fit)

    # ------------------------------------------------------------------ public API

    def answer(
        self,
        clips: Sequence[Sequence[np.ndarray]],
        questions: Sequence[str],
        *,
        max_new_tokens: int = 20,
        fit: str | None = None,
    ) -> list[list[Answer]]:
        """Answer every question about every clip: ``result[clip][question]``.

        An image checkpoint takes one frame per clip (``[[f1], [f2]]`` asks per frame); a video
        checkpoint exactly ``frames_per_clip`` frames, in time order (else ``ValueError``).
        ``fit`` (``crop`` or ``pad``; default the checkpoint's own) says how frames go into the
        model's square.
        """
        if not questions:
            return [[] for _ in clips]
        prompts = self.question_prompts(questions, max_new_tokens)
        return self._run(clips, prompts, max_new_tokens, fit)

    def caption(
        self,
        clips: Sequence[Sequence[np.ndarray]],
        *,
        max_new_tokens: int = 30,
        fit: str | None = None,
    ) -> list[Answer]:
        """One caption per clip, generated from ``[CLS]`` alone (``fit`` as in :meth:`answer`)."""
        runs = self._run(clips, self.caption_prompts(), max_new_tokens, fit)
        return [answers[0] for answers in runs]

    def question_prompts(self, questions: Sequence[str], max_new_tokens: int) -> list[list[int]]:
        """The token ids :meth:`answer` starts from, one prompt per question."""
        return [[self.prompt_start_id, *self._question_ids(q, max_new_tokens)] for q in questions]

    def caption_prompts(self) -> list[list[int]]:
        """The one prompt a caption starts from: ``[CLS]`` alone."""
        return [[self.bos_token_id]]

    @torch.inference_mode()
    def run_pixels(
        self, pixels: torch.Tensor, prompts: list[list[int]], *, max_new_tokens: int
    ) -> list[list[Answer]]:
        """:meth:`answer` / :meth:`caption` on model input already made (:meth:`pixel_values`),
        every row in one batch: ``result[row][prompt]``.

        For callers that preprocess elsewhere and batch themselves (the collection runner):
        the same steps as ``answer``, so the same results.
        """
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
        cache = self.encode_pixels(pixels)
        generations = self.generate(cache, prompts, max_new_tokens=max_new_tokens)
        return [[self.decode(g) for g in row] for row in generations]

    @torch.inference_mode()
    def yes_probability(
        self,
        clips: Sequence[Sequence[np.ndarray]],
        questions: Sequence[str],
        *,
        fit: str | None = None,
    ) -> list[list[float]]:
        """P(yes) / (P(yes) + P(no)) of every yes/no question about every clip.

        Read from the first answer token's distribution: the image pass, then one decoder pass
        over the question, and no generation. ``result[clip][question]``; clips and ``fit`` as
        in :meth:`answer`. Raises ``ModelError`` when the vocabulary has no "yes" or "no" word.
        """
        if not questions:
            return [[] for _ in clips]
        self._check_clips(clips)
        fit = self.resolve_fit(fit)
        yes, no = self.yes_no_ids()
        prompts = [[self.prompt_start_id, *self._question_ids(q, 1)] for q in questions]
        results: list[list[float]] = []
        for first in range(0, len(clips), self.max_clips_per_batch):
            cache = self.encode(clips[first : first + self.max_clips_per_batch], fit=fit)
            last = self._prompt_pass(cache, prompts, 0)[0]
            logits = self.model.output(last).float()
            probability = torch.sigmoid(logits[:, yes] - logits[:, no])
            rows = probability.view(cache.clips, len(prompts)).cpu().tolist()
            results.extend(rows)
        return results

    def yes_no_ids(self) -> tuple[int, int]:
        """Token ids of "yes" and "no": each must be one known word of the vocabulary."""
        ids = []
        for word in ("yes", "no"):
            tokens = self.tokenizer(word, add_special_tokens=False).input_ids
            if len(tokens) != 1 or tokens[0] == self.tokenizer.unk_token_id:
                raise ModelError(
                    None,
                    f"{self.model_id} cannot score yes/no questions: {word!r} is not one word "
                    "of its vocabulary",
                )
            ids.append(tokens[0])
        return ids[0], ids[1]

    # ------------------------------------------------------------------ steps

    def _question_ids(self, question: str, max_new_tokens: int) -> list[int]:
        ids = self.tokenizer(question, add_special_tokens=False).input_ids
        room = self.max_positions - max_new_tokens - 1
        if len(ids) > room:
            raise ConfigError(
                None,
                f"question is {len(ids)} tokens, at most {room} fit with max_new_tokens="
                f"{max_new_tokens}: {question[:60]!r}",
                setting="questions",
            )
        return ids

    def _check_clips(self, clips: Sequence[Sequence[np.ndarray]]) -> None:
        expected = self.frames_per_clip or 1
        for index, frames in enumerate(clips):
            if len(frames) != expected:
                what = (
                    f"this video checkpoint takes exactly {expected} frames per clip"
                    if self.frames_per_clip
                    else "an image checkpoint takes one frame per clip: answer([[f1], [f2]], ...)"
                )
                raise ValueError(f"clip {index} has {len(frames)} frames; {what}")

    @torch.inference_mode()
    def _run(
        self,
        clips: Sequence[Sequence[np.ndarray]],
        prompts: list[list[int]],
        max_new_tokens: int,
        fit: str | None,
    ) -> list[list[Answer]]:
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
        self._check_clips(clips)
        fit = self.resolve_fit(fit)
        results: list[list[Answer]] = []
        for first in range(0, len(clips), self.max_clips_per_batch):
            batch = clips[first : first + self.max_clips_per_batch]
            cache = self.encode(batch, fit=fit)
            generations = self.generate(cache, prompts, max_new_tokens=max_new_tokens)
            results.extend([self.decode(g) for g in clip] for clip in generations)
        return results

    def decode(self, generation: Generation) -> Answer:
        """Text of a generation, without special tokens; the question is not part of it."""
        eos = set(self.eos_token_ids.tolist())
        text_ids = [token for token in generation.token_ids if token not in eos]
        text = self.tokenizer.decode(text_ids, skip_special_tokens=True)
        assert isinstance(text, str)  # one sequence of ids decodes to one string
        return Answer(text=text.strip(), score=generation.score)

    def pixel_values(
        self, clips: Sequence[Sequence[np.ndarray]], *, fit: str | None = None
    ) -> torch.Tensor:
        """Model input: (clips, C, H, W) for image models, (clips, frames, C, H, W) for video."""
        self._check_clips(clips)
        pixels = self.preprocessing([frame for frames in clips for frame in frames], fit)
        if pixels.shape[-1] != self.image_size or pixels.shape[-2] != self.image_size:
            raise ValueError(
                f"frames preprocess to {tuple(pixels.shape[-2:])}, the model takes "
                f"{self.image_size}x{self.image_size}"
            )
        if self.frames_per_clip:
            pixels = pixels.view(len(clips), self.frames_per_clip, *pixels.shape[1:])
        return pixels

    @torch.inference_mode()
    def encode(
        self, clips: Sequence[Sequence[np.ndarray]], *, fit: str | None = None
    ) -> ImageCache:
        """Image encoder once per frame, then the decoder over the image tokens: their K/V."""
        return self.encode_pixels(self.pixel_values(clips, fit=fit))

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> ImageCache:
        """:meth:`encode` from :meth:`pixel_values` made already (moved to the model's device;
        a pinned tensor is copied without waiting)."""
        pixels = pixels.to(self.device, self.dtype, non_blocking=pixels.is_pinned())
        git = self.model.git
        frames = pixels.flatten(0, 1) if self.frames_per_clip else pixels
        features = self._vision_features(frames)  # (clips * frames, n, d)
        if self.frames_per_clip:
            features = features.view(len(pixels), self.frames_per_clip, *features.shape[1:])
            temporal = torch.stack([embedding.view(-1) for embedding in git.img_temporal_embedding])
            features = (features + temporal[None, :, None, :]).flatten(1, 2)
        hidden = git.visual_projection(features)
        keys, values = [], []
        for number, layer in enumerate(self._layers):
            attention = layer.attention.self
            heads = attention.num_attention_heads
            keys.append(_split_heads(attention.key(hidden), heads))
            values.append(_split_heads(attention.value(hidden), heads))
            if number == len(self._layers) - 1:
                break  # the last layer's image outputs feed nothing: only its K/V are needed
            query = _split_heads(attention.query(hidden), heads)
            context = F.scaled_dot_product_attention(query, keys[-1], values[-1])
            hidden = self._finish_layer(layer, context, hidden)
        # Contiguous, so the attention products read every clip's keys the same way whatever
        # the batch (strided ones take another kernel for some batch sizes: other roundings).
        return ImageCache([k.contiguous() for k in keys], [v.contiguous() for v in values])

    def _vision_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The CLIP image encoder (transformers' weights) with fused attention (SDPA).

        Same math as ``GitVisionModel``, whose eager attention materialises every
        (heads, 901, 901) score matrix at 480 px; this is the largest cost of a clip.
        """
        vision = self.model.git.image_encoder.vision_model
        hidden = vision.pre_layrnorm(vision.embeddings(pixels))
        for layer in vision.encoder.layers:
            attention = layer.self_attn
            normed = layer.layer_norm1(hidden)
            query = _split_heads(attention.q_proj(normed), attention.num_heads)
            key = _split_heads(attention.k_proj(normed), attention.num_heads)
            value = _split_heads(attention.v_proj(normed), attention.num_heads)
            context = F.scaled_dot_product_attention(query, key, value, scale=attention.scale)
            hidden = hidden + attention.out_proj(_merge_heads(context))
            hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
        return vision.post_layernorm(hidden)

    def _finish_layer(
        self, layer: GitLayer, context: torch.Tensor, hidden: torch.Tensor
    ) -> torch.Tensor:
        attended = layer.attention.output(_merge_heads(context), hidden)
        return layer.output(layer.intermediate(attended), attended)

    @torch.inference_mode()
    def generate(
        self, cache: ImageCache, prompts: list[list[int]], *, max_new_tokens: int
    ) -> list[list[Generation]]:
        """Greedy decoding of every prompt for every cached clip: ``result[clip][prompt]``.

        Rows are clip-major (clip 0's prompts, then clip 1's ...), so attention to the image
        keys runs as one matmul per clip without copying the cache per question.
        """
        clips, per_clip = cache.clips, len(prompts)
        rows = clips * per_clip
        width = max(len(p) for p in prompts)
        max_new_tokens = min(max_new_tokens, self.max_positions - width)
        last, text_cache, valid, lengths = self._prompt_pass(cache, prompts, max_new_tokens)

        step_tokens, step_scores = [], []
        finished = torch.zeros(rows, dtype=torch.bool, device=self.device)
        for step in range(max_new_tokens):
            logits = self._batch_invariant(self.model.output, last)
            log_probs = torch.log_softmax(logits.float(), dim=-1)
            token = log_probs.argmax(dim=-1)
            step_tokens.append(token)
            step_scores.append(log_probs.gather(1, token[:, None])[:, 0])
            finished = finished | torch.isin(token, self.eos_token_ids)
            if step == max_new_tokens - 1 or bool(finished.all()):
                break
            slot = width + step
            valid[:, slot] = True
            mask = valid[:, None, : slot + 1]
            hidden = self._text_forward(
                cache, token[:, None], (lengths + step)[:, None], text_cache, slot, mask, per_clip
            )
            last = hidden[:, 0]
        return self._generations(step_tokens, step_scores, clips, per_clip)

    def _prompt_pass(
        self, cache: ImageCache, prompts: list[list[int]], new_tokens: int
    ) -> tuple[torch.Tensor, TextCache, torch.Tensor, torch.Tensor]:
        """Every prompt for every cached clip through the decoder in one pass (rows clip-major).

        Returns the hidden state of each row's last prompt token (what predicts the first new
        token), the text K/V cache with room for ``new_tokens`` more, which of its slots each
        row may see, and the prompt lengths.
        """
        clips, per_clip = cache.clips, len(prompts)
        rows = clips * per_clip
        lengths = torch.tensor([len(p) for p in prompts], device=self.device).repeat(clips)
        width = max(len(p) for p in prompts)
        prompt_ids = torch.full((per_clip, width), self.pad_token_id, dtype=torch.long)
        for index, prompt in enumerate(prompts):
            prompt_ids[index, : len(prompt)] = torch.tensor(prompt)
        prompt_ids = prompt_ids.to(self.device).repeat(clips, 1)

        total = width + new_tokens
        text_cache = [
            (
                key.new_empty(rows, key.shape[1], total, key.shape[3]),
                key.new_empty(rows, key.shape[1], total, key.shape[3]),
            )
            for key in cache.keys
        ]
        # Which text slots each row may attend to: its own prompt, then each generated token.
        slots = torch.arange(total, device=self.device)
        valid = slots[None, :] < lengths[:, None]
        causal = slots[None, :width] <= slots[:width, None]  # (query, key)
        prompt_mask = causal[None] & valid[:, None, :width]  # (rows, query, key)
        positions = torch.arange(width, device=self.device).expand(rows, width)
        hidden = self._text_forward(
            cache, prompt_ids, positions, text_cache, 0, prompt_mask, per_clip
        )
        last = hidden[torch.arange(rows, device=self.device), lengths - 1]
        return last, text_cache, valid, lengths

    def _text_forward(
        self,
        cache: ImageCache,
        token_ids: torch.Tensor,
        positions: torch.Tensor,
        text_cache: TextCache,
        slot: int,
        mask: torch.Tensor,
        per_clip: int,
    ) -> torch.Tensor:
        """Text tokens through the decoder, attending to the cached image and earlier text.

        ``token_ids``/``positions``: (rows, t); their K/V are written to text slots
        ``slot .. slot + t``; ``mask`` (rows, t, slot + t) says which text slots each may see.
        """
        embeddings = self.model.git.embeddings
        hidden = embeddings.word_embeddings(token_ids) + embeddings.position_embeddings(positions)
        hidden = embeddings.LayerNorm(hidden)
        rows, length = token_ids.shape
        clips = cache.clips
        end = slot + length
        additive = torch.zeros(mask.shape, dtype=torch.float32, device=self.device)
        additive = additive.masked_fill(~mask, torch.finfo(torch.float32).min)[:, None]
        for layer, image_keys, image_values, (text_keys, text_values) in zip(
            self._layers, cache.keys, cache.values, text_cache, strict=True
        ):
            attention = layer.attention.self
            heads, head_size = attention.num_attention_heads, attention.attention_head_size
            query = _split_heads(self._batch_invariant(attention.query, hidden), heads)
            query = query.contiguous()  # laid out alike for one row or many (see encode_pixels)
            keys = self._batch_invariant(attention.key, hidden)
            text_keys[:, :, slot:end] = _split_heads(keys, heads)
            text_values[:, :, slot:end] = _split_heads(
                self._batch_invariant(attention.value, hidden), heads
            )
            # Image part: the questions of a clip share that clip's keys (one matmul per clip).
            by_clip = query.view(clips, per_clip, heads, length, head_size).transpose(1, 2)
            by_clip = by_clip.reshape(clips, heads, per_clip * length, head_size)
            image_scores = by_clip @ image_keys.transpose(-1, -2)
            image_scores = image_scores.view(clips, heads, per_clip, length, -1).transpose(1, 2)
            image_scores = image_scores.reshape(rows, heads, length, -1)
            text_scores = query @ text_keys[:, :, :end].transpose(-1, -2)
            scores = torch.cat([image_scores, text_scores], dim=-1).float() / math.sqrt(head_size)
            image_tokens = image_scores.shape[-1]
            scores[..., image_tokens:] += additive
            probs = torch.softmax(scores, dim=-1).to(query.dtype)
            image_probs = probs[..., :image_tokens].reshape(clips, per_clip, heads, length, -1)
            image_probs = image_probs.transpose(1, 2).reshape(clips, heads, per_clip * length, -1)
            context = (image_probs @ image_values).view(clips, heads, per_clip, length, head_size)
            context = context.transpose(1, 2).reshape(rows, heads, length, head_size)
            context = context + probs[..., image_tokens:] @ text_values[:, :, :end]
            hidden = self._batch_invariant(partial(self._finish_layer, layer), context, hidden)
        return hidden

    def _batch_invariant(
        self, function: Callable[..., torch.Tensor], *inputs: torch.Tensor
    ) -> torch.Tensor:
        """``function(*inputs)`` (row-wise: linear layers) with at least ``MIN_GEMM_ROWS``
        rows in each matrix product, padding with zero rows that are dropped after.

        On the CPU, MKL computes a product of few rows with other kernels than one of many
        (one row as a matrix-vector product; 2 to 15 rows, 16 and more: three ways, each
        rounding differently), while from 16 rows on each row's result no longer depends on
        how many rows there are or where it sits. So a clip's answers are the same to the
        last bit whether it is decoded alone (``VideoQA.run``) or batched with clips of other
        files (the collection runner). On a GPU nothing is padded (launches cost there).
        """
        rows = inputs[0].shape[0]
        per_row = min(math.prod(x.shape[1:-1]) for x in inputs)  # (rows, tokens, features)
        wanted = -(-MIN_GEMM_ROWS // per_row)
        if self.device.type != "cpu" or rows >= wanted:
            return function(*inputs)
        padded = [torch.cat([x, x.new_zeros(wanted - rows, *x.shape[1:])]) for x in inputs]
        return function(*padded)[:rows]

    def _generations(
        self,
        step_tokens: list[torch.Tensor],
        step_scores: list[torch.Tensor],
        clips: int,
        per_clip: int,
    ) -> list[list[Generation]]:
        tokens = torch.stack(step_tokens, dim=1).cpu().tolist()
        scores = torch.stack(step_scores, dim=1).cpu().tolist()
        eos = set(self.eos_token_ids.cpu().tolist())
        generations = []
        for row_tokens, row_scores in zip(tokens, scores, strict=True):
            end = next(
                (i + 1 for i, token in enumerate(row_tokens) if token in eos), len(row_tokens)
            )
            generations.append(Generation(tuple(row_tokens[:end]), sum(row_scores[:end]) / end))
        return [generations[clip * per_clip : (clip + 1) * per_clip] for clip in range(clips)]


def _first(*values: int | list[int] | None) -> int:
    for value in values:
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    raise ModelError(None, "the checkpoint's tokenizer and config name no start token")


def _image_size(config: GitConfig) -> int:
    """The side of the square images GIT's vision tower takes (``vision_config.image_size``)."""
    from transformers import GitVisionConfig

    vision = config.vision_config
    if isinstance(vision, GitVisionConfig) and isinstance(vision.image_size, int):
        return vision.image_size
    raise ModelError(None, "the checkpoint's vision_config has no square image_size")


LEGACY_KEY_NAMES = {r"img_temperal_embedding": "img_temporal_embedding"}
"""Weight names of checkpoints saved before transformers 4.57, which renamed the video
checkpoints' per-frame embeddings and maps nothing from the old name: without this, the
Microsoft video checkpoints (git-base-vatex, -msrvtt-qa) would load them as fresh random
weights and lose the order of their frames."""


def _load_weights_and_tokenizer(
    checkpoint: Checkpoint, dtype: torch.dtype
) -> tuple[GitForCausalLM, PreTrainedTokenizerBase]:
    """``GitForCausalLM`` from safetensors (no remote code) and its tokenizer, from the folder."""
    from transformers import AutoConfig, AutoTokenizer, GitForCausalLM
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    folder = str(checkpoint.folder)
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ModelError(folder, f"unreadable config.json ({error})".splitlines()[0]) from None
    if config.model_type != "git":
        raise ModelError(
            checkpoint.model_id, f"not a GIT checkpoint (model_type {config.model_type!r})"
        )
    try:
        model = GitForCausalLM.from_pretrained(
            folder,
            config=config,
            use_safetensors=True,
            dtype=dtype,
            local_files_only=True,
            key_mapping=LEGACY_KEY_NAMES,
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        raise ModelError(checkpoint.model_id, f"cannot load the checkpoint: {reason}") from None
    return model, tokenizer


def _load_preprocessing(checkpoint: Checkpoint, *, image_size: int) -> FramePreprocessing:
    path = checkpoint.folder / "preprocessor_config.json"
    if not path.is_file():
        logger.warning(
            "%s: no preprocessor_config.json; using CLIP's defaults", checkpoint.model_id
        )
        return FramePreprocessing.from_config({}, image_size=image_size)
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(str(path), f"unreadable ({error})") from None
    return FramePreprocessing.from_config(config, image_size=image_size)
