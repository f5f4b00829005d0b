"""The review page offers the descriptions track beside the captions (a small addition to web/)."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed (pip install -e '.[web]')")
pytest.importorskip("jinja2", reason="the web extra is not installed (pip install -e '.[web]')")

from tests.test_web import archive, client, key_of  # noqa: E402, F401  (fixtures)
from videoqa.report import Report  # noqa: E402
from videoqa.sidecars import write_sidecars  # noqa: E402


def test_the_video_page_has_a_descriptions_track_placed_as_the_sidecar_says(client, archive):  # noqa: F811
    key = key_of(archive["video"])
    html = client.get(f"/video/{key}").text
    assert (f'<track kind="descriptions" srclang="en" label="videoqa descriptions" '
            f'src="/video/{key}/descriptions.vtt">') in html  # fmt: skip
    json_sidecar = archive["video"].with_name(archive["video"].stem + ".videoqa.json")
    report = Report.load(json_sidecar)
    end = max(clip.end for clip in report.clips)
    report.speech = {"detector": "test", "min_gap": 1.0, "segments": [[0.0, end]],
                     "descriptions": []}  # speech all along: no description fits
    write_sidecars(report, archive["video"], formats=("json", "descriptions"))
    response = client.get(f"/video/{key}/descriptions.vtt")
    assert response.headers["content-type"] == "text/vtt; charset=utf-8"
    assert response.text == "WEBVTT\n"
    assert response.text == archive["video"].with_name(
        archive["video"].stem + ".descriptions.vtt").read_text()
