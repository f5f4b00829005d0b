"""SmolVLM2's facts and prompt text, without torch (planning processes import this alone).

The video prompt is rebuilt from transformers' ``SmolVLMProcessor.replace_video_token``
(``transformers/models/smolvlm/processing_smolvlm.py``): an intro naming the frame count in
words and the clip's length, then per frame ``"\\nFrame from MM:SS:"`` and the frame's image
tokens, then a blank line. The frames are resized to the square the video processor makes
(``video_processing_smolvlm.py``: longest edge, then the ``max_image_size`` square) and
normalised with mean and std 0.5; our ``FramePreprocessing`` expresses that as a resize to
``{"height", "width"}`` without a crop (OpenCV's interpolation, not torchvision's: close, not
bit-equal, to what the processor would feed the model).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from videoqa.errors import ModelError

if TYPE_CHECKING:
    from videoqa.models import Checkpoint
    from videoqa.preprocess import ModelFacts

DEFAULT_FRAMES = 8
"""Frames per clip when the processor config has no ``videoqa_frames`` (SmolVLM2 samples up to
64 frames of a whole video at 1 fps; our clips are seconds long, and 8 frames of 64 tokens
each keep a 256M/500M prompt near 600 tokens)."""

VIDEO_INTRO = ("You are provided the following series of {count} frames from a {duration} "
               "[H:MM:SS] video.\n")  # fmt: skip
FRAME_MESSAGE = "\nFrame from {minutes:02d}:{seconds:02d}:"
MEDIA_OUTRO = "\n\n"

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
         "eighteen", "nineteen")  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_in_words(number: int) -> str:
    """``num2words`` for 0..99 (the processor names the frame count so; num2words is optional)."""
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens - 2] + (f"-{_ONES[ones]}" if ones else "")
    raise ValueError(f"at most 99 frames per clip, not {number}")


def video_text(timestamps: Sequence[float], *, image_tokens: int, image: str = "<image>",
               around: str = "<fake_token_around_image>", global_image: str = "<global-img>",
               duration: float | None = None) -> str:  # fmt: skip
    """What ``<video>`` becomes for frames at ``timestamps`` (seconds into the clip)."""
    length = int(duration if duration is not None else timestamps[-1])
    text = VIDEO_INTRO.format(count=number_in_words(len(timestamps)),
                              duration=str(timedelta(seconds=length)))  # fmt: skip
    for second in timestamps:
        text += FRAME_MESSAGE.format(minutes=int(second // 60), seconds=int(second % 60))
        text += f"{around}{global_image}{image * image_tokens}{around}"
    return text + MEDIA_OUTRO


def video_settings(processor: dict[str, Any], vision: dict[str, Any]) -> tuple[int, int, float]:
    """(frames per clip, square side, frames per second) from the processor and vision configs."""
    sampling = processor.get("video_sampling") or {}
    frames = int(processor.get("videoqa_frames", min(DEFAULT_FRAMES,
                                                     sampling.get("max_frames", DEFAULT_FRAMES))))
    size = ((sampling.get("video_size") or {}).get("longest_edge")
            or (processor.get("max_image_size") or {}).get("longest_edge")
            or vision.get("image_size", 512))  # fmt: skip
    return frames, int(size), float(sampling.get("fps", 1) or 1)


def read_smolvlm_facts(checkpoint: Checkpoint, config: dict[str, Any]) -> ModelFacts:
    """A SmolVLM checkpoint's facts from ``config.json`` and ``preprocessor_config.json``."""
    from videoqa.models import read_json_object
    from videoqa.preprocess import ModelFacts

    path = checkpoint.folder / "preprocessor_config.json"
    processor = read_json_object(path) if path.is_file() else {}
    frames, size, _ = video_settings(processor, config.get("vision_config") or {})
    if frames < 1:
        raise ModelError(checkpoint.model_id, f"videoqa_frames must be at least 1, not {frames}")
    return ModelFacts(checkpoint.model_id, checkpoint.revision, "video", frames, size,
                      smolvlm_preprocessing(processor, size))  # fmt: skip


def smolvlm_preprocessing(processor: dict[str, Any], size: int) -> Any:
    """Resize to the ``size`` square (no crop), rescale, normalise with the processor's mean/std."""
    from videoqa.preprocess import FramePreprocessing

    return FramePreprocessing.from_config(
        {"do_resize": True, "size": {"height": size, "width": size}, "do_center_crop": False,
         "do_rescale": processor.get("do_rescale", True),
         "rescale_factor": processor.get("rescale_factor", 1 / 255),
         "do_normalize": processor.get("do_normalize", True),
         "image_mean": processor.get("image_mean", [0.5, 0.5, 0.5]),
         "image_std": processor.get("image_std", [0.5, 0.5, 0.5])},
        image_size=size)  # fmt: skip
