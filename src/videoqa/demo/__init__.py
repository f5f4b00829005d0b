"""The tiny shapes world: scenes with known ground truth, their questions, captions and videos.

The demo checkpoint (``videoqa/demo_model``) is trained on clips of this world, and tests use it
to prove that an answer printed for a moment of a video belongs to what is on screen then.
"""

from __future__ import annotations

from videoqa.demo.language import (
    COUNT_WORDS,
    PRESENCE_ANSWERS,
    QUESTION_KINDS,
    VOCABULARY,
    Question,
    caption_of,
    presence_questions,
    questions_for,
)
from videoqa.demo.video import SAMPLE_SCENES, SampleScene, write_scene_video
from videoqa.demo.world import (
    COLORS,
    DIRECTIONS,
    OPPOSITE,
    SHAPES,
    Actor,
    ClipTruth,
    Scene,
    in_sequence,
    random_clip_scene,
    render,
)

__all__ = [
    "COLORS",
    "COUNT_WORDS",
    "DIRECTIONS",
    "OPPOSITE",
    "PRESENCE_ANSWERS",
    "QUESTION_KINDS",
    "SAMPLE_SCENES",
    "SHAPES",
    "VOCABULARY",
    "Actor",
    "ClipTruth",
    "Question",
    "SampleScene",
    "Scene",
    "caption_of",
    "in_sequence",
    "presence_questions",
    "questions_for",
    "random_clip_scene",
    "render",
    "write_scene_video",
]
