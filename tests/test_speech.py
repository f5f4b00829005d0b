"""Speech-aware descriptions on real audio: speech synthesised with espeak-ng at known times,
muxed into a sample video with PyAV, found again by the voice-activity detector; description
cues go between it. Placement itself is checked on given segments without audio."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import webvtt
from click.testing import CliRunner
from test_subtitles import make_report

from videoqa.cli import cli
from videoqa.formats.descriptions import description_cues, place, placements, speech_gaps
from videoqa.report import Report
from videoqa.sidecars import Cue, write_sidecars

SAMPLE = Path(__file__).resolve().parent.parent / "sample_media" / "circle_turns_blue.mp4"
RATE = 22_050  # espeak-ng's
UTTERANCES = [  # (where it starts in the video, what is said)
    (0.6, "The circle is about to change its colour."),
    (5.6, "Watch closely now."),
    (10.8, "It turned blue, as promised."),
]


def test_gaps_and_placement_of_description_cues():
    speech = [(1.0, 2.0), (3.0, 6.5), (8.2, 9.0)]
    assert speech_gaps(speech, 0.0, 10.0) == [(0.0, 1.0), (2.0, 3.0), (6.5, 8.2), (9.0, 10.0)]
    assert speech_gaps(speech, 3.5, 6.0) == []
    # The first gap of at least min_gap inside the cue; the cue shortened or moved into it.
    assert place(Cue(0.0, 5.0, ("a",)), speech, 1.0) == (0.0, 1.0)
    assert place(Cue(0.5, 5.0, ("a",)), speech, 1.0) == (2.0, 3.0)
    assert place(Cue(5.0, 10.0, ("a",)), speech, 1.5) == (6.5, 8.2)
    assert place(Cue(3.0, 6.5, ("a",)), speech, 0.5) is None


def test_a_cue_with_no_gap_is_dropped_from_the_track_and_marked_in_the_json(tmp_path):
    report = make_report(["a dog runs", "a cat sleeps", "a bird sings"], clip_length=4.0)
    segments = [[0.5, 3.2], [4.2, 8.0], [9.5, 10.0]]
    report.speech = {"detector": "test", "min_gap": 1.0, "segments": segments,
                     "descriptions": placements(report, segments, 1.0)}  # fmt: skip
    write_sidecars(report, tmp_path / "v.mp4", formats=("json", "descriptions", "vtt"))
    track = webvtt.read(str(tmp_path / "v.descriptions.vtt"))
    assert [(c.start, c.end, c.text) for c in track] == [
        ("00:00:08.000", "00:00:09.500", "a bird sings"),
    ]
    data = json.loads((tmp_path / "v.videoqa.json").read_text(encoding="utf-8"))
    assert data["speech"]["descriptions"] == [
        {"start": 0.0, "end": 4.0, "dropped": True},
        {"start": 4.0, "end": 8.0, "dropped": True},
        {"start": 8.0, "end": 12.0, "placed": [8.0, 9.5]},
    ]
    assert [clip["caption"]["text"] for clip in data["clips"]] == [
        "a dog runs", "a cat sleeps", "a bird sings"]  # the JSON keeps them all
    # The captions' own track is untouched by speech.
    assert len(webvtt.read(str(tmp_path / "v.vtt"))) == 3
    # Read back, the report places the same way (an edit rewrites the track alike).
    assert description_cues(Report.from_dict(data)) == [Cue(8.0, 9.5, ("a bird sings",))]


def test_without_speech_known_the_descriptions_track_has_the_captions_times(tmp_path):
    report = make_report(["a dog runs", "a dog runs", "a cat"], clip_length=2.0)
    paths = write_sidecars(report, tmp_path / "v.mp4", formats=("descriptions",),
                           subtitle_language="en")  # fmt: skip
    assert [p.name for p in paths] == ["v.descriptions.en.vtt"]
    track = webvtt.read(str(paths[0]))
    assert [(c.start, c.end, c.text) for c in track] == [
        ("00:00:00.000", "00:00:04.000", "a dog runs"), ("00:00:04.000", "00:00:06.000", "a cat"),
    ]


def _espeak(text: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en", "-s", "150", "-w", str(path), text], check=True,
                   capture_output=True)  # fmt: skip
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == RATE and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


@pytest.fixture(scope="module")
def spoken_video(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[tuple[float, float]]]:
    """The sample video (15 s, no audio) with espeak-ng's speech muxed in at known times, and
    where each utterance truly sounds (its samples above a small threshold)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    if not SAMPLE.exists():
        pytest.skip("sample_media is absent")
    import av

    folder = tmp_path_factory.mktemp("speech")
    track = np.zeros(int(15.0 * RATE), dtype="<i2")
    truth = []
    for number, (at, text) in enumerate(UTTERANCES):
        samples = _espeak(text, folder / f"u{number}.wav")
        start = int(at * RATE)
        track[start : start + len(samples)] = samples
        loud = np.nonzero(np.abs(samples.astype(np.int32)) > 300)[0]
        truth.append(((start + loud[0]) / RATE, (start + loud[-1]) / RATE))
    video = folder / "spoken.mkv"
    with av.open(str(SAMPLE)) as source, av.open(str(video), "w") as output:
        source_video = source.streams.video[0]
        if hasattr(output, "add_stream_from_template"):
            out_video = output.add_stream_from_template(source_video)
        else:  # PyAV 13
            out_video = output.add_stream(template=source_video)
        out_audio = output.add_stream("pcm_s16le", rate=RATE, layout="mono")
        for packet in source.demux(source_video):
            if packet.dts is None:
                continue
            packet.stream = out_video
            output.mux(packet)
        step = 4096
        for at in range(0, len(track), step):
            frame = av.AudioFrame.from_ndarray(track[at : at + step].reshape(1, -1), format="s16",
                                               layout="mono")  # fmt: skip
            frame.sample_rate, frame.pts = RATE, at
            output.mux(out_audio.encode(frame))
        output.mux(out_audio.encode(None))
    return video, truth


def _merged(segments: list[list[float]], start: float, end: float) -> tuple[float, float]:
    inside = [s for s in segments if s[1] > start - 0.5 and s[0] < end + 0.5]
    assert inside, f"no speech found near {start:.2f}-{end:.2f}: {segments}"
    return min(s[0] for s in inside), max(s[1] for s in inside)


def test_avoid_speech_places_descriptions_between_real_speech(spoken_video, tmp_path):
    pytest.importorskip("silero_vad", reason="silero-vad (the speech extra) is not installed")
    pytest.importorskip("torch")
    source, truth = spoken_video
    video = tmp_path / source.name
    shutil.copy(source, video)
    result = CliRunner().invoke(cli, ["caption", str(video), "--model", "demo",
                                      "--clip-length", "5", "--avoid-speech",
                                      "--speech-gap", "1.0",
                                      "-f", "json,vtt,descriptions"])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = Report.load(tmp_path / "spoken.videoqa.json")
    assert report.speech is not None and report.speech["detector"].startswith("silero-vad")
    segments = report.speech["segments"]
    # Each synthesised utterance is found, within 0.3 s at each edge; nothing else is.
    for start, end in truth:
        found_start, found_end = _merged(segments, start, end)
        assert abs(found_start - start) <= 0.3 and abs(found_end - end) <= 0.3, (
            (start, end), segments)
    for seg_start, seg_end in segments:
        assert any(seg_start < end + 0.5 and seg_end > start - 0.5 for start, end in truth)
    # No description cue overlaps detected speech by more than 0.2 s.
    cues = webvtt.read(str(tmp_path / "spoken.descriptions.vtt"))
    assert cues
    for cue in cues:
        a, b = cue.start_in_seconds + cue.start_time.milliseconds / 1000, (
            cue.end_in_seconds + cue.end_time.milliseconds / 1000)
        assert b - a >= 1.0 - 1e-3
        for seg_start, seg_end in segments:
            assert min(b, seg_end) - max(a, seg_start) <= 0.2, (cue, segments)
    # Each clip's description is placed or marked dropped; the captions stay in the JSON.
    entries = report.speech["descriptions"]
    assert len(entries) == len(cues) + sum(1 for e in entries if e.get("dropped"))
    assert all(clip.caption is not None for clip in report.clips)


def test_webrtc_finds_the_same_utterances_roughly(spoken_video):
    pytest.importorskip("webrtcvad", reason="webrtcvad-wheels is not installed")
    from videoqa.vad import detect_speech

    source, truth = spoken_video
    detection = detect_speech(source, detector="webrtc")
    assert detection is not None and abs(detection.audio_seconds - 15.0) < 0.1
    for start, end in truth:  # the cheaper detector: 0.5 s at each edge
        found_start, found_end = _merged([list(s) for s in detection.segments], start, end)
        assert abs(found_start - start) <= 0.5 and abs(found_end - end) <= 0.5


def test_a_file_without_audio_behaves_as_without_avoid_speech(tmp_path):
    pytest.importorskip("silero_vad", reason="silero-vad (the speech extra) is not installed")
    if not SAMPLE.exists():
        pytest.skip("sample_media is absent")
    from videoqa.speech import SpeechOptions
    from videoqa.vad import detect_speech, prepare_report

    assert detect_speech(SAMPLE) is None
    report = make_report(["a circle"], clip_length=5.0)
    prepare_report(report, SAMPLE, SpeechOptions(avoid_speech=True))
    assert report.speech is None and "speech" not in report.to_dict()
    assert description_cues(report) == [Cue(0.0, 5.0, ("a circle",))]


def test_the_daemon_takes_style_and_speech_per_folder_and_refuses_bad_ones(tmp_path,
                                                                          spoken_video):
    pytest.importorskip("silero_vad", reason="silero-vad (the speech extra) is not installed")
    from videoqa.errors import ConfigError
    from videoqa.watch.config import load_config
    from videoqa.watch.worker import _shape_subtitles

    (tmp_path / "talks").mkdir()
    head = f"[[folders]]\npath = '{tmp_path / 'talks'}'\ncaptions = true\n"
    config_file = tmp_path / "watch.toml"
    config_file.write_text(head + "subtitle_style = 'bbc'\nmax_cps = 15\navoid_speech = true\n"
                           "speech_gap = 0.8\nformats = ['json', 'vtt', 'descriptions']\n")
    (settings,) = load_config(config_file).folders
    assert (settings.subtitle_style, settings.max_cps, settings.avoid_speech,
            settings.speech_gap) == ("bbc", 15.0, True, 0.8)  # fmt: skip
    for bad, message in (("subtitle_style = 'hbo'", "'subtitle_style': unknown style 'hbo'"),
                         ("max_lines = 0", "'max_lines' must be positive")):  # fmt: skip
        config_file.write_text(head + bad + "\n")
        with pytest.raises(ConfigError, match=message):
            load_config(config_file)
    # What the worker does with a report before the adapters write it.
    source, _ = spoken_video
    report = make_report(["a circle", "a blue circle", "a circle"], clip_length=5.0)
    _shape_subtitles(source, report, settings)
    assert report.subtitles is not None and report.subtitles["name"] == "bbc"
    assert report.subtitles["max_cps"] == 15.0
    assert report.speech is not None and report.speech["min_gap"] == 0.8
    assert len(report.speech["segments"]) == 3
