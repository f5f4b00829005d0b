"""One record per video (videoqa.record): results accumulate across runs and runners.

The merge rules on reports made by hand, then the sequence a user runs with the demo model:
``ask`` → ``caption`` → ``find --db`` → an edit in a real ``videoqa serve`` process started from
another folder → ``ask`` with another question; and the same record through the daemon's
``process`` (its config changed between runs)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from videoqa.cli import cli
from videoqa.record import merge_records
from videoqa.report import (
    Caption,
    ClipResult,
    ModelInfo,
    QuestionAnswer,
    Report,
    Sampling,
    VideoFacts,
)

SAMPLE = Path(__file__).resolve().parents[1] / "sample_media" / "circle_turns_blue.mp4"
COLOUR = "what color is the circle?"
WAY = "which way does the circle move?"
DEMO = ModelInfo("demo", None, "video", 6, (32, 32), "pad")


def report(*, captions: tuple[str, ...] = (), answers: dict[str, tuple[str, ...]] | None = None,
           model: ModelInfo = DEMO, clip_length: float = 5.0, clips: int = 3) -> Report:
    """A report of ``clips`` clips with these captions and answers ({question: per clip})."""
    answers = answers or {}
    made = []
    for index in range(clips):
        start = index * clip_length
        caption = Caption(captions[index], -0.1) if captions else None
        qas = tuple(QuestionAnswer(q, texts[index], -0.2) for q, texts in answers.items())
        made.append(ClipResult(index, start, start + clip_length, (start,), caption, qas))
    facts = VideoFacts("/v.mp4", clips * clip_length, 64, 48, 25.0, 0)
    sampling = Sampling(clip_length, clip_length, 0.0, clips * clip_length, 20,
                        30 if captions else None)  # fmt: skip
    return Report(facts, model, sampling, tuple(answers), model if captions else None, made)


def round_trip(record: Report) -> Report:
    return Report.from_dict(json.loads(record.to_json()))


def test_a_caption_run_keeps_the_answers_of_an_ask_run_and_the_other_order_too():
    asked = report(answers={COLOUR: ("red", "blue", "blue")})
    captioned = report(captions=("a", "b", "c"))
    for first, second in ((asked, captioned), (captioned, asked)):
        record, _ = merge_records(round_trip(merge_records(None, first)[0]), second)
        assert [c.caption.text for c in record.clips] == ["a", "b", "c"]
        assert [[qa.answer for qa in c.answers] for c in record.clips] == [["red"], ["blue"],
                                                                           ["blue"]]
        assert record.questions == (COLOUR,) and record.caption_model == DEMO
        assert {run.made for run in record.runs} == {"answers", "captions"}
        runs = {run.id for run in record.runs}
        assert {c.caption.run for c in record.clips} <= runs
        assert {qa.run for c in record.clips for qa in c.answers} <= runs
        assert all(run.time for run in record.runs)


def test_recomputing_the_same_thing_replaces_it_and_another_model_keeps_the_old_aside():
    first, _ = merge_records(None, report(answers={COLOUR: ("red", "blue", "blue")}))
    again, _ = merge_records(round_trip(first), report(answers={COLOUR: ("pink", "teal", "teal")}))
    assert [c.answers[0].answer for c in again.clips] == ["pink", "teal", "teal"]
    assert again.alternatives == [] and len(again.runs) == 1  # the replaced run is gone
    other = ModelInfo("microsoft/git-base-vqav2", None, "image", 3, (480, 480), "crop")
    swapped, _ = merge_records(round_trip(again),
                               report(answers={COLOUR: ("r", "b", "b")}, model=other))
    assert [c.answers[0].answer for c in swapped.clips] == ["r", "b", "b"]
    [aside] = swapped.alternatives
    assert (aside.kind, aside.question) == ("answer", COLOUR)
    assert [t.text for t in aside.texts] == ["pink", "teal", "teal"]
    assert {run.model.id for run in swapped.runs} == {"demo", "microsoft/git-base-vqav2"}
    # The demo again: its answers come back into the clips and its old alternative goes.
    back, _ = merge_records(round_trip(swapped), report(answers={COLOUR: ("x", "y", "z")}))
    assert [t.text for alt in back.alternatives for t in alt.texts] == ["r", "b", "b"]


def test_another_clip_plan_moves_the_old_timeline_aside_and_subtitles_take_the_new():
    first, _ = merge_records(None, report(captions=("a", "b", "c"),
                                          answers={COLOUR: ("red", "blue", "blue")}))
    shorter, _ = merge_records(round_trip(first), report(captions=("w", "x", "y", "z"),
                                                         clip_length=3.75, clips=4))
    assert [(c.start, c.caption.text, c.answers) for c in shorter.clips] == [
        (0.0, "w", ()), (3.75, "x", ()), (7.5, "y", ()), (11.25, "z", ())]
    kept = {(alt.kind, alt.question): [(t.start, t.text) for t in alt.texts]
            for alt in shorter.alternatives}
    assert kept == {("caption", None): [(0.0, "a"), (5.0, "b"), (10.0, "c")],
                    ("answer", COLOUR): [(0.0, "red"), (5.0, "blue"), (10.0, "blue")]}
    assert shorter.questions == ()


def test_delivering_a_record_over_itself_changes_nothing():
    record, _ = merge_records(None, report(captions=("a", "b", "c"),
                                           answers={COLOUR: ("red", "blue", "blue")}))
    again, kept = merge_records(round_trip(record), round_trip(record))
    assert again.to_dict() == record.to_dict() and kept.captions == kept.answers == 0


def test_a_report_of_schema_1_2_reads_and_merges(tmp_path):
    data = json.loads(report(captions=("a", "b", "c")).to_json())
    data["schema_version"] = "1.2"
    for key in ("runs", "findings", "alternatives"):
        del data[key]
    old = Report.from_dict(data)
    merged, _ = merge_records(old, report(answers={COLOUR: ("red", "blue", "blue")}))
    assert [c.caption.text for c in merged.clips] == ["a", "b", "c"]
    assert [run.time is None for run in sorted(merged.runs, key=lambda r: r.made)] == [
        False, True]  # answers: delivered now; captions: from before 1.3, time unknown


# -- the user's sequence, end to end ---------------------------------------------------------

def run(*args: str, cwd: Path) -> str:
    """``videoqa ARGS`` from the folder ``cwd`` (paths given relative to it); its stdout."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, list(args))
    finally:
        os.chdir(previous)
    assert result.exit_code == 0, result.output
    return result.stdout


def edit_in_serve(db: Path, root: Path, elsewhere: Path, text: str) -> None:
    """Correct clip 1's caption through a real ``videoqa serve`` started from another folder."""
    server = subprocess.Popen(
        [sys.executable, "-m", "videoqa", "serve", "--db", str(db), "--root", str(root),
         "--port", "0", "--cache-dir", str(elsewhere / "cache")],
        cwd=elsewhere, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        address = line.split(" at ", 1)[1].split()[0]
        from videoqa.web.library import video_key

        key = video_key(os.fspath(root / "v.mp4"))
        with urllib.request.urlopen(f"{address}video/{key}", timeout=30) as page:
            assert page.status == 200  # found from another folder than the index was made in
        form = urllib.parse.urlencode({"caption": text}).encode()
        request = urllib.request.Request(f"{address}video/{key}/clip/1/edit", data=form,
                                         headers={"Origin": address.rstrip("/")})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as saved:  # 303 to the video page
            assert saved.status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def search(db: Path, query: str, kind: str, cwd: Path) -> list[dict[str, object]]:
    out = run("search", "--db", str(db), "--kind", kind, "--json", query, cwd=cwd)
    return [json.loads(line) for line in out.splitlines()]


def check_record(record: dict, db: Path, cwd: Path, edited: str) -> None:
    """What the sequence must leave: captions, both questions' answers, the find ranges and the
    edit, all searchable."""
    clips = record["clips"]
    assert [c["caption"]["text"] for c in clips] == [
        "a red circle moves right", edited, "a blue circle moves right"]
    assert clips[1]["caption"]["edited"] is True
    assert [[a["question"] for a in c["answers"]] for c in clips] == [[COLOUR, WAY]] * 3
    assert [a["answer"] for a in clips[0]["answers"]] == ["red", "right"]
    [found] = record["findings"]
    assert found["what"] == "a blue circle" and found["ranges"]
    assert {run["made"] for run in record["runs"]} == {"answers", "captions", "find"}
    assert search(db, "circle", "caption", cwd)
    assert search(db, "blue", "answer", cwd)
    assert search(db, "blue circle", "find", cwd)
    assert search(db, edited.split()[-1], "caption", cwd)


def test_ask_caption_find_edit_ask_accumulate_in_one_record(tmp_path):
    pytest.importorskip("torch", reason="the demo model needs torch")
    pytest.importorskip("starlette", reason="the edit goes through videoqa serve (extra web)")
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    shutil.copyfile(SAMPLE, work / "v.mp4")
    db = Path("i.db")  # relative: every path stored must still be absolute
    run("ask", "v.mp4", "--model", "demo", "-q", COLOUR, "--db", str(db), cwd=work)
    run("caption", "v.mp4", "--model", "demo", "--db", str(db), cwd=work)
    run("find", "v.mp4", "--model", "demo", "--what", "a blue circle", "--db", str(db), cwd=work)
    stored = sqlite3.connect(work / db).execute("SELECT path, report FROM videos").fetchall()
    assert stored == [(str(work / "v.mp4"), str(work / "v.videoqa.json"))]
    edit_in_serve(work / db, work, elsewhere, "a cobalt disc glides left")
    run("ask", "v.mp4", "--model", "demo", "-q", WAY, "--db", str(db), cwd=work)
    record = json.loads((work / "v.videoqa.json").read_text())
    check_record(record, work / db, elsewhere, "a cobalt disc glides left")
    assert "a cobalt disc glides left" in (work / "v.srt").read_text()


def test_the_daemon_builds_the_same_record_as_the_command_line(tmp_path):
    pytest.importorskip("torch", reason="the demo model needs torch")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copyfile(SAMPLE, folder / "v.mp4")
    db = tmp_path / "i.db"
    config = tmp_path / "videoqa.toml"

    def process(run: int, **defaults: object) -> None:
        """The file through the daemon's job store and adapters, with these settings (a new
        job store each time: the config changed, so the file is a new job)."""
        lines = ["[defaults]", 'model = "demo"', 'caption_model = "demo"',
                 'adapters = ["sidecars", "index"]', f'[adapters.index]\ndb = "{db}"']
        lines[1:1] = [f"{key} = {json.dumps(value)}" for key, value in defaults.items()]
        config.write_text("\n".join(lines) + "\n")
        result = CliRunner().invoke(cli, ["process", str(folder / "v.mp4"), "--config",
                                          str(config), "--jobstore",
                                          str(tmp_path / f"jobs{run}.sqlite")])  # fmt: skip
        assert result.exit_code == 0, result.output

    process(1, questions=[COLOUR], captions=False)
    process(2, questions=[], captions=True)
    run("find", "v.mp4", "--model", "demo", "--what", "a blue circle", "--db", str(db),
        cwd=folder)
    from videoqa.web.edits import edit_clip

    edit_clip(folder / "v.videoqa.json", folder / "v.mp4", 1, caption="a cobalt disc")
    process(3, questions=[WAY], captions=False)
    record = json.loads((folder / "v.videoqa.json").read_text())
    check_record(record, db, tmp_path, "a cobalt disc")
