"""Held-out accuracy of the demo checkpoint, per question type, on raw and on encoded frames.

    python tools/eval_demo_model.py                       # the shipped checkpoint
    python tools/eval_demo_model.py --model /tmp/run --clips 300 --codec libx264 --codec libvpx-vp9
    python tools/eval_demo_model.py --size 1280x720 --size 720x1280 --fit pad --codec libx265
    python tools/eval_demo_model.py --size 1280x720 --no-raw --formats float32,bfloat16,int8

Held-out clips come from a seed the training never used, drawn for each video size's aspect
ratio (``--size``, repeatable; default 320x240). "raw" feeds the rendered frames straight to
the engine (which resizes them); each codec writes all clips into one video of that size, two
seconds a clip, and reads them back the way the product does: clips planned by
``videoqa.clips``, frames decoded and resized by ``videoqa.media.FrameSampler``. ``--fit``
says how a frame goes into the model's square (default: the checkpoint's own). The reversed
check asks "which way does it move?" with the six frames in reverse order: a model that reads
frame order answers the opposite direction. ``presence_score`` is how ``videoqa find`` decides:
the presence questions ("is there a red circle?") answered yes when P(yes) / (P(yes) + P(no))
from the first token is over 0.5 (``presence`` is the generated answer's exact match).
``--formats`` scores the same decoded clips with the checkpoint in each format (float32,
bfloat16, int8: dynamic int8 Linear layers) and counts the answers equal to the first format's.
"""

from __future__ import annotations

import argparse
import json
import math
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
from videoqa.errors import ModelError
from videoqa.media import FrameSampler
from videoqa.models import resolve_model

WIDTH, HEIGHT = 320, 240
SECONDS_PER_CLIP = 2.0
#: Seed of the held-out scenes (+ --seed): the training pools used 1 to 5 and 1_000_003 to
#: 1_000_007.
HELD_OUT_SEED = 7_777_777
#: Encoder options by codec: VP9 at libvpx's realtime speed, as its default (best quality) took
#: 2.7x longer here for 720p (the clips are scaled to 32 pixels anyway).
CODEC_OPTIONS = {"libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"}}


def score(
    engine: GitEngine,
    clips: Sequence[Sequence[np.ndarray]],
    truths: Sequence[ClipTruth],
    fit: str | None = None,
):
    """Accuracy per question kind, caption exact match and the reversed-direction rates, and
    under ``"texts"`` every generated text in order (to compare formats)."""
    right: dict[str, list[bool]] = defaultdict(list)
    texts: list[str] = []
    reversed_same, reversed_opposite = [], []
    try:
        engine.yes_no_ids()
        scores_yes_no = True
    except ModelError:  # a checkpoint from before "yes" was a word: presence_score stays nan
        scores_yes_no = False
    captions = engine.caption(list(clips), fit=fit)
    for frames, truth, caption in zip(clips, truths, captions, strict=True):
        right["caption"].append(caption.text == caption_of(truth))
        texts.append(caption.text)
        questions = questions_for(truth)
        answers = engine.answer([frames], [q.text for q in questions], fit=fit)[0]
        for question, answer in zip(questions, answers, strict=True):
            right[question.kind].append(answer.text == question.answer)
            texts.append(answer.text)
        presence = [q for q in questions if q.kind == "presence"] if scores_yes_no else []
        yes = engine.yes_probability([frames], [q.text for q in presence], fit=fit)[0]
        for question, probability in zip(presence, yes, strict=True):
            right["presence_score"].append((probability > 0.5) == (question.answer == "yes"))
        if truth.direction is not None:
            backwards = engine.answer([list(frames)[::-1]], ["which way does it move?"], fit=fit)[
                0
            ][0]
            reversed_same.append(backwards.text == truth.direction)
            reversed_opposite.append(backwards.text == OPPOSITE[truth.direction])
    kinds = (*QUESTION_KINDS, "presence_score", "caption")
    result = {kind: float(np.mean(right[kind])) if right[kind] else math.nan for kind in kinds}
    result["reversed_still_correct"] = float(np.mean(reversed_same))
    result["reversed_flipped"] = float(np.mean(reversed_opposite))
    result["questions"] = sum(len(right[kind]) for kind in QUESTION_KINDS)
    result["texts"] = texts
    return result


FORMATS = {
    "float32": ("float32", None),
    "bfloat16": ("bfloat16", None),
    "int8": ("float32", "int8"),
}
"""``--formats`` names: (dtype, quantize) for ``GitEngine.load``."""


def encoded_clips(
    scenes,
    codec: str,
    folder: Path,
    engine: GitEngine,
    *,
    size: tuple[int, int],
    fit: str | None,
    seed: int,
):
    """Write every held-out scene into one video and read the clips back as the product does."""
    width, height = size
    sequence = in_sequence([scene for scene, _ in scenes], seconds_each=SECONDS_PER_CLIP)
    suffix = ".webm" if "vpx" in codec else ".mp4"
    path = folder / f"held_out_seed{seed}_{len(scenes)}_{codec}_{width}x{height}{suffix}"
    duration = len(scenes) * SECONDS_PER_CLIP
    if not path.exists():  # a --videos folder keeps them for the next run (same seed)
        partial = path.with_name(f"partial_{path.name}")
        write_scene_video(
            partial,
            sequence,
            duration=duration,
            width=width,
            height=height,
            codec=codec,
            options=CODEC_OPTIONS.get(codec),
        )
        partial.rename(path)
    frames_per_clip = engine.frames_per_clip or 1
    plan = plan_clips(duration, frames_per_clip=frames_per_clip, clip_length=SECONDS_PER_CLIP)
    clips, truths = [], []
    with FrameSampler(path, size=engine.frame_size(width, height, fit=fit)) as sampler:
        for clip in plan:
            clips.append([frame.rgb for frame in sampler.sample(clip.frame_times)])
            truths.append(sequence.truth(clip.frame_times))
    return clips, truths, path.stat().st_size


def label(name: str, form: str, formats: Sequence[str]) -> str:
    """A result's name: the input, and the format when several are compared."""
    return f"{name} {form}" if len(formats) > 1 else name


def video_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (``1280x720``) as a pair of even integers."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT") from None
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text}: width and height must be even, at least 16")
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--codec", action="append", help="libx264 (default), libvpx-vp9, ...")
    parser.add_argument(
        "--size", type=video_size, action="append", help="WIDTHxHEIGHT (default 320x240)"
    )
    parser.add_argument(
        "--fit",
        choices=("crop", "pad"),
        default=None,
        help="how frames go into the model's square (default: the checkpoint's)",
    )
    parser.add_argument("--no-raw", action="store_true", help="only the encoded videos")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--videos",
        type=Path,
        default=None,
        help="keep the encoded held-out videos here and reuse them (default: a temporary folder)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--formats",
        default="float32",
        help=f"comma-separated, of {', '.join(FORMATS)}: each scores the same clips; "
        "answers are compared with the first's",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    formats = args.formats.split(",")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"--formats: unknown {unknown}")
    engines = {}
    for name in formats:
        dtype, quantize = FORMATS[name]
        engines[name] = GitEngine.load(
            resolve_model(args.model), device="cpu", dtype=dtype, quantize=quantize
        )
    engine = engines[formats[0]]
    fit = engine.resolve_fit(args.fit)
    frames_per_clip = engine.frames_per_clip or 1
    results: dict[str, dict] = {}
    for width, height in args.size or [(WIDTH, HEIGHT)]:
        rng = np.random.default_rng(HELD_OUT_SEED + args.seed)
        scenes = [
            random_clip_scene(rng, frames=frames_per_clip, aspect=width / height)
            for _ in range(args.clips)
        ]
        if not args.no_raw:
            started = time.monotonic()
            raw = [[render(scene, t, width, height) for t in times] for scene, times in scenes]
            truths = [scene.truth(times) for scene, times in scenes]
            for form, each in engines.items():
                results[label(f"{width}x{height} raw", form, formats)] = score(
                    each, raw, truths, fit
                )
            del raw  # 200 clips of 720p frames are 3 GB
            print(f"{width}x{height} raw frames: {time.monotonic() - started:.0f} s", flush=True)
        with tempfile.TemporaryDirectory() as temporary:
            folder = args.videos or Path(temporary)
            folder.mkdir(parents=True, exist_ok=True)
            for codec in args.codec or ["libx264"]:
                started = time.monotonic()
                clips, truths, size = encoded_clips(
                    scenes, codec, folder, engine, size=(width, height), fit=fit, seed=args.seed
                )
                for form, each in engines.items():
                    name = label(f"{width}x{height} {codec}", form, formats)
                    results[name] = score(each, clips, truths, fit)
                    results[name]["video_bytes"] = size
                print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)

    columns = (
        *QUESTION_KINDS,
        "presence_score",
        "caption",
        "reversed_still_correct",
        "reversed_flipped",
    )
    texts = {name: result.pop("texts") for name, result in results.items()}
    if len(formats) > 1:  # the share of generated texts equal to the first format's
        for name, result in results.items():
            reference = texts[name.rsplit(" ", 1)[0] + f" {formats[0]}"]
            same = [a == b for a, b in zip(texts[name], reference, strict=True)]
            result[f"same_as_{formats[0]}"] = float(np.mean(same))
    if len(formats) > 1:
        columns = (*columns, f"same_as_{formats[0]}")
    print(f"{args.clips} held-out clips per size, model {args.model}, fit {fit}")
    print(f"{'input':<30}" + "".join(f"{c[:14]:>15}" for c in columns))
    for name, result in results.items():
        print(f"{name:<30}" + "".join(f"{result[c]:>15.3f}" for c in columns))
    if args.json:
        summary = {
            "clips": args.clips,
            "model": args.model,
            "fit": fit,
            "formats": formats,
            "results": results,
        }
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
