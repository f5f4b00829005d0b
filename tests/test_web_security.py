"""Attacks on ``videoqa serve`` in processes of its own, through a real HTTP client (issue 22):
the token off loopback, DNS rebinding on every bind address, writes without ``Origin``, huge
edits, a thumbnail cache flooded with times, and the headers that stop framing and sniffing.

All traffic goes to 127.0.0.0/8 on this machine: a server bound to 0.0.0.0 is reached through
127.0.0.1, which is what makes it reachable from the network at all.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

for module in ("starlette", "uvicorn", "jinja2"):
    pytest.importorskip(module, reason="the web extra is not installed (pip install -e '.[web]')")
httpx = pytest.importorskip("httpx2", reason="httpx2 is not installed (the dev extra)")

from tests.test_edited import QUESTION, circle_report  # noqa: E402
from tests.test_web import SAMPLE, index_video  # noqa: E402
from videoqa.cli.serve_commands import start_serving  # noqa: E402
from videoqa.web.app import MAX_EDIT_BYTES  # noqa: E402
from videoqa.web.library import video_key  # noqa: E402
from videoqa.web.thumbnails import ThumbnailCache  # noqa: E402

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("secure")
    root = folder / "archive"
    root.mkdir()
    video = root / "circle.mp4"
    shutil.copyfile(SAMPLE, video)
    db = folder / "index.sqlite"
    index_video(db, video, circle_report(video))
    return {"root": root, "db": db, "video": video, "folder": folder}


def serve(archive: dict[str, Path], name: str, **options) -> tuple[subprocess.Popen[str], str]:
    return start_serving(archive["db"], archive["root"], archive["folder"] / f"cache-{name}",
                         **options)  # fmt: skip


@pytest.fixture(scope="module")
def loopback(archive) -> Iterator[str]:
    server, url = serve(archive, "loopback")
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def everywhere(archive) -> Iterator[tuple[str, str]]:
    """``--host 0.0.0.0`` with the token it makes and prints; (url on 127.0.0.1, token)."""
    server, url = serve(archive, "everywhere", host="0.0.0.0")
    assert server.stderr is not None
    line = server.stderr.readline()
    port = url.rsplit(":", 1)[1].strip("/")
    found = re.search(rf"open http://{re.escape(socket.gethostname())}:{port}/"
                      r"\?token=([A-Za-z0-9_-]{32}) once", line)  # fmt: skip
    assert found, line
    yield url, found.group(1)
    server.terminate()
    server.wait(timeout=30)


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def key(archive: dict[str, Path]) -> str:
    return video_key(os.fspath(archive["video"]))


def test_off_loopback_every_request_needs_the_token(archive, everywhere):
    url, token = everywhere
    k = key(archive)
    with httpx.Client(base_url=url) as client:
        for path in ("/", f"/video/{k}", f"/video/{k}/media", f"/video/{k}/captions.vtt",
                     f"/video/{k}/thumbnail?t=1", f"/video/{k}/clip/0/edit", "/static/style.css",
                     "/api/videos", f"/api/videos/{k}", "/api/search?q=circle"):  # fmt: skip
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert "circle" not in refused.text
        assert client.get("/", params={"token": "wrong" + token}).status_code == 401
        # The printed link once: a cookie, and the address without the token.
        first = client.get("/", params={"token": token, "q": "blue"})
        assert first.status_code == 303 and first.headers["location"] == "/?q=blue"
        assert "HttpOnly" in first.headers["set-cookie"]
        assert "SameSite=Lax" in first.headers["set-cookie"]
        sideways = httpx.get(f"{url}/evil.example/", params={"token": token})  # //evil.example/
        assert sideways.status_code == 303 and sideways.headers["location"] == "/evil.example/"
        assert client.get("/", params={"q": "blue"}).status_code == 200  # the cookie now
        assert client.get(f"/video/{k}/media", headers={"Range": "bytes=0-9"}).status_code == 206
    bearer = httpx.get(f"{url}api/videos", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200 and bearer.json()["videos"][0]["key"] == k


def test_a_rebinding_host_is_refused_on_every_bind_address(archive, everywhere):
    url, token = everywhere
    k = key(archive)
    before = files_of(archive["root"])
    port = url.rsplit(":", 1)[1].strip("/")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/").status_code == 200
        assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
        forged = client.post(f"/video/{k}/clip/0/edit", data={"caption": "rebound"},
                             headers={"Host": f"evil.example:{port}",
                                      "Origin": f"http://evil.example:{port}"})  # fmt: skip
        assert forged.status_code == 400
    assert files_of(archive["root"]) == before
    # Any 127.0.0.0/8 address is loopback: no token, and the Host check stays on.
    server, other = serve(archive, "dot-two", host="127.0.0.2")
    try:
        second = other.replace("127.0.0.1", "127.0.0.2")
        assert httpx.get(second).status_code == 200
        assert httpx.get(second, headers={"Host": "evil.example"}).status_code == 400
        assert httpx.get(second, headers={"Host": f"localhost:{port}"}).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_another_allowed_host_is_added_by_name(archive):
    server, url = serve(archive, "named", options=["--allowed-host", "archive.example"])
    try:
        assert httpx.get(url, headers={"Host": "archive.example"}).status_code == 200
        assert httpx.get(url, headers={"Host": "evil.example"}).status_code == 400
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_post_without_origin_needs_the_csrf_token(archive, loopback):
    k = key(archive)
    before = files_of(archive["root"])
    edit = f"{loopback}video/{k}/clip/2/edit"
    no_origin = httpx.post(edit, data={"caption": "forged"},
                           headers={"Referer": "http://evil.example/x"})  # fmt: skip
    assert no_origin.status_code == 403
    wrong = httpx.post(edit, data={"caption": "forged", "csrf": "0" * 32})
    assert wrong.status_code == 403
    other_site = httpx.post(edit, data={"caption": "forged"},
                            headers={"Origin": "http://evil.example"})  # fmt: skip
    assert other_site.status_code == 403
    assert files_of(archive["root"]) == before
    with httpx.Client() as browser_like:  # the page's session cookie and its form's token
        form = browser_like.get(edit)
        csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', form.text).group(1)
        saved = browser_like.post(edit, data={"caption": "a proper correction", "csrf": csrf,
                                              "question-0": QUESTION, "answer-0": "blue"})
        assert saved.status_code == 303
        # the token is the session's: another session's cookie does not fit it
        assert httpx.post(edit, data={"caption": "forged", "csrf": csrf}).status_code == 403
    assert "a proper correction" in archive["video"].with_suffix(".srt").read_text()


def test_pages_cannot_be_framed_or_sniffed(archive, loopback):
    for path in ("", f"video/{key(archive)}", "static/video.js", "nowhere"):
        response = httpx.get(f"{loopback}{path}")
        assert response.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "script-src 'self';" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"


def test_an_edit_over_the_limit_gets_413_and_nothing_is_written(archive, loopback):
    k = key(archive)
    edit = f"{loopback}video/{k}/clip/1/edit"
    origin = {"Origin": loopback.rstrip("/")}
    before = files_of(archive["root"])
    huge = "caption=" + "x" * 1_000_000
    with httpx.Client() as client:
        declared = client.post(edit, content=huge, headers={
            **origin, "Content-Type": "application/x-www-form-urlencoded"})
        assert declared.status_code == 413
    def chunks() -> Iterator[bytes]:  # no Content-Length: refused while streaming
        yield b"caption="
        for _ in range(100):
            yield b"y" * 10_000
    with httpx.Client() as client:
        streamed = client.post(edit, content=chunks(), headers={
            **origin, "Content-Type": "application/x-www-form-urlencoded"})
        assert streamed.status_code == 413
    # Under the body limit but a text over the per-text limit: 413 too.
    long_text = httpx.post(edit, data={"caption": "z" * 5000}, headers=origin)
    assert long_text.status_code == 413 and len("caption=" + "z" * 5000) < MAX_EDIT_BYTES
    assert files_of(archive["root"]) == before


def test_times_within_one_frame_make_one_cache_file(archive, loopback):
    k = key(archive)
    cache = archive["folder"] / "cache-loopback"
    before = set(cache.rglob("*.jpg")) if cache.exists() else set()
    frame = 1 / 25  # the sample is 25 fps: frame 100 lasts from 4.00 to 4.04 s
    images = set()
    with httpx.Client(base_url=loopback) as client:
        for step in range(300):
            response = client.get(f"/video/{k}/thumbnail",
                                  params={"t": f"{4.0 + step * frame / 300:.9f}"})
            assert response.status_code == 200
            images.add(response.content)
    assert len(images) == 1
    assert len(set(cache.rglob("*.jpg")) - before) == 1
    with httpx.Client(base_url=loopback) as client:  # far past the end: the last frame
        assert client.get(f"/video/{k}/thumbnail", params={"t": "1e300"}).status_code == 200


def test_the_thumbnail_cache_stays_under_its_size(tmp_path):
    cache = ThumbnailCache(tmp_path / "cache", max_bytes=20_000)
    for step in range(40):
        cache.thumbnail(SAMPLE, step * 0.3)
        total = sum(path.stat().st_size for path in (tmp_path / "cache").rglob("*.jpg"))
        assert total <= 20_000
    assert len(list((tmp_path / "cache").rglob("*.jpg"))) >= 2


def test_serve_refuses_a_weak_token_in_one_line(archive):
    from click.testing import CliRunner

    from videoqa.cli import cli

    with socket.socket():
        result = CliRunner().invoke(cli, ["serve", "--db", str(archive["db"]), "--root",
                                          str(archive["root"]), "--token", "short"])
    assert result.exit_code == 1
    assert result.stderr == ("videoqa: error: --token: 16 or more letters, digits, '.', '_', "
                             "'~' or '-'\n")
