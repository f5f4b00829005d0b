"""Outputs that media tools read, read back by those tools: OpenTimelineIO timelines with the
``opentimelineio`` package, XMP sidecars with ExifTool, subtitle names with a language.

Tests skip, saying why, where ``opentimelineio`` (the dev extra) or ``exiftool`` (Debian's
``libimage-exiftool-perl``; CI installs it) is absent.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import srt
import webvtt
from test_sidecars import make_report
from videoqa_plugins.sidecars import SidecarAdapter

from videoqa.errors import ConfigError, OutputError
from videoqa.formats.markers import frame_rate
from videoqa.report import Report
from videoqa.sidecars import (
    check_subtitle_language,
    move_sidecars,
    recorded_subtitle_language,
    sidecar_paths,
    write_sidecars,
)
from videoqa.watch.config import FolderSettings, load_config

NTSC = 30000 / 1001
CAPTIONS = ["a dog runs", "a dog & a <cat>", "a cat sits", "a bird"]
ANSWERS = [("a dog", "yes"), ("a dog", "brown"), ("a cat", "2"), ("a bird", "black")]
SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"


def ntsc_report(**options) -> Report:
    """Four 2.5 s clips with captions and answers, at 29.97 fps (clip ends between frames)."""
    report = make_report(CAPTIONS, ANSWERS, duration=9.9, **options)
    report.video = dataclasses.replace(report.video, fps=NTSC)
    return report


def exiftool(path: Path) -> dict:
    """What ExifTool reads from ``path``, structures kept (``-struct``)."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool is not installed (Debian: libimage-exiftool-perl)")
    done = subprocess.run(["exiftool", "-json", "-struct", str(path)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)[0]


def test_frame_rates_are_the_fractions_editors_write():
    assert frame_rate(NTSC) == Fraction(30000, 1001)
    assert frame_rate(24000 / 1001) == Fraction(24000, 1001)
    assert frame_rate(25.0) == 25 and frame_rate(59.94005994005994) == Fraction(60000, 1001)
    assert frame_rate(0.0) == frame_rate(float("nan")) == 1000  # no rate: milliseconds


def test_otio_timeline_reads_back_with_opentimelineio(tmp_path):
    otio = pytest.importorskip("opentimelineio", reason="opentimelineio (dev extra) reads it")
    video = tmp_path / "évening news.mp4"
    report = ntsc_report()
    written = write_sidecars(report, video, formats="json,otio")
    assert [p.name for p in written] == ["évening news.videoqa.json", "évening news.otio"]

    timeline = otio.adapters.read_from_file(str(tmp_path / "évening news.otio"))
    assert timeline.name == "évening news.mp4"
    [track] = timeline.tracks
    [clip] = list(track)
    assert track.kind == otio.schema.TrackKind.Video and clip.name == "évening news.mp4"
    reference = clip.media_reference
    assert otio.url_utils.filepath_from_url(reference.target_url) == str(video)
    available = reference.available_range
    assert available.start_time == otio.opentime.RationalTime(0, NTSC)
    assert available.duration == otio.opentime.RationalTime(round(9.9 * NTSC), NTSC)  # 297

    json_clips = json.loads((tmp_path / "évening news.videoqa.json").read_text())["clips"]
    assert [marker.name for marker in clip.markers] == CAPTIONS
    half_frame = 0.5 / NTSC
    for marker, result, saved in zip(clip.markers, report.clips, json_clips, strict=True):
        marked = marker.marked_range
        assert marked.start_time.rate == NTSC and marked.start_time.value == round(
            result.start * NTSC)  # fmt: skip
        assert abs(marked.start_time.to_seconds() - result.start) <= half_frame
        assert abs(marked.end_time_exclusive().to_seconds() - result.end) <= half_frame
        assert marker.comment == "; ".join(f"{qa.question}: {qa.answer}"
                                           for qa in result.answers)  # fmt: skip
        assert marker.color == otio.schema.MarkerColor.GREEN
        data = json.loads(otio.adapters.write_to_string(marker, "otio_json"))["metadata"]
        assert data["videoqa"] == saved  # answers and scores, as the JSON sidecar has them
    # Markers of touching clips touch: no frame lost or doubled by rounding.
    ends = [m.marked_range.end_time_exclusive() for m in clip.markers]
    assert [m.marked_range.start_time for m in clip.markers[1:]] == ends[:-1]


def test_the_timeline_converts_to_fcp_xml_with_its_markers_for_premiere(tmp_path):
    """Premiere imports Final Cut Pro 7 XML: OpenTimelineIO's ``fcp_xml`` adapter (the
    ``otio-fcp-adapter`` package, dev extra) turns our timeline into one with every marker."""
    otio = pytest.importorskip("opentimelineio", reason="opentimelineio (dev extra) reads it")
    if "fcp_xml" not in otio.adapters.available_adapter_names():
        pytest.skip("no fcp_xml adapter (pip install otio-fcp-adapter)")
    from xml.etree import ElementTree

    report = ntsc_report()
    write_sidecars(report, tmp_path / "clip.mov", formats="otio")
    timeline = otio.adapters.read_from_file(str(tmp_path / "clip.otio"))
    otio.adapters.write_to_file(timeline, str(tmp_path / "clip.xml"), adapter_name="fcp_xml")
    clip_item = ElementTree.parse(tmp_path / "clip.xml").find(".//clipitem")
    assert clip_item.findtext("file/pathurl") == (tmp_path / "clip.mov").as_uri()
    assert (clip_item.findtext("rate/timebase"), clip_item.findtext("rate/ntsc")) == ("30", "TRUE")
    markers = [(m.findtext("name"), int(m.findtext("in")), int(m.findtext("out")))
               for m in clip_item.iter("marker")]  # fmt: skip
    assert markers == [(clip.caption.text, round(clip.start * NTSC), round(clip.end * NTSC))
                       for clip in report.clips]  # fmt: skip


def test_xmp_markers_read_back_with_exiftool_at_the_videos_frame_rate(tmp_path):
    report = ntsc_report()
    write_sidecars(report, tmp_path / "clip.mov", formats="xmp,json")
    tags = exiftool(tmp_path / "clip.xmp")
    assert tags["Description"] == "; ".join(CAPTIONS)
    assert tags["Subject"] == ["a dog", "brown", "a cat", "a bird", "black"]  # no yes, no 2
    [track] = tags["Tracks"]
    assert (track["TrackName"], track["TrackType"]) == ("videoqa", "Comment")
    assert track["FrameRate"] == "f30000s1001"
    rate = Fraction(30000, 1001)
    for marker, clip in zip(track["Markers"], report.clips, strict=True):
        start = Fraction(int(marker["StartTime"])) / rate
        end = start + Fraction(int(marker["Duration"])) / rate
        assert abs(start - Fraction(clip.start)) <= 1 / (2 * rate)
        assert abs(end - Fraction(clip.end)) <= 1 / (2 * rate)
        assert marker["Name"] == clip.caption.text
        assert marker["Comment"] == "; ".join(f"{qa.question}: {qa.answer}" for qa in clip.answers)
    assert [m["StartTime"] for m in track["Markers"]] == [0, 75, 150, 225]

    # 25 fps: whole frames per second, f25; questions only: the answers name the markers.
    questions = make_report(None, [("a dog", "brown"), ("a cat", "black")])
    write_sidecars(questions, tmp_path / "q.mp4", formats="xmp")
    [track] = exiftool(tmp_path / "q.xmp")["Tracks"]
    assert track["FrameRate"] == "f25"
    assert [(m["StartTime"], m["Duration"], m["Name"]) for m in track["Markers"]] == [
        (0, 62, "what is it?: a dog | what color?: brown"),
        (62, 63, "what is it?: a cat | what color?: black"),
    ]
    assert "Comment" not in track["Markers"][0]


def test_an_xmp_videoqa_did_not_write_is_never_replaced(tmp_path):
    video = tmp_path / "clip.mp4"
    bridge = tmp_path / "clip.xmp"  # Bridge's (or a DAM's) own sidecar
    bridge.write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>\n")
    digikam = tmp_path / "clip.mp4.xmp"  # digiKam's default name: not ours to touch either
    digikam.write_text("digiKam's\n")
    with pytest.raises(OutputError, match=r"clip\.xmp: exists and was not written by videoqa"):
        write_sidecars(ntsc_report(), video, formats="json,srt,xmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4.xmp", "clip.xmp"]
    assert bridge.read_text() == "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>\n"

    bridge.unlink()
    write_sidecars(ntsc_report(), video, formats="json,srt,xmp")
    write_sidecars(make_report(["a cow"]), video, formats="json,srt,xmp")  # ours: replaced
    assert exiftool(bridge)["Description"] == "a cow"
    assert digikam.read_text() == "digiKam's\n"


def test_a_subtitle_language_names_the_subtitles_as_media_servers_read_them(tmp_path):
    report = ntsc_report()
    paths = write_sidecars(report, tmp_path / "film.mkv", formats="all", subtitle_language="en")
    assert [p.name for p in paths] == [
        "film.videoqa.json", "film.en.srt", "film.en.vtt", "film.txt", "film.otio", "film.xmp",
        "film.en.ttml", "film.en.ebutt.xml", "film.descriptions.en.vtt",
    ]  # fmt: skip
    assert [s.content for s in srt.parse((tmp_path / "film.en.srt").read_text())] == CAPTIONS
    cues = webvtt.read(str(tmp_path / "film.en.vtt"))  # webvtt-py leaves &amp; escaped
    assert [c.text.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
            for c in cues] == CAPTIONS  # fmt: skip
    recorded = json.loads((tmp_path / "film.videoqa.json").read_text())["sidecars"]
    assert set(recorded) == {p.name for p in paths[1:]}
    # Without a language, today's names; a twin video keeps its own set, with the language.
    assert sidecar_paths(tmp_path / "other.mkv", formats="srt") == {"srt": tmp_path / "other.srt"}
    write_sidecars(make_report(["a cat"]), tmp_path / "film.mp4", formats="json,srt",
                   subtitle_language="pt-BR")  # fmt: skip
    assert (tmp_path / "film.mp4.pt-BR.srt").exists()
    # A user's subtitle file in that language is protected like any other.
    (tmp_path / "talk.de.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nmeine\n")
    with pytest.raises(OutputError, match="talk.de.srt: exists and was not written by videoqa"):
        write_sidecars(report, tmp_path / "talk.mp4", subtitle_language="de")
    assert not (tmp_path / "talk.videoqa.json").exists()


@pytest.mark.parametrize("language", ["en.forced", "forced", "sdh", "e n", "english", "", "../x"])
def test_a_subtitle_language_that_is_no_language_code_is_refused(tmp_path, language):
    with pytest.raises(ConfigError) as caught:
        write_sidecars(ntsc_report(), tmp_path / "a.mp4", subtitle_language=language)
    assert caught.value.setting == "subtitle_language"
    assert str(caught.value).startswith(f"subtitle_language: {language!r} is not a language code")
    assert list(tmp_path.iterdir()) == []
    assert check_subtitle_language("deu") == "deu" and check_subtitle_language(None) is None


def test_a_renamed_video_takes_every_recorded_format_and_language_along(tmp_path):
    otio = pytest.importorskip("opentimelineio", reason="opentimelineio (dev extra) reads it")
    write_sidecars(ntsc_report(), tmp_path / "a.mp4", formats="all", subtitle_language="de")
    moved = move_sidecars(tmp_path / "a.mp4", tmp_path / "b.mkv")
    expected = sorted(["b.de.srt", "b.de.vtt", "b.otio", "b.txt", "b.videoqa.json", "b.xmp",
                       "b.de.ttml", "b.de.ebutt.xml", "b.descriptions.de.vtt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == expected == sorted(p.name for p in moved)
    data = json.loads((tmp_path / "b.videoqa.json").read_text())
    assert set(data["sidecars"]) == set(expected) - {"b.videoqa.json"}
    # The timeline names the video: it now points at the new file, and is still ours.
    timeline = otio.adapters.read_from_file(str(tmp_path / "b.otio"))
    url = timeline.tracks[0][0].media_reference.target_url
    assert otio.url_utils.filepath_from_url(url) == str(tmp_path / "b.mkv")
    write_sidecars(ntsc_report(), tmp_path / "b.mkv", formats="all", subtitle_language="de")
    # Same stem (b.mkv -> b.mp4): names stay, the timeline follows the new file.
    move_sidecars(tmp_path / "b.mkv", tmp_path / "b.mp4")
    timeline = otio.adapters.read_from_file(str(tmp_path / "b.otio"))
    assert timeline.tracks[0][0].media_reference.target_url.endswith("/b.mp4")
    write_sidecars(ntsc_report(), tmp_path / "b.mp4", formats="otio")  # still ours


def test_an_edit_in_the_review_page_rewrites_the_subtitles_under_their_language(tmp_path):
    """``videoqa serve``'s edit rewrites the files videoqa wrote: ``clip.en.srt`` too (the
    language read back from the names the JSON sidecar records), not a new ``clip.srt``."""
    from videoqa.web.edits import edit_clip

    video = tmp_path / "clip.mp4"
    write_sidecars(ntsc_report(), video, formats="all", subtitle_language="en")
    assert recorded_subtitle_language(video) == "en"
    edit_clip(tmp_path / "clip.videoqa.json", video, 1, caption="a dog and a cat")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["clip.en.srt", "clip.en.vtt", "clip.otio", "clip.txt",
                            "clip.videoqa.json", "clip.xmp", "clip.en.ttml", "clip.en.ebutt.xml",
                            "clip.descriptions.en.vtt"])  # fmt: skip
    assert [s.content for s in srt.parse((tmp_path / "clip.en.srt").read_text())][1] == (
        "a dog and a cat")  # fmt: skip
    assert exiftool(tmp_path / "clip.xmp")["Tracks"][0]["Markers"][1]["Name"] == "a dog and a cat"
    write_sidecars(make_report(["x"]), tmp_path / "plain.mp4")
    assert recorded_subtitle_language(tmp_path / "plain.mp4") is None


def test_the_sidecar_adapter_takes_formats_and_a_subtitle_language(tmp_path):
    video = tmp_path / "in" / "news.mp4"
    video.parent.mkdir()
    video.write_bytes(b"not read")
    settings = FolderSettings(folder=tmp_path / "in", formats=("json", "srt"))
    adapter = SidecarAdapter({"formats": ["json", "srt", "xmp"], "subtitle_language": "fr"})
    adapter.prepare(video, settings)
    adapter.handle_report(ntsc_report(), video, settings)
    assert sorted(p.name for p in video.parent.iterdir()) == [
        "news.fr.srt", "news.mp4", "news.videoqa.json", "news.xmp",
    ]  # fmt: skip
    # A rename moves what was written, even once the adapter's settings differ.
    SidecarAdapter().handle_rename(video, video.with_name("late news.mp4"), settings)
    assert sorted(p.name for p in video.parent.iterdir()) == [
        "late news.fr.srt", "late news.videoqa.json", "late news.xmp", "news.mp4",
    ]  # fmt: skip
    # The folder's own language is used when the adapter names none.
    german = dataclasses.replace(settings, subtitle_language="de")
    SidecarAdapter().handle_report(ntsc_report(), video, german)
    assert (video.parent / "news.de.srt").exists()
    for options, reason in (({"subtitle_language": "en.sdh"}, "is not a language code"),
                            ({"formats": ["srt", "edl"]}, "unknown format edl")):  # fmt: skip
        with pytest.raises(ConfigError, match=rf"^\[adapters.sidecars\]: .*{reason}"):
            SidecarAdapter(options)


def test_a_folder_names_its_subtitle_language_in_the_config(tmp_path):
    (tmp_path / "news").mkdir()
    config_file = tmp_path / "videoqa.toml"
    config_file.write_text('[[folders]]\npath = "news"\nsubtitle_language = "de"\n'
                           'formats = ["json", "srt", "otio", "xmp"]\n')  # fmt: skip
    [folder] = load_config(config_file).folders
    assert folder.subtitle_language == "de"
    assert folder.formats == ("json", "srt", "otio", "xmp")
    config_file.write_text('[defaults]\nsubtitle_language = "german subs"\n')
    with pytest.raises(ConfigError, match="'subtitle_language': 'german subs' is not a language"):
        load_config(config_file)


def test_caption_writes_a_timeline_and_xmp_with_the_demo_model(tmp_path):
    """End to end: ``videoqa caption -f otio,xmp --subtitle-language en`` on the sample clip."""
    pytest.importorskip("torch", reason="captioning needs torch")
    otio = pytest.importorskip("opentimelineio", reason="opentimelineio (dev extra) reads it")
    from click.testing import CliRunner

    from videoqa.cli import cli

    result = CliRunner().invoke(cli, [
        "caption", str(SAMPLE), "--model", "demo", "-o", str(tmp_path), "--format",
        "json,srt,otio,xmp", "--subtitle-language", "en"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = Report.load(tmp_path / "circle_turns_blue.videoqa.json")
    captions = [clip.caption.text for clip in report.clips]
    assert captions == ["a red circle moves right", "a blue circle moves left",
                        "a blue circle moves right"]  # fmt: skip
    assert [s.content for s in srt.parse((tmp_path / "circle_turns_blue.en.srt").read_text())] \
        == captions
    timeline = otio.adapters.read_from_file(str(tmp_path / "circle_turns_blue.otio"))
    [clip] = list(timeline.tracks[0])
    assert [marker.name for marker in clip.markers] == captions
    assert otio.url_utils.filepath_from_url(clip.media_reference.target_url) == str(SAMPLE)
    assert clip.available_range().duration.to_seconds() == pytest.approx(
        report.video.duration, abs=0.5 / report.video.fps)  # fmt: skip
    [track] = exiftool(tmp_path / "circle_turns_blue.xmp")["Tracks"]
    assert [m["Name"] for m in track["Markers"]] == captions

    bad = CliRunner().invoke(cli, ["caption", str(SAMPLE), "--model", "demo",
                                   "--subtitle-language", "en.auto"])  # fmt: skip
    assert bad.exit_code == 1
    assert bad.stderr == ("videoqa: error: --subtitle-language: 'en.auto' is not a language code "
                          "(ISO 639: en, deu, pt-BR)\n")
