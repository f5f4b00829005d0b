"""The engine seam: what every runner asks of a model, and the registry that picks one.

The pipeline, the collection runner, Ray's model actors, ``find`` and the daemon's worker use
a model only through :class:`Engine`; planning (in decoding processes, without torch) only
through :class:`videoqa.preprocess.ModelFacts`. A model family is one module with a class
that has the ``Engine`` methods and a ``load`` class method, and a torch-free function that
reads its ``ModelFacts`` from the checkpoint's files. :func:`load_engine` and
:func:`load_facts` pick the family from the checkpoint's ``config.json`` ``model_type``:

- built in: ``git`` (``videoqa.engine.GitEngine``, Microsoft's GIT, image and video) and
  ``smolvlm`` (``videoqa.engines.smolvlm.SmolVLMEngine``, HuggingFaceTB's SmolVLM2 video);
- installed packages add families through the entry-point group ``videoqa.engines``
  (``model_type = "package.module:EngineClass"``);
- ``VIDEOQA_ENGINES="model_type=module:Class,..."`` in the environment does the same for a
  family that is not installed as a package (the test engine does this; worker processes
  inherit it);
- :func:`register_engine` in the running process.

An engine class may define ``read_facts(checkpoint, config) -> ModelFacts`` (a static or class
method that must not import torch); without it, planning loads the engine to ask it.
This module imports neither torch nor transformers.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from videoqa.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from videoqa.models import Checkpoint
    from videoqa.preprocess import FramePreprocessing, ModelFacts


@dataclass(frozen=True)
class Answer:
    """Generated text and its score: the mean log-probability of the generated tokens.

    The tokens scored are those of the text plus the end token that ended it (when it did
    end before the token limit), as ``generate``'s transition scores count them.
    """

    text: str
    score: float


@runtime_checkable
class Engine(Protocol):
    """A loaded checkpoint, as every runner uses it.

    ``clips`` are lists of ``(height, width, 3)`` uint8 RGB frames, as the sampler gives them
    at :meth:`frame_size`: one frame per clip for an image checkpoint, exactly
    ``frames_per_clip`` for a video checkpoint. ``pixels`` are the model input
    ``preprocessing`` made of such clips (the collection runner makes them in its decoding
    processes): ``(clips, frames, 3, size, size)`` for video, ``(frames, 3, size, size)`` for
    image checkpoints, float32, as a torch tensor.
    """

    model_id: str
    revision: str | None
    kind: Literal["image", "video"]
    frames_per_clip: int | None
    image_size: int
    preprocessing: FramePreprocessing
    device: Any
    """Where it runs (a ``torch.device``; ``str()`` of it is ``cpu``, ``cuda:0``, ...)."""

    def facts(self) -> ModelFacts:
        """What planning needs of the checkpoint, without the weights."""
        ...

    def resolve_fit(self, fit: str | None) -> str:
        """``fit`` checked, or the checkpoint's own."""
        ...

    def frame_size(self, width: int, height: int, fit: str | None = None) -> tuple[int, int]:
        """(width, height) the sampler should decode a ``width`` x ``height`` video to."""
        ...

    def answer(self, clips: Sequence[Sequence[np.ndarray]], questions: Sequence[str], *,
               max_new_tokens: int = 20, fit: str | None = None) -> list[list[Answer]]:
        """Every question about every clip: ``result[clip][question]``."""
        ...

    def caption(self, clips: Sequence[Sequence[np.ndarray]], *, max_new_tokens: int = 30,
                fit: str | None = None) -> list[Answer]:
        """One caption per clip."""
        ...

    def answer_pixels(self, pixels: Any, questions: Sequence[str], *,
                      max_new_tokens: int) -> list[list[Answer]]:
        """:meth:`answer` on model input already made: ``result[row][question]``."""
        ...

    def caption_pixels(self, pixels: Any, *, max_new_tokens: int) -> list[Answer]:
        """:meth:`caption` on model input already made: one caption per row."""
        ...

    def yes_probability(self, clips: Sequence[Sequence[np.ndarray]], questions: Sequence[str],
                        *, fit: str | None = None) -> list[list[float]]:
        """P(yes) of every yes/no question about every clip (``ModelError`` when the family
        cannot tell)."""
        ...


BUILT_IN: dict[str, str] = {"git": "videoqa.engine:GitEngine",
                            "smolvlm": "videoqa.engines.smolvlm:SmolVLMEngine"}
"""``model_type`` -> ``module:Class`` of the families that ship with videoqa."""

BUILT_IN_FACTS: dict[str, str] = {
    "git": "videoqa.preprocess:read_git_facts",
    "smolvlm": "videoqa.engines.smolvlm_facts:read_smolvlm_facts",
}
"""``model_type`` -> the torch-free ``module:function(checkpoint, config)`` reading its facts
(an engine module imports torch; a family elsewhere gives its class a ``read_facts``)."""

_registered: dict[str, str] = {}
ENVIRONMENT = "VIDEOQA_ENGINES"


def register_engine(model_type: str, target: str) -> None:
    """Make ``model_type`` checkpoints load with ``target`` (``"module:Class"``) here."""
    _registered[model_type] = target


def engine_families() -> dict[str, str]:
    """Every known ``model_type`` and its ``module:Class``: built in, installed, from
    ``$VIDEOQA_ENGINES``, registered (later ones win)."""
    families = dict(BUILT_IN)
    for entry in entry_points(group="videoqa.engines"):
        families[entry.name] = entry.value
    for item in os.environ.get(ENVIRONMENT, "").split(","):
        name, _, target = item.strip().partition("=")
        if name and target:
            families[name.strip()] = target.strip()
    families.update(_registered)
    return families


def engine_class(model_type: object, *, model: str) -> Any:
    """The class for ``model_type``; ``ModelError`` naming the model and its ``model_type``
    when no family knows it."""
    families = engine_families()
    target = families.get(model_type) if isinstance(model_type, str) else None
    if target is None:
        known = ", ".join(sorted(families))
        raise ModelError(model, f"no engine for model_type {model_type!r} (videoqa runs: "
                                f"{known})")  # fmt: skip
    module, _, name = target.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ModelError(model, f"the engine {target} for model_type {model_type!r} cannot "
                                f"be loaded: {error}") from None  # fmt: skip


def checkpoint_config(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint's ``config.json`` (``ModelError`` naming it when unreadable)."""
    from videoqa.models import read_json_object

    return read_json_object(checkpoint.folder / "config.json")


def load_engine(model: str, *, revision: str | None = None, **options: Any) -> Engine:
    """Load ``model`` (hub id, folder or ``demo``) with the engine of its ``model_type``;
    ``options`` (``device``, ``dtype``, ``max_clips_per_batch``, ...) go to its ``load``."""
    from videoqa.models import locate_checkpoint

    checkpoint = locate_checkpoint(model, revision=revision)
    config = checkpoint_config(checkpoint)
    cls = engine_class(config.get("model_type"), model=checkpoint.model_id)
    engine: Engine = cls.load(model, revision=revision, **options)
    return engine


def load_facts(model: str, *, revision: str | None = None) -> ModelFacts:
    """A checkpoint's ``ModelFacts`` from its files alone (no weights, no torch) where its
    family can read them (``read_facts``); else from the loaded engine."""
    from videoqa.models import locate_checkpoint

    checkpoint = locate_checkpoint(model, revision=revision)
    config = checkpoint_config(checkpoint)
    model_type = config.get("model_type")
    if isinstance(model_type, str) and model_type in BUILT_IN_FACTS and \
            engine_families().get(model_type) == BUILT_IN.get(model_type):
        module, _, name = BUILT_IN_FACTS[model_type].partition(":")
        built_in: ModelFacts = getattr(importlib.import_module(module), name)(checkpoint, config)
        return built_in
    cls = engine_class(model_type, model=checkpoint.model_id)
    reader = getattr(cls, "read_facts", None)
    if reader is not None:
        facts: ModelFacts = reader(checkpoint, config)
        return facts
    loaded: Engine = cls.load(model, revision=revision)
    return loaded.facts()


__all__ = [
    "Answer",
    "Engine",
    "engine_class",
    "engine_families",
    "load_engine",
    "load_facts",
    "register_engine",
]
