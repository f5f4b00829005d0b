"""TTML subtitles: the IMSC 1.1 Text profile (``-f ttml``) and EBU-TT-D (``-f ebutt``).

IMSC 1.1 Text is what Netflix, browsers' MSE players (dash.js) and most streaming delivery
take; EBU-TT-D is what European broadcasters (BBC iPlayer, ARD, HbbTV) take. Both are TTML:
the same cues as the SRT and WebVTT files (``videoqa.formats.cues``, in the report's style),
each a ``<p>`` with its lines separated by ``<br/>``, bottom-centred in one region, white on
black. Written with the standard library; the tests read both back with ``ttconv`` (the
IMSC reader of Sandflow/MovieLabs, not ours).

EBU-TT-D adds what its specification (EBU Tech 3380) requires of a document: its own
metadata namespace with ``conformsToStandard``, text in ``<span>``, ``ttp:timeBase="media"``,
a cell resolution and explicit font size and line height.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

from videoqa.formats.cuelist import Cue, format_timestamp
from videoqa.formats.cues import subtitle_cues
from videoqa.report import Report

IMSC_TEXT_PROFILE = "http://www.w3.org/ns/ttml/profile/imsc1.1/text"
EBU_TT_D = "urn:ebu:tt:distribution:2014-01"

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(report: Report, *, ebu: bool = False, language: str = "") -> str:
    """The report's subtitle cues as an IMSC 1.1 Text document, or EBU-TT-D with ``ebu``.

    ``language`` is the document's ``xml:lang`` (empty: undetermined, as TTML allows).
    """
    cues = subtitle_cues(report)
    namespaces = [
        'xmlns="http://www.w3.org/ns/ttml"',
        'xmlns:ttp="http://www.w3.org/ns/ttml#parameter"',
        'xmlns:tts="http://www.w3.org/ns/ttml#styling"',
        'xmlns:ttm="http://www.w3.org/ns/ttml#metadata"',
    ]
    if ebu:
        namespaces += ['xmlns:ebuttm="urn:ebu:tt:metadata"', 'xmlns:ebutts="urn:ebu:tt:style"']
        root = (f'<tt {" ".join(namespaces)} ttp:timeBase="media" ttp:cellResolution="50 30" '
                f'xml:lang={quoteattr(language)}>')  # fmt: skip
        metadata = (
            "  <metadata>\n"
            "   <ebuttm:documentMetadata>\n"
            f"    <ebuttm:conformsToStandard>{EBU_TT_D}</ebuttm:conformsToStandard>\n"
            "   </ebuttm:documentMetadata>\n"
            "  </metadata>\n"
        )
    else:
        root = (f'<tt {" ".join(namespaces)} ttp:contentProfiles="{IMSC_TEXT_PROFILE}" '
                f'xml:lang={quoteattr(language)}>')  # fmt: skip
        metadata = f"  <metadata><ttm:title>{_text(_title(report))}</ttm:title></metadata>\n"
    style = (
        '<style xml:id="s" tts:fontFamily="proportionalSansSerif" tts:fontSize="100%" '
        'tts:lineHeight="125%" tts:textAlign="center" tts:color="#FFFFFF" '
        'tts:backgroundColor="#000000C2"/>'
    )
    region = (
        '<region xml:id="bottom" tts:origin="10% 10%" tts:extent="80% 80%" '
        'tts:displayAlign="after" tts:writingMode="lrtb"/>'
    )
    paragraphs = "".join(_paragraph(number, cue, ebu) for number, cue in enumerate(cues, 1))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{root}\n"
        " <head>\n"
        f"{metadata}"
        f"  <styling>{style}</styling>\n"
        f"  <layout>{region}</layout>\n"
        " </head>\n"
        ' <body style="s" region="bottom">\n'
        f"  <div>\n{paragraphs}  </div>\n"
        " </body>\n"
        "</tt>\n"
    )


def _paragraph(number: int, cue: Cue, ebu: bool) -> str:
    lines = [_text(line) for line in cue.lines]
    if ebu:  # EBU-TT-D: character content only inside spans
        lines = [f"<span>{line}</span>" for line in lines]
    begin, end = format_timestamp(cue.start), format_timestamp(cue.end)
    return f'   <p xml:id="c{number}" begin="{begin}" end="{end}">{"<br/>".join(lines)}</p>\n'


def _title(report: Report) -> str:
    return f"videoqa: {report.video.path.rsplit('/', 1)[-1]}"


def _text(text: str) -> str:
    """``text`` as XML character data: escaped, without characters XML 1.0 cannot hold."""
    return escape(_NOT_XML.sub("", text))
