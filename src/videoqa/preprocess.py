"""Frames into a GIT checkpoint's input, and what planning needs to know of a checkpoint.

Kept apart from the engine so that the processes that only decode and preprocess (the
collection runner's decoding workers, Ray's decoding tasks) never import torch or
transformers: seconds of start-up and hundreds of MiB per process. The arithmetic is
float32 numpy, which rounds exactly as the torch version it replaces (elementwise IEEE
operations), so the model sees the same bits.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from videoqa.errors import ModelError
from videoqa.fit import FITS, check_fit

if TYPE_CHECKING:
    from videoqa.models import Checkpoint

logger = logging.getLogger("videoqa.preprocess")

GIT_VISION_IMAGE_SIZE = 224
"""``GitVisionConfig``'s ``image_size`` when a config leaves it out (transformers' default)."""

__all__ = ["FramePreprocessing", "ModelFacts", "read_git_facts"]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

FIT_KEY = "videoqa_fit"
"""``preprocessor_config.json`` key naming a checkpoint's default fit (``crop`` without it)."""


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

    def __call__(self, frames: Sequence[np.ndarray], fit: str | None = None) -> np.ndarray:
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
        pixels = np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2), dtype=np.float32)
        if self.rescale_factor is not None:
            pixels *= np.float32(self.rescale_factor)
        if self.mean is not None and self.std is not None:
            pixels -= np.asarray(self.mean, dtype=np.float32).reshape(1, 3, 1, 1)
            pixels /= np.asarray(self.std, dtype=np.float32).reshape(1, 3, 1, 1)
        return pixels


class FrameQueries:
    """What a checkpoint says about frames, from its ``preprocessing``: shared by the engine
    and ``ModelFacts``, so planning asks either the same way."""

    preprocessing: FramePreprocessing

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


@dataclass(frozen=True)
class ModelFacts(FrameQueries):
    """What planning reads of a loaded checkpoint, without its weights: small to pickle, and
    unpickled without torch (Ray's planning tasks get these in place of engines)."""

    model_id: str
    revision: str | None
    kind: Literal["image", "video"]
    frames_per_clip: int | None
    image_size: int
    preprocessing: FramePreprocessing

    def facts(self) -> ModelFacts:
        """Itself: a driver plans with facts or engines alike."""
        return self

def read_git_facts(checkpoint: Checkpoint, config: dict[str, Any]) -> ModelFacts:
    """A GIT checkpoint's facts from its ``config.json`` (read already) and processor config."""
    frames = config.get("num_image_with_embedding")
    image_size = (config.get("vision_config") or {}).get("image_size", GIT_VISION_IMAGE_SIZE)
    if not isinstance(image_size, int):
        raise ModelError(None, "the checkpoint's vision_config has no square image_size")
    return ModelFacts(
        model_id=checkpoint.model_id,
        revision=checkpoint.revision,
        kind="video" if frames else "image",
        frames_per_clip=frames,
        image_size=image_size,
        preprocessing=load_preprocessing(checkpoint, image_size=image_size),
    )


def load_preprocessing(checkpoint: Checkpoint, *, image_size: int) -> FramePreprocessing:
    """The checkpoint's ``preprocessor_config.json`` (CLIP's defaults without one)."""
    path = checkpoint.folder / "preprocessor_config.json"
    if not path.is_file():
        logger.warning(
            "%s: no preprocessor_config.json; using CLIP's defaults", checkpoint.model_id
        )
        return FramePreprocessing.from_config({}, image_size=image_size)
    from videoqa.models import read_json_object

    return FramePreprocessing.from_config(read_json_object(path), image_size=image_size)
