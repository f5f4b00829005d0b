"""The review page's HTTP side, through Starlette's test client: search, pages, range requests,
the edit round trip, and refusals (paths, symlinks, other origins and hosts)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")
pytest.importorskip("jinja2", reason="the web extra is not installed (pip install -e '.[web]')")

from tests.indexed_video import write_indexed_video
from tests.test_edited import CAPTIONS, QUESTION, circle_report
from videoqa.index import ArchiveIndex
from videoqa.media import probe
from videoqa.report import Caption, ClipResult, ModelInfo, Report, Sampling, VideoFacts
from videoqa.sidecars import write_sidecars
from videoqa.web.app import create_app
from videoqa.web.library import NAMED_COLOURS, PALETTE, browser_media_type, video_key

try:
    from starlette.testclient import TestClient
except (ImportError, RuntimeError):  # it needs httpx2 (before Starlette 1.3: httpx)
    pytest.skip("starlette's test client needs httpx2 (the dev extra)", allow_module_level=True)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"


def index_video(db: Path, video: Path, report: Report) -> Path:
    """Write ``report``'s sidecars beside ``video`` and index them; the JSON sidecar's path."""
    write_sidecars(report, video)
    json_path = video.with_suffix(".videoqa.json")
    with ArchiveIndex(db) as index:
        index.add_sidecar(json_path)
    return json_path


@pytest.fixture
def archive(tmp_path: Path) -> dict[str, Path]:
    """A served folder with the sample clip indexed, and one outside it, indexed too."""
    root, outside = tmp_path / "archive", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    db = tmp_path / "index.sqlite"
    video = root / "circle.mp4"
    shutil.copyfile(SAMPLE, video)
    index_video(db, video, circle_report(video))
    secret = outside / "secret.mp4"
    shutil.copyfile(SAMPLE, secret)
    index_video(db, secret, circle_report(secret, captions=("a red secret",) * 3))
    return {"root": root, "outside": outside, "db": db, "video": video, "secret": secret,
            "cache": tmp_path / "cache"}  # fmt: skip


@pytest.fixture
def client(archive) -> TestClient:
    app = create_app(archive["db"], [archive["root"]], cache_dir=archive["cache"])
    return TestClient(app)


def key_of(path: Path) -> str:
    return video_key(os.fspath(path))


def post_edit(client: TestClient, key: str, index: int, data: dict[str, str], **options):
    """Post an edit as the form does: with the CSRF token from the edit page (the test client
    sends no Origin, like a browser that leaves it out)."""
    form = client.get(f"/video/{key}/clip/{index}/edit").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
    return client.post(f"/video/{key}/clip/{index}/edit",
                       data={**data, "csrf": csrf.group(1) if csrf else ""}, **options)


def test_search_lists_moments_with_thumbnail_link_time_text_and_score(client, archive):
    page = client.get("/", params={"q": "blue circle"})
    assert page.status_code == 200
    key = key_of(archive["video"])
    html = page.text
    # Clips 5-10 s and 10-15 s say "blue circle"; the link starts the video at the moment.
    assert f'href="/video/{key}?t=5"' in html
    assert f'src="/video/{key}/thumbnail?t=' in html
    assert "00:00:05.000 – 00:00:10.000" in html
    assert CAPTIONS[1] in html and "circle.mp4" in html
    assert 'class="score"' in html
    # The video outside the served folder is not shown, only counted.
    assert "secret" not in html


def test_a_search_the_index_cannot_read_is_one_line_not_a_traceback(client):
    page = client.get("/", params={"q": "blue", "kind": "nonsense"})
    assert page.status_code == 400
    assert 'class="error"' in page.text and "kind: choose caption, answer" in page.text
    page = client.get("/", params={"q": "***"})
    assert page.status_code == 400
    assert re.search(r'<p class="error" role="alert">[^<\n]*no words to search for', page.text)
    assert "Traceback" not in page.text


def test_the_start_page_lists_only_served_videos(client, archive):
    html = client.get("/").text
    assert f'/video/{key_of(archive["video"])}"' in html
    assert "secret.mp4" not in html


def test_the_video_page_plays_with_captions_from_the_moment_and_a_timeline(client, archive):
    key = key_of(archive["video"])
    page = client.get(f"/video/{key}", params={"t": "5"})
    assert page.status_code == 200
    html = page.text
    # The media fragment starts the player there as it loads; video.js seeks without it.
    assert (f'<video id="player" controls preload="metadata" playsinline '
            f'src="/video/{key}/media#t=5.001" data-start="5">') in html  # fmt: skip
    assert (f'<track kind="captions" srclang="en" label="videoqa" '
            f'src="/video/{key}/captions.vtt" default>') in html  # fmt: skip
    # A row for the captions and one per question; equal answers share one colour, and an
    # answer that names a colour is drawn in it (the issue saw "red" drawn blue).
    assert html.count('class="row"') == 2
    segments = re.findall(r'<a class="seg" [^>]*background: (#[0-9A-F]{6})"', html)
    assert len(segments) == 6
    assert segments[3:] == [NAMED_COLOURS["red"], NAMED_COLOURS["blue"], NAMED_COLOURS["blue"]]
    assert len(set(segments[:3])) == 3  # three different captions
    # the captions take the colour-blind-safe palette, leaving out the answers' colours
    assert set(segments[:3]) <= set(PALETTE) - set(segments[3:])
    assert 'title="00:00:05.000 – 00:00:10.000\nblue\nconfidence 0.98"' in html
    assert 'data-start="10"' in html and 'href="?t=10"' in html
    assert 'id="unplayable" class="note" hidden' in html


def test_the_captions_track_is_the_webvtt_sidecar(client, archive):
    response = client.get(f"/video/{key_of(archive['video'])}/captions.vtt")
    assert response.headers["content-type"] == "text/vtt; charset=utf-8"
    assert response.text == archive["video"].with_suffix(".vtt").read_text()


def test_video_bytes_come_with_range_requests(client, archive):
    url = f"/video/{key_of(archive['video'])}/media"
    data = archive["video"].read_bytes()
    size = len(data)
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    for asked, first, last in (("0-99", 0, 99), ("1000-", 1000, size - 1),
                               (f"-{500}", size - 500, size - 1),
                               (f"{size - 10}-{size + 50}", size - 10, size - 1)):  # fmt: skip
        part = client.get(url, headers={"Range": f"bytes={asked}"})
        assert part.status_code == 206, asked
        assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert part.content == data[first:last + 1]
    beyond = client.get(url, headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{size}"


def test_thumbnails_are_the_frame_at_the_moment_and_are_cached(client, archive):
    url = f"/video/{key_of(archive['video'])}/thumbnail"
    red = client.get(url, params={"t": "2.5"})
    blue = client.get(url, params={"t": "7.5"})
    assert red.headers["content-type"] == blue.headers["content-type"] == "image/jpeg"
    frames = [cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
              for r in (red, blue)]  # fmt: skip
    assert frames[0].shape == (180, 240, 3)  # 320x240 at 240 px wide
    # The circle is red before 5 s and blue after: the brightest pixels say which (BGR).
    for frame, channel in zip(frames, (2, 0), strict=True):
        brightest = frame.reshape(-1, 3)[frame.reshape(-1, 3).sum(axis=1).argmax()]
        assert brightest.argmax() == channel
    cached = sorted(archive["cache"].rglob("*.jpg"))
    assert len(cached) == 2
    inodes = [path.stat().st_ino for path in cached]  # a file made again is a new inode
    assert client.get(url, params={"t": "7.5"}).content == blue.content
    assert [path.stat().st_ino for path in sorted(archive["cache"].rglob("*.jpg"))] == inodes
    assert client.get(url, params={"t": "nan"}).status_code == 400
    assert client.get(url).status_code == 400


def test_editing_a_caption_rewrites_the_sidecars_and_the_index(client, archive):
    video, key = archive["video"], key_of(archive["video"])
    form = client.get(f"/video/{key}/clip/1/edit")
    assert form.status_code == 200 and CAPTIONS[1] in form.text
    saved = post_edit(client, key, 1, {"caption": "a cobalt disc glides left",
                                       "question-0": QUESTION, "answer-0": "cobalt"},
                      follow_redirects=False)  # fmt: skip
    assert saved.status_code == 303
    assert saved.headers["location"] == (
        f"/video/{key}?t=5&saved=circle.videoqa.json%2C+circle.srt%2C+circle.vtt"
    )
    data = json.loads(video.with_suffix(".videoqa.json").read_text())
    assert data["clips"][1]["caption"]["text"] == "a cobalt disc glides left"
    assert data["clips"][1]["caption"]["edited"] is True
    assert data["clips"][1]["answers"][0] == {**data["clips"][1]["answers"][0],
                                              "answer": "cobalt", "edited": True}
    assert "a cobalt disc glides left" in video.with_suffix(".srt").read_text()
    assert "a cobalt disc glides left" in video.with_suffix(".vtt").read_text()
    # The index has the new text (and not the old one for that clip).
    with ArchiveIndex(archive["db"]) as index:
        texts = [row.text for row in index.clips(os.fspath(video)) if row.start == 5.0]
    assert sorted(texts) == ["a cobalt disc glides left", "cobalt"]
    found = client.get("/", params={"q": "cobalt"}).text
    assert f'href="/video/{key}?t=5"' in found
    page = client.get(saved.headers["location"]).text
    assert "Saved: circle.videoqa.json, circle.srt, circle.vtt" in page
    assert 'a cobalt disc glides left <span class="edited">edited</span>' in page
    assert "a cobalt disc glides left" in client.get(f"/video/{key}/captions.vtt").text


def test_edits_from_another_origin_or_empty_are_refused_and_change_nothing(client, archive):
    key = key_of(archive["video"])
    folder = archive["root"]
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    forged = client.post(f"/video/{key}/clip/1/edit", data={"caption": "pwned"},
                         headers={"Origin": "http://evil.example"})  # fmt: skip
    assert forged.status_code == 403
    empty = post_edit(client, key, 1, {"caption": "  "})
    assert empty.status_code == 400
    assert "an empty caption is not a correction" in empty.text
    assert post_edit(client, key, 9, {"caption": "x"}).status_code == 404
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


@pytest.mark.parametrize("path", [
    "/video/../../etc/passwd",
    "/video/%2e%2e%2f%2e%2e%2fetc%2fpasswd/media",
    "/video/%2Fetc%2Fpasswd/media",
    "/video//etc/passwd",
    "/static/../app.py",
    "/static/%2e%2e%2fapp.py",
    "/static/..%2Fapp.py",
    "/static/app.py",
    "/video/0000000000000000/media",
])  # fmt: skip
def test_paths_from_requests_reach_no_file(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert b"def create_app" not in response.content and b"root:" not in response.content


def test_videos_outside_the_roots_are_not_served_even_by_their_key(client, archive):
    key = key_of(archive["secret"])
    for suffix in ("", "/media", "/captions.vtt", "/thumbnail?t=1", "/clip/0/edit"):
        assert client.get(f"/video/{key}{suffix}").status_code == 404, suffix
    found = client.get("/", params={"q": "secret"})
    assert "secret.mp4" not in found.text
    assert "1 more result in videos this server does not serve" in found.text


def test_a_symlink_out_of_a_root_is_not_followed(archive):
    link = archive["root"] / "link.mp4"
    link.symlink_to(archive["secret"])
    report = circle_report(link, captions=("a linked secret",) * 3)
    index_video(archive["db"], link, report)
    inside = archive["root"] / "inside.mp4"
    inside.symlink_to(archive["video"])  # a symlink that stays inside is fine
    index_video(archive["db"], inside, circle_report(inside))
    client = TestClient(create_app(archive["db"], [archive["root"]], cache_dir=archive["cache"]))
    assert client.get(f"/video/{key_of(link)}/media").status_code == 404
    assert "link.mp4" not in client.get("/", params={"q": "linked"}).text
    assert client.get(f"/video/{key_of(inside)}/media").status_code == 200


def test_other_hosts_are_refused_when_hosts_are_named(archive):
    app = create_app(archive["db"], [archive["root"]], cache_dir=archive["cache"],
                     allowed_hosts=["127.0.0.1", "localhost"])  # fmt: skip
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://attacker.example").get("/").status_code == 400


def test_a_video_browsers_cannot_play_gets_frames_and_captions_with_a_note(archive, tmp_path):
    avi = archive["root"] / "marked.avi"
    write_indexed_video(avi, codec="mpeg4", frames=50, rate=25)
    info = probe(avi)
    facts = VideoFacts.from_info(info)
    assert (facts.codec, facts.format_name) == ("mpeg4", "avi")
    model = ModelInfo("demo", None, "video", 6, (32, 32), "pad")
    clips = [ClipResult(0, 0.0, 1.0, (0.5,), Caption("the first second", -0.1)),
             ClipResult(1, 1.0, 2.0, (1.5,), Caption("the second second", -0.1))]
    report = Report(facts, model, Sampling(1.0, 1.0, 0.0, 2.0, 20, 30), (), model, clips)
    index_video(archive["db"], avi, report)
    client = TestClient(create_app(archive["db"], [archive["root"]], cache_dir=archive["cache"]))
    key = key_of(avi)
    html = client.get(f"/video/{key}").text
    assert "<video" not in html
    assert ('<p id="unplayable" class="note">Browsers cannot play mpeg4 in avi: frames and '
            "captions are shown below instead of a player.</p>") in html  # fmt: skip
    assert f'src="/video/{key}/thumbnail?t=0.50"' in html and "the second second" in html
    assert client.get(f"/video/{key}/thumbnail", params={"t": "0.5"}).status_code == 200


def test_a_file_name_that_is_not_utf8_is_served_and_shown_readably(archive):
    odd = archive["root"] / os.fsdecode(b"caf\xe9.mp4")
    shutil.copyfile(SAMPLE, odd)
    index_video(archive["db"], odd, circle_report(odd, captions=("a latin one",) * 3))
    client = TestClient(create_app(archive["db"], [archive["root"]], cache_dir=archive["cache"]))
    key = key_of(odd)
    assert "caf\\xe9.mp4" in client.get("/", params={"q": "latin"}).text
    assert "<h1>caf\\xe9.mp4</h1>" in client.get(f"/video/{key}").text
    assert client.get(f"/video/{key}/media").content == SAMPLE.read_bytes()
    assert "a latin one" in client.get(f"/video/{key}/captions.vtt").text
    saved = post_edit(client, key, 0, {"caption": "a latin correction"}, follow_redirects=False)
    assert saved.status_code == 303
    assert "a latin correction" in odd.with_suffix(".srt").read_text()


def test_a_sidecar_gone_since_it_was_indexed_is_one_line(client, archive):
    json_path = archive["video"].with_suffix(".videoqa.json")
    json_path.write_text("{not json")
    page = client.get(f"/video/{key_of(archive['video'])}")
    assert page.status_code == 500
    assert page.text.startswith(f"cannot show this video: {json_path}: not JSON: ")
    assert "\n" not in page.text and "Traceback" not in page.text
    json_path.unlink()
    gone = client.get(f"/video/{key_of(archive['video'])}/captions.vtt")
    assert gone.status_code == 500 and "cannot read" in gone.text


def test_which_formats_get_a_player():
    assert browser_media_type("h264", "mov,mp4,m4a,3gp,3g2,mj2") == "video/mp4"
    assert browser_media_type("vp9", "matroska,webm") == "video/webm"
    assert browser_media_type("hevc", "mov,mp4,m4a,3gp,3g2,mj2") is None
    assert browser_media_type("mpeg4", "avi") is None
    assert browser_media_type(None, None) is None


def test_serve_says_in_one_line_what_is_missing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from videoqa.cli import cli

    missing = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 1
    assert missing.stderr == (f"videoqa: error: {tmp_path / 'none.sqlite'}: no index here "
                              "(make one with: videoqa index FOLDER --db FILE)\n")  # fmt: skip
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if the web extra were absent
    bare = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "none.sqlite")])
    assert bare.exit_code == 1
    assert bare.stderr == ("videoqa: error: the web extra is not installed: "
                           "pip install 'videoqa[web]' (starlette is missing)\n")  # fmt: skip


def test_serve_refuses_a_port_in_use_in_one_line(archive):
    from click.testing import CliRunner

    from videoqa.cli import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--db", str(archive["db"]), "--root",
                                          str(archive["root"]), "--port", str(port)])
    assert result.exit_code == 1
    assert result.stderr == (f"videoqa: error: --port: cannot listen on 127.0.0.1:{port}: "
                             "Address already in use\n")  # fmt: skip


PROJECT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = next((folder for folder in (PROJECT / "shared" / "media",
                                           PROJECT.parent / "shared" / "media",
                                           PROJECT.parent.parent / "shared" / "media")
                     if folder.is_dir()), PROJECT / "shared" / "media")  # fmt: skip
"""The project's shared test media (../shared/media beside the checkout, or a worktree's)."""


def test_a_note_says_when_the_player_shows_another_stream_than_the_report(archive):
    source = SHARED_MEDIA / "nasa_13013.mp4"
    if not source.is_file():
        pytest.skip(f"{source} is not here")
    nasa = archive["root"] / "nasa.mp4"
    shutil.copyfile(source, nasa)
    info = probe(nasa)  # FFmpeg picks stream #3 (480x270); browsers play the first, #0
    assert (info.video_stream, info.streams[0].kind) == (3, "video")
    model = ModelInfo("demo", None, "video", 6, (32, 32), "pad")
    clips = [ClipResult(0, 0.0, 5.0, (2.5,), Caption("a rocket on the pad", -0.1))]
    report = Report(VideoFacts.from_info(info), model, Sampling(5.0, 5.0, 0.0, 5.0, 20, 30), (),
                    model, clips)  # fmt: skip
    index_video(archive["db"], nasa, report)
    client = TestClient(create_app(archive["db"], [archive["root"]], cache_dir=archive["cache"]))
    html = client.get(f"/video/{key_of(nasa)}").text
    assert ("The player shows the first video stream, #0 (320x180); the captions and "
            "answers describe stream #3 (480x270).") in html  # fmt: skip
    assert "h264 in mp4 · stream #3" in html
    assert "stream-note" not in client.get(f"/video/{key_of(archive['video'])}").text


def test_codecs_and_containers_have_the_names_people_know(tmp_path):
    from videoqa.ffmpeg_names import codec_name, container_name

    av1 = tmp_path / "av1.mp4"
    try:
        write_indexed_video(av1, codec="libsvtav1", frames=8, height=64,
                            options={"g": "8"})  # fmt: skip
    except Exception as error:  # an FFmpeg build without the encoder
        pytest.skip(f"cannot write AV1 here: {error}")
    info = probe(av1)
    stream = info.streams[info.video_stream]
    assert (stream.codec, info.container) == ("av1", "mp4")
    assert stream.decoder in (None, "libdav1d", "libaom-av1")  # the decoder, apart
    assert VideoFacts.from_info(info).codec == "av1"
    assert browser_media_type("av1", info.format_name) == "video/mp4"
    assert browser_media_type("libdav1d", info.format_name) == "video/mp4"  # an older report
    assert codec_name("libdav1d") == "av1" and codec_name("h264") == "h264"
    samples = Path(__file__).resolve().parents[1] / "sample_media"
    assert probe(samples / "triangle_joins.webm").container == "webm"
    mkv = tmp_path / "x.mkv"
    write_indexed_video(mkv, frames=4)
    assert probe(mkv).container == "matroska"
    mov = tmp_path / "x.mov"
    write_indexed_video(mov, frames=4)
    assert probe(mov).container == "mov"  # FFmpeg's mov muxer writes the qt brand
    assert container_name("mov,mp4,m4a,3gp,3g2,mj2", brand="M4A ") == "m4a"
    assert container_name("avi") == "avi"
