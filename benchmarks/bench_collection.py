"""Collection throughput: is decoding hidden behind inference, and how far is the engine from the
hardware?

Makes its own H.264 test files, then for randomly initialised full-size git-base-vatex
(captions, 15 tokens) and git-base-vqav2 (5 questions, 3 tokens; an image checkpoint, so 3
frames a clip, each answered and voted) measures clips per second:

* ``engine_only``   ``GitEngine.run_pixels`` on clips already decoded and preprocessed, the best
                    of a few batch sizes;
* ``sampler_only``  ``collection.decode_clips`` (FrameSampler and preprocessing) over every
                    file, in as many processes as the runner uses (at least one);
* ``pipeline``      the collection runner end to end, JSON, SRT and VTT sidecars written;
* ``baseline``      ``VideoQA.run`` one file after another, ``clip_batch_size=1``.

and the FLOP/s the engine and the pipeline achieve (the clip's FLOPs counted from the
architecture: image encoder, the decoder over the image tokens, every generated token).
A random model almost never emits ``[SEP]``, so every caption and answer runs to its limit.
Each measurement is repeated (``--rounds``, interleaved) and its best kept. On the CPU the
clock is CPU time over the cores (``--clock cpu``): the machine this was written on is shared,
and wall time there measures the neighbours as much as the code.

    python benchmarks/bench_collection.py --json                      # CPU
    python benchmarks/bench_collection.py --device cuda --files 32 --json
    python benchmarks/bench_collection.py --quick --json              # 2 short files, 2 rounds

One JSON object per model on its own line with ``--json``; otherwise a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import av
import numpy as np
import torch
from bench_engine import QUESTIONS, random_git_engine

from videoqa.collection import (
    DecodedClip,
    decode_clips,
    default_batch_size,
    default_workers,
    plan_file,
    run_collection,
)
from videoqa.pipeline import VideoQA

CAPTION_TOKENS, ANSWER_TOKENS = 15, 3
TASKS = {
    "git-base-vatex": {"questions": (), "captions": True},
    "git-base-vqav2": {"questions": tuple(QUESTIONS), "captions": False},
}


def write_video(path: Path, *, seconds: float, size: tuple[int, int], fps: int = 25) -> None:
    """Moving gradients and a bar: H.264 with B-frames and a 2 s GOP, like camera footage."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"g": str(2 * fps)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(round(seconds * fps)):
            rgb = np.empty((height, width, 3), np.uint8)
            rgb[..., 0] = (xs + 3 * index) % 256
            rgb[..., 1] = (ys + 2 * index) % 256
            rgb[..., 2] = ((xs // 40 + index // 10) % 2) * 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def gflop_per_clip(engine, frames: int, prompts: int, prompt_tokens: int, new_tokens: int) -> float:
    """Matrix FLOPs of one clip: image encoder per frame, decoder over the image tokens, then
    the prompts and every generated token (2 FLOPs per multiply-add)."""
    config = engine.model.config
    vision = config.vision_config
    d_v, ff_v = vision.hidden_size, vision.intermediate_size
    tokens = (vision.image_size // vision.patch_size) ** 2 + 1
    per_vision_layer = 2 * tokens * (4 * d_v**2 + 2 * d_v * ff_v) + 4 * tokens**2 * d_v
    patches = 2 * tokens * 3 * vision.patch_size**2 * d_v
    encoder = frames * (vision.num_hidden_layers * per_vision_layer + patches)
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    images = (frames if engine.kind == "video" else 1) * tokens
    per_frame_clip = frames if engine.kind == "image" else 1  # image models: a row per frame
    decoder_images = per_frame_clip * (
        2 * images * d_v * d  # visual projection
        + (layers - 1) * (2 * images * (4 * d**2 + 2 * d * ff) + 4 * images**2 * d)
        + 2 * images * 2 * d**2  # the last layer: keys and values only
    )
    text_tokens = prompt_tokens + new_tokens
    per_text_token = layers * (2 * (4 * d**2 + 2 * d * ff) + 4 * (images + text_tokens) * d)
    text = per_frame_clip * prompts * (
        text_tokens * per_text_token + new_tokens * 2 * d * config.vocab_size
    )
    return (encoder + decoder_images + text) / 1e9


CLOCK = "wall"


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that ended (decoder processes)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def clips_per_second(run: Callable[[], int], device: str) -> float:
    """Clips per second of wall time, or with ``--clock cpu`` per second of the machine's
    whole CPU (CPU seconds used over its cores): what the run would take with the machine to
    itself, steady on a shared one, and fair to decoding, whose CPU time is counted too."""
    if device == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    clips = run()
    if device == "cuda":
        torch.cuda.synchronize()
    if CLOCK == "cpu":
        return clips / ((_cpu_seconds() - cpu_start) / (os.cpu_count() or 1))
    return clips / (time.perf_counter() - start)


def _decode_files(plans: list) -> int:
    return sum(
        isinstance(item, DecodedClip) for plan in plans for item in decode_clips(plan)
    )


def bench_model(name: str, videos: list[Path], args: argparse.Namespace) -> dict:
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    engine = random_git_engine(name, args.device, dtype)
    task = TASKS[name]
    if task["captions"]:
        qa = VideoQA.from_engines(caption_engine=engine)
    else:
        qa = VideoQA.from_engines(answer_engine=engine)
    options = dict(questions=task["questions"], captions=task["captions"],
                   max_new_tokens=ANSWER_TOKENS, caption_max_new_tokens=CAPTION_TOKENS)  # fmt: skip
    plans = [plan_file(qa, video, position=i, **options) for i, video in enumerate(videos)]
    clips = sum(len(plan.clips) for plan in plans)
    role = plans[0].roles[0]

    # Engine only: pixels made once, then the best of a few batch sizes.
    pixels = [item.pixels[role.task] for item in decode_clips(plans[0])
              if isinstance(item, DecodedClip)]  # fmt: skip
    prompts = (engine.question_prompts(task["questions"], ANSWER_TOKENS) if task["questions"]
               else engine.caption_prompts())  # fmt: skip
    tokens = ANSWER_TOKENS if task["questions"] else CAPTION_TOKENS
    batches = [1, 4] if args.quick and args.device == "cpu" else (
        [1, 2, 4, 8] if args.device == "cpu" else [8, 16, 32, 64])  # fmt: skip

    def run_engine(chosen: list, batch: int, new_tokens: int = tokens) -> int:
        for first in range(0, len(chosen), batch):
            stacked = np.stack(chosen[first : first + batch])
            if role.kind == "image":  # every frame is a row of its own
                stacked = stacked.reshape(-1, *role.input_shape[1:])
            tensor = torch.from_numpy(stacked)
            if args.device == "cuda":
                tensor = tensor.pin_memory()
            engine.run_pixels(tensor, prompts, max_new_tokens=new_tokens)
        return len(chosen)

    run_engine(pixels[:1], 1, 1)  # warm-up: allocator, kernels, lazy imports
    workers = args.workers if args.workers is not None else default_workers(args.device,
                                                                           len(videos))
    batch_size = args.batch_size or default_batch_size(args.device)  # the runner's default
    sampler_processes = max(1, workers)

    def run_sampler() -> int:
        if sampler_processes == 1:
            return _decode_files(plans)
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(sampler_processes) as pool:
            return sum(pool.map(_decode_files, [[plan] for plan in plans]))

    out = tempfile.mkdtemp(prefix="bench-collection-")

    def run_pipeline() -> int:
        done = 0
        for outcome in run_collection(qa, videos, workers=workers, batch_size=batch_size,
                                      formats=("json", "srt", "vtt"), output_dir=out,
                                      overwrite=True, **options):  # fmt: skip
            assert outcome.ok, outcome.error
            done += len(outcome.report.clips)
        return done

    def run_baseline() -> int:  # qa's clip_batch_size is 1, today's default
        return sum(len(qa.run(video, **options).clips) for video in videos)

    # Rounds interleave every measurement and keep each one's best: on a shared machine the
    # load changes from minute to minute, and the best is the least disturbed.
    engine_rates: dict[int, float] = {}
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for batch in sorted({*batches, batch_size}):
            chosen = [pixels[i % len(pixels)] for i in range(max(batch, 2))]
            rate = clips_per_second(partial(run_engine, chosen, batch), args.device)
            engine_rates[batch] = max(rate, engine_rates.get(batch, 0.0))
        for key, run in (("sampler", run_sampler), ("pipeline", run_pipeline),
                         ("baseline", run_baseline)):  # fmt: skip
            best[key] = max(clips_per_second(run, args.device), best.get(key, 0.0))
    best_batch = max(engine_rates, key=engine_rates.__getitem__)
    sampler, pipeline, baseline = best["sampler"], best["pipeline"], best["baseline"]

    frames = role.frames_per_clip
    prompt_tokens = max(len(p) for p in prompts)
    gflop = gflop_per_clip(engine, frames, len(prompts), prompt_tokens, tokens)
    return {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else
        f"{platform.machine()} CPU, {os.cpu_count()} cores",  # fmt: skip
        "model": name,
        "files": len(videos),
        "clips": clips,
        "engine_only_clips_per_s": round(engine_rates[best_batch], 4),
        "engine_only_batch": best_batch,
        "engine_only_by_batch": {str(b): round(r, 4) for b, r in engine_rates.items()},
        "sampler_only_clips_per_s": round(sampler, 4),
        "sampler_processes": sampler_processes,
        "pipeline_clips_per_s": round(pipeline, 4),
        "pipeline_workers": workers,
        "pipeline_batch_size": batch_size,
        "baseline_clips_per_s": round(baseline, 4),
        "pipeline_over_min_engine_sampler": round(pipeline / min(engine_rates[best_batch],
                                                                 sampler), 3),  # fmt: skip
        "pipeline_over_baseline": round(pipeline / baseline, 3),
        "gflop_per_clip": round(gflop, 1),
        "engine_only_tflops": round(gflop * engine_rates[best_batch] / 1e3, 4),
        "pipeline_tflops": round(gflop * pipeline / 1e3, 4),
        "dtype": str(dtype).removeprefix("torch."),
        "torch_threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "clock": CLOCK,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--files", type=int, default=None,
                        help="test files [default: 4 on the CPU (2 with --quick), 32 on CUDA]")
    parser.add_argument("--seconds", type=float, default=None,
                        help="length of each file [default: 20 s on the CPU (10 with --quick), "
                             "120 s on CUDA]")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="the runner's [default: auto]")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="the runner's [default: the engine's best batch]")
    parser.add_argument("--models", default=",".join(TASKS), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=None,
                        help="repeat every measurement, keep the best [default: 3, 2 with --quick]")
    parser.add_argument("--clock", choices=["wall", "cpu"], default=None,
                        help="wall: elapsed time (CUDA default); cpu: CPU seconds of this "
                             "process and its children over the cores (CPU default: steady "
                             "on a shared machine)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="fewer, shorter files")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_collection: --device cuda but torch sees no CUDA GPU")
    cuda = args.device == "cuda"
    args.rounds = args.rounds or (2 if args.quick else 3)
    global CLOCK
    CLOCK = args.clock or ("wall" if cuda else "cpu")
    files = args.files or (32 if cuda else 2 if args.quick else 4)
    seconds = args.seconds or (120.0 if cuda else 10.0 if args.quick else 20.0)
    size = (1280, 720) if cuda else (640, 360)
    with tempfile.TemporaryDirectory() as folder:
        videos = [Path(folder) / f"clip{number:03d}.mp4" for number in range(files)]
        write_video(videos[0], seconds=seconds, size=size)
        for video in videos[1:]:  # the same content: decoding costs the same per file
            video.write_bytes(videos[0].read_bytes())
        for name in args.models.split(","):
            result = bench_model(name, videos, args)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(f"{name}: {result['clips']} clips of {files} files on {result['device']}")
                for key in ("engine_only", "sampler_only", "pipeline", "baseline"):
                    print(f"  {key:13} {result[key + '_clips_per_s']:9.3f} clips/s")
                print(f"  pipeline / min(engine, sampler) "
                      f"{result['pipeline_over_min_engine_sampler']:.3f}; "
                      f"engine {result['engine_only_tflops']:.4f} TFLOP/s "
                      f"({result['gflop_per_clip']:.0f} GFLOP a clip)", flush=True)


if __name__ == "__main__":
    main()
