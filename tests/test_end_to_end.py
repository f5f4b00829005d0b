"""End to end through the CLI with the demo model: the timeline of what it says is the video's.

A generated circle moves right and left across the frame (one sweep every two seconds) and
turns from red to blue at a known second. ``videoqa caption`` / ``videoqa ask --model demo``
must put the change in the SRT and WebVTT cues and in the JSON answers at exactly that second,
and say for every clip what the generator knows is on screen, also after the video is cut,
re-encoded with B-frames, given a variable frame rate or a non-zero start time. ``videoqa find``
on the sample video (red, then blue from 5 s) finds each colour where it is, and ``search``
finds the blue clips once they are captioned and indexed.
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import pytest
import srt
import webvtt
from click.testing import CliRunner

pytest.importorskip("torch", reason="captions come from the demo model: needs torch")

from videoqa.cli import cli
from videoqa.clips import plan_clips
from videoqa.demo import Actor, Scene, caption_of, questions_for, write_scene_video
from videoqa.demo.world import RADIUS
from videoqa.index import ArchiveIndex
from videoqa.report import Report

SWEEP = 2.0  # seconds per sweep across the frame: one clip
CHANGE = 4.0  # the circle turns blue here
DURATION = 8.0
#: Asked in the re-encoded variants: the answers change at the colour change and every sweep.
TIMELINE_QUESTIONS = ("what color is the circle?", "which way does it move?")


def circle_scene(*, change: float = CHANGE, duration: float = DURATION) -> Scene:
    points = int(duration / SWEEP) + 1
    path = tuple((k * SWEEP, 0.22 if k % 2 == 0 else 0.78, 0.5) for k in range(points))
    return Scene((Actor("circle", RADIUS, path, ((0.0, "red"), (change, "blue"))),))


def invoke(*args: str) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout, result.stderr


def expected_captions(scene: Scene, duration: float, *, offset: float = 0.0) -> list[str]:
    """What each back-to-back ``SWEEP``-second clip shows; ``offset`` is where the video's
    timeline starts in the scene (a cut)."""
    plan = plan_clips(duration, frames_per_clip=6, clip_length=SWEEP)
    return [caption_of(scene.truth([offset + t for t in clip.frame_times])) for clip in plan]


def seconds(timestamp: str) -> float:
    """``HH:MM:SS.mmm`` (WebVTT) in seconds."""
    hours, minutes, rest = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def expected_cues(scene: Scene, duration: float, *, offset: float = 0.0) -> list[str]:
    """The cue text of each clip for ``ask`` with ``TIMELINE_QUESTIONS``."""
    plan = plan_clips(duration, frames_per_clip=6, clip_length=SWEEP)
    texts = []
    for clip in plan:
        truth = scene.truth([offset + t for t in clip.frame_times])
        answers = {q.text: q.answer for q in questions_for(truth)}
        texts.append("\n".join(f"{q}: {answers[q]}" for q in TIMELINE_QUESTIONS))
    return texts


def check_sidecars(video: Path, out: Path, captions: list[str], change: float) -> None:
    """SRT and WebVTT cues say ``captions`` clip by clip; the colour changes at ``change``."""
    stem = video.stem
    cues = list(srt.parse((out / f"{stem}.srt").read_text()))
    vtt = list(webvtt.read(str(out / f"{stem}.vtt")))
    assert [cue.content for cue in cues] == captions == [cue.text for cue in vtt]
    for index, cue in enumerate(cues):
        assert cue.start.total_seconds() == pytest.approx(index * SWEEP, abs=1e-3)
        assert cue.end.total_seconds() == pytest.approx((index + 1) * SWEEP, abs=1e-3)
        assert seconds(vtt[index].start) == pytest.approx(index * SWEEP, abs=1e-3)
        assert seconds(vtt[index].end) == pytest.approx((index + 1) * SWEEP, abs=1e-3)
    turned = [cue.start.total_seconds() for cue in cues if "blue" in cue.content]
    assert turned[0] == pytest.approx(change, abs=1e-3)
    assert all("red" in cue.content for cue in cues if cue.end.total_seconds() <= change + 1e-3)
    report = Report.load(out / f"{stem}.videoqa.json")
    if report.has_captions:
        assert [clip.caption.text for clip in report.clips] == captions
    else:
        lines = [
            "\n".join(f"{qa.question}: {qa.answer}" for qa in clip.answers) for clip in report.clips
        ]
        assert lines == captions


@pytest.fixture(scope="module")
def circle_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "circle.mp4"
    write_scene_video(path, circle_scene(), duration=DURATION, options={"bf": "3", "g": "30"})
    return path


def test_caption_writes_cues_that_change_at_the_known_second(circle_video, tmp_path):
    invoke(
        "caption",
        str(circle_video),
        "--model",
        "demo",
        "--clip-length",
        str(SWEEP),
        "--output-dir",
        str(tmp_path),
    )
    captions = expected_captions(circle_scene(), DURATION)
    assert captions == [
        "a red circle moves right",
        "a red circle moves left",
        "a blue circle moves right",
        "a blue circle moves left",
    ]
    check_sidecars(circle_video, tmp_path, captions, CHANGE)


def test_a_truncated_file_is_captioned_up_to_where_it_decodes_and_says_so(tmp_path, caplog):
    """A faststart MP4 cut short still declares its whole length in the index at its front."""
    whole = tmp_path / "whole.mp4"
    write_scene_video(
        whole,
        circle_scene(),
        duration=DURATION,
        options={"g": "25"},
        container_options={"movflags": "faststart"},
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 45 // 100])
    result = CliRunner().invoke(
        cli,
        ["caption", str(cut), "--model", "demo", "--clip-length", str(SWEEP),
         "--output-dir", str(tmp_path)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = Report.load(tmp_path / "cut.videoqa.json")
    assert report.video.duration == pytest.approx(DURATION)
    end = report.video.decodable_end
    assert end is not None and SWEEP < end < DURATION - SWEEP
    warning = f"truncated: video decodes only to {end:.1f} s of {DURATION:.1f} s"
    assert [r.levelname for r in caplog.records if warning in r.getMessage()] == ["WARNING"]
    # Clips wholly past the end are left out; those before it say what the generator showed.
    assert [clip.start for clip in report.clips] == [
        k * SWEEP for k in range(int(end // SWEEP) + (end % SWEEP > 0))
    ]
    full_clips = int(end // SWEEP)
    captions = expected_captions(circle_scene(), DURATION)[:full_clips]
    assert [clip.caption.text for clip in report.clips[:full_clips]] == captions
    assert len(list(srt.parse((tmp_path / "cut.srt").read_text()))) >= full_clips


def test_ask_answers_each_clip_with_the_generators_truth(circle_video, tmp_path):
    scene = circle_scene()
    plan = plan_clips(DURATION, frames_per_clip=6, clip_length=SWEEP)
    # Questions with one answer in every clip (none names a colour the circle loses).
    questions = [
        "what color is the circle?",
        "what shape is it?",
        "which way does it move?",
        "which way does the circle move?",
        "how many shapes are there?",
    ]
    args = ["ask", str(circle_video), "--model", "demo", "--clip-length", str(SWEEP)]
    for question in questions:
        args += ["-q", question]
    stdout, _ = invoke(*args, "--json", "--output-dir", str(tmp_path))
    report = Report.from_dict(json.loads(stdout.strip().splitlines()[-1]))
    assert [(c.start, c.end) for c in report.clips] == [(c.start, c.end) for c in plan]
    for clip, planned in zip(report.clips, plan, strict=True):
        truth = scene.truth(planned.frame_times)
        answers = {q.text: q.answer for q in questions_for(truth)}
        assert {qa.question: qa.answer for qa in clip.answers} == {q: answers[q] for q in questions}
    colors = [clip.answer_for("what color is the circle?").answer for clip in report.clips]
    assert colors == ["red" if clip.end <= CHANGE else "blue" for clip in report.clips]
    cues = list(srt.parse((tmp_path / "circle.srt").read_text()))
    color_line = [cue for cue in cues if "what color is the circle?: blue" in cue.content]
    assert color_line[0].start.total_seconds() == pytest.approx(CHANGE)


def cut(source: Path, target: Path, start: float) -> None:
    """Cut ``source`` from ``start`` seconds and re-encode it, with B-frames, from time 0."""
    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        stream_in = reader.streams.video[0]
        time_base = Fraction(1, 90_000)
        stream_out = writer.add_stream("libx264", rate=25)
        stream_out.width, stream_out.height = stream_in.width, stream_in.height
        stream_out.pix_fmt = "yuv420p"
        stream_out.time_base = stream_out.codec_context.time_base = time_base
        stream_out.options = {"bf": "3", "g": "20"}
        for frame in reader.decode(stream_in):
            time = frame.pts * stream_in.time_base
            if time < start:
                continue
            frame.pts = round((time - Fraction(start)) / time_base)
            frame.time_base = time_base
            frame.pict_type = av.video.frame.PictureType.NONE
            writer.mux(stream_out.encode(frame))
        writer.mux(stream_out.encode(None))


def vfr_times(duration: float) -> list[float]:
    """Frames 20, 50 and 120 ms apart in turn (8 to 50 fps), in seconds from 0."""
    times, time, steps = [], 0.0, [0.02, 0.05, 0.12]
    while time < duration:
        times.append(round(time, 6))
        time += steps[len(times) % 3]
    return times


@pytest.mark.parametrize("variant", ["cut", "bframes-vfr", "start-time"])
def test_timeline_does_not_drift_after_recoding(variant, circle_video, tmp_path):
    scene, offset, duration, change = circle_scene(), 0.0, DURATION, CHANGE
    if variant == "cut":
        video = tmp_path / "cut.mp4"
        cut(circle_video, video, 2.0)  # the colour now changes at 2 s
        offset, duration, change = 2.0, DURATION - 2.0, CHANGE - 2.0
    elif variant == "bframes-vfr":
        video = tmp_path / "vfr.mkv"
        write_scene_video(
            video, scene, frame_times=vfr_times(DURATION), options={"bf": "3", "g": "40"}
        )
    else:
        video = tmp_path / "late.ts"
        write_scene_video(video, scene, duration=DURATION, start_time=10.0, options={"bf": "2"})
    out = tmp_path / "out"
    questions = [arg for question in TIMELINE_QUESTIONS for arg in ("-q", question)]
    invoke(
        "ask",
        str(video),
        *questions,
        "--model",
        "demo",
        "--clip-length",
        str(SWEEP),
        "--output-dir",
        str(out),
    )
    check_sidecars(video, out, expected_cues(scene, duration, offset=offset), change)


@pytest.mark.parametrize(("width", "height"), [(640, 360), (360, 640)])
def test_widescreen_and_vertical_video_is_captioned_whole_by_default(width, height, tmp_path):
    """The demo checkpoint letterboxes (its default fit): a 16:9 or 9:16 video is told right,
    and the report says how its frames were fitted."""
    video = tmp_path / f"circle_{width}x{height}.mp4"
    write_scene_video(video, circle_scene(), duration=DURATION, width=width, height=height)
    out = tmp_path / "out"
    invoke("caption", str(video), "--model", "demo", "--clip-length", str(SWEEP),
           "--output-dir", str(out))  # fmt: skip
    check_sidecars(video, out, expected_captions(circle_scene(), DURATION), CHANGE)
    report = Report.load(out / f"{video.stem}.videoqa.json")
    assert report.model.fit == "pad"
    assert max(report.model.frame_size) == 32 and min(report.model.frame_size) == 18


# --------------------------------------------------------------------------- finding moments

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"
"""Red circle for 5 s, then blue to 15 s: the demo checkpoint scores three 5-s clips."""


@pytest.fixture(scope="module")
def found() -> dict[str, dict]:
    """``videoqa find --json`` for a blue and for a red circle on the sample video."""
    results = {}
    for what in ("a blue circle", "a red circle"):
        stdout, _ = invoke("find", str(SAMPLE), "--model", "demo", "--what", what, "--json")
        (line,) = stdout.splitlines()
        results[what] = json.loads(line)
    return results


def test_find_a_blue_circle_from_the_change_to_the_end(found):
    blue = found["a blue circle"]
    assert set(blue) == {"video", "what", "ranges", "scores"}
    assert blue["video"] == str(SAMPLE) and blue["what"] == "a blue circle"
    (moment,) = blue["ranges"]
    assert set(moment) == {"start", "end", "score", "peak"}
    assert abs(moment["start"] - 5.0) <= 1.0  # within one step of the change
    assert moment["end"] == pytest.approx(15.0, abs=0.05)  # the end of the video
    assert 0.5 < moment["score"] <= moment["peak"] <= 1.0
    assert [time for time, _ in blue["scores"]] == [2.5, 7.5, 12.5]  # the clips' middles
    assert [p > 0.5 for _, p in blue["scores"]] == [False, True, True]


def test_find_a_red_circle_before_the_change(found):
    (red,) = found["a red circle"]["ranges"]
    assert red["start"] == 0.0
    assert red["end"] == pytest.approx(found["a blue circle"]["ranges"][0]["start"])
    assert 0.5 < red["score"] <= red["peak"] <= 1.0


def test_find_prints_readable_ranges_and_a_bad_file_in_one_line(tmp_path):
    missing = tmp_path / "missing.mp4"
    result = CliRunner().invoke(
        cli, ["find", str(missing), str(SAMPLE), "--model", "demo",
              "--question", "is there a blue circle?"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"{missing}: no such file" in result.stderr and "Traceback" not in result.stderr
    head, found_range = result.stdout.splitlines()
    assert head == 'circle_turns_blue.mp4: "is there a blue circle?": 1 range (3 moments scored)'
    assert found_range.startswith("  00:00:05.000 --> 00:00:15.000  score ")


def test_search_finds_the_blue_clips_after_caption_and_index_and_finds_ranges(tmp_path):
    video = tmp_path / SAMPLE.name
    shutil.copy(SAMPLE, video)
    db = tmp_path / "index.sqlite"
    invoke("caption", str(video), "--model", "demo")
    invoke("index", str(tmp_path), "--db", str(db))
    stdout, _ = invoke("search", "blue circle", "--db", str(db), "--json")
    hits = [json.loads(line) for line in stdout.splitlines()]
    blue = [h for h in hits if h["start"] >= 5.0 - 1e-6 and h["end"] <= 15.0 + 1e-6]
    red = [h for h in hits if h["end"] <= 5.0 + 1e-6]
    assert blue and hits[: len(blue)] == blue, hits  # every blue clip ranks above the rest
    assert {(h["start"], h["end"]) for h in blue} <= {(5.0, 10.0), (10.0, 15.0), (5.0, 15.0)}
    assert all(h["rank"] > len(blue) for h in red)
    assert all("blue circle" in h["text"] for h in blue)

    # find --db adds its ranges to the same index, kind "find", beside the captions.
    _, said = invoke("find", str(video), "--model", "demo", "--what", "a blue circle",
                     "--db", str(db))  # fmt: skip
    assert f"circle_turns_blue.mp4: 1 range indexed in {db}" in said
    stdout, _ = invoke("search", "blue circle", "--db", str(db), "--kind", "find", "--json")
    (hit,) = [json.loads(line) for line in stdout.splitlines()]
    assert (hit["kind"], hit["question"], hit["text"]) == (
        "find", "is there a blue circle?", "a blue circle"
    )
    assert (hit["start"], hit["end"]) == (5.0, 15.0)
    assert 0.5 < hit["confidence"] <= 1.0


def test_caption_with_db_indexes_each_report_as_it_is_written(tmp_path):
    """``caption --db`` (the local runner): the same rows as ``caption`` then ``index``."""
    video = tmp_path / SAMPLE.name
    shutil.copy(SAMPLE, video)
    direct, later = tmp_path / "direct.sqlite", tmp_path / "later.sqlite"
    invoke("caption", str(video), "--model", "demo", "--db", str(direct))
    invoke("index", str(tmp_path), "--db", str(later))
    searches = [
        invoke("search", "circle", "--db", str(db), "--json", "--limit", "50")[0]
        for db in (direct, later)
    ]
    assert searches[0] == searches[1] and "blue circle" in searches[0]
    (entry,) = ArchiveIndex(direct).videos()
    assert entry.path == str(video)
    assert entry.report == str(tmp_path / f"{SAMPLE.stem}.videoqa.json")


def test_find_in_a_truncated_file_stops_where_it_decodes(tmp_path, caplog):
    """The file declares 8 s but decodes to less than half: no moment, no range past that."""
    whole = tmp_path / "whole.mp4"
    write_scene_video(whole, circle_scene(), duration=DURATION, options={"g": "25"},
                      container_options={"movflags": "faststart"})  # fmt: skip
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 45 // 100])
    stdout, _ = invoke("find", str(cut), "--model", "demo", "--what", "a red circle",
                       "--clip-length", str(SWEEP), "--json")  # fmt: skip
    found = json.loads(stdout)
    (red,) = found["ranges"]  # red until the change at 4 s, which lies past the end
    warning = next(r.getMessage() for r in caplog.records if "decodes only to" in r.getMessage())
    end = float(warning.split("decodes only to ")[1].split(" s")[0])
    assert SWEEP < end < CHANGE
    assert red["start"] == 0.0 and red["end"] == pytest.approx(end, abs=0.05)
    # Clips that start before the end are scored (as caption keeps them), none after it.
    assert [time for time, _ in found["scores"]] == [
        k * SWEEP + SWEEP / 2 for k in range(int(end // SWEEP) + (end % SWEEP > 0))
    ]
