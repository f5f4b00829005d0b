"""Held-out accuracy of the demo checkpoint, per question type, on raw and on encoded frames.

    python tools/eval_demo_model.py                       # the shipped checkpoint
    python tools/eval_demo_model.py --model /tmp/run --clips 300 --codec libx264 --codec libvpx-vp9

Held-out clips come from a seed the training never used. "raw" feeds the rendered 320x240
frames straight to the engine (which resizes them); each codec writes all clips into one
320x240 video, two seconds a clip, and reads them back the way the product does: clips planned
by ``videoqa.clips``, frames decoded and resized by ``videoqa.media.FrameSampler``. The
reversed check asks "which way does it move?" with the six frames in reverse order: a model
that reads frame order answers the opposite direction.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from videoqa.clips import plan_clips
from videoqa.demo import (
    OPPOSITE,
    QUESTION_KINDS,
    ClipTruth,
    caption_of,
    in_sequence,
    questions_for,
    random_clip_scene,
    render,
    write_scene_video,
)
from videoqa.engine import GitEngine
from videoqa.media import FrameSampler
from videoqa.models import resolve_model

WIDTH, HEIGHT = 320, 240
SECONDS_PER_CLIP = 2.0
#: Seed of the held-out scenes (+ --seed): the training pools use 1, 2, 1_000_003 and 1_000_004.
HELD_OUT_SEED = 7_777_777


def score(engine: GitEngine, clips: Sequence[Sequence[np.ndarray]], truths: Sequence[ClipTruth]):
    """Accuracy per question kind, caption exact match and the reversed-direction rates."""
    right: dict[str, list[bool]] = defaultdict(list)
    reversed_same, reversed_opposite = [], []
    captions = engine.caption(list(clips))
    for frames, truth, caption in zip(clips, truths, captions, strict=True):
        right["caption"].append(caption.text == caption_of(truth))
        questions = questions_for(truth)
        answers = engine.answer([frames], [q.text for q in questions])[0]
        for question, answer in zip(questions, answers, strict=True):
            right[question.kind].append(answer.text == question.answer)
        if truth.direction is not None:
            backwards = engine.answer([list(frames)[::-1]], ["which way does it move?"])[0][0]
            reversed_same.append(backwards.text == truth.direction)
            reversed_opposite.append(backwards.text == OPPOSITE[truth.direction])
    result = {kind: float(np.mean(right[kind])) for kind in (*QUESTION_KINDS, "caption")}
    result["reversed_still_correct"] = float(np.mean(reversed_same))
    result["reversed_flipped"] = float(np.mean(reversed_opposite))
    result["questions"] = sum(len(right[kind]) for kind in QUESTION_KINDS)
    return result


def encoded_clips(scenes, codec: str, folder: Path, frames_per_clip: int, engine: GitEngine):
    """Write every held-out scene into one video and read the clips back as the product does."""
    sequence = in_sequence([scene for scene, _ in scenes], seconds_each=SECONDS_PER_CLIP)
    suffix = ".webm" if "vpx" in codec else ".mp4"
    path = folder / f"held_out_{codec}{suffix}"
    duration = len(scenes) * SECONDS_PER_CLIP
    write_scene_video(path, sequence, duration=duration, width=WIDTH, height=HEIGHT, codec=codec)
    plan = plan_clips(duration, frames_per_clip=frames_per_clip, clip_length=SECONDS_PER_CLIP)
    clips, truths = [], []
    with FrameSampler(path, size=engine.frame_size(WIDTH, HEIGHT)) as sampler:
        for clip in plan:
            clips.append([frame.rgb for frame in sampler.sample(clip.frame_times)])
            truths.append(sequence.truth(clip.frame_times))
    return clips, truths, path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codec", action="append", help="libx264 (default), libvpx-vp9, ...")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(2)

    engine = GitEngine.load(resolve_model(args.model), device="cpu")
    frames_per_clip = engine.frames_per_clip or 1
    rng = np.random.default_rng(HELD_OUT_SEED + args.seed)
    scenes = [
        random_clip_scene(rng, frames=frames_per_clip, aspect=WIDTH / HEIGHT)
        for _ in range(args.clips)
    ]
    results: dict[str, dict] = {}
    started = time.monotonic()
    raw = [[render(scene, t, WIDTH, HEIGHT) for t in times] for scene, times in scenes]
    results["raw"] = score(engine, raw, [scene.truth(times) for scene, times in scenes])
    print(f"raw frames: {time.monotonic() - started:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for codec in args.codec or ["libx264"]:
            started = time.monotonic()
            clips, truths, size = encoded_clips(
                scenes, codec, Path(folder), frames_per_clip, engine
            )
            results[codec] = score(engine, clips, truths)
            results[codec]["video_bytes"] = size
            print(f"{codec}: {time.monotonic() - started:.0f} s", flush=True)

    columns = (*QUESTION_KINDS, "caption", "reversed_still_correct", "reversed_flipped")
    print(f"{args.clips} held-out clips ({WIDTH}x{HEIGHT}), model {args.model}")
    print(f"{'input':<12}" + "".join(f"{c[:14]:>15}" for c in columns))
    for name, result in results.items():
        print(f"{name:<12}" + "".join(f"{result[c]:>15.3f}" for c in columns))
    if args.json:
        args.json.write_text(json.dumps({"clips": args.clips, "results": results}, indent=2))


if __name__ == "__main__":
    main()
