"""The review page in a real browser: Debian's chromium and chromium-driver, driven by selenium,
against ``videoqa serve`` on 127.0.0.1 in a process of its own, over sidecars the demo model
wrote and the index holds.

Skips, saying why, without the browser, its driver, selenium, the web extra or torch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

for module in ("starlette", "uvicorn", "jinja2"):
    pytest.importorskip(module, reason="the web extra is not installed (pip install -e '.[web]')")
pytest.importorskip("selenium", reason="selenium is not installed (the dev extra)")
pytest.importorskip("torch", reason="the sidecars come from the demo model: needs torch")
from click.testing import CliRunner  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.indexed_video import write_indexed_video  # noqa: E402
from videoqa.cli import cli  # noqa: E402
from videoqa.cli.serve_commands import start_serving  # noqa: E402
from videoqa.index import ArchiveIndex  # noqa: E402
from videoqa.media import probe  # noqa: E402
from videoqa.report import Caption, ClipResult, ModelInfo, Report, Sampling, VideoFacts  # noqa: E402
from videoqa.sidecars import write_sidecars  # noqa: E402
from videoqa.web.library import video_key  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"
QUESTION = "what color is the circle?"
WAIT = 20  # seconds for anything the page does (the machine may be busy)
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium (first: without it, skip before the model and the server start)."""
    if BROWSER is None or DRIVER is None:
        pytest.skip("Chromium or chromedriver is not installed "
                    "(apt-get install chromium chromium-driver)")  # fmt: skip
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900", "--mute-audio"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def site(browser: webdriver.Chrome,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The sample clip captioned and asked by the demo model, indexed, and served."""
    folder = tmp_path_factory.mktemp("browser")
    root = folder / "archive"
    root.mkdir()
    video = root / "circle.mp4"
    shutil.copyfile(SAMPLE, video)
    result = CliRunner().invoke(cli, ["ask", str(video), "--model", "demo", "--caption",
                                      "--caption-model", "demo", "-q", QUESTION])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    avi = root / "marked.avi"  # MPEG-4 Part 2 in AVI: no browser plays it
    write_indexed_video(avi, codec="mpeg4", frames=50, rate=25)
    model = ModelInfo("demo", None, "video", 6, (32, 32), "pad")
    clips = [ClipResult(0, 0.0, 2.0, (1.0,), Caption("frames of a marked video", -0.1))]
    write_sidecars(Report(VideoFacts.from_info(probe(avi)), model,
                          Sampling(2.0, 2.0, 0.0, 2.0, 20, 30), (), model, clips), avi)
    db = folder / "index.sqlite"
    with ArchiveIndex(db) as index:
        for json_path in sorted(root.glob("*.videoqa.json")):
            index.add_sidecar(json_path)
    server, url = start_serving(db, root, folder / "cache")
    try:
        yield {"url": url, "video": video, "avi": avi, "db": db, "root": root, "folder": folder}
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for(browser: webdriver.Chrome, script: str, what: str) -> object:
    """Poll ``script`` (JavaScript returning a value) until it is truthy."""
    return WebDriverWait(browser, WAIT, poll_frequency=0.1).until(
        lambda driver: driver.execute_script(script), message=what
    )


def active_cue(browser: webdriver.Chrome) -> str | None:
    return browser.execute_script(
        "const cues = document.getElementById('player').textTracks[0].activeCues;"
        "return cues && cues.length ? cues[0].text : null;"
    )


def wait_for_cue(browser: webdriver.Chrome, text: str) -> None:
    """The caption cue on screen becomes ``text`` (cues change once a seek has finished)."""
    try:
        WebDriverWait(browser, WAIT, poll_frequency=0.1).until(
            lambda driver: active_cue(driver) == text
        )
    except TimeoutException:
        pytest.fail(f"the active cue is {active_cue(browser)!r}, not {text!r}")


def player_time(browser: webdriver.Chrome) -> float:
    return float(browser.execute_script("return document.getElementById('player').currentTime"))


def captions(video: Path) -> list[tuple[float, str]]:
    data = json.loads(video.with_suffix(".videoqa.json").read_text())
    return [(clip["start"], clip["caption"]["text"]) for clip in data["clips"]]


def test_search_click_and_the_video_starts_at_the_moment_with_its_caption(site, browser):
    browser.get(site["url"])
    box = browser.find_element(By.ID, "q")
    box.send_keys("blue circle", Keys.ENTER)
    first = WebDriverWait(browser, WAIT).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, "a.hit-link"), "no search result"
    )[0]
    moment = float(first.get_attribute("href").rsplit("t=", 1)[1])
    said = dict(captions(site["video"]))
    assert "blue" in said[moment]
    first.click()
    wait_for(browser, f"const p = document.getElementById('player');"
                      f"return p && p.readyState >= 1 && Math.abs(p.currentTime - {moment}) < 0.05",
             f"the video did not reach {moment} s")  # fmt: skip
    wait_for_cue(browser, said[moment])
    assert browser.execute_script(
        "return document.getElementById('player').textTracks[0].mode") == "showing"


def test_clicking_a_clip_on_the_timeline_seeks_there(site, browser):
    key = video_key(os.fspath(site["video"]))
    browser.get(f"{site['url']}video/{key}")
    wait_for(browser, "return document.getElementById('player').readyState >= 1",
             "the video did not load")  # fmt: skip
    rows = browser.find_elements(By.CSS_SELECTOR, ".timeline .row")
    assert [row.find_element(By.CLASS_NAME, "label").text for row in rows] == ["captions", QUESTION]
    segment = rows[0].find_elements(By.CSS_SELECTOR, "a.seg")[2]  # the clip 10-15 s
    assert segment.get_attribute("data-start") == "10"
    segment.click()
    wait_for(browser, "return Math.abs(document.getElementById('player').currentTime - 10) < 0.05",
             "the click did not seek to 10 s")  # fmt: skip
    wait_for_cue(browser, dict(captions(site["video"]))[10.0])
    assert browser.current_url.endswith("?t=10")


def test_editing_a_caption_in_the_browser_reaches_the_sidecars(site, browser):
    video = site["video"]
    key = video_key(os.fspath(video))
    browser.get(f"{site['url']}video/{key}/clip/0/edit")
    box = browser.find_element(By.ID, "caption")
    box.clear()
    box.send_keys("a crimson circle drifts right")
    browser.find_element(By.ID, "save").click()
    WebDriverWait(browser, WAIT).until(
        lambda driver: driver.find_elements(By.CLASS_NAME, "saved"), "no saved message"
    )
    assert captions(video)[0] == (0.0, "a crimson circle drifts right")
    assert json.loads(video.with_suffix(".videoqa.json").read_text())["clips"][0]["caption"][
        "edited"] is True
    assert "a crimson circle drifts right" in video.with_suffix(".srt").read_text()
    assert "a crimson circle drifts right" in video.with_suffix(".vtt").read_text()
    # The page came back at the clip's start, with the new caption on screen.
    wait_for_cue(browser, "a crimson circle drifts right")
    assert player_time(browser) < 0.05


def test_a_video_the_browser_cannot_play_shows_frames_and_a_note(site, browser):
    key = video_key(os.fspath(site["avi"]))
    browser.get(f"{site['url']}video/{key}")
    assert browser.find_elements(By.TAG_NAME, "video") == []
    note = browser.find_element(By.ID, "unplayable")
    assert note.is_displayed() and "Browsers cannot play mpeg4 in avi" in note.text
    frame = browser.find_element(By.CSS_SELECTOR, "td.thumb img")
    started = time.monotonic()
    while not browser.execute_script("return arguments[0].naturalWidth", frame):
        assert time.monotonic() - started < WAIT, "the frame did not load"
        time.sleep(0.1)
    assert browser.execute_script("return arguments[0].naturalWidth", frame) == 240
    # Its edit page shows the clip's frames beside the texts instead of a player.
    browser.get(f"{site['url']}video/{key}/clip/0/edit")
    assert browser.find_elements(By.TAG_NAME, "video") == []
    wait_for(browser, "const i = document.querySelectorAll('#clip-frames img');"
                      "return i.length && Array.from(i).every(x => x.complete && x.naturalWidth)",
             "the clip's frames did not load")  # fmt: skip
    assert browser.find_element(By.ID, "clip-frames").is_displayed()


def test_the_edit_page_plays_the_clip_in_a_loop_beside_its_texts(site, browser):
    key = video_key(os.fspath(site["video"]))
    browser.get(f"{site['url']}video/{key}/clip/1/edit")  # the clip 5-10 s
    wait_for(browser, "const p = document.getElementById('clip-player');"
                      "return p && p.readyState >= 2", "the clip did not load")  # fmt: skip
    time_now = float(browser.execute_script(
        "return document.getElementById('clip-player').currentTime"))
    assert 5.0 <= time_now <= 10.0
    # It plays on, and from the end it starts the clip again, never leaving it.
    seen = []
    browser.execute_script("const p = document.getElementById('clip-player');"
                           "p.currentTime = 9.8; p.play();")  # fmt: skip
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        seen.append(float(browser.execute_script(
            "return document.getElementById('clip-player').currentTime")))
        if len(seen) > 3 and seen[-1] < 9.0:
            break
        time.sleep(0.05)
    assert seen[-1] < 9.0, "the clip did not loop back to its start"
    # never more than a few frames past the end (timeupdate alone overshot by 0.25 s)
    assert all(5.0 <= t <= 10.12 for t in seen), seen
    assert browser.find_element(By.ID, "caption").is_displayed()


def test_keys_enter_saves_escape_cancels_and_brackets_open_the_next_clip(site, browser):
    video = site["video"]
    key = video_key(os.fspath(video))
    browser.get(f"{site['url']}video/{key}?t=5")
    wait_for(browser, "const p = document.getElementById('player');"
                      "return p.readyState >= 1 && Math.abs(p.currentTime - 5) < 0.05",
             "the video did not reach 5 s")  # fmt: skip
    browser.find_element(By.TAG_NAME, "body").send_keys("]")
    wait_for(browser, "return location.pathname.endsWith('/clip/2/edit')",
             "] did not open the next clip's edit")  # fmt: skip
    box = browser.find_element(By.ID, "caption")
    box.send_keys(Keys.ESCAPE)
    wait_for(browser, f"return location.pathname === '/video/{key}'", "Esc did not cancel")
    browser.get(f"{site['url']}video/{key}/clip/2/edit")
    box = browser.find_element(By.ID, "caption")
    box.clear()
    box.send_keys("a circle saved with the Enter key", Keys.ENTER)
    WebDriverWait(browser, WAIT).until(
        lambda driver: driver.find_elements(By.CLASS_NAME, "saved"), "Enter did not save"
    )
    assert captions(video)[2] == (10.0, "a circle saved with the Enter key")


@pytest.mark.parametrize("width", [360, 1280])
def test_pages_fit_the_window_without_sideways_scrolling(site, browser, width):
    key = video_key(os.fspath(site["video"]))
    browser.set_window_size(width, 900)
    try:
        for path in ("?q=circle", "", f"video/{key}", f"video/{key}/clip/0/edit",
                     f"video/{video_key(os.fspath(site['avi']))}"):  # fmt: skip
            browser.get(site["url"] + path)
            wait_for(browser, "return document.readyState === 'complete'", "no page")
            inner, scroll = browser.execute_script(
                "return [window.innerWidth, document.documentElement.scrollWidth]")
            assert inner <= width
            assert scroll <= inner, f"{path} at {width} px: {scroll} px wide"
            search = browser.find_element(By.CSS_SELECTOR, "form.search button")
            right = browser.execute_script(
                "return arguments[0].getBoundingClientRect().right", search)
            assert right <= inner, f"the Search button is cut off on {path}"
    finally:
        browser.set_window_size(1280, 900)


def test_off_loopback_the_printed_link_lets_the_browser_in_and_nothing_else_does(site, browser):
    token = "browser-token-0123456789abcdef"
    server, url = start_serving(site["db"], site["root"], site["folder"] / "cache-wide",
                                host="0.0.0.0", options=["--token", token])  # fmt: skip
    key = video_key(os.fspath(site["video"]))
    try:
        browser.get(f"{url}video/{key}")
        assert "authentication needed" in browser.find_element(By.TAG_NAME, "body").text
        browser.get(f"{url}video/{key}?t=5&token={token}")
        assert browser.current_url == f"{url}video/{key}?t=5"  # the token left the address
        wait_for(browser, "const p = document.getElementById('player');"
                          "return p && p.readyState >= 2 && Math.abs(p.currentTime - 5) < 0.05",
                 "the video did not play with the cookie")  # fmt: skip
        browser.get(f"{url}video/{key}/clip/1/edit")
        box = browser.find_element(By.ID, "caption")
        box.clear()
        box.send_keys("a circle corrected off loopback", Keys.ENTER)
        WebDriverWait(browser, WAIT).until(
            lambda driver: driver.find_elements(By.CLASS_NAME, "saved"), "no saved message"
        )
        assert captions(site["video"])[1] == (5.0, "a circle corrected off loopback")
    finally:
        browser.delete_all_cookies()
        server.terminate()
        server.wait(timeout=30)
