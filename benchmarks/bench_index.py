"""Archive index speed and size (issue 13): ingest rate, search latency at 1,000,000 clip rows.

Synthetic reports, no model: each is what ``videoqa ask VIDEO -q "what color is the car?"
--caption`` writes for a 500-second video, 100 clips of 5 s, each with a caption and one
answer (so 200 clip rows per report). Captions come from a small grammar (12 colours, 36
subjects, 34 actions, 36 places, five sentence shapes: at a million clip rows, about 159,000
distinct captions among 500,000); a caption continues into the next clip with probability 0.6
and the answer with 0.8, so that runs of clips say the same thing, as held shots do.

The measurements, each printed and (``--json``) written together as one JSON object:

  ingest  ``--ingest`` reports written as JSON sidecars, then indexed the way ``videoqa index
          DIR`` does it (read, parse, insert; 500 per transaction): reports per minute
          (goal: 5,000 per minute)
  build   reports added (in memory, one transaction) until the index holds ``--rows`` clip
          rows (default 1,000,000); then the file's size per million clip rows
  search  ``--queries`` plain-word searches drawn from the grammar (one to three words, one
          in five with a --kind or --video filter; see queries()), 20 hits each like
          ``videoqa search`` and ``videoqa serve``'s search page, then the same with 100
          hits: p50, p95, max in ms, wall and CPU (goal: p95 <= 50 ms); then ``videos()``,
          the list ``videoqa serve`` reads to show the archive and find a page's videos

    python benchmarks/bench_index.py                   # 1M rows, 1,000 sidecars, 200 queries
    python benchmarks/bench_index.py --rows 200000 --ingest 200 --json
    python benchmarks/bench_index.py --db /tmp/big.sqlite --keep   # reuse a built index
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from videoqa.index import ArchiveIndex, find_sidecars, ingest
from videoqa.report import (
    Caption,
    ClipResult,
    ModelInfo,
    QuestionAnswer,
    Report,
    Sampling,
    VideoFacts,
)
from videoqa.sidecars import JsonWriter


def _words(text: str) -> list[str]:
    return text.split()


COLOURS = _words("red blue green yellow white black grey orange brown pink purple silver")
SUBJECTS = _words(
    "man woman child boy girl dog cat horse bird car truck bus bicycle motorcycle boat train "
    "plane crowd player team chef dancer singer police officer worker crane tractor cow sheep "
    "deer duck swan camera guitar drone"
)
ACTIONS = _words(
    "walking running turning jumping cooking talking singing dancing driving parking crossing "
    "playing sitting standing eating swimming flying climbing riding waving falling kicking "
    "throwing catching pushing pulling reading writing painting fishing skating skiing "
    "surfing diving"
)
PLACES = _words(
    "street kitchen beach park field stage road bridge river forest city room office stadium "
    "market garden snow rain night station airport harbour mountain lake desert farm school "
    "church hospital shop restaurant bar tunnel parking lot highway"
)
QUESTION = "what color is the car?"
CLIPS = 100
CLIP_SECONDS = 5.0


def caption(rng: random.Random) -> str:
    """One caption from the grammar."""
    colour, subject, other = rng.choice(COLOURS), rng.choice(SUBJECTS), rng.choice(SUBJECTS)
    action, place = rng.choice(ACTIONS), rng.choice(PLACES)
    shape = rng.randrange(5)
    if shape == 0:
        return f"a {colour} {subject} is {action} in the {place}"
    if shape == 1:
        return f"a {subject} {action} next to a {colour} {other}"
    if shape == 2:
        return f"two {subject}s are {action} on the {place}"
    if shape == 3:
        return f"a close up of a {colour} {subject} in a {place}"
    return f"a {subject} and a {other} {action} near the {place}"


def synthetic_report(number: int, rng: random.Random, folder: Path) -> Report:
    """One report of CLIPS clips, each with a caption and an answer to QUESTION."""
    clips = []
    text, answer = caption(rng), rng.choice(COLOURS)
    for index in range(CLIPS):
        if index and rng.random() > 0.6:
            text = caption(rng)
        if index and rng.random() > 0.8:
            answer = rng.choice(COLOURS)
        start = index * CLIP_SECONDS
        clips.append(ClipResult(
            index=index, start=start, end=start + CLIP_SECONDS,
            frame_times=(start + 0.83, start + 2.5, start + 4.17),
            caption=Caption(text, -rng.random(), (start + 1.25, start + 3.75)),
            answers=(QuestionAnswer(QUESTION, answer, -rng.random()),),
        ))  # fmt: skip
    model = ModelInfo("microsoft/git-base-vqav2", None, "image", 3, (398, 224), "crop")
    captioner = ModelInfo("microsoft/git-base-vatex", None, "video", 6, (398, 224), "crop")
    return Report(
        video=VideoFacts(path=os.fspath(folder / f"reel{number:06d}.mp4"),
                         duration=CLIPS * CLIP_SECONDS, width=1280, height=720, fps=25.0,
                         stream=0, codec="h264", format_name="mov,mp4,m4a,3gp,3g2,mj2"),
        model=model, caption_model=captioner,
        sampling=Sampling(CLIP_SECONDS, CLIP_SECONDS, 0.0, CLIPS * CLIP_SECONDS, 20, 30),
        questions=(QUESTION,), clips=clips,
    )  # fmt: skip


def measure_ingest(index: ArchiveIndex, reports: int, work: Path, rng: random.Random) -> dict:
    """Write ``reports`` JSON sidecars, then index them as ``videoqa index`` does."""
    folder = work / "sidecars"
    folder.mkdir(parents=True, exist_ok=True)
    writer = JsonWriter()
    for number in range(reports):
        report = synthetic_report(number, rng, folder)
        (folder / f"reel{number:06d}.videoqa.json").write_text(
            writer.render(report, sidecar_of=f"reel{number:06d}.mp4"), encoding="utf-8"
        )
    began, cpu = time.perf_counter(), time.process_time()
    tally = ingest(index, find_sidecars([folder]))
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
    return {
        "reports": tally.indexed,
        "clip_rows": tally.clips,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "reports_per_minute": round(tally.indexed / seconds * 60),
        "reports_per_cpu_minute": round(tally.indexed / cpu_seconds * 60),
        "goal_reports_per_minute": 5000,
    }


def measure_build(index: ArchiveIndex, rows: int, start: int, rng: random.Random) -> dict:
    """Add in-memory reports (one transaction) until the index holds ``rows`` clip rows."""
    held = index.counts()["clips"]
    began, added, number = time.perf_counter(), 0, start
    folder = Path("/archive/synthetic")
    with index.batch():
        while held + added < rows:
            added += index.add_report(synthetic_report(number, rng, folder))
            number += 1
    seconds = time.perf_counter() - began
    return {"reports": number - start, "clip_rows": added, "seconds": round(seconds, 2),
            "rows_per_second": round(added / seconds) if seconds else None}  # fmt: skip


def queries(count: int, rng: random.Random) -> Iterator[tuple[str, dict]]:
    """Plain-word queries a person would type about this archive, with some filters."""
    for _ in range(count):
        shape = rng.randrange(4)
        if shape == 0:
            words = f"{rng.choice(COLOURS)} {rng.choice(SUBJECTS)}"
        elif shape == 1:
            words = f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)}"
        elif shape == 2:
            words = rng.choice(SUBJECTS + ACTIONS + PLACES)
        else:
            words = f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(PLACES)}"
        options: dict = {}
        if rng.random() < 0.1:
            options["kind"] = "caption"
        elif rng.random() < 0.1:  # ten of the indexed sidecars' videos, or all 1,000
            options["video"] = rng.choice((f"reel0000{rng.randrange(10)}*.mp4", "reel000*.mp4"))
        yield words, options


def measure_search(index: ArchiveIndex, count: int, limit: int, rng: random.Random) -> dict:
    """Wall and CPU milliseconds per search (CPU time says what a search costs on a machine
    that other programs share; wall time is what the person waited)."""
    walls, cpus, found = [], [], 0
    for words, options in queries(count, rng):
        wall, cpu = time.perf_counter(), time.process_time()
        hits = index.search(words, limit=limit, **options)
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
        found += len(hits)
    return {
        "queries": count,
        "limit": limit,
        **_percentiles("wall", walls),
        **_percentiles("cpu", cpus),
        "mean_hits": round(found / count, 1),
        "goal_p95_ms": 50,
    }


def measure_videos(index: ArchiveIndex, repeat: int = 5) -> dict:
    """``ArchiveIndex.videos()``, which ``videoqa serve`` reads for its video list and to look
    up the videos of a search page's hits: best of ``repeat``."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        count = len(index.videos())
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    return {"videos": count, "wall_ms": round(min(walls), 1), "cpu_ms": round(min(cpus), 1)}


def _percentiles(name: str, values: list[float]) -> dict:
    values = sorted(values)
    return {
        f"{name}_p50_ms": round(statistics.median(values), 1),
        f"{name}_p95_ms": round(values[int(0.95 * (len(values) - 1))], 1),
        f"{name}_max_ms": round(values[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="clip rows to search")
    parser.add_argument("--ingest", type=int, default=1000, help="sidecars to index first")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--db", type=Path, help="index file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the index file")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    db = args.db or work / "index.sqlite"
    rng = random.Random(args.seed)
    results: dict = machine_facts()
    try:
        with ArchiveIndex(db) as index:
            fresh = index.counts()["clips"] == 0
            if fresh and args.ingest:
                results["ingest"] = measure_ingest(index, args.ingest, work, rng)
                _say(args, "ingest", results["ingest"])
            if index.counts()["clips"] < args.rows:
                results["build"] = measure_build(index, args.rows, args.ingest + 10**6, rng)
                _say(args, "build", results["build"])
            index._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            counts = index.counts()
            size = db.stat().st_size
            results["index"] = {
                **counts,
                "bytes": size,
                "mb_per_million_rows": round(size / counts["clips"] * 1e6 / 2**20, 1),
            }
            _say(args, "index", results["index"])
            for limit in (20, 100) if args.queries else ():
                results[f"search_{limit}"] = measure_search(index, args.queries, limit, rng)
                _say(args, f"search (limit {limit})", results[f"search_{limit}"])
            results["videos"] = measure_videos(index)
            _say(args, "videos()", results["videos"])
    finally:
        if args.keep:
            print(f"index kept: {db}", file=sys.stderr)
        elif args.db:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    results["load_average_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(results))


def machine_facts() -> dict:
    """What a result line says of where and how it was measured (bench_serve.py too)."""
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "load_average": os.getloadavg()[0],
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def _say(args: argparse.Namespace, what: str, numbers: dict) -> None:
    if not args.json:
        print(f"{what:20} " + "  ".join(f"{k}={v}" for k, v in numbers.items()), flush=True)


if __name__ == "__main__":
    main()
