"""An OpenTimelineIO timeline: the video as one clip, a marker per videoqa clip.

Editors import ``.otio`` directly (DaVinci Resolve) or through OpenTimelineIO's adapters
(Premiere via FCP XML, Avid via AAF): see docs/integrations/editors.md. The file is the
``otio_json`` serialisation, written here with the standard library so that videoqa needs no
OpenTimelineIO install; the tests read it back with the ``opentimelineio`` package.

The schema versions are those of OpenTimelineIO 0.14 (``Clip.1`` with one media reference),
which every later release reads (it upgrades them on load), so older editor builds read it too.
Times are ``RationalTime`` values in whole frames of the video's rate.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

from videoqa.formats.markers import clip_markers, frame_rate, to_frames
from videoqa.pathnames import dumps_json, readable
from videoqa.report import Report

MARKER_COLOR = "GREEN"


def render(report: Report, video: str | os.PathLike[str]) -> str:
    """The timeline of ``report``'s video (found at ``video``) as ``otio_json`` text."""
    video = Path(os.path.abspath(video))
    rate = frame_rate(report.video.fps)
    name = readable(video.name)  # a name that is not UTF-8 with \xNN escapes (display only)
    available = _range(0, to_frames(report.video.duration, rate), rate)
    clip = {
        "OTIO_SCHEMA": "Clip.1",
        "name": name,
        "metadata": {},
        "source_range": available,  # the whole video (FCP XML and EDL adapters need it set)
        "effects": [],
        "markers": [
            {
                "OTIO_SCHEMA": "Marker.2",
                "name": marker.name,
                "comment": marker.comment,
                "color": MARKER_COLOR,
                "marked_range": _range(marker.start, marker.duration, rate),
                "metadata": {"videoqa": marker.data},
            }
            for marker in clip_markers(report, rate)
        ],
        "enabled": True,
        "media_reference": {
            "OTIO_SCHEMA": "ExternalReference.1",
            "name": name,
            "metadata": {},
            "available_range": available,
            "target_url": video.as_uri(),  # every byte of the real name, percent-encoded
        },
    }
    models = [model.id for model in dict.fromkeys((report.model, report.caption_model)) if model]
    timeline = {
        "OTIO_SCHEMA": "Timeline.1",
        "name": name,
        "metadata": {"videoqa": {"generator": report.generator, "models": models}},
        "global_start_time": None,
        "tracks": _composition("Stack.1", "tracks", [
            {**_composition("Track.1", "V1", [clip]), "kind": "Video"},
        ]),
    }  # fmt: skip
    return dumps_json(timeline, indent=4) + "\n"


def _composition(schema: str, name: str, children: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": schema,
        "name": name,
        "metadata": {},
        "source_range": None,
        "effects": [],
        "markers": [],
        "enabled": True,
        "children": children,
    }


def _range(start: int, duration: int, rate: Fraction) -> dict[str, Any]:
    return {
        "OTIO_SCHEMA": "TimeRange.1",
        "start_time": _time(start, rate),
        "duration": _time(duration, rate),
    }


def _time(frames: int, rate: Fraction) -> dict[str, Any]:
    return {"OTIO_SCHEMA": "RationalTime.1", "rate": float(rate), "value": float(frames)}
