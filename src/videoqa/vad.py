"""Where people speak in a video's audio: voice-activity detection for description placement.

The audio is decoded with PyAV (the file's first audio stream, resampled to 8 kHz mono in
FFmpeg's swresample) and given to a voice-activity detector whose model ships in its PyPI
package, so nothing is downloaded at run time:

- ``silero`` (default): Silero VAD (``silero-vad``, the ``speech`` extra; a 2 MB network run
  with torch on the CPU).
- ``webrtc``: WebRTC's GMM detector (``webrtcvad-wheels``), much cheaper; for comparison
  (benchmarks/bench_vad.py).

Both are imported only when speech is detected. A file without audio has no speech to avoid:
its report gets no ``speech`` key and its descriptions keep their clips' times, as without
``--avoid-speech``. The options are ``videoqa.speech``'s.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from videoqa.errors import ConfigError, MediaError
from videoqa.pathnames import readable
from videoqa.speech import DETECTORS, SpeechOptions

if TYPE_CHECKING:
    import numpy as np

    from videoqa.report import Report

logger = logging.getLogger("videoqa.vad")

SAMPLE_RATE = 8_000
"""What both detectors are given (Silero takes 8 or 16 kHz, WebRTC 8, 16, 32 or 48 kHz): at
8 kHz Silero costs a quarter less than at 16 kHz (benchmarks/bench_vad.py), and finds the
test's speech (tests/test_speech.py) at the same edges within 0.05 s."""


@dataclass(frozen=True)
class SpeechDetection:
    """Speech found in a file's audio: segments in timeline seconds, and what found them."""

    segments: tuple[tuple[float, float], ...]
    detector: str
    audio_seconds: float


def decode_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, float] | None:
    """The file's first audio stream as 8 kHz mono float32 samples, and the timeline time of
    the first sample; None when the file has no audio stream."""
    import av
    import numpy as np

    from videoqa.av_compat import open_input

    try:
        container = open_input(os.fspath(path))
    except (av.FFmpegError, OSError) as error:
        raise MediaError(path, f"cannot open: {error}") from None
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        start = 0.0
        if stream.start_time is not None and stream.time_base is not None:
            start = float(stream.start_time * stream.time_base)
        if container.start_time is not None:
            start -= container.start_time / av.time_base
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as error:
            raise MediaError(path, f"cannot decode its audio: {error}") from None
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return samples.astype(np.float32, copy=False), max(start, 0.0)


_SILERO: Any = None


def _silero_model() -> Any:
    global _SILERO
    if _SILERO is None:
        import warnings

        from silero_vad import load_silero_vad

        with warnings.catch_warnings():  # the package's own deprecated calls, not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            _SILERO = load_silero_vad()  # the JIT model inside the wheel: no download
    return _SILERO


def _silero_segments(samples: np.ndarray) -> list[tuple[float, float]]:
    import torch
    from silero_vad import get_speech_timestamps

    with torch.inference_mode():
        # Pauses under 0.3 s (between words) stay inside one segment: no description fits
        # there, and the segments read as phrases.
        stamps = get_speech_timestamps(torch.from_numpy(samples), _silero_model(),
                                       sampling_rate=SAMPLE_RATE,
                                       min_silence_duration_ms=300)  # fmt: skip
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def _webrtc_segments(samples: np.ndarray, *, mode: int = 3, frame_ms: int = 30,
                     min_speech: float = 0.25, min_silence: float = 0.3
                     ) -> list[tuple[float, float]]:  # fmt: skip
    """WebRTC's per-frame decisions, smoothed as Silero's are: speech shorter than
    ``min_speech`` dropped, pauses shorter than ``min_silence`` bridged."""
    import numpy as np
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    step = SAMPLE_RATE * frame_ms // 1000
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    segments: list[list[float]] = []
    for at in range(0, len(pcm) - step + 1, step):
        if vad.is_speech(pcm[at : at + step].tobytes(), SAMPLE_RATE):
            start, end = at / SAMPLE_RATE, (at + step) / SAMPLE_RATE
            if segments and start - segments[-1][1] < min_silence:
                segments[-1][1] = end
            else:
                segments.append([start, end])
    return [(a, b) for a, b in segments if b - a >= min_speech]


def detect_speech(path: str | os.PathLike[str], detector: str = "silero"
                  ) -> SpeechDetection | None:  # fmt: skip
    """Speech in ``path``'s audio (timeline seconds), or None when it has no audio stream."""
    decoded = decode_audio(path)
    if decoded is None:
        return None
    samples, offset = decoded
    if detector == "silero":
        from importlib.metadata import version

        found, name = _silero_segments(samples), f"silero-vad {version('silero-vad')}"
    elif detector == "webrtc":
        found, name = _webrtc_segments(samples), "webrtcvad"
    else:
        raise ConfigError(None, f"{detector!r} is not one of {', '.join(DETECTORS)}",
                          setting="speech_detector")  # fmt: skip
    segments = tuple((round(a + offset, 3), round(b + offset, 3)) for a, b in found)
    return SpeechDetection(segments, name, len(samples) / SAMPLE_RATE)


def prepare_report(report: Report, video: str | os.PathLike[str], options: SpeechOptions
                   ) -> Report:  # fmt: skip
    """Record in ``report`` what its subtitle files follow (``subtitles``) and, with
    ``avoid_speech``, where people speak and where each description cue goes (``speech``).

    The clips' texts are untouched. Returns ``report`` (changed in place).
    """
    if options.style is not None and options.style.shapes:
        report.subtitles = options.style.to_dict()
    if not options.avoid_speech:
        return report
    from videoqa.formats.descriptions import placements

    detection = detect_speech(video, detector=options.detector)
    if detection is None:
        logger.info("%s: no audio stream: descriptions keep their clips' times",
                    readable(video))  # fmt: skip
        return report
    segments = [list(pair) for pair in detection.segments]
    report.speech = {
        "detector": detection.detector,
        "min_gap": options.min_gap,
        "segments": segments,
        "descriptions": placements(report, segments, options.min_gap),
    }
    return report
