"""A test-only model family through the engine seam: it "sees" a clip's brightest colour.

The proof that a new family is one file: registered with ``VIDEOQA_ENGINES`` (conftest sets it
for every process the tests start) for checkpoints whose config.json says
``"model_type": "mean_colour"``, it runs through ``ask``, ``caption``, the collection runner,
``--ray`` and the daemon unchanged. No torch: its facts and its answers are numpy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from videoqa.engines import Answer
from videoqa.models import Checkpoint, locate_checkpoint
from videoqa.preprocess import FramePreprocessing, FrameQueries, ModelFacts

MODEL_TYPE = "mean_colour"
COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0),
           "white": (1, 1, 1)}  # fmt: skip


def save_checkpoint(folder: Path, *, frames: int = 2, size: int = 16) -> Path:
    """A checkpoint folder of this family (an empty weights file: locating wants one)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": MODEL_TYPE, "frames_per_clip": frames, "image_size": size}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(b"")
    return folder


class MeanColourEngine(FrameQueries):
    """Answers every question and captions every clip with the colour of its bright pixels."""

    def __init__(self, checkpoint: Checkpoint, config: dict[str, Any]) -> None:
        facts = self.read_facts(checkpoint, config)
        self.model_id, self.revision = facts.model_id, facts.revision
        self.kind: Literal["image", "video"] = facts.kind
        self.frames_per_clip = facts.frames_per_clip
        self.image_size = facts.image_size
        self.preprocessing = facts.preprocessing
        self.device = "cpu"

    @classmethod
    def load(cls, model: str, *, revision: str | None = None, **_options: Any) -> MeanColourEngine:
        checkpoint = locate_checkpoint(model, revision=revision)
        return cls(checkpoint, json.loads((checkpoint.folder / "config.json").read_text()))

    @staticmethod
    def read_facts(checkpoint: Checkpoint, config: dict[str, Any]) -> ModelFacts:
        size = int(config["image_size"])
        preprocessing = FramePreprocessing.from_config(
            {"image_mean": [0, 0, 0], "image_std": [1, 1, 1]}, image_size=size)
        return ModelFacts(checkpoint.model_id, checkpoint.revision, "video",
                          int(config["frames_per_clip"]), size, preprocessing)  # fmt: skip

    def facts(self) -> ModelFacts:
        return ModelFacts(self.model_id, self.revision, self.kind, self.frames_per_clip,
                          self.image_size, self.preprocessing)  # fmt: skip

    def colour(self, pixels: np.ndarray) -> str:
        """The named colour nearest the mean of a clip's bright pixels (``(frames, 3, h, w)``
        in 0..1)."""
        rgb = np.asarray(pixels, dtype=np.float32).transpose(1, 0, 2, 3).reshape(3, -1)
        bright = rgb[:, rgb.max(axis=0) > 0.3]
        mean = bright.mean(axis=1) if bright.size else np.zeros(3)
        return min(COLOURS, key=lambda name: float(np.square(mean - COLOURS[name]).sum()))

    def _pixels(self, clips: Sequence[Sequence[np.ndarray]], fit: str | None) -> np.ndarray:
        return np.stack([self.preprocessing(list(frames), fit) for frames in clips])

    def answer(self, clips: Sequence[Sequence[np.ndarray]], questions: Sequence[str], *,
               max_new_tokens: int = 20, fit: str | None = None) -> list[list[Answer]]:
        return self.answer_pixels(self._pixels(clips, fit), questions,
                                  max_new_tokens=max_new_tokens)  # fmt: skip

    def caption(self, clips: Sequence[Sequence[np.ndarray]], *, max_new_tokens: int = 30,
                fit: str | None = None) -> list[Answer]:
        return self.caption_pixels(self._pixels(clips, fit), max_new_tokens=max_new_tokens)

    def answer_pixels(self, pixels: Any, questions: Sequence[str], *,
                      max_new_tokens: int) -> list[list[Answer]]:
        return [[Answer(self.colour(clip), 0.0) for _ in questions] for clip in np.asarray(pixels)]

    def caption_pixels(self, pixels: Any, *, max_new_tokens: int) -> list[Answer]:
        return [Answer(f"a {self.colour(clip)} thing", 0.0) for clip in np.asarray(pixels)]

    def yes_probability(self, clips: Sequence[Sequence[np.ndarray]], questions: Sequence[str],
                        *, fit: str | None = None) -> list[list[float]]:
        colours = [self.colour(clip) for clip in self._pixels(clips, fit)]
        return [[float(colour in question) for question in questions] for colour in colours]
