"""Train the demo GIT checkpoint (``src/videoqa/demo_model``) on clips of the shapes world.

The shipped checkpoint is a 4:3 one (built from scratch by this script as it was at commit
9eb52f3, which squeezed 4:3 frames to 32x32) fine-tuned on every aspect by two commands, then
taught presence questions ("is there a red circle?" yes/no, with the word "yes" added to its
vocabulary) by a third (CPU, fixed seeds; docs/demo.md)::

    mkdir -p /tmp/demo_4x3 && git archive 9eb52f3 src/videoqa/demo_model | tar -x -C /tmp/demo_4x3
    python tools/train_demo_model.py --resume /tmp/demo_4x3/src/videoqa/demo_model \
        --output /tmp/demo_fit --steps 1500 --lr 1e-3 --seed 2 --pool 8000 --held-out 200 \
        --eval-every 250 --tasks caption=0.25,shape=0.3,color=0.25,count=0.1,direction=0.1
    python tools/train_demo_model.py --resume /tmp/demo_fit --output /tmp/demo_aspects \
        --steps 600 --lr 5e-4 --seed 3 --pool 6000 --held-out 200 --eval-every 200 \
        --tasks caption=0.3,shape=0.3,color=0.1,count=0.05,direction=0.25
    python tools/train_demo_model.py --resume /tmp/demo_aspects --output src/videoqa/demo_model \
        --steps 1200 --lr 6e-4 --seed 4 --pool 6000 --held-out 200 --eval-every 200 \
        --tasks caption=0.22,shape=0.18,color=0.1,count=0.08,direction=0.12,presence=0.3

(``/tmp/demo_aspects`` is also in git: ``git archive a8019a4 src/videoqa/demo_model``.)
Resuming a checkpoint whose vocabulary is shorter than today's adds rows for the new words to
the word embeddings and the output layer; the old words keep their ids (new words are appended
to ``VOCABULARY``). Without ``--resume`` it trains from scratch (2,000 steps by default).

Frames go the way the product feeds them: rendered at an ordinary video size of the aspect
ratios people film in (4:3, 16:9, 9:16 phone video, 1:1, 3:4, 21:9), converted to yuv420p and
resized by swscale (bicubic, through PyAV, as ``videoqa.media.FrameSampler`` does) to fit the
model's 32x32 with the aspect kept, then letterboxed on black and normalised by the engine's
own preprocessing (the checkpoint's default fit, ``pad``). Some clips are JPEG-compressed
first, so codec artifacts are not new to the model. A pool of rendered clips is made once and
reused with cheap augmentation (noise on the picture, and time reversal with the direction
answer flipped), because rendering every step would cost more than the training itself.
Held-out exact match is measured at 4:3 (320x240), 16:9 (1280x720) and 9:16 (720x1280).

Recipe (what made direction learnable, see docs/demo.md): ``initializer_range`` 0.1 in the text
and vision configs, temporal embeddings drawn with std 1.0, and 10x the learning rate for the
temporal and vision position embeddings.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from videoqa.demo import (
    COLORS,
    OPPOSITE,
    VOCABULARY,
    ClipTruth,
    caption_of,
    presence_questions,
    questions_for,
    random_clip_scene,
    render,
)
from videoqa.demo.world import BACKGROUND, Scene
from videoqa.engine import FramePreprocessing

logger = logging.getLogger("videoqa.tools.train_demo_model")

FRAMES = 6
IMAGE_SIZE = 32
PATCH_SIZE = 8
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
PREPROCESSOR_CONFIG = {
    "image_processor_type": "CLIPImageProcessor",
    "processor_class": "GitProcessor",
    "do_resize": True,
    "size": {"shortest_edge": IMAGE_SIZE},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": CLIP_MEAN,
    "image_std": CLIP_STD,
    "do_convert_rgb": True,
    # The checkpoint's own fit (read by videoqa's engine): the whole frame, letterboxed. Its
    # processor above (short side, centre crop, like Microsoft's) is what --fit crop uses.
    "videoqa_fit": "pad",
}
#: Video sizes the pool is rendered at, by aspect ratio, and how often each aspect is drawn
#: (up to 854x480: larger ones cost more to render and look the same once scaled to 32 pixels).
RENDER_SIZES: dict[str, tuple[float, tuple[tuple[int, int], ...]]] = {
    "4:3": (0.25, ((320, 240), (640, 480), (256, 192), (400, 300))),
    "16:9": (0.3, ((640, 360), (512, 288), (854, 480), (428, 240))),
    "9:16": (0.25, ((360, 640), (288, 512), (480, 854), (240, 428))),
    "1:1": (0.07, ((480, 480), (240, 240))),
    "3:4": (0.07, ((480, 640), (240, 320))),
    "21:9": (0.06, ((840, 360), (1280, 548))),
}
#: The aspects the held-out accuracy is measured at (each at its own video size).
HELD_OUT_SIZES = {"4:3": (320, 240), "16:9": (1280, 720), "9:16": (720, 1280)}
#: How often each kind of target is trained.
TASK_WEIGHTS = {
    "caption": 0.2,
    "direction": 0.1,
    "color": 0.2,
    "shape": 0.22,
    "count": 0.1,
    "presence": 0.18,
}
PREPROCESSING = FramePreprocessing.from_config(PREPROCESSOR_CONFIG, image_size=IMAGE_SIZE)


def build_tokenizer():
    """Word-level BERT tokenizer over the world's vocabulary (checked: no silent fallback)."""
    from transformers import BertTokenizerFast

    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *VOCABULARY))}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    if len(tokenizer) != len(vocab):
        raise RuntimeError(f"tokenizer has {len(tokenizer)} tokens, expected {len(vocab)}")
    return tokenizer


def build_model(tokenizer, *, seed: int, vision_hidden: int = 64):
    from transformers import GitConfig, GitForCausalLM

    config = GitConfig(
        vision_config={
            "hidden_size": vision_hidden,
            "intermediate_size": 4 * vision_hidden,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH_SIZE,
            "initializer_range": 0.1,
        },
        vocab_size=len(tokenizer),
        hidden_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        initializer_range=0.1,
        num_image_with_embedding=FRAMES,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(seed)
    model = GitForCausalLM(config)
    with torch.no_grad():
        for embedding in model.git.img_temporal_embedding:
            embedding.normal_(0.0, 1.0)
    return model


class ClipPool:
    """Rendered clips letterboxed into the model's input, with their ground truth and where in
    the square each clip's picture is (``content``: the rest is the black letterbox)."""

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        jpeg_share: float = 0.3,
        sizes: tuple[tuple[int, int], ...] | None = None,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.frames = np.empty((size, FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
        self.content = np.zeros((size, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        self.truths: list[ClipTruth] = []
        to_yuv, to_model = VideoReformatter(), VideoReformatter()
        aspects = list(RENDER_SIZES)
        weights = np.array([RENDER_SIZES[a][0] for a in aspects])
        started = time.monotonic()
        for index in range(size):
            if sizes is None:
                choices = RENDER_SIZES[aspects[rng.choice(len(aspects), p=weights / weights.sum())]]
                width, height = choices[1][rng.integers(len(choices[1]))]
            else:
                width, height = sizes[rng.integers(len(sizes))]
            fit_width, fit_height = PREPROCESSING.letterbox_size(width, height)
            scene, times = random_clip_scene(rng, frames=FRAMES, aspect=width / height)
            background = tuple(int(np.clip(v + rng.integers(-14, 15), 0, 255)) for v in BACKGROUND)
            scene = Scene(scene.actors, background)
            palette = {
                name: tuple(int(np.clip(v + rng.integers(-14, 15), 0, 255)) for v in rgb)
                for name, rgb in COLORS.items()
            }
            quality = int(rng.integers(25, 90)) if rng.random() < jpeg_share else None
            for position, time_ in enumerate(times):
                rgb = render(scene, time_, width, height, colors=palette)
                if quality is not None:
                    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                    _, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
                    rgb = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                frame = to_yuv.reformat(av.VideoFrame.from_ndarray(rgb, "rgb24"), format="yuv420p")
                small = to_model.reformat(
                    frame,
                    format="rgb24",
                    width=fit_width,
                    height=fit_height,
                    interpolation="BICUBIC",
                )
                self.frames[index, position] = PREPROCESSING.letterbox(small.to_ndarray())
            self.content[index] = PREPROCESSING.letterbox(
                np.ones((fit_height, fit_width, 3), dtype=np.uint8)
            )[..., 0].astype(bool)
            self.truths.append(scene.truth(times))
            if (index + 1) % 2000 == 0:
                elapsed = time.monotonic() - started
                logger.info("pool %d/%d clips (%.0f s)", index + 1, size, elapsed)


def target_text(truth: ClipTruth, task: str, rng: np.random.Generator) -> tuple[str, str]:
    """(prompt, answer) for one task; the prompt is empty for a caption."""
    if task == "caption":
        return "", caption_of(truth)
    if task == "presence":  # yes or no, evenly, whatever is on screen
        answer = ("yes", "no")[rng.integers(2)]
        choices = [q for q in presence_questions(truth) if q.answer == answer]
    else:
        choices = [q for q in questions_for(truth) if q.kind == task]
    question = choices[rng.integers(len(choices))]
    return question.text, question.answer


def encode_batch(tokenizer, pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids ``[CLS] prompt answer [SEP]`` (right-padded) and labels on answer + ``[SEP]``."""
    rows, label_rows = [], []
    for prompt, answer in pairs:
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids if prompt else []
        answer_ids = tokenizer(answer, add_special_tokens=False).input_ids
        ids = [tokenizer.cls_token_id, *prompt_ids, *answer_ids, tokenizer.sep_token_id]
        labels = [-100] * (1 + len(prompt_ids)) + [*answer_ids, tokenizer.sep_token_id]
        rows.append(ids)
        label_rows.append(labels)
    length = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), -100, dtype=torch.long)
    for index, (ids, row_labels) in enumerate(zip(rows, label_rows, strict=True)):
        input_ids[index, : len(ids)] = torch.tensor(ids)
        labels[index, : len(row_labels)] = torch.tensor(row_labels)
    return input_ids, labels


def pixel_tensor(frames: np.ndarray, preprocessing: FramePreprocessing) -> torch.Tensor:
    """(clips, frames, 3, H, W) normalised exactly as the engine does it (letterboxed)."""
    clips = frames.shape[0]
    flat = [frame for clip in frames for frame in clip]
    pixels = preprocessing(flat, fit="pad")
    return pixels.view(clips, FRAMES, *pixels.shape[1:])


def make_batch(
    pool: ClipPool,
    indices,
    tokenizer,
    preprocessing,
    rng,
    *,
    augment: bool,
    tasks: list[str] | None = None,
    task_weights: dict[str, float] | None = None,
):
    frames = pool.frames[indices].astype(np.float32)
    truths = [pool.truths[i] for i in indices]
    if augment:
        reverse = rng.random(len(indices)) < 0.3
        for row in np.nonzero(reverse)[0]:
            frames[row] = frames[row, ::-1]
            truth = truths[row]
            if truth.direction:
                truths[row] = replace(truth, direction=OPPOSITE[truth.direction])
        sigma = rng.uniform(0, 4, size=(len(indices), 1, 1, 1, 1))
        # Noise on the picture only: the letterbox stays black, as the engine makes it.
        content = pool.content[indices][:, None, :, :, None]
        frames = frames + rng.normal(size=frames.shape) * sigma * content
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    if tasks is None:
        mix = task_weights or TASK_WEIGHTS
        names, weights = list(mix), [w / sum(mix.values()) for w in mix.values()]
        tasks = [names[i] for i in rng.choice(len(names), size=len(indices), p=weights)]
    pairs = [target_text(truth, task, rng) for truth, task in zip(truths, tasks, strict=True)]
    input_ids, labels = encode_batch(tokenizer, pairs)
    return pixel_tensor(frames, preprocessing), input_ids, labels, tasks


def loss_and_exact(model, pixels, input_ids, labels):
    """Token cross-entropy on the labelled text, and per row whether every label is the argmax
    (teacher-forced, which for exact match is the same as greedy decoding)."""
    logits = model(input_ids=input_ids, pixel_values=pixels).logits
    text_logits = logits[:, -input_ids.shape[1] : -1, :]
    targets = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(
        text_logits.reshape(-1, text_logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )
    mask = targets != -100
    correct = (text_logits.argmax(-1) == targets) | ~mask
    return loss, correct.all(dim=1)


def evaluate(model, pool, tokenizer, preprocessing, *, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    model.eval()
    results: dict[str, list[bool]] = {}
    with torch.no_grad():
        for task in TASK_WEIGHTS:
            for first in range(0, len(pool.truths), 128):
                indices = np.arange(first, min(first + 128, len(pool.truths)))
                pixels, input_ids, labels, _ = make_batch(
                    pool,
                    indices,
                    tokenizer,
                    preprocessing,
                    rng,
                    augment=False,
                    tasks=[task] * len(indices),
                )
                _, exact = loss_and_exact(model, pixels, input_ids, labels)
                results.setdefault(task, []).extend(exact.tolist())
    model.train()
    return {task: float(np.mean(values)) for task, values in results.items()}


def save_checkpoint(model, tokenizer, folder: Path, metrics: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
    (folder / "training.json").write_text(json.dumps(metrics, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("src/videoqa/demo_model"))
    parser.add_argument("--log", type=Path, default=None, help="also log progress to this file")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--pool", type=int, default=12000, help="rendered training clips")
    parser.add_argument("--held-out", type=int, default=256, help="held-out clips per aspect")
    parser.add_argument("--seed", type=int, default=0)
    # One thread: on a 2-core machine shared with other work, two threads made each step
    # about 7x slower (measured 8 s against 1.2 s), as each op waits for the busier core.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--vision-hidden", type=int, default=64)
    parser.add_argument("--vision-lr-scale", type=float, default=1.0)
    parser.add_argument(
        "--tasks",
        default=",".join(f"{task}={weight}" for task, weight in TASK_WEIGHTS.items()),
        help="task mix, e.g. caption=0.25,shape=0.28,color=0.22,count=0.15,direction=0.1",
    )
    parser.add_argument("--resume", type=Path, default=None, help="start from this checkpoint")
    args = parser.parse_args()

    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if args.log:
        handlers.append(logging.FileHandler(args.log))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers)
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    mix = {name: float(weight) for name, weight in (p.split("=") for p in args.tasks.split(","))}
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=args.seed, vision_hidden=args.vision_hidden)
    if args.resume:
        from transformers import GitForCausalLM

        model = GitForCausalLM.from_pretrained(args.resume, use_safetensors=True)
        logger.info("continuing from %s", args.resume)
        learnt = model.config.vocab_size
        if learnt < len(tokenizer):
            # New words are appended to the vocabulary (ids of the old ones unchanged): add
            # their rows to the word embeddings and to the output layer, keeping the old rows.
            model.resize_token_embeddings(len(tokenizer))
            logger.info("vocabulary %d -> %d words", learnt, len(tokenizer))
    preprocessing = PREPROCESSING
    parameters = sum(p.numel() for p in model.parameters())
    logger.info("model: %d parameters, vocabulary %d", parameters, len(tokenizer))

    train_pool = ClipPool(args.pool, seed=args.seed + 1)
    held_out = {
        aspect: ClipPool(args.held_out, seed=args.seed + 1_000_003, sizes=(size,))
        for aspect, size in HELD_OUT_SIZES.items()
    }
    logger.info("pools ready")

    fast = [
        p
        for n, p in model.named_parameters()
        if "img_temporal_embedding" in n or "vision_model.embeddings.position_embedding" in n
    ]
    fast_ids = {id(p) for p in fast}
    vision = [
        p
        for n, p in model.named_parameters()
        if ("image_encoder" in n or "visual_projection" in n) and id(p) not in fast_ids
    ]
    vision_ids = {id(p) for p in vision}
    text = [p for p in model.parameters() if id(p) not in fast_ids | vision_ids]
    optimizer = torch.optim.AdamW(
        [
            {"params": text, "lr": args.lr},
            {"params": vision, "lr": args.lr * args.vision_lr_scale},
            {"params": fast, "lr": args.lr * 10},
        ],
        weight_decay=0.01,
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    warmup = max(args.steps // 25, 1)

    model.train()
    started = time.monotonic()
    metrics: dict = {
        "resumed_from": str(args.resume) if args.resume else None,
        "parameters": parameters,
        "tasks": mix,
        "lr": args.lr,
        "pool": args.pool,
        "seed": args.seed,
        "steps": args.steps,
        "batch": args.batch,
    }
    for step in range(1, args.steps + 1):
        progress = (
            step / warmup
            if step <= warmup
            else 0.1
            + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(args.steps - warmup, 1)))
        )
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * progress
        indices = rng.integers(len(train_pool.truths), size=args.batch)
        pixels, input_ids, labels, _ = make_batch(
            train_pool, indices, tokenizer, preprocessing, rng, augment=True, task_weights=mix
        )
        loss, _ = loss_and_exact(model, pixels, input_ids, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 25 == 0:
            logger.info("step %d loss %.4f (%.0f s)", step, loss.item(), time.monotonic() - started)
        if step % args.eval_every == 0 or step == args.steps:
            accuracy = {
                aspect: evaluate(model, pool, tokenizer, preprocessing, seed=args.seed)
                for aspect, pool in held_out.items()
            }
            for aspect, values in accuracy.items():
                logger.info(
                    "step %d held-out exact match at %s %s",
                    step,
                    aspect,
                    {k: round(v, 3) for k, v in values.items()},
                )
            metrics.update(
                step=step,
                held_out_exact_match=accuracy,
                train_seconds=round(time.monotonic() - started),
            )
            save_checkpoint(model, tokenizer, args.output, metrics)
    logger.info("done in %.0f s; saved to %s", time.monotonic() - started, args.output)


if __name__ == "__main__":
    main()
