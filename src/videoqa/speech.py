"""Speech-aware placement of descriptions: the options, checked without loading anything.

``--avoid-speech`` puts the descriptions track's cues (``videoqa.formats.descriptions``) into
the pauses of the soundtrack, so that a screen reader speaking them does not talk over the
people in the film. This module holds what the command line, the daemon's config and the
Python API say about it (:class:`SpeechOptions`) and checks it before any model loads; the
detection itself is ``videoqa.vad`` (which imports torch for Silero, so that the config, the
CLI's start and the daemon's watcher never reach it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from videoqa.errors import ConfigError

if TYPE_CHECKING:
    from videoqa.formats.cues import SubtitleStyle

DETECTORS = ("silero", "webrtc")

DEFAULT_MIN_GAP = 1.0
"""Shortest pause (seconds) a description cue goes into: long enough for a few words."""


@dataclass(frozen=True)
class SpeechOptions:
    """How a report's subtitle files are shaped and whether descriptions avoid speech."""

    style: SubtitleStyle | None = None
    avoid_speech: bool = False
    min_gap: float = DEFAULT_MIN_GAP
    detector: str = "silero"

    @property
    def shapes_report(self) -> bool:
        """Whether :func:`prepare_report` changes anything."""
        return self.avoid_speech or (self.style is not None and self.style.shapes)


def speech_options(settings: Any) -> SpeechOptions:
    """The options of the daemon's ``FolderSettings`` (``subtitle_style``, ``max_line_chars``,
    ``max_lines``, ``max_cps``, ``avoid_speech``, ``speech_gap``); ``ConfigError`` on a bad
    one."""
    from videoqa.formats.cues import resolve_style

    style = resolve_style(settings.subtitle_style, max_line_chars=settings.max_line_chars,
                          max_lines=settings.max_lines, max_cps=settings.max_cps)  # fmt: skip
    return SpeechOptions(style=style, avoid_speech=settings.avoid_speech,
                         min_gap=settings.speech_gap)  # fmt: skip


def check_speech_options(options: SpeechOptions) -> None:
    """Refuse an unknown detector, a gap that is not positive, or ``avoid_speech`` without its
    detector installed: one line, before any model loads."""
    if options.detector not in DETECTORS:
        raise ConfigError(None, f"{options.detector!r} is not one of {', '.join(DETECTORS)}",
                          setting="speech_detector")  # fmt: skip
    if not options.min_gap > 0:
        raise ConfigError(None, f"{options.min_gap!r} is not a positive number of seconds",
                          setting="speech_gap")  # fmt: skip
    if options.avoid_speech:
        import importlib.util

        module, package = (("silero_vad", "videoqa[speech]") if options.detector == "silero"
                           else ("webrtcvad", "webrtcvad-wheels"))  # fmt: skip
        if importlib.util.find_spec(module) is None:
            raise ConfigError(None, f"needs {module}: pip install \"{package}\"",
                              setting="avoid_speech")  # fmt: skip
