"""Screenshots of the review page for the docs: search, video (with its timeline), edit, each
at 1280 and 360 px wide.

The two sample clips are asked and captioned by the demo model (2.5 s clips), indexed, and
served by ``videoqa serve`` on 127.0.0.1; headless Chromium (Debian's chromium and
chromium-driver) takes one PNG per page and width:

    python tools/serve_screenshots.py   # docs/serve-{search,video,edit}.png and -360.png
    python tools/serve_screenshots.py --out /tmp/shots
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from videoqa.cli import cli
from videoqa.cli.serve_commands import start_serving
from videoqa.index import ArchiveIndex
from videoqa.web.library import video_key

PROJECT = Path(__file__).resolve().parents[1]
QUESTIONS = ("how many shapes are there?", "which way does it move?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=PROJECT / "docs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="serve-shots-"))
    root = work / "archive"
    root.mkdir()
    try:
        for name in ("circle_turns_blue.mp4", "triangle_joins.webm"):
            shutil.copyfile(PROJECT / "sample_media" / name, root / name)
            question_args = [part for question in QUESTIONS for part in ("-q", question)]
            result = CliRunner().invoke(cli, [
                "ask", str(root / name), "--model", "demo", "--caption", "--caption-model",
                "demo", "--clip-length", "2.5", *question_args,
            ])  # fmt: skip
            if result.exit_code:
                sys.exit(result.stderr)
        db = work / "index.sqlite"
        with ArchiveIndex(db) as index:
            for json_path in sorted(root.glob("*.videoqa.json")):
                index.add_sidecar(json_path)
        shoot(db, root, work, args.out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def shoot(db: Path, root: Path, work: Path, out: Path) -> None:
    try:
        server, url = start_serving(db, root, work / "cache")
    except RuntimeError as error:
        sys.exit(str(error))
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--hide-scrollbars", "--mute-audio"):  # fmt: skip
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        key = video_key(os.fspath(root / "circle_turns_blue.mp4"))
        for width, suffix in ((1280, ""), (360, "-360")):
            browser.set_window_size(width, 900)
            browser.get(f"{url}?q=blue+circle")
            wait(browser, "return Array.from(document.images)"
                          ".every(i => i.complete && i.naturalWidth)")  # fmt: skip
            save(browser, out / f"serve-search{suffix}.png", width)
            browser.get(f"{url}video/{key}?t=6")
            wait(browser, "const p = document.getElementById('player');"
                          "return p.readyState >= 3 && !p.seeking && p.textTracks[0].activeCues"
                          " && p.textTracks[0].activeCues.length")  # fmt: skip
            time.sleep(1.5)  # the seeked frame and the caption painted, the spinner gone
            save(browser, out / f"serve-video{suffix}.png", width)
            browser.get(f"{url}video/{key}/clip/2/edit")
            wait(browser, "const p = document.getElementById('clip-player');"
                          "return p.readyState >= 3 && p.currentTime >= 5.1 && !p.seeking")
            save(browser, out / f"serve-edit{suffix}.png", width)
    finally:
        browser.quit()
        server.terminate()
        server.wait(timeout=30)


def wait(browser: webdriver.Chrome, script: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not browser.execute_script(script):
        if time.monotonic() > deadline:
            sys.exit(f"the page did not get ready: {script}")
        time.sleep(0.1)


def save(browser: webdriver.Chrome, path: Path, width: int) -> None:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(max(height, 400), 1400 if width > 600 else 1600))
    wide = browser.execute_script(
        "return document.documentElement.scrollWidth > window.innerWidth")
    if wide:
        sys.exit(f"{path.name}: the page scrolls sideways at {width} px")
    browser.save_screenshot(os.fspath(path))
    browser.set_window_size(width, 900)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
