"""Adapters: entry-point discovery, broken ones skipped, and the three bundled plugins.

Third-party adapters are real entry points: a temporary ``*.dist-info`` on ``sys.path``.
The webhook is tested against a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import srt
import webvtt
from videoqa_plugins.jsonl_log import JsonLinesAdapter
from videoqa_plugins.sidecars import SidecarAdapter
from videoqa_plugins.webhook import WebhookAdapter

from videoqa.adapters import (
    NO_THIRD_PARTY_ENV,
    available_adapters,
    deliver_report,
    load_adapters,
    run_failure_adapters,
    run_report_adapters,
)
from videoqa.errors import ConfigError, OutputError
from videoqa.report import Caption, ClipResult, ModelInfo, Report, Sampling, VideoFacts
from videoqa.watch.config import FolderSettings


def make_report(video: Path, captions: tuple[str, ...] = ("a red ball", "a blue sky")) -> Report:
    model = ModelInfo(id="tiny", revision=None, kind="video", frames_per_clip=3)
    return Report(
        video=VideoFacts(path=str(video), duration=10.0, width=64, height=48, fps=24.0, stream=0),
        model=model,
        caption_model=model,
        sampling=Sampling(
            clip_length=5.0,
            stride=5.0,
            start=0.0,
            end=10.0,
            max_new_tokens=20,
            caption_max_new_tokens=30,
        ),  # fmt: skip
        clips=[
            ClipResult(
                index=i,
                start=5.0 * i,
                end=5.0 * (i + 1),
                frame_times=(5.0 * i + 2.5,),
                caption=Caption(text, -0.5),
            )  # fmt: skip
            for i, text in enumerate(captions)
        ],
    )


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """Install (on sys.path) a distribution declaring a good, a broken and a missing adapter."""
    site = tmp_path / "site"
    dist_info = site / "thirdparty_videoqa-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-videoqa\n"
                                        "Version: 0.1\n")  # fmt: skip
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent("""\
        [videoqa.adapters]
        recorder = thirdparty_adapters:Recorder
        broken = thirdparty_adapters:Broken
        raising = thirdparty_adapters:Raising
        missing = thirdparty_no_such_module:Adapter
        """)
    )
    (site / "thirdparty_adapters.py").write_text(
        textwrap.dedent("""\
        from videoqa.adapters import Adapter

        class Recorder(Adapter):
            name = "recorder"
            seen = []

            def handle_report(self, report, video_path, settings):
                self.seen.append(("done", str(video_path), len(report.clips)))

            def handle_failure(self, video_path, error):
                self.seen.append(("failed", str(video_path), error))

        class Broken(Adapter):
            name = "broken"

            def __init__(self, options=None):
                raise RuntimeError("cannot start")

        class Raising(Adapter):
            name = "raising"

            def handle_report(self, report, video_path, settings):
                raise RuntimeError("boom")

            def handle_failure(self, video_path, error):
                raise RuntimeError("boom")
        """)
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv(NO_THIRD_PARTY_ENV, raising=False)
    yield
    import sys

    sys.modules.pop("thirdparty_adapters", None)


def test_the_bundled_adapters_are_listed():
    names = {info.name: info for info in available_adapters()}
    assert {"sidecars", "jsonl", "webhook"} <= set(names)
    assert all(names[n].bundled for n in ("sidecars", "jsonl", "webhook"))


def test_broken_adapters_are_logged_and_skipped_and_a_raising_one_does_not_stop_the_rest(
    third_party, tmp_path, caplog
):
    caplog.allow_errors = True
    names = {info.name: info for info in available_adapters()}
    assert names["recorder"].distribution == "thirdparty-videoqa" and not names["recorder"].bundled
    adapters = load_adapters(["raising", "broken", "missing", "nonexistent", "recorder"])
    assert [a.name for a in adapters] == ["raising", "recorder"]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("'broken': cannot load: cannot start" in m for m in messages)
    assert any("'missing': cannot load" in m for m in messages)
    assert any("'nonexistent': not installed" in m for m in messages)

    video = tmp_path / "clip.mp4"
    errors = run_report_adapters(adapters, make_report(video), video, None)
    assert errors == ["adapter raising: boom"]
    assert run_failure_adapters(adapters, video, "bad file") == ["adapter raising: boom"]
    recorder = adapters[1]
    assert recorder.seen[-2:] == [("done", str(video), 2), ("failed", str(video), "bad file")]


def test_announcing_adapters_wait_until_every_other_adapter_delivered(
    third_party, tmp_path, caplog
):
    caplog.allow_errors = True
    log = tmp_path / "events.jsonl"
    adapters = load_adapters(["jsonl", "raising", "recorder"],
                             options={"jsonl": {"path": str(log)}})  # fmt: skip
    video = tmp_path / "clip.mp4"
    errors, undelivered = deliver_report(adapters, make_report(video), video, None)
    assert errors == ["adapter raising: boom"]
    assert undelivered == ["raising", "jsonl"]  # the recorder has it; the event log waits
    assert adapters[2].seen[-1] == ("done", str(video), 2) and not log.exists()
    errors, undelivered = deliver_report([adapters[0]], make_report(video), video, None)
    assert (errors, undelivered) == ([], [])
    assert [json.loads(line)["event"] for line in log.read_text().splitlines()] == ["done"]


def test_third_party_adapters_can_be_switched_off(third_party, monkeypatch, caplog):
    monkeypatch.setenv(NO_THIRD_PARTY_ENV, "1")
    assert {info.name for info in available_adapters()} == {"sidecars", "jsonl", "webhook",
                                                              "index"}
    adapters = load_adapters(["recorder", "jsonl"], options={"jsonl": {"path": "/tmp/x.jsonl"}})
    assert [a.name for a in adapters] == ["jsonl"]
    assert "third-party adapters are disabled" in caplog.text


def test_the_sidecar_adapter_writes_a_complete_set_named_after_the_video(tmp_path):
    video = tmp_path / "in" / "evening news.mp4"
    video.parent.mkdir()
    video.write_bytes(b"not read")
    settings = FolderSettings(folder=tmp_path / "in", output_dir=tmp_path / "out")
    SidecarAdapter().handle_report(make_report(video), video, settings)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "evening news.srt", "evening news.videoqa.json", "evening news.vtt",
    ]  # fmt: skip
    cues = list(srt.parse((out / "evening news.srt").read_text()))
    assert [c.content for c in cues] == ["a red ball", "a blue sky"]
    assert [c.start.total_seconds() for c in cues] == [0.0, 5.0]
    assert [c.text for c in webvtt.read(str(out / "evening news.vtt"))] == [
        "a red ball",
        "a blue sky",
    ]


def test_an_interrupted_sidecar_set_is_completed_but_a_users_subtitle_is_kept(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    settings = FolderSettings(folder=tmp_path)
    # A worker killed after the SRT but before the JSON left this behind:
    (tmp_path / ".clip.mp4.videoqa-pending").write_text("clip.srt\nclip.vtt\nclip.videoqa.json\n")
    (tmp_path / "clip.srt").write_text("1\n00:00:00,000 --> 00:00:05,000\nhalf-done\n")
    SidecarAdapter().handle_report(make_report(video), video, settings)
    assert "a red ball" in (tmp_path / "clip.srt").read_text()
    assert json.loads((tmp_path / "clip.videoqa.json").read_text())["clips"][0]["caption"]
    assert not (tmp_path / ".clip.mp4.videoqa-pending").exists()

    other = tmp_path / "film.mp4"
    other.write_bytes(b"x")
    (tmp_path / "film.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nmy own subtitles\n")
    with pytest.raises(OutputError, match="not written by videoqa"):
        SidecarAdapter().prepare(other, settings)  # before any inference
    with pytest.raises(OutputError, match="not written by videoqa"):
        SidecarAdapter().handle_report(make_report(other), other, settings)
    assert "my own subtitles" in (tmp_path / "film.srt").read_text()
    assert not (tmp_path / "film.videoqa.json").exists()


def test_the_event_log_appends_one_json_line_per_event(tmp_path):
    log = tmp_path / "logs" / "events.jsonl"
    adapter = JsonLinesAdapter({"path": str(log), "include_report": True})
    adapter.handle_report(make_report(tmp_path / "a.mp4"), tmp_path / "a.mp4", None)
    adapter.handle_failure(tmp_path / "b.mp4", "b.mp4: not a readable media file")
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert (first["event"], first["video"], first["clips"]) == ("done", str(tmp_path / "a.mp4"), 2)
    assert Report.from_dict(first["report"]).clips[1].caption.text == "a blue sky"
    assert (second["event"], second["error"]) == ("failed", "b.mp4: not a readable media file")
    with pytest.raises(ConfigError, match="'path'"):
        JsonLinesAdapter({})


class Hook(BaseHTTPRequestHandler):
    """Answers each POST with the next status of ``server.statuses`` (after ``server.delay``)."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Content-Type"], json.loads(body)))
        self.server.keys.append(self.headers.get("Idempotency-Key"))
        if self.server.on_post is not None:
            self.server.on_post()
        time.sleep(self.server.delay)
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received, server.statuses, server.delay = [], [], 0.0
    server.keys, server.on_post = [], None  # Idempotency-Key headers; called on each POST
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def hook_url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/videoqa"


def test_the_webhook_posts_the_report_and_retries_server_errors(hook_server, tmp_path):
    hook_server.statuses = [503, 500]
    adapter = WebhookAdapter({"url": hook_url(hook_server), "retries": 2, "backoff": 0.01})
    video = tmp_path / "a.mp4"
    adapter.handle_report(make_report(video), video, None)
    assert len(hook_server.received) == 3
    content_type, payload = hook_server.received[-1]
    assert content_type == "application/json"
    assert payload["event"] == "done" and payload["video"] == str(video)
    assert Report.from_dict(payload["report"]).clips[0].caption.text == "a red ball"
    adapter.handle_failure(video, "a.mp4: broken")
    failed = hook_server.received[-1][1]
    assert failed == {"id": failed["id"], "event": "failed", "video": str(video),
                      "error": "a.mp4: broken"}  # fmt: skip
    assert hook_server.keys[-1] == failed["id"] != payload["id"]  # one id per event


def test_the_webhook_gives_up_after_its_retries_and_does_not_retry_client_errors(hook_server):
    hook_server.statuses = [500] * 5
    adapter = WebhookAdapter({"url": hook_url(hook_server), "retries": 2, "backoff": 0.01})
    with pytest.raises(OutputError, match="HTTP 500"):
        adapter.post({"event": "test"})
    assert len(hook_server.received) == 3
    hook_server.received.clear()
    hook_server.statuses = [404]
    with pytest.raises(OutputError, match="HTTP 404"):
        adapter.post({"event": "test"})
    assert len(hook_server.received) == 1


def test_the_webhook_times_out_on_a_server_that_does_not_answer(hook_server):
    hook_server.delay = 1.0
    adapter = WebhookAdapter({"url": hook_url(hook_server), "timeout": 0.2, "retries": 1,
                              "backoff": 0.01})  # fmt: skip
    with pytest.raises(OutputError, match="timed out"):
        adapter.post({"event": "test"})
    assert len(hook_server.received) == 2


def test_webhook_options_are_checked():
    with pytest.raises(ConfigError, match="'url'"):
        WebhookAdapter({"url": "ftp://example"})
    with pytest.raises(ConfigError, match="unknown option"):
        WebhookAdapter({"url": "http://127.0.0.1/", "retry": 3})
