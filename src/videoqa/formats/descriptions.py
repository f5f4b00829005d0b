"""A WebVTT descriptions track: the captions as text a screen reader speaks (``-f descriptions``).

HTML's ``<track kind="descriptions">`` is the track a browser hands to assistive technology
(or a player speaks with ``speechSynthesis``) instead of showing it, for viewers who cannot
see the picture: what our captions say. The file is ordinary WebVTT, named
``<stem>.descriptions.vtt`` (``<stem>.descriptions.LANG.vtt`` with a language: Plex reads the
last word as the language, Jellyfin and Kodi make ``descriptions`` the track's title; see
docs/integrations/media-servers.md).

A description spoken over dialogue drowns one or the other. When the report says where people
speak (``report.speech``, from ``videoqa.vad`` with ``avoid_speech``), each description cue
goes into the first stretch without speech inside its clip that lasts at least ``min_gap``
seconds, shortened to that stretch; a clip with no such stretch gets no description cue (its
caption stays in the JSON, and ``speech.descriptions`` marks it ``dropped``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from videoqa.formats.cuelist import Cue, build_cues
from videoqa.report import Report

SUFFIX = "descriptions"


def descriptions_target(stem: str, folder: Path, language: str | None = None) -> Path:
    """``<stem>.descriptions.vtt``, or ``<stem>.descriptions.<language>.vtt``."""
    middle = f".{language}" if language else ""
    return folder / f"{stem}.{SUFFIX}{middle}.vtt"


def speech_gaps(segments: Sequence[Sequence[float]], start: float, end: float
                ) -> list[tuple[float, float]]:  # fmt: skip
    """The stretches of [start, end) that no speech segment covers, in time order."""
    gaps = []
    at = start
    for seg_start, seg_end in sorted((float(a), float(b)) for a, b in segments):
        if seg_end <= at:
            continue
        if seg_start >= end:
            break
        if seg_start > at:
            gaps.append((at, min(seg_start, end)))
        at = max(at, seg_end)
    if at < end:
        gaps.append((at, end))
    return gaps


def place(cue: Cue, segments: Sequence[Sequence[float]], min_gap: float
          ) -> tuple[float, float] | None:  # fmt: skip
    """Where ``cue`` goes between speech: the first gap of at least ``min_gap`` seconds inside
    it (the cue shortened or moved to that gap), or None when none is long enough."""
    for gap_start, gap_end in speech_gaps(segments, cue.start, cue.end):
        if gap_end - gap_start >= min_gap - 1e-9:
            return round(gap_start, 3), round(gap_end, 3)
    return None


def placements(report: Report, segments: Sequence[Sequence[float]], min_gap: float
               ) -> list[dict[str, Any]]:  # fmt: skip
    """What ``speech.descriptions`` records: each description cue's span, and where it went
    (``placed``: ``[start, end]``) or that it was ``dropped``."""
    entries: list[dict[str, Any]] = []
    for cue in build_cues(report):
        spot = place(cue, segments, min_gap)
        entry: dict[str, Any] = {"start": round(cue.start, 6), "end": round(cue.end, 6)}
        if spot is None:
            entry["dropped"] = True
        else:
            entry["placed"] = list(spot)
        entries.append(entry)
    return entries


def description_cues(report: Report) -> list[Cue]:
    """The descriptions track's cues: one per caption cue, placed between speech when the
    report knows where speech is (placed afresh from its segments, so an edited caption is
    placed alike), else at the caption's own times."""
    cues = build_cues(report)
    speech = report.speech if isinstance(report.speech, dict) else None
    if not speech or not isinstance(speech.get("segments"), list):
        return cues
    segments = [tuple(pair) for pair in speech["segments"] if len(pair) == 2]
    min_gap = float(speech.get("min_gap", 0.0))
    placed = []
    for cue in cues:
        spot = place(cue, segments, min_gap)
        if spot is not None:
            placed.append(Cue(spot[0], spot[1], cue.lines))
    return placed
