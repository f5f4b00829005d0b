"""TTML sidecars (IMSC 1.1 Text, EBU-TT-D) read back by ttconv, not by us: the same cues, at
the same times, as the SRT file (read by ``srt``)."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from fractions import Fraction

import pytest
import srt
from test_subtitles import CAPTIONS, make_report

from videoqa.formats.cues import resolve_style
from videoqa.sidecars import write_sidecars

reader = pytest.importorskip("ttconv.imsc.reader", reason="ttconv (dev extra) reads TTML back")
model = pytest.importorskip("ttconv.model")

TT = "{http://www.w3.org/ns/ttml}"


def ttconv_cues(path) -> list[tuple[Fraction, Fraction, list[str]]]:
    """(begin, end, lines) of every ``<p>`` as ttconv's IMSC reader models the document."""
    document = reader.to_model(ET.parse(path))
    assert document is not None
    cues = []
    for element in document.get_body().dfs_iterator():
        if not isinstance(element, model.P):
            continue
        text = []
        for part in element.dfs_iterator():
            if isinstance(part, model.Text):
                text.append(part.get_text())
            elif isinstance(part, model.Br):
                text.append("\n")
        cues.append((element.get_begin() or Fraction(0), element.get_end(),
                     "".join(text).split("\n")))  # fmt: skip
    return cues


@pytest.mark.parametrize("style", ["none", "netflix", "bbc"])
@pytest.mark.parametrize("fmt", ["ttml", "ebutt"])
def test_ttconv_reads_our_ttml_back_with_the_srt_files_cues_and_times(tmp_path, caplog, style,
                                                                      fmt):
    report = make_report([*CAPTIONS, "fish & <chips> \"quoted\"", "\x07bell"], fps=25.0)
    report.subtitles = resolve_style(style).to_dict()
    with_language = "en" if fmt == "ebutt" else None
    paths = write_sidecars(report, tmp_path / "v.mp4", formats=("json", "srt", fmt),
                           subtitle_language=with_language)  # fmt: skip
    subtitle = paths[-1]
    assert subtitle.name == ("v.en.ebutt.xml" if fmt == "ebutt" else "v.ttml")
    expected = [(Fraction(round(s.start.total_seconds() * 1000), 1000),
                 Fraction(round(s.end.total_seconds() * 1000), 1000),
                 s.content.replace("\x07", "").split("\n"))  # XML 1.0 cannot hold a BEL
                for s in srt.parse(paths[1].read_text(encoding="utf-8"))]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        found = ttconv_cues(subtitle)
    assert found == expected
    assert [record.getMessage() for record in caplog.records] == []  # ttconv found no fault
    assert ["fish & <chips> \"quoted\""] in [lines for _, _, lines in found]
    assert ["bell"] in [lines for _, _, lines in found]  # no character XML cannot hold

    root = ET.parse(subtitle).getroot()
    assert root.tag == f"{TT}tt"
    if fmt == "ttml":
        profile = root.get("{http://www.w3.org/ns/ttml#parameter}contentProfiles")
        assert profile == "http://www.w3.org/ns/ttml/profile/imsc1.1/text"
    else:  # EBU-TT-D: its metadata, media time base, text only inside spans
        standard = root.find(f"{TT}head/{TT}metadata/{{urn:ebu:tt:metadata}}documentMetadata/"
                             "{urn:ebu:tt:metadata}conformsToStandard")  # fmt: skip
        assert standard is not None and standard.text == "urn:ebu:tt:distribution:2014-01"
        assert root.get("{http://www.w3.org/ns/ttml#parameter}timeBase") == "media"
        for paragraph in root.iter(f"{TT}p"):
            assert not (paragraph.text or "").strip()
            assert all(child.tag in (f"{TT}span", f"{TT}br") for child in paragraph)
