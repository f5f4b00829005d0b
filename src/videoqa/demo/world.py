"""Scenes of simple moving shapes over a plain background, rendered with known ground truth.

Positions are fractions of the frame's width and height and sizes fractions of its shorter
side, so a scene renders alike at any video size, landscape or portrait, and circles stay
round. A circle fills a box of ``2 * radius * min(width, height)`` pixels a side; a square
fills that box; a triangle stands in it, apex up. All shapes of a scene move together in one
direction, each in its own lane, so they never overlap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

logger = logging.getLogger("videoqa.demo.world")

SHAPES = ("circle", "square", "triangle")
#: Colour names and their RGB values, far apart so that codecs and resizing keep them distinct.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 190, 60),
    "blue": (40, 90, 235),
    "yellow": (235, 215, 40),
}
#: Direction names and their unit vectors in image coordinates (y grows downwards).
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
BACKGROUND = (36, 36, 44)
#: Size of every shape (half its height, as a fraction of the frame's shorter side). One size
#: makes circle, square and triangle differ clearly in area, not only in a few edge pixels,
#: once letterboxed into the model's 32x32 input.
RADIUS = 0.2
#: Movement smaller than this (fraction of the frame) between a clip's first and last frame
#: counts as standing still.
STILL = 0.05
#: Sub-pixel precision of the drawing (cv2 ``shift``): coordinates in 1/16 pixel.
_SHIFT = 4


@dataclass(frozen=True)
class Actor:
    """One shape: where it is (piecewise-linear path), its colour over time, when it is there."""

    shape: str
    radius: float  # half the shape's size, as a fraction of the frame's shorter side
    path: tuple[tuple[float, float, float], ...]  # (time, x, y) of the centre; held outside
    colors: tuple[tuple[float, str], ...]  # (from time, colour); the first also before its time
    appears: float = -math.inf
    disappears: float = math.inf

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape {self.shape!r} is not one of {SHAPES}")
        unknown = [name for _, name in self.colors if name not in COLORS]
        if unknown or not self.colors:
            raise ValueError(f"colours {unknown} are not among {tuple(COLORS)}")
        if not self.path:
            raise ValueError("an actor needs at least one point on its path")

    def position(self, time: float) -> tuple[float, float]:
        """Centre (x, y) as fractions of the frame at ``time``."""
        times = [point[0] for point in self.path]
        x = float(np.interp(time, times, [point[1] for point in self.path]))
        y = float(np.interp(time, times, [point[2] for point in self.path]))
        return x, y

    def color(self, time: float) -> str:
        current = self.colors[0][1]
        for start, name in self.colors:
            if time >= start:
                current = name
        return current

    def visible(self, time: float) -> bool:
        return self.appears <= time < self.disappears


@dataclass(frozen=True)
class ActorTruth:
    shape: str
    color: str


@dataclass(frozen=True)
class ClipTruth:
    """What is true over a clip's frames: the shapes (in lane order) and where they go."""

    actors: tuple[ActorTruth, ...]
    direction: str | None  # None: standing still

    @property
    def count(self) -> int:
        return len(self.actors)


@dataclass(frozen=True)
class Scene:
    """Actors over a plain background; the ground truth of any moment comes from here."""

    actors: tuple[Actor, ...]
    background: tuple[int, int, int] = field(default=BACKGROUND)

    def visible(self, time: float) -> list[Actor]:
        return [actor for actor in self.actors if actor.visible(time)]

    def truth(self, times: Sequence[float]) -> ClipTruth:
        """Ground truth over ``times`` (a clip's frame times).

        Raises ``ValueError`` when the answer changes within the clip (a shape appears or
        changes colour between its frames, shapes move different ways), since no single answer
        is right then.
        """
        if not times:
            raise ValueError("a clip needs at least one frame time")
        first, last = min(times), max(times)
        present = self.visible(first)
        for time in times:
            if self.visible(time) != present:
                raise ValueError(f"the shapes on screen change between {first} and {last}")
        colors = []
        for actor in present:
            names = {actor.color(time) for time in times}
            if len(names) > 1:
                raise ValueError(f"the {actor.shape} changes colour between {first} and {last}")
            colors.append(names.pop())
        directions = {_direction(actor, times) for actor in present}
        if len(directions) > 1:
            raise ValueError(f"shapes move different ways between {first} and {last}")
        direction = directions.pop() if directions else None
        vertical = direction in ("up", "down")
        # Lane order: top to bottom for shapes moving sideways, left to right otherwise.
        order = sorted(
            range(len(present)),
            key=lambda i: present[i].position(first)[0 if vertical else 1],
        )
        actors = tuple(ActorTruth(present[i].shape, colors[i]) for i in order)
        return ClipTruth(actors=actors, direction=direction)


def _direction(actor: Actor, times: Sequence[float]) -> str | None:
    """Where the actor goes over the times; every step must agree, or it is ambiguous."""
    positions = [actor.position(time) for time in sorted(times)]
    dx = positions[-1][0] - positions[0][0]
    dy = positions[-1][1] - positions[0][1]
    if max(abs(dx), abs(dy)) < STILL:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def render(
    scene: Scene,
    time: float,
    width: int = 320,
    height: int = 240,
    *,
    colors: dict[str, tuple[int, int, int]] | None = None,
) -> np.ndarray:
    """The (height, width, 3) uint8 RGB frame of ``scene`` at ``time``, anti-aliased.

    ``colors`` overrides the RGB value of colour names (training jitters them a little).
    """
    palette = colors or COLORS
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = scene.background
    scale = 1 << _SHIFT
    for actor in scene.visible(time):
        x, y = actor.position(time)
        cx, cy = x * width, y * height
        rx = ry = actor.radius * min(width, height)
        color = tuple(int(v) for v in palette[actor.color(time)])
        if actor.shape == "circle":
            center = (round(cx * scale), round(cy * scale))
            axes = (round(rx * scale), round(ry * scale))
            cv2.ellipse(frame, center, axes, 0, 0, 360, color, -1, cv2.LINE_AA, _SHIFT)
        else:
            if actor.shape == "square":
                corners = [
                    (cx - rx, cy - ry),
                    (cx + rx, cy - ry),
                    (cx + rx, cy + ry),
                    (cx - rx, cy + ry),
                ]
            else:
                corners = [(cx, cy - ry), (cx + rx, cy + ry), (cx - rx, cy + ry)]
            points = np.array(
                [[round(px * scale), round(py * scale)] for px, py in corners], dtype=np.int32
            )
            cv2.fillPoly(frame, [points], color, cv2.LINE_AA, _SHIFT)
    return frame


def random_clip_scene(
    rng: np.random.Generator, *, frames: int = 6, aspect: float = 4 / 3
) -> tuple[Scene, tuple[float, ...]]:
    """A random scene for training or evaluation and the frame times of its one clip.

    The clip spans ``[0, 1)`` with frames at the centres of ``frames`` equal parts, as
    ``videoqa.clips`` places them; one or two shapes of size ``RADIUS``, each on screen in all
    of them (in a video of width/height ``aspect``), keep their colours and move 35-80% of the
    frame between the first and the last frame.
    """
    count = int(rng.choice([1, 2], p=[0.6, 0.4]))
    shapes = rng.choice(SHAPES, size=count, replace=False)
    colors = rng.choice(list(COLORS), size=count, replace=False)
    direction = str(rng.choice(list(DIRECTIONS)))
    dx, dy = DIRECTIONS[direction]
    radius = RADIUS
    # Half extents as fractions of the width (x) and of the height (y).
    half_x, half_y = radius * min(1.0, 1 / aspect), radius * min(1.0, aspect)
    half_along, half_across = (half_x, half_y) if dx else (half_y, half_x)
    if count == 1:
        lanes = [float(rng.uniform(half_across + 0.02, 1 - half_across - 0.02))]
    else:
        jitter = 0.03
        lanes = [(i + 0.5) / count + float(rng.uniform(-jitter, jitter)) for i in range(count)]
    times = tuple((i + 0.5) / frames for i in range(frames))
    span = times[-1] - times[0]
    room = 1 - 2 * half_along
    travel = float(rng.uniform(0.35, min(0.8, room)))
    actors = []
    for shape, color, lane in zip(shapes, colors, lanes, strict=True):
        begin = float(rng.uniform(half_along, 1 - half_along - travel))  # along, at times[0]
        if dx < 0 or dy < 0:
            begin = 1 - begin
        sign = dx + dy
        speed = sign * travel / span
        along_at_0 = begin - speed * times[0]
        along_at_1 = along_at_0 + speed
        if dx:
            path = ((0.0, along_at_0, lane), (1.0, along_at_1, lane))
        else:
            path = ((0.0, lane, along_at_0), (1.0, lane, along_at_1))
        actors.append(Actor(str(shape), radius, path, ((0.0, str(color)),)))
    return Scene(tuple(actors)), times


def in_sequence(scenes: Sequence[Scene], *, seconds_each: float) -> Scene:
    """One scene that plays ``scenes`` one after another, each stretched from ``[0, 1)`` to
    ``seconds_each`` seconds: many held-out clips in one video, clip ``k`` at
    ``[k * seconds_each, (k + 1) * seconds_each)``."""
    actors = []
    for index, scene in enumerate(scenes):
        start = index * seconds_each
        for actor in scene.actors:
            path = tuple((start + t * seconds_each, x, y) for t, x, y in actor.path)
            colors = tuple((start + t * seconds_each, name) for t, name in actor.colors)
            begin = max(actor.appears, 0.0) * seconds_each + start
            end = min(actor.disappears, 1.0) * seconds_each + start
            actors.append(replace(actor, path=path, colors=colors, appears=begin, disappears=end))
    background = scenes[0].background if scenes else BACKGROUND
    return Scene(tuple(actors), background)
