"""The JSON API for asset managers (``/api/``), against ``videoqa serve`` in a process of its
own through a real HTTP client: search, a video's record, a clip's edit, the video list, and
the token off loopback. Traffic only to 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest

for module in ("starlette", "uvicorn", "jinja2"):
    pytest.importorskip(module, reason="the web extra is not installed (pip install -e '.[web]')")
httpx = pytest.importorskip("httpx2", reason="httpx2 is not installed (the dev extra)")

from tests.test_edited import CAPTIONS, QUESTION, circle_report  # noqa: E402
from tests.test_web import SAMPLE, index_video  # noqa: E402
from videoqa.cli.serve_commands import TOKEN_ENV, start_serving  # noqa: E402
from videoqa.index import ArchiveIndex  # noqa: E402
from videoqa.web.library import video_key  # noqa: E402

TOKEN = "api-token-0123456789abcdef"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The sample clip indexed; served on loopback and on 0.0.0.0 with a token."""
    folder = tmp_path_factory.mktemp("api")
    root = folder / "archive"
    root.mkdir()
    video = root / "circle.mp4"
    shutil.copyfile(SAMPLE, video)
    db = folder / "index.sqlite"
    index_video(db, video, circle_report(video))
    local, local_url = start_serving(db, root, folder / "cache")
    wide, wide_url = start_serving(db, root, folder / "cache-wide", host="0.0.0.0",
                                   env={TOKEN_ENV: TOKEN})  # fmt: skip
    try:
        yield {"url": local_url, "wide": wide_url, "video": video, "db": db,
               "key": video_key(os.fspath(video))}  # fmt: skip
    finally:
        for server in (local, wide):
            server.terminate()
            server.wait(timeout=30)


def same_origin(site) -> dict[str, str]:
    return {"Origin": str(site["url"]).rstrip("/")}


def test_the_video_list(site):
    response = httpx.get(f"{site['url']}api/videos")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    (video,) = response.json()["videos"]
    assert video == {"key": site["key"], "path": os.fspath(site["video"]), "name": "circle.mp4",
                     "duration": 15.0, "url": f"/video/{site['key']}",
                     "record": f"/api/videos/{site['key']}"}  # fmt: skip


def test_search_gives_the_cli_fields_with_the_key(site):
    response = httpx.get(f"{site['url']}api/search", params={"q": "blue circle"})
    assert response.status_code == 200
    found = response.json()
    assert found["query"] == "blue circle" and found["hidden"] == 0
    hit = found["hits"][0]
    assert set(hit) == {"video", "start", "end", "kind", "question", "text", "score", "rank",
                        "confidence", "clips", "key", "url"}  # fmt: skip
    assert hit["video"] == os.fspath(site["video"]) and hit["key"] == site["key"]
    assert hit["url"] == f"/video/{site['key']}?t={hit['start']:g}"
    with ArchiveIndex(site["db"]) as index:  # what videoqa search --json prints
        expected = [h.to_dict() for h in index.search("blue circle", limit=20)]
    assert [{k: v for k, v in h.items() if k not in ("key", "url")}
            for h in found["hits"]] == expected  # fmt: skip
    bad = httpx.get(f"{site['url']}api/search", params={"q": "blue", "kind": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("kind: choose")
    assert httpx.get(f"{site['url']}api/search").status_code == 400


def test_a_videos_record_is_its_report(site):
    response = httpx.get(f"{site['url']}api/videos/{site['key']}")
    assert response.status_code == 200
    record = response.json()
    on_disk = json.loads(site["video"].with_suffix(".videoqa.json").read_text())
    # the report as docs/report-schema.md describes it; the JSON's own bookkeeping of the
    # files it wrote beside it (digests) is the sidecar writer's business, not the record's
    assert record["report"] == {k: v for k, v in on_disk.items()
                                if k not in ("sidecars", "sidecar_of")}  # fmt: skip
    assert record["key"] == site["key"]
    assert httpx.get(f"{site['url']}api/videos/0000000000000000").status_code == 404


def test_a_clip_is_edited_with_put_and_patch(site):
    url = f"{site['url']}api/videos/{site['key']}/clips/1"
    assert httpx.get(url).json()["clip"]["caption"]["text"] == CAPTIONS[1]
    put = httpx.put(url, json={"caption": "an azure disc", "answers": {QUESTION: "azure"}},
                    headers=same_origin(site))  # fmt: skip
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["clip"]["caption"] == {**body["clip"]["caption"], "text": "an azure disc",
                                       "edited": True}  # fmt: skip
    assert body["written"] == ["circle.videoqa.json", "circle.srt", "circle.vtt"]
    data = json.loads(site["video"].with_suffix(".videoqa.json").read_text())
    assert data["clips"][1]["answers"][0]["answer"] == "azure"
    assert "an azure disc" in site["video"].with_suffix(".srt").read_text()
    found = httpx.get(f"{site['url']}api/search", params={"q": "azure disc"}).json()["hits"]
    assert found and found[0]["start"] == 5.0
    patch = httpx.patch(url, json={"caption": "an azure disc"}, headers=same_origin(site))
    assert patch.status_code == 200 and patch.json()["written"] == []  # nothing changed


def test_api_edits_are_checked_as_the_form_is(site):
    url = f"{site['url']}api/videos/{site['key']}/clips/0"
    before = site["video"].with_suffix(".videoqa.json").read_bytes()
    origin = same_origin(site)
    cases = [
        (httpx.put(url, json={"caption": "   "}, headers=origin), 400, "an empty caption"),
        (httpx.put(url, json={"answers": {"who?": "me"}}, headers=origin), 400, "no answer to"),
        (httpx.put(url, json={"colour": "x"}, headers=origin), 400, "send {"),
        (httpx.put(url, json={"caption": 5}, headers=origin), 400, "caption: a string"),
        (httpx.put(url, content="caption=x", headers={**origin, "Content-Type":
                   "application/x-www-form-urlencoded"}), 415, "application/json"),
        (httpx.put(url, json={"caption": "x" * 5000}, headers=origin), 413, "at most"),
        (httpx.put(url, json={"caption": "y" * 1_000_000}, headers=origin), 413, "at most"),
        (httpx.put(url, json={"caption": "no origin"}), 403, "refused"),
        (httpx.put(url, json={"caption": "evil"}, headers={"Origin": "http://evil.example"}),
         403, "another site"),
        (httpx.put(f"{site['url']}api/videos/{site['key']}/clips/9", json={"caption": "x"},
                   headers=origin), 404, "no clip 9"),
    ]  # fmt: skip
    for response, status, text in cases:
        assert response.status_code == status, response.text
        assert text in response.text
    assert site["video"].with_suffix(".videoqa.json").read_bytes() == before


def test_off_loopback_the_api_needs_the_token(site):
    wide = site["wide"]
    for path in ("api/videos", "api/search?q=blue", f"api/videos/{site['key']}"):
        refused = httpx.get(f"{wide}{path}")
        assert refused.status_code == 401, path
        assert refused.json()["error"].startswith("authentication needed")
        assert httpx.get(f"{wide}{path}",
                         headers={"Authorization": "Bearer " + TOKEN[::-1]}).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{wide}api/search", params={"q": "blue"}, headers=bearer).json()["hits"]
    url = f"{wide}api/videos/{site['key']}/clips/2"
    assert httpx.patch(url, json={"caption": "unauthorised"}).status_code == 401
    # A bearer token is no cookie a browser would add by itself: it stands for the CSRF token.
    edited = httpx.patch(url, json={"caption": "a teal disc"}, headers=bearer)
    assert edited.status_code == 200, edited.text
    assert "a teal disc" in site["video"].with_suffix(".vtt").read_text()
