"""An XMP sidecar: a description, keywords and Adobe's dynamic-media markers.

Asset managers read ``dc:description`` (here the distinct captions, in order) and
``dc:subject`` (keywords: the distinct answers, without bare yes/no and numbers, which mean
nothing without their question). The clips are markers of one ``xmpDM:Tracks`` track, as
Premiere and Bridge write them (XMP Specification Part 2, "Track" and "Marker"): the track's
``xmpDM:frameRate`` is the video's rate (``f25``, ``f30000s1001``) and each marker's
``xmpDM:startTime`` and ``xmpDM:duration`` are whole frames of it; ``xmpDM:name`` is the
caption and ``xmpDM:comment`` the answers. See docs/integrations/asset-managers.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fractions import Fraction
from xml.sax.saxutils import escape

from videoqa.formats.lines import clip_lines
from videoqa.formats.markers import clip_markers, frame_rate
from videoqa.report import Report

TRACK_NAME = "videoqa"
TRACK_TYPE = "Comment"
"""Premiere's marker type for plain markers with a name and a comment."""

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_A_KEYWORD = re.compile(r"(yes|no|[0-9]+([.,][0-9]+)?)", re.IGNORECASE)


def render(report: Report) -> str:
    """The XMP packet for ``report``'s video."""
    rate = frame_rate(report.video.fps)
    properties = [f"<xmp:CreatorTool>{_text(report.generator)}</xmp:CreatorTool>"]
    clips = sorted(report.clips, key=lambda clip: clip.start)
    said = (" | ".join(clip_lines(clip, captions=report.has_captions)) for clip in clips)
    summary = "; ".join(_distinct(said))
    if summary:
        properties.append(
            "<dc:description><rdf:Alt>"
            f'<rdf:li xml:lang="x-default">{_text(summary)}</rdf:li>'
            "</rdf:Alt></dc:description>"
        )
    keywords = keywords_of(report)
    if keywords:
        items = "".join(f"<rdf:li>{_text(word)}</rdf:li>" for word in keywords)
        properties.append(f"<dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>")
    markers = "".join(
        '<rdf:li rdf:parseType="Resource">'
        f"<xmpDM:startTime>{marker.start}</xmpDM:startTime>"
        f"<xmpDM:duration>{marker.duration}</xmpDM:duration>"
        f"<xmpDM:name>{_text(marker.name)}</xmpDM:name>"
        + (f"<xmpDM:comment>{_text(marker.comment)}</xmpDM:comment>" if marker.comment else "")
        + "</rdf:li>"
        for marker in clip_markers(report, rate)
    )
    if markers:
        properties.append(
            '<xmpDM:Tracks><rdf:Bag><rdf:li rdf:parseType="Resource">'
            f"<xmpDM:trackName>{TRACK_NAME}</xmpDM:trackName>"
            f"<xmpDM:trackType>{TRACK_TYPE}</xmpDM:trackType>"
            f"<xmpDM:frameRate>{frame_rate_text(rate)}</xmpDM:frameRate>"
            f"<xmpDM:markers><rdf:Seq>{markers}</rdf:Seq></xmpDM:markers>"
            "</rdf:li></rdf:Bag></xmpDM:Tracks>"
        )
    body = "\n   ".join(properties)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmpDM="http://ns.adobe.com/xmp/1.0/DynamicMedia/">\n'
        f"   {body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>\n'
    )


def frame_rate_text(rate: Fraction) -> str:
    """XMP's FrameRate: ``f25`` for 25 fps, ``f30000s1001`` for 29.97 (``f`` frames per
    ``s`` seconds)."""
    if rate.denominator == 1:
        return f"f{rate.numerator}"
    return f"f{rate.numerator}s{rate.denominator}"


def keywords_of(report: Report) -> list[str]:
    """The distinct answers in order of first appearance (yes, no and numbers left out)."""
    answers = (qa.answer.strip() for clip in report.clips for qa in clip.answers)
    return _distinct(a for a in answers if not _NOT_A_KEYWORD.fullmatch(a))


def _distinct(texts: Iterable[str]) -> list[str]:
    """Non-empty texts, each once (case-insensitively), in their first order."""
    seen: dict[str, str] = {}
    for text in texts:
        text = " ".join(text.split())
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return list(seen.values())


def _text(text: str) -> str:
    """``text`` as XML character data: escaped, without characters XML 1.0 cannot hold."""
    return escape(_NOT_XML.sub("", text))
