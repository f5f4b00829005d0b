"""SmolVLM2 (``model_type`` "smolvlm"): a clip's frames and the chat prefix computed once.

The prompt is the checkpoint's chat template with one user turn ``[video, text]``, the
``<video>`` placeholder expanded as transformers' ``SmolVLMProcessor`` does it (see
:mod:`videoqa.engines.smolvlm_facts`), from our sampler's frames and their timestamps. Every
question and the caption of a clip share the tokens before the question: the frames go
through the vision tower once, the shared prefix through the decoder once (per group of clips
with prefixes of one length, batched), and its key/value cache is repeated per question. Then
each question's own tokens (right-padded, masked) and greedy decoding run batched over
(clip, question) rows. The weights are transformers' ``SmolVLMForConditionalGeneration``; the
tests hold the decoding to token-for-token agreement with ``generate``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE

from videoqa.engines import Answer
from videoqa.engines.smolvlm_facts import (
    read_smolvlm_facts,
    smolvlm_preprocessing,
    video_settings,
    video_text,
)
from videoqa.errors import ModelError
from videoqa.models import (
    Checkpoint,
    choose_device,
    choose_dtype,
    locate_checkpoint,
    read_json_object,
)
from videoqa.preprocess import FrameQueries, ModelFacts

logger = logging.getLogger("videoqa.engines.smolvlm")

CAPTION_PROMPT = "Describe this clip in one sentence."
"""The instruction a caption answers: ``caption_prompt`` in :meth:`SmolVLMEngine.load`, else
``videoqa_caption_prompt`` in the checkpoint's ``preprocessor_config.json``, else this."""
CAPTION_KEY = "videoqa_caption_prompt"


class SmolVLMEngine(FrameQueries):
    """A SmolVLM2 checkpoint that answers questions about, and captions, clips of frames."""

    read_facts = staticmethod(read_smolvlm_facts)
    takes_frame_times = True
    """The pipeline passes ``timestamps=`` (seconds into the clip): the prompt names them."""

    def __init__(self, model: Any, tokenizer: Any, facts: ModelFacts, *, fps: float,
                 max_clips_per_batch: int = 8, caption_prompt: str = CAPTION_PROMPT,
                 chat_template: str | None = None) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id, self.revision = facts.model_id, facts.revision
        self.kind: Literal["image", "video"] = "video"
        self.frames_per_clip: int | None = facts.frames_per_clip
        self.image_size = facts.image_size
        self.preprocessing = facts.preprocessing
        self.fps = fps
        self.device = model.device
        self.max_clips_per_batch = max_clips_per_batch
        self.caption_prompt = caption_prompt
        config = model.config
        patches = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
        self.image_tokens = patches // config.scale_factor**2
        self.image_token_id = config.image_token_id
        eos = model.generation_config.eos_token_id
        eos = eos if eos is not None else tokenizer.convert_tokens_to_ids("<end_of_utterance>")
        self.eos_token_ids = torch.tensor(eos if isinstance(eos, list) else [eos])
        self.pad_token_id = tokenizer.pad_token_id or 0
        self.chat_template: str = chat_template or tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE
        """The tokenizer's, else the processor's ``chat_template.json``, else transformers'
        ``DEFAULT_CHAT_TEMPLATE`` (what ``SmolVLMProcessor`` uses for video prompts)."""

    @classmethod
    def load(cls, model: str, *, revision: str | None = None, device: str = "auto",
             dtype: str = "auto", max_clips_per_batch: int = 8,
             caption_prompt: str | None = None) -> SmolVLMEngine:  # fmt: skip
        """Load a SmolVLM(2) checkpoint by hub id or folder, from safetensors, no remote code
        (no ``quantize``: the pipeline then refuses it in one line)."""
        from transformers import AutoTokenizer, SmolVLMForConditionalGeneration

        torch_device = choose_device(device)
        torch_dtype = choose_dtype(dtype, torch_device, quantize=None)
        checkpoint = locate_checkpoint(model, revision=revision)
        config = read_json_object(checkpoint.folder / "config.json")
        facts = read_smolvlm_facts(checkpoint, config)
        try:
            weights = SmolVLMForConditionalGeneration.from_pretrained(
                str(checkpoint.folder), use_safetensors=True, dtype=torch_dtype,
                local_files_only=True)  # fmt: skip
            tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.folder), local_files_only=True)
        except (OSError, ValueError, RuntimeError) as error:
            reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
            raise ModelError(checkpoint.model_id, f"cannot load the checkpoint: {reason}") from None
        # transformers declares .to through functools.wraps, which mypy reads as unbound.
        weights.to(torch_device)  # type: ignore[arg-type]
        processor = _read_optional(checkpoint, "preprocessor_config.json")
        _, _, fps = video_settings(processor, config.get("vision_config") or {})
        caption_prompt = caption_prompt or processor.get(CAPTION_KEY) or CAPTION_PROMPT
        logger.info("loaded %s (SmolVLM, %d frames per clip) on %s in %s", checkpoint.model_id,
                    facts.frames_per_clip, torch_device, torch_dtype)  # fmt: skip
        return cls(weights, tokenizer, facts, fps=fps, max_clips_per_batch=max_clips_per_batch,
                   caption_prompt=caption_prompt,
                   chat_template=_read_optional(checkpoint, "chat_template.json").get(
                       "chat_template"))  # fmt: skip

    def facts(self) -> ModelFacts:
        return ModelFacts(self.model_id, self.revision, self.kind, self.frames_per_clip,
                          self.image_size, self.preprocessing)  # fmt: skip

    # ------------------------------------------------------------------ prompts

    def prompt_ids(self, text: str, timestamps: Sequence[float]) -> list[int]:
        """The whole prompt of one question (or instruction) about frames at ``timestamps``."""
        message = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": text}]}]
        prompt = self.tokenizer.apply_chat_template(message, chat_template=self.chat_template,
                                                    tokenize=False, add_generation_prompt=True)
        frames = video_text(timestamps, image_tokens=self.image_tokens)
        ids: list[int] = self.tokenizer(prompt.replace("<video>", frames),
                                        add_special_tokens=False).input_ids  # fmt: skip
        return ids

    def default_timestamps(self) -> list[float]:
        """Seconds into the clip of each frame when the caller gives none: the model's fps."""
        return [index / self.fps for index in range(self.frames_per_clip or 1)]

    # ------------------------------------------------------------------ public API

    def answer(self, clips: Sequence[Sequence[np.ndarray]], questions: Sequence[str], *,
               max_new_tokens: int = 20, fit: str | None = None,
               timestamps: Sequence[Sequence[float]] | None = None) -> list[list[Answer]]:
        """Every question about every clip: ``result[clip][question]`` (``timestamps``: seconds
        into the clip of each frame; default one frame per 1/fps)."""
        if not questions:
            return [[] for _ in clips]
        return self.answer_pixels(self._pixels(clips, fit), questions,
                                  max_new_tokens=max_new_tokens, timestamps=timestamps)  # fmt: skip

    def caption(self, clips: Sequence[Sequence[np.ndarray]], *, max_new_tokens: int = 30,
                fit: str | None = None,
                timestamps: Sequence[Sequence[float]] | None = None) -> list[Answer]:
        """One caption per clip: the answer to :attr:`caption_prompt`."""
        return self.caption_pixels(self._pixels(clips, fit), max_new_tokens=max_new_tokens,
                                   timestamps=timestamps)  # fmt: skip

    def answer_and_caption(self, clips: Sequence[Sequence[np.ndarray]], questions: Sequence[str],
                           *, max_new_tokens: int = 20, fit: str | None = None,
                           timestamps: Sequence[Sequence[float]] | None = None,
                           ) -> tuple[list[list[Answer]], list[Answer]]:  # fmt: skip
        """:meth:`answer` and :meth:`caption` from one encoding of each clip's prefix."""
        rows = self.run_pixels(self._pixels(clips, fit), [*questions, self.caption_prompt],
                               max_new_tokens=max_new_tokens, timestamps=timestamps)  # fmt: skip
        return [row[:-1] for row in rows], [row[-1] for row in rows]

    def answer_pixels(self, pixels: Any, questions: Sequence[str], *, max_new_tokens: int,
                      timestamps: Sequence[Sequence[float]] | None = None,
                      ) -> list[list[Answer]]:  # fmt: skip
        if not questions:
            return [[] for _ in range(len(pixels))]
        return self.run_pixels(pixels, list(questions), max_new_tokens=max_new_tokens,
                               timestamps=timestamps)  # fmt: skip

    def caption_pixels(self, pixels: Any, *, max_new_tokens: int,
                       timestamps: Sequence[Sequence[float]] | None = None) -> list[Answer]:
        rows = self.run_pixels(pixels, [self.caption_prompt], max_new_tokens=max_new_tokens,
                               timestamps=timestamps)  # fmt: skip
        return [row[0] for row in rows]

    @torch.inference_mode()
    def yes_probability(self, clips: Sequence[Sequence[np.ndarray]], questions: Sequence[str],
                        *, fit: str | None = None,
                        timestamps: Sequence[Sequence[float]] | None = None,
                        ) -> list[list[float]]:  # fmt: skip
        """P(" Yes") / (P(" Yes") + P(" No")) as the first answer token, per clip and question."""
        if not questions:
            return [[] for _ in clips]
        yes, no = self.yes_no_ids()
        results: list[list[float]] = []
        for batch in self._batches(self._pixels(clips, fit), list(questions), timestamps):
            logits, *_ = self._prompt_pass(*batch)
            probability = torch.sigmoid(logits[:, yes] - logits[:, no]).view(len(batch[1]), -1)
            results.extend(zip(batch[3], probability.tolist(), strict=True))  # type: ignore[arg-type]
        return [row for _, row in sorted(results)]  # type: ignore[misc]

    def yes_no_ids(self) -> tuple[int, int]:
        """Ids of the answer tokens " Yes" and " No" (or "Yes" and "No"): one token each."""
        for yes, no in ((" Yes", " No"), ("Yes", "No")):
            ids = [self.tokenizer(word, add_special_tokens=False).input_ids for word in (yes, no)]
            if all(len(i) == 1 for i in ids):
                return ids[0][0], ids[1][0]
        raise ModelError(self.model_id, "cannot score yes/no questions: \"Yes\" and \"No\" are "
                                        "not one token each")  # fmt: skip

    # ------------------------------------------------------------------ the work

    def _pixels(self, clips: Sequence[Sequence[np.ndarray]], fit: str | None) -> torch.Tensor:
        for index, frames in enumerate(clips):
            if len(frames) != self.frames_per_clip:
                raise ValueError(f"clip {index} has {len(frames)} frames; this checkpoint takes "
                                 f"exactly {self.frames_per_clip}")  # fmt: skip
        fit = self.resolve_fit(fit)
        return torch.from_numpy(np.stack([self.preprocessing(list(f), fit) for f in clips]))

    @torch.inference_mode()
    def run_pixels(self, pixels: Any, texts: list[str], *, max_new_tokens: int,
                   timestamps: Sequence[Sequence[float]] | None = None,
                   ) -> list[list[Answer]]:  # fmt: skip
        """Every text (question or instruction) for every clip of ``pixels``: ``[clip][text]``."""
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
        rows = self.generate_ids(pixels, texts, max_new_tokens=max_new_tokens,
                                 timestamps=timestamps)  # fmt: skip
        return [[self._answer(generated) for generated in row] for row in rows]

    @torch.inference_mode()
    def generate_ids(self, pixels: Any, texts: list[str], *, max_new_tokens: int,
                     timestamps: Sequence[Sequence[float]] | None = None,
                     ) -> list[list[list[tuple[int, float]]]]:  # fmt: skip
        """Greedy (token id, log-probability) pairs, end token included: ``[clip][text]``."""
        results: list[tuple[int, list[list[tuple[int, float]]]]] = []
        for batch in self._batches(pixels, texts, timestamps):
            logits, cache, mask, lengths = self._prompt_pass(*batch)
            tokens = self._greedy(logits, cache, mask, lengths, max_new_tokens)
            results.extend((index, tokens[k * len(texts):(k + 1) * len(texts)])
                           for k, index in enumerate(batch[3]))  # fmt: skip
        return [row for _, row in sorted(results, key=lambda item: item[0])]

    def _batches(self, pixels: Any, texts: list[str],
                 timestamps: Sequence[Sequence[float]] | None) -> list[tuple[Any, ...]]:
        """Clips grouped by the token length of their shared prefix (timestamps can change it),
        at most ``max_clips_per_batch`` each: (pixels, prefixes, suffixes per row, indices)."""
        pixels = torch.as_tensor(pixels)
        groups: dict[int, list[tuple[int, list[int], list[list[int]]]]] = {}
        for index in range(len(pixels)):
            times = timestamps[index] if timestamps is not None else self.default_timestamps()
            prompts = [self.prompt_ids(text, times) for text in texts]
            shared = min(len(p) for p in prompts) - 1
            for prompt in prompts[1:]:
                shared = min(shared, next((i for i, (a, b) in enumerate(
                    zip(prompts[0], prompt, strict=False)) if a != b), shared))  # fmt: skip
            if self.image_token_id in [t for p in prompts for t in p[shared:]]:
                raise ModelError(self.model_id, "the question splits the frames' tokens")
            groups.setdefault(shared, []).append((index, prompts[0][:shared],
                                                  [p[shared:] for p in prompts]))  # fmt: skip
        batches = []
        for members in groups.values():
            for first in range(0, len(members), self.max_clips_per_batch):
                part = members[first:first + self.max_clips_per_batch]
                batches.append((pixels[[m[0] for m in part]], [m[1] for m in part],
                                [s for m in part for s in m[2]], [m[0] for m in part]))  # fmt: skip
        return batches

    def _prompt_pass(self, pixels: torch.Tensor, prefixes: list[list[int]],
                     suffixes: list[list[int]], _indices: list[int],
                     ) -> tuple[torch.Tensor, Any, torch.Tensor, torch.Tensor]:  # fmt: skip
        """Frames once, each clip's prefix once, then every (clip, text) row's own tokens on
        the prefix's repeated cache. Returns the logits of each row's last prompt token, the
        cache, the attention mask so far and each row's prompt length."""
        from transformers import DynamicCache

        inner = self.model.model
        text_model = inner.text_model
        clips, per_clip = len(prefixes), len(suffixes) // len(prefixes)
        features = inner.get_image_features(pixels.to(self.device, inner.dtype)).pooler_output
        prefix_ids = torch.tensor(prefixes, device=self.device)
        embeds = text_model.get_input_embeddings()(prefix_ids)
        placed = (prefix_ids == self.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(placed, torch.cat(list(features)).to(embeds.dtype))
        width = prefix_ids.shape[1]
        cache = DynamicCache(config=self.model.config.text_config)
        text_model(inputs_embeds=embeds, cache=cache, use_cache=True,
                   attention_mask=torch.ones(clips, width, dtype=torch.long, device=self.device),
                   position_ids=torch.arange(width, device=self.device).expand(clips, width))
        if per_clip > 1:
            cache.batch_repeat_interleave(per_clip)
        rows, longest = len(suffixes), max(len(s) for s in suffixes)
        lengths = torch.tensor([len(s) for s in suffixes], device=self.device)
        suffix_ids = torch.full((rows, longest), self.pad_token_id, device=self.device)
        for row, suffix in enumerate(suffixes):
            suffix_ids[row, : len(suffix)] = torch.tensor(suffix)
        own = torch.arange(longest, device=self.device)[None] < lengths[:, None]
        mask = torch.cat([torch.ones(rows, width, dtype=torch.long, device=self.device),
                          own.long()], dim=1)  # fmt: skip
        hidden = text_model(input_ids=suffix_ids, cache=cache, use_cache=True,
                            attention_mask=mask, position_ids=width + own.cumsum(1) - 1
                            ).last_hidden_state  # fmt: skip
        last = hidden[torch.arange(rows, device=self.device), lengths - 1]
        return self.model.lm_head(last).float(), cache, mask, lengths + width

    def _greedy(self, logits: torch.Tensor, cache: Any, mask: torch.Tensor,
                lengths: torch.Tensor, max_new_tokens: int) -> list[list[tuple[int, float]]]:
        """Greedy decoding from the prompts' logits: per row, (token, log-probability) pairs."""
        eos = self.eos_token_ids.to(self.device)
        steps: list[tuple[torch.Tensor, torch.Tensor]] = []
        finished = torch.zeros(len(logits), dtype=torch.bool, device=self.device)
        for step in range(max_new_tokens):
            log_probs = torch.log_softmax(logits, dim=-1)
            token = log_probs.argmax(dim=-1)
            steps.append((token, log_probs.gather(1, token[:, None])[:, 0]))
            finished |= torch.isin(token, eos)
            if step == max_new_tokens - 1 or bool(finished.all()):
                break
            mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
            hidden = self.model.model.text_model(
                input_ids=token[:, None], cache=cache, use_cache=True, attention_mask=mask,
                position_ids=(lengths + step)[:, None]).last_hidden_state  # fmt: skip
            logits = self.model.lm_head(hidden[:, -1]).float()
        tokens = torch.stack([t for t, _ in steps], 1).tolist()
        scores = torch.stack([s for _, s in steps], 1).tolist()
        stops = set(eos.tolist())
        rows = []
        for row_tokens, row_scores in zip(tokens, scores, strict=True):
            end = next((i + 1 for i, t in enumerate(row_tokens) if t in stops), len(row_tokens))
            rows.append(list(zip(row_tokens[:end], row_scores[:end], strict=True)))
        return rows

    def _answer(self, row: list[tuple[int, float]]) -> Answer:
        stops = set(self.eos_token_ids.tolist())
        text = self.tokenizer.decode([t for t, _ in row if t not in stops],
                                     skip_special_tokens=True)  # fmt: skip
        return Answer(text.strip(), sum(s for _, s in row) / len(row))


def _read_optional(checkpoint: Checkpoint, name: str) -> dict[str, Any]:
    """A JSON file of the checkpoint, or ``{}`` when it has none (one line when unreadable)."""
    path = checkpoint.folder / name
    return read_json_object(path) if path.is_file() else {}


__all__ = ["CAPTION_PROMPT", "SmolVLMEngine", "smolvlm_preprocessing"]
