"""The shapes world: rendering, ground truth, language, and videos that show the scene in time."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from videoqa.demo import (
    COLORS,
    PRESENCE_ANSWERS,
    SAMPLE_SCENES,
    VOCABULARY,
    Actor,
    Scene,
    caption_of,
    in_sequence,
    presence_questions,
    questions_for,
    random_clip_scene,
    render,
    write_scene_video,
)
from videoqa.demo.world import ActorTruth, ClipTruth
from videoqa.media import FrameSampler, probe

REPO = Path(__file__).resolve().parents[1]


def mask_of(rgb: np.ndarray, color: str, tolerance: int = 40) -> np.ndarray:
    """Pixels within ``tolerance`` (per channel) of a named colour."""
    target = np.array(COLORS[color], dtype=np.int32)
    return (np.abs(rgb.astype(np.int32) - target) <= tolerance).all(axis=2)


def centroid(mask: np.ndarray) -> tuple[float, float]:
    """Centre (x, y) of a mask as fractions of the frame."""
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return (xs.mean() + 0.5) / width, (ys.mean() + 0.5) / height


def one_shape(shape: str, *, x: float = 0.5, y: float = 0.5, radius: float = 0.2) -> Scene:
    return Scene((Actor(shape, radius, ((0.0, x, y),), ((0.0, "red"),)),))


@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
@pytest.mark.parametrize(("width", "height"), [(320, 240), (240, 426)])
def test_shapes_are_drawn_where_and_as_large_as_the_scene_says(shape, width, height):
    frame = render(one_shape(shape, x=0.4, y=0.6), 0.0, width, height)
    red = mask_of(frame, "red")
    x, y = centroid(red)
    side = 2 * 0.2 * min(width, height)  # the box the shape stands in: of the shorter side
    ys, xs = np.nonzero(red)
    assert xs.max() - xs.min() + 1 == pytest.approx(side, abs=2)  # round, not squeezed
    assert ys.max() - ys.min() + 1 == pytest.approx(side, abs=2)
    expected_area = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}[shape] * side**2
    assert red.sum() == pytest.approx(expected_area, rel=0.04)
    assert x == pytest.approx(0.4, abs=0.01)
    # A triangle's area sits low in its box (apex up); the others are centred.
    expected_y = 0.6 + (side / 6) / height if shape == "triangle" else 0.6
    assert y == pytest.approx(expected_y, abs=0.01)
    corners = frame[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == Scene(()).background).all()


def test_truth_follows_paths_colours_and_entrances():
    mover = Actor(
        "square",
        0.15,
        ((0.0, 0.2, 0.3), (2.0, 0.8, 0.3), (4.0, 0.2, 0.3)),
        ((0.0, "green"), (2.0, "blue")),
    )
    late = Actor(
        "circle",
        0.15,
        ((0.0, 0.2, 0.8), (2.0, 0.8, 0.8), (4.0, 0.2, 0.8)),
        ((0.0, "yellow"),),
        appears=2.0,
    )
    scene = Scene((late, mover))
    assert scene.truth([0.2, 1.0, 1.8]) == ClipTruth((ActorTruth("square", "green"),), "right")
    # Lanes are ordered top to bottom for sideways motion, whatever order the actors come in.
    assert scene.truth([2.2, 3.0, 3.8]) == ClipTruth(
        (ActorTruth("square", "blue"), ActorTruth("circle", "yellow")), "left"
    )
    with pytest.raises(ValueError, match="on screen change"):
        scene.truth([1.5, 2.5])
    still = Scene((Actor("circle", 0.2, ((0.0, 0.5, 0.5),), ((0.0, "red"),)),))
    assert still.truth([0.0, 1.0]).direction is None


def test_questions_and_captions_have_one_answer_in_the_vocabulary():
    truth = ClipTruth((ActorTruth("circle", "red"),), "left")
    asked = {q.text: (q.kind, q.answer) for q in questions_for(truth)}
    assert asked == {
        "what color is the circle?": ("color", "red"),
        "what shape is the red one?": ("shape", "circle"),
        "which way does the circle move?": ("direction", "left"),
        "what shape is it?": ("shape", "circle"),
        "which way does it move?": ("direction", "left"),
        "how many shapes are there?": ("count", "one"),
        # Presence: as many "no" as "yes", the "no" ones near misses (next colour, next shape).
        "is there a red circle?": ("presence", "yes"),
        "is there a circle?": ("presence", "yes"),
        "is there a green circle?": ("presence", "no"),
        "is there a red square?": ("presence", "no"),
    }
    assert caption_of(truth) == "a red circle moves left"
    two = ClipTruth((ActorTruth("square", "green"), ActorTruth("triangle", "blue")), "up")
    assert caption_of(two) == "a green square and a blue triangle move up"
    rng = np.random.default_rng(3)
    words = set(VOCABULARY)
    for _ in range(200):
        scene, times = random_clip_scene(rng)
        truth = scene.truth(times)
        texts = [caption_of(truth)] + [f"{q.text} {q.answer}" for q in questions_for(truth)]
        for text in texts:
            assert set(text.replace("?", " ?").split()) <= words, text


def test_presence_questions_say_yes_exactly_to_what_is_on_screen():
    two = ClipTruth((ActorTruth("square", "green"), ActorTruth("triangle", "blue")), "up")
    asked = {q.text: q.answer for q in presence_questions(two)}
    assert len(asked) == 15 and {q.kind for q in presence_questions(two)} == {"presence"}
    yes = {text for text, answer in asked.items() if answer == "yes"}
    assert yes == {
        "is there a green square?",
        "is there a blue triangle?",
        "is there a square?",
        "is there a triangle?",
    }
    assert set(asked.values()) == set(PRESENCE_ANSWERS)
    balanced = [q for q in questions_for(two) if q.kind == "presence"]
    assert all(asked[q.text] == q.answer for q in balanced)
    assert sum(q.answer == "yes" for q in balanced) == sum(q.answer == "no" for q in balanced)


@pytest.mark.parametrize("aspect", [4 / 3, 16 / 9, 1.0, 9 / 16, 3 / 4])
def test_random_clips_keep_shapes_apart_inside_the_frame_and_moving_far(aspect):
    rng = np.random.default_rng(int(aspect * 100))
    height = 240
    width = round(height * aspect)
    for _ in range(40):
        scene, times = random_clip_scene(rng, aspect=aspect)
        truth = scene.truth(times)
        assert truth.direction is not None and 1 <= truth.count <= 2
        for time in (times[0], times[-1]):
            frame = render(scene, time, width, height)
            drawn = sum(int(mask_of(frame, actor.color(time)).sum()) for actor in scene.actors)
            # Every shape whole (nothing cut by the border) and none covering another.
            alone = [render(Scene((actor,)), time, width, height) for actor in scene.actors]
            expected = sum(
                int(mask_of(image, actor.color(time)).sum())
                for image, actor in zip(alone, scene.actors, strict=True)
            )
            assert drawn == expected
        for actor in scene.actors:
            (x0, y0), (x1, y1) = actor.position(times[0]), actor.position(times[-1])
            assert 0.35 - 1e-9 <= abs(x1 - x0) + abs(y1 - y0) <= 0.8 + 1e-9
            short = min(width, height)
            half = (actor.radius * short / width, actor.radius * short / height)
            for x, y in ((x0, y0), (x1, y1)):
                assert half[0] - 1e-9 <= x <= 1 - half[0] + 1e-9
                assert half[1] - 1e-9 <= y <= 1 - half[1] + 1e-9


def test_in_sequence_plays_scenes_one_after_another():
    rng = np.random.default_rng(11)
    scenes = [random_clip_scene(rng) for _ in range(3)]
    sequence = in_sequence([scene for scene, _ in scenes], seconds_each=2.0)
    for index, (scene, times) in enumerate(scenes):
        shifted = [2.0 * index + 2.0 * t for t in times]
        assert sequence.truth(shifted) == scene.truth(times)
        assert np.array_equal(render(sequence, shifted[2]), render(scene, times[2]))


def red_then_blue() -> Scene:
    """A circle moving right, red until 2 s and blue from then on."""
    return Scene(
        (Actor("circle", 0.2, ((0.0, 0.2, 0.5), (4.0, 0.8, 0.5)), ((0.0, "red"), (2.0, "blue"))),)
    )


@pytest.mark.parametrize(
    ("suffix", "options", "frame_times", "start_time"),
    [
        (".mp4", {"bf": "3", "g": "12"}, None, 0.0),
        (".mkv", None, [0, 0.04, 0.3, 0.5, 1.2, 1.96, 2.0, 2.1, 3.0, 3.9], 0.0),
        (".ts", {"bf": "2"}, None, 1.5),
    ],
    ids=["bframes", "vfr", "start-time"],
)
def test_videos_show_the_scene_at_every_timeline_time(
    tmp_path, suffix, options, frame_times, start_time
):
    scene = red_then_blue()
    path = tmp_path / f"clip{suffix}"
    written = write_scene_video(
        path, scene, duration=4.0, options=options, frame_times=frame_times, start_time=start_time
    )
    info = probe(path)
    assert info.start_time == pytest.approx(start_time, abs=0.01)
    with FrameSampler(path) as sampler:
        frames = sampler.sample([float(t) for t in written])
    for time, frame in zip(written, frames, strict=True):
        assert frame.pts_time == pytest.approx(float(time), abs=1e-4)
        color = "red" if time < 2 else "blue"
        mask = mask_of(frame.rgb, color)
        assert mask.sum() > 0.9 * math.pi * 48**2, (time, color)
        x, _ = centroid(mask)
        assert x == pytest.approx(scene.actors[0].position(float(time))[0], abs=0.01)


@pytest.mark.parametrize("name", sorted(SAMPLE_SCENES))
def test_sample_media_are_the_scenes_they_claim(name):
    sample = SAMPLE_SCENES[name]
    path = REPO / "sample_media" / name
    info = probe(path)
    assert (info.width, info.height) == (sample.width, sample.height)
    assert info.duration == pytest.approx(sample.duration, abs=0.05)
    codec = {"libx264": "h264", "libvpx-vp9": "vp9"}[sample.codec]
    assert info.streams[info.video_stream].codec == codec
    assert path.stat().st_size < 500_000
    times = [0.5 + 0.5 * k for k in range(int(sample.duration * 2) - 1)]
    with FrameSampler(path) as sampler:
        frames = sampler.sample(times)
    for frame in frames:
        rendered = render(sample.scene, frame.pts_time, sample.width, sample.height)
        for actor in sample.scene.actors:
            expected = mask_of(rendered, actor.color(frame.pts_time)).sum()
            decoded = mask_of(frame.rgb, actor.color(frame.pts_time)).sum()
            assert decoded == pytest.approx(expected, rel=0.1), (frame.time, actor.shape)


def test_rendering_is_the_same_at_any_size_once_squeezed():
    """The model sees every video squeezed to a square: sizes only change the squeeze."""
    scene, times = random_clip_scene(np.random.default_rng(5), aspect=4 / 3)
    small, large = render(scene, times[0], 160, 120), render(scene, times[0], 640, 480)
    shrunk = cv2.resize(large, (160, 120), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - small).mean() < 2.0


def test_vfr_frame_times_must_start_at_zero_and_increase(tmp_path):
    with pytest.raises(ValueError, match="start at 0"):
        write_scene_video(tmp_path / "x.mp4", red_then_blue(), frame_times=[0.0, 0.5, 0.5])
