"""The review page's speed (issue 14): the search page over 1,000,000 clip rows, and the first
frame of a local 1080p h264 MP4 in headless Chromium.

  search  an index of ``--rows`` clip rows (bench_index.py's synthetic reports: 100 clips of
          5 s, a caption and an answer each; every video a real file under the served root)
          behind ``videoqa serve``'s app on uvicorn (127.0.0.1, a thread of this process);
          ``--queries`` plain-word searches as a person types them, each one GET of the whole
          search page (20 hits, HTML) over HTTP: p50, p95, max in ms of wall time and of this
          process's CPU time (server and client), the goal: <= 100 ms. The
          thumbnails are separate requests the browser makes after the page (lazily); one
          cold (decoded) and one cached are timed too.
  frame   a 10 s 1920x1080 h264 MP4 (x264, yuv420p, moov first), captioned and indexed; its
          video page opened ``--loads`` times in headless Chromium (cache off), at the start
          and at ?t=5: milliseconds from navigation start to the first frame on screen
          (``requestVideoFrameCallback``) and to ``loadeddata`` (goal: <= 1000 ms).

    python benchmarks/bench_serve.py                     # 1M rows, 200 queries, 5 loads
    python benchmarks/bench_serve.py --rows 100000 --queries 50 --json
    python benchmarks/bench_serve.py --skip-search       # only the first frame

The index is built in a temporary folder (3 minutes per million rows here, under load) unless
``--db`` names one made by an earlier ``--keep`` run of this script.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlencode

import av
import numpy as np
import uvicorn

sys.path.insert(0, os.fspath(Path(__file__).resolve().parent))
from bench_index import _percentiles, _say, machine_facts, queries, synthetic_report  # noqa: E402

from videoqa.index import ArchiveIndex  # noqa: E402
from videoqa.media import probe  # noqa: E402
from videoqa.report import Caption, ClipResult, ModelInfo, Report, Sampling, VideoFacts  # noqa: E402
from videoqa.sidecars import write_sidecars  # noqa: E402
from videoqa.web.app import create_app  # noqa: E402
from videoqa.web.library import video_key  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"


class Server:
    """The app on uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: object) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.listener]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.listener.close()


def build_index(db: Path, root: Path, rows: int, rng: random.Random) -> dict:
    """Synthetic reports until ``rows`` clip rows, each video a file under ``root``."""
    began, added, number = time.perf_counter(), 0, 0
    with ArchiveIndex(db) as index, index.batch():
        while added < rows:
            report = synthetic_report(number, rng, root)
            Path(report.video.path).touch()
            added += index.add_report(report)
            number += 1
    return {"reports": number, "clip_rows": added,
            "seconds": round(time.perf_counter() - began, 1)}  # fmt: skip


def get(port: int, path: str) -> tuple[int, bytes, float]:
    """One GET on a new connection (as a browser's first request): status, body, ms."""
    began = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body, (time.perf_counter() - began) * 1000


def measure_search(port: int, count: int, rng: random.Random) -> dict:
    """Wall milliseconds per search page, and CPU milliseconds of this process (the server's
    threads and the client): what a page costs on a machine other programs share."""
    walls, cpus, hits = [], [], 0
    get(port, "/?q=warm")  # the first request opens the index in the server's thread
    for words, options in queries(count, rng):
        params = {"q": words, **({"kind": options["kind"]} if "kind" in options else {})}
        cpu = time.process_time()
        status, body, ms = get(port, "/?" + urlencode(params))
        cpus.append((time.process_time() - cpu) * 1000)
        assert status == 200, (status, body[:200])
        walls.append(ms)
        hits += body.count(b'class="hit"')
    return {
        "queries": count,
        **_percentiles("wall", walls),
        **_percentiles("cpu", cpus),
        "mean_hits": round(hits / count, 1),
        "goal_p95_ms": 100,
    }


def measure_thumbnail(port: int, key: str) -> dict:
    cold = get(port, f"/video/{key}/thumbnail?t=7.5")
    cached = get(port, f"/video/{key}/thumbnail?t=7.5")
    assert cold[0] == cached[0] == 200
    return {"cold_ms": round(cold[2], 1), "cached_ms": round(cached[2], 1)}


def write_1080p(path: Path, seconds: int = 10, rate: int = 25) -> None:
    """A 1920x1080 h264 MP4 with moving detail (moov first, as a browser wants it)."""
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 255, (1080, 1920 + seconds * rate * 8, 3), dtype=np.uint8)
    with av.open(os.fspath(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate,
                                      options={"crf": "23", "preset": "veryfast", "g": "50"})
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.time_base = Fraction(1, rate)
        for number in range(seconds * rate):
            image = np.ascontiguousarray(texture[:, number * 8:number * 8 + 1920])
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def index_1080p(db: Path, root: Path) -> Path:
    video = root / "full_hd.mp4"
    write_1080p(video)
    model = ModelInfo("demo", None, "video", 6, (32, 32), "pad")
    clips = [ClipResult(n, n * 5.0, n * 5.0 + 5.0, (n * 5.0 + 2.5,),
                        Caption(f"moving texture, part {n + 1}", -0.1)) for n in range(2)]
    report = Report(VideoFacts.from_info(probe(video)), model,
                    Sampling(5.0, 5.0, 0.0, 10.0, 20, 30), (), model, clips)
    write_sidecars(report, video)
    with ArchiveIndex(db) as index:
        index.add_sidecar(video.with_suffix(".videoqa.json"))
    return video


FIRST_FRAME_PROBE = """
new MutationObserver(function (changes, observer) {
  var player = document.getElementById('player');
  if (!player) { return; }
  observer.disconnect();
  player.addEventListener('loadeddata', function () { window.__loadeddata = performance.now(); });
  player.requestVideoFrameCallback(function (now, meta) {
    window.__firstFrame = performance.now();
    window.__frameTime = meta.mediaTime;
  });
}).observe(document, {childList: true, subtree: true});
"""
"""Run before the page's own scripts: watches for the video element as the parser inserts it,
so the first frame is caught however early it comes."""


def measure_first_frame(port: int, key: str, loads: int) -> dict:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        return {"skipped": "chromium or chromedriver is not installed"}
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--mute-audio"):  # fmt: skip
        options.add_argument(argument)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    results: dict = {"chromium": chrome.capabilities.get("browserVersion")}
    try:
        chrome.execute_cdp_cmd("Network.enable", {})
        chrome.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                               {"source": FIRST_FRAME_PROBE})
        for label, query in (("start", ""), ("at_5s", "?t=5")):
            frames, loaded, shown_at = [], [], []
            for _ in range(loads):
                chrome.get("about:blank")
                chrome.get(f"http://127.0.0.1:{port}/video/{key}{query}")
                deadline = time.monotonic() + 30
                while chrome.execute_script("return window.__firstFrame") is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no frame was shown within 30 s")
                    time.sleep(0.02)
                frames.append(chrome.execute_script("return window.__firstFrame"))
                loaded.append(chrome.execute_script("return window.__loadeddata"))
                shown_at.append(chrome.execute_script("return window.__frameTime"))
            results[label] = {
                "first_frame_ms": [round(ms) for ms in frames],
                "first_frame_median_ms": round(statistics.median(frames)),
                "loadeddata_median_ms": round(statistics.median(loaded)),
                "frame_media_time_s": shown_at[-1],
                "goal_ms": 1000,
            }
    finally:
        chrome.quit()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--loads", type=int, default=5, help="page loads per first-frame case")
    parser.add_argument("--db", type=Path, help="an index this script built and kept")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    root = (args.db.parent if args.db else work) / "archive"
    root.mkdir(parents=True, exist_ok=True)
    db = args.db or work / "index.sqlite"
    rng = random.Random(args.seed)
    results: dict = machine_facts()
    server = None
    try:
        if not args.skip_search and not args.db:
            results["build"] = build_index(db, root, args.rows, rng)
            _say(args, "build", results["build"])
        shutil.copyfile(SAMPLE, root / "circle.mp4")
        video = index_1080p(db, root)
        server = Server(create_app(db, [root], cache_dir=work / "thumbnails"))
        if not args.skip_search:
            with ArchiveIndex(db) as index:
                results["index_clip_rows"] = index.counts()["clips"]
            results["search_page"] = measure_search(server.port, args.queries, rng)
            _say(args, "search page", results["search_page"])
            results["thumbnail"] = measure_thumbnail(server.port, video_key(os.fspath(video)))
            _say(args, "thumbnail", results["thumbnail"])
        results["first_frame"] = measure_first_frame(server.port, video_key(os.fspath(video)),
                                                     args.loads)  # fmt: skip
        _say(args, "first frame", results["first_frame"])
    finally:
        if server is not None:
            server.close()
        if args.keep:
            print(f"kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_average_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
