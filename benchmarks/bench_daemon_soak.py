"""Soak the daemon: files copied in while it is killed with SIGKILL at random moments.

``--files`` good videos (the two sample clips, every 25th under a name that is not UTF-8) and
``--bad`` bad ones (empty, random bytes, cut short) are copied into a watched folder, some in
slow chunks, some under a ``.part`` name then renamed, while a real ``videoqa watch`` (the
demo model, sidecar and JSON-lines adapters) is killed with SIGKILL ``--kills`` times at random
moments and started again at once: a share of the kills (``--mid-file``, half by default) lands
a random 0 to 0.3 s after the worker began one of the next five files (inside inference or
while writing sidecars), the others a random ``--min-gap`` to ``--max-gap`` seconds after the
start (often while the daemon is still starting).
Then the last daemon runs until every file is finished and is stopped with SIGTERM. Prints one
JSON line:

* ``good_files``, ``done_with_complete_sidecars`` (job ``done``; JSON, SRT and WebVTT there,
  the JSON naming this video and the SRT/WebVTT digests it records matching), ``lost`` (the
  difference: the goal is 0); ``killed_out``: those of the lost that ended ``failed`` with
  "interrupted 3 times (daemon killed?)": the daemon was killed while on that file as many
  times as ``max_attempts`` allows, which it cannot tell from a file that kills it (by design;
  ``videoqa jobs --retry-failed`` redoes them), more likely on a busy machine, where the first
  file after a restart takes seconds;
* ``duplicate_sidecars``: sidecar files that are not the one set of a good video (0 expected);
* ``leftover_temp_files``: temporary files and pending journals left in the folder (goal 0);
* ``repeated_events``: event lines whose ``id`` an earlier line has (adapters run at least
  once: a kill after the worker announced a file but before the daemon recorded it announces
  it again, with the same id; a consumer drops the repeat by its id);
* ``duplicate_events``: after dropping repeats by id, events still logged more than once for
  one video and kind (0 expected); ``events_without_id`` (0 expected);
* ``kills``, ``kills_mid_file``, ``bad_files``, ``bad_failed``, ``seconds``;
  ``interrupted_files`` (jobs a restarted daemon found running, whether or not their worker
  had begun) and ``temp_files_removed`` (left by a killed writer, removed by the daemon),
  counted from the daemon's log.

    python benchmarks/bench_daemon_soak.py                           # 100 files, 10 kills
    python benchmarks/bench_daemon_soak.py --files 10 --kills 2      # a quick run
    python benchmarks/bench_daemon_soak.py --seed 3 --keep           # keep the folder to look
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {b".mp4": ROOT / "sample_media" / "circle_turns_blue.mp4",
           b".webm": ROOT / "sample_media" / "triangle_joins.webm"}  # fmt: skip
SIDECAR_SUFFIXES = (b".videoqa.json", b".srt", b".vtt")


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_config(root: Path, settle: float) -> Path:
    config = root / "videoqa.toml"
    config.write_text(f"""\
jobstore = "{root / 'state' / 'jobs.sqlite'}"
settle = {settle}
retry_delay = 1
time_limit = 300
[defaults]
model = "demo"
caption_model = "demo"
captions = true
threads = 1
adapters = ["sidecars", "jsonl"]
[adapters.jsonl]
path = "{root / 'state' / 'events.jsonl'}"
""")
    return config


def plan_files(files: int, bad: int, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """``(name, content)`` of every file to copy in, shuffled; good names start with ``good-``."""
    plan = []
    for index in range(files):
        suffix = b".mp4" if index % 2 == 0 else b".webm"
        latin1 = b"-caf\xe9" if index % 25 == 7 else b""  # not UTF-8, as from an SMB share
        plan.append((b"good-%03d%s%s" % (index, latin1, suffix), SAMPLES[suffix].read_bytes()))
    clip = SAMPLES[b".mp4"].read_bytes()
    kinds = [(b"empty", b""), (b"random", rng.randbytes(20_000)), (b"cut", clip[: len(clip) // 3])]
    for index in range(bad):
        kind, content = kinds[index % len(kinds)]
        plan.append((b"bad-%02d-%s.mp4" % (index, kind), content))
    rng.shuffle(plan)
    return plan


def copy_in(folder: bytes, plan: list[tuple[bytes, bytes]], rng: random.Random) -> None:
    """Copy every file in, as copy tools do: at once, in slow chunks, or as ``.part`` + rename."""
    for name, content in plan:
        target = folder + b"/" + name
        how = rng.random()
        if how < 0.2:
            with open(target, "wb") as handle:  # a slow copy, chunk by chunk
                for start in range(0, len(content), 4096):
                    handle.write(content[start : start + 4096])
                    handle.flush()
                    time.sleep(0.05)
        elif how < 0.5:
            with open(target + b".part", "wb") as handle:
                handle.write(content)
            os.rename(target + b".part", target)
        else:
            with open(target, "wb") as handle:
                handle.write(content)
        time.sleep(rng.uniform(0.0, 0.4))


def start_daemon(root: Path, watched: Path, config: Path) -> subprocess.Popen:
    with open(root / "daemon.log", "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "videoqa", "watch", str(watched), "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip


def wait_for_work(log_path: Path, offset: int, daemon: subprocess.Popen, files: int) -> bool:
    """Wait until the daemon logs, after ``offset``, that its worker began its ``files``-th file."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and daemon.poll() is None:
        with open(log_path, "rb") as handle:
            handle.seek(offset)
            if handle.read().count(b": processing (") >= files:
                return True
        time.sleep(0.02)
    return False


def final_jobs(jobstore: Path) -> dict[bytes, tuple[str, str]]:
    """The newest row's state and last error for each file name (read-only, as ``videoqa
    jobs`` does)."""
    from videoqa.watch.jobstore import JobStore

    if not jobstore.exists():
        return {}
    with JobStore(jobstore) as store:
        jobs: dict[bytes, tuple[str, str]] = {}
        for job in reversed(store.jobs()):  # oldest first: the newest row wins
            if job.deleted_at is None:
                jobs[os.path.basename(os.fsencode(job.path))] = (job.state, job.last_error or "")
        return jobs


def final_states(jobstore: Path) -> dict[bytes, str]:
    """The newest row's state for each file name."""
    return {name: state for name, (state, _) in final_jobs(jobstore).items()}


def all_finished(jobstore: Path, names: list[bytes]) -> bool:
    states = final_states(jobstore)
    return all(states.get(name) in ("done", "failed") for name in names)


def complete_sidecars(folder: bytes, name: bytes) -> bool:
    """JSON, SRT and WebVTT for ``name``; the JSON names this video and the subtitles' digests."""
    stem = os.path.splitext(name)[0]
    try:
        report = json.loads(Path(os.fsdecode(folder + b"/" + stem + b".videoqa.json")).read_bytes())
        recorded = {os.fsencode(key): value for key, value in report["sidecars"].items()}
        for suffix in (b".srt", b".vtt"):
            data = Path(os.fsdecode(folder + b"/" + stem + suffix)).read_bytes()
            if hashlib.sha256(data).hexdigest() not in recorded[stem + suffix]:
                return False
        return os.fsencode(report["sidecar_of"]) == name and len(report["clips"]) > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def measure(root: Path, plan: list[tuple[bytes, bytes]], kills: int) -> dict:
    folder = os.fsencode(root / "watched")
    good = [name for name, _ in plan if name.startswith(b"good-")]
    bad = [name for name, _ in plan if name.startswith(b"bad-")]
    jobs = final_jobs(root / "state" / "jobs.sqlite")
    states = {name: state for name, (state, _) in jobs.items()}
    complete = [n for n in good if states.get(n) == "done" and complete_sidecars(folder, n)]
    killed_out = [n for n in good if n not in complete and states.get(n) == "failed"
                  and "(daemon killed?)" in jobs[n][1]]  # fmt: skip
    expected = {os.path.splitext(n)[0] + suffix for n in good for suffix in SIDECAR_SUFFIXES}
    names = os.listdir(folder)
    sidecars = [n for n in names if n.endswith(SIDECAR_SUFFIXES)]
    leftovers = [n for n in names if n.endswith((b".videoqa-tmp", b".videoqa-pending"))
                 or (n.startswith(b".") and n.endswith(b".tmp"))]  # fmt: skip
    events_path = root / "state" / "events.jsonl"
    lines = events_path.read_bytes().splitlines() if events_path.exists() else []
    logged = [json.loads(line) for line in lines]
    unique: dict[str, dict] = {}  # by id, as a consumer keeps them
    repeated: list[str] = []
    for event in logged:
        if "id" in event and unique.setdefault(event["id"], event) is not event:
            repeated.append(f"{os.path.basename(event.get('video', ''))} {event.get('event')}")
    counted = collections.Counter((e.get("video"), e.get("event")) for e in unique.values())
    return {
        "good_files": len(good),
        "done_with_complete_sidecars": len(complete),
        "lost": len(good) - len(complete),
        "killed_out": len(killed_out),
        "duplicate_sidecars": len([n for n in sidecars if n not in expected]),
        "leftover_temp_files": len(leftovers),
        "repeated_events": len(repeated),
        "duplicate_events": sum(count - 1 for count in counted.values()),
        "events_without_id": sum(1 for event in logged if "id" not in event),
        "kills": kills,
        "bad_files": len(bad),
        "bad_failed": len([n for n in bad if states.get(n) == "failed"]),
        "lost_names": [os.fsdecode(n) for n in good if n not in complete][:10],
        "leftover_names": [os.fsdecode(n) for n in leftovers][:10],
        "repeated_names": repeated[:10],
    }


def soak(args: argparse.Namespace, root: Path) -> dict:
    rng = random.Random(args.seed)
    watched = root / "watched"
    watched.mkdir()
    config = write_config(root, args.settle)
    plan = plan_files(args.files, args.bad, rng)
    copier = threading.Thread(target=copy_in, args=(os.fsencode(watched), plan, rng))
    began = time.monotonic()
    daemon = start_daemon(root, watched, config)
    copier.start()
    log_path, offset, mid_file = root / "daemon.log", 0, 0
    for kill in range(args.kills):
        aimed = rng.random() < args.mid_file
        if aimed and wait_for_work(log_path, offset, daemon, rng.randint(1, 5)):
            time.sleep(rng.uniform(0.0, 0.3))
            mid_file += 1
        else:
            time.sleep(rng.uniform(args.min_gap, args.max_gap))
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        log(f"kill {kill + 1} of {args.kills} at {time.monotonic() - began:.1f} s; restarting")
        offset = log_path.stat().st_size
        daemon = start_daemon(root, watched, config)
    copier.join()
    names = [name for name, _ in plan]
    deadline = time.monotonic() + args.timeout
    while not all_finished(root / "state" / "jobs.sqlite", names):
        if daemon.poll() is not None:
            log(f"the daemon exited with {daemon.returncode}; restarting (see daemon.log)")
            daemon = start_daemon(root, watched, config)
        if time.monotonic() > deadline:
            log(f"not finished after {args.timeout:g} s")
            break
        time.sleep(1.0)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(60)
    result = measure(root, plan, args.kills)
    logged = log_path.read_bytes()
    result.update(
        kills_mid_file=mid_file,
        interrupted_files=logged.count(b"after a restart"),
        temp_files_removed=logged.count(b"(left by a writer that died)"),
        seconds=round(time.monotonic() - began, 1),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100, help="good videos (default 100)")
    parser.add_argument("--bad", type=int, default=10, help="bad files (default 10)")
    parser.add_argument("--kills", type=int, default=10, help="SIGKILLs (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--settle", type=float, default=1.0, help="settle seconds (default 1)")
    parser.add_argument("--mid-file", type=float, default=0.5,
                        help="share of kills timed inside a file's processing (default 0.5)")
    parser.add_argument("--min-gap", type=float, default=2.0,
                        help="least seconds between (re)start and kill (default 2)")
    parser.add_argument("--max-gap", type=float, default=20.0,
                        help="most seconds between (re)start and kill (default 20)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds to wait for the last daemon to finish (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder; say where")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="videoqa-soak-"))
    try:
        result = soak(args, root)
    finally:
        if args.keep:
            log(f"work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
