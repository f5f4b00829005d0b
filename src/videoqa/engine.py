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

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import torch.nn.functional as F

from videoqa.engines import Answer
from videoqa.errors import ConfigError, ModelError
from videoqa.models import (
    Checkpoint,
    choose_device,
    choose_dtype,
    locate_checkpoint,
    resolve_model,
)
from videoqa.preprocess import FramePreprocessing, FrameQueries, ModelFacts, load_preprocessing

if TYPE_CHECKING:
    from transformers import GitConfig, GitForCausalLM, PreTrainedTokenizerBase
    from transformers.models.git.modeling_git import GitLayer

__all__ = ["Answer", "FramePreprocessing", "GitEngine", "resolve_model"]

logger = logging.getLogger("videoqa.engine")

MIN_GEMM_ROWS = 16
"""Rows from which CPU matrix products round each row alike however many (_batch_invariant)."""


@dataclass(frozen=True)
class Generation:
    """What greedy decoding produced for one prompt: token ids (ending ``[SEP]`` included)."""

    token_ids: tuple[int, ...]
    score: float


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


class GitEngine(FrameQueries):
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
        preprocessing = load_preprocessing(checkpoint, image_size=_image_size(git_model.config))
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

    def facts(self) -> ModelFacts:
        """What planning needs of this checkpoint, without the weights (for other processes)."""
        return ModelFacts(self.model_id, self.revision, self.kind, self.frames_per_clip,
                          self.image_size, self.preprocessing)  # fmt: skip

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

    def answer_pixels(
        self, pixels: torch.Tensor, questions: Sequence[str], *, max_new_tokens: int
    ) -> list[list[Answer]]:
        """:meth:`answer` on model input already made (:meth:`pixel_values`), every row in one
        batch (the collection runner preprocesses elsewhere and batches itself)."""
        if not questions:
            return [[] for _ in range(len(pixels))]
        prompts = self.question_prompts(questions, max_new_tokens)
        return self.run_pixels(pixels, prompts, max_new_tokens=max_new_tokens)

    def caption_pixels(self, pixels: torch.Tensor, *, max_new_tokens: int) -> list[Answer]:
        """:meth:`caption` on model input already made: one caption per row."""
        rows = self.run_pixels(pixels, self.caption_prompts(), max_new_tokens=max_new_tokens)
        return [row[0] for row in rows]

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
        pixels = torch.from_numpy(
            self.preprocessing([frame for frames in clips for frame in frames], fit)
        )
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
