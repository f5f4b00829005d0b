"""The archive index (videoqa.index, `videoqa index`, `videoqa search`, the index adapter).

Real SQLite files, real JSON sidecars written by ``write_sidecars``, the real CLI in a
subprocess and the adapter loaded through the daemon's entry points.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from videoqa.adapters import deliver_report, load_adapters
from videoqa.cli import cli
from videoqa.index import (
    ArchiveIndex,
    IndexDatabaseError,
    SearchSyntaxError,
    find_sidecars,
    ingest,
    plain_queries,
    video_digest,
)
from videoqa.report import (
    Caption,
    ClipResult,
    ModelInfo,
    QuestionAnswer,
    Report,
    Sampling,
    VideoFacts,
)
from videoqa.sidecars import write_sidecars
from videoqa.watch.config import load_config

QUESTION = "what color is the car?"


def make_report(video: Path, captions: list[str], answers: list[str] | None = None,
                *, clip_length: float = 5.0) -> Report:
    """A report of one clip per caption (and, given, one answer to QUESTION per clip)."""
    clips = []
    for index, text in enumerate(captions):
        start = index * clip_length
        answer = (QuestionAnswer(QUESTION, answers[index], -0.2),) if answers else ()
        clips.append(ClipResult(index, start, start + clip_length, (start + 1.0,),
                                Caption(text, -0.1 * (index + 1)), answer))  # fmt: skip
    model = ModelInfo("microsoft/git-base-vqav2", None, "image", 3, (64, 48), "crop")
    captioner = ModelInfo("demo", None, "video", 4, (64, 48), "pad")
    return Report(
        video=VideoFacts(path=str(video), duration=len(captions) * clip_length, width=64,
                         height=48, fps=25.0, stream=0),
        model=model, caption_model=captioner,
        sampling=Sampling(clip_length, clip_length, 0.0, len(captions) * clip_length, 20, 30),
        questions=(QUESTION,) if answers else (), clips=clips,
    )  # fmt: skip


def archive_video(folder: Path, name: str, captions: list[str], answers: list[str] | None = None,
                  *, content: bytes = b"not really a video") -> tuple[Path, Path]:
    """A video file and its JSON sidecar beside it; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / name
    video.write_bytes(content)
    json_path = write_sidecars(make_report(video, captions, answers), video, formats=("json",))[0]
    return video, json_path


def run_cli(*args: str) -> Result:
    """The CLI in this process (a subprocess costs seconds of imports under load); an
    exception that escaped the one-line error handling would fail the test."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Two folders of videos with captions and answers."""
    root = tmp_path / "archive"
    archive_video(root / "2019", "harbour.mp4",
                  ["a red boat in the harbour", "a red boat in the harbour",
                   "a red boat in the harbour", "a crane lifts a container",
                   "a red boat in the harbour"],
                  ["red", "red", "blue", "blue", "red"])  # fmt: skip
    archive_video(root / "2020" / "city", "street.mp4",
                  ["a blue car turns left at the crossing", "people cross the street",
                   "a blue car is parked", "a dog runs on the beach"],
                  ["blue", "blue", "blue", "white"])  # fmt: skip
    return root


def test_index_reads_every_sidecar_in_folders_and_skips_the_unchanged(archive, tmp_path):
    db = tmp_path / "index.sqlite"
    (archive / "2020" / "loop").symlink_to(archive)  # a link cycle is not followed
    with ArchiveIndex(db) as index:
        tally = ingest(index, find_sidecars([archive]))
        assert (tally.indexed, tally.unchanged, tally.failed) == (2, 0, 0)
        assert tally.clips == 18  # 9 clips, each a caption and an answer
        again = ingest(index, find_sidecars([archive]))
        assert (again.indexed, again.unchanged) == (0, 2)
        videos = {Path(v.path).name: v for v in index.videos()}
    assert set(videos) == {"harbour.mp4", "street.mp4"}
    harbour = videos["harbour.mp4"]
    assert harbour.clips == 10 and harbour.duration == 25.0
    assert harbour.models == ("microsoft/git-base-vqav2", "demo")
    assert harbour.digest == video_digest(archive / "2019" / "harbour.mp4")
    assert harbour.report == str(archive / "2019" / "harbour.videoqa.json")
    assert harbour.indexed_at.endswith("Z")
    journal = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_reindexing_a_changed_report_replaces_its_rows(archive, tmp_path):
    """The same model on the same clip plan recomputes the captions: the new ones replace the
    old ones, in the record and in the index; the answers nobody recomputed stay."""
    db = tmp_path / "index.sqlite"
    video = archive / "2019" / "harbour.mp4"
    with ArchiveIndex(db) as index:
        ingest(index, find_sidecars([archive]))
        write_sidecars(make_report(video, ["a sailing ship at sea"] * 5), video,
                       formats=("json",))  # fmt: skip
        tally = ingest(index, find_sidecars([archive]))
        assert (tally.indexed, tally.unchanged) == (1, 1)
        rows = index.clips(video)
        assert [(r.start, r.end, r.text) for r in rows if r.kind == "caption"] == [
            (start, start + 5.0, "a sailing ship at sea") for start in (0.0, 5.0, 10, 15, 20)
        ]
        assert [r.text for r in rows if r.kind == "answer"] == ["red", "red", "blue", "blue", "red"]
        assert index.search("boat") == []
        assert index.search("crane") == []
        # Texts no clip uses any more leave the full-text index too.
        texts = {t for (t,) in index._db.execute("SELECT text FROM texts")}
        assert "a crane lifts a container" not in texts
        assert "a sailing ship at sea" in texts


def test_a_replaced_video_loses_all_rows_a_same_one_keeps_what_was_not_redone(archive, tmp_path):
    video = archive / "2020" / "city" / "street.mp4"
    with ArchiveIndex(tmp_path / "index.sqlite") as index:
        index.add_sidecar(archive / "2020" / "city" / "street.videoqa.json")
        index.add_results(video, [(0.0, 3.0, "is there a dog?", 0.9)], kind="moment",
                          question="is there a dog?")  # fmt: skip
        report = make_report(video, ["a blue car"])
        index.add_report(report)  # same file: captions replaced, answers and moments stay
        assert [(r.kind, r.text) for r in index.clips(video)] == [
            ("caption", "a blue car"), ("answer", "blue"), ("moment", "is there a dog?"),
            ("answer", "blue"), ("answer", "blue"), ("answer", "white")]
        video.write_bytes(b"another encode of the footage")
        index.add_report(report)  # another file now: nothing of the old one stays
        assert [(r.kind, r.text) for r in index.clips(video)] == [("caption", "a blue car")]


def test_prune_removes_the_videos_whose_file_is_gone(archive, tmp_path):
    with ArchiveIndex(tmp_path / "index.sqlite") as index:
        ingest(index, find_sidecars([archive]))
        (archive / "2019" / "harbour.mp4").unlink()
        assert index.prune() == [str(archive / "2019" / "harbour.mp4")]
        assert [Path(v.path).name for v in index.videos()] == ["street.mp4"]
        assert index.search("boat") == []
        assert index.prune() == []


def test_search_ranks_by_bm25_and_merges_adjacent_clips_that_say_the_same(tmp_path):
    root = tmp_path / "a"
    archive_video(root, "beach.mp4",
                  ["a dog on the beach", "a dog on the beach", "a dog on the beach",
                   "waves", "a dog on the beach",
                   "a man walks his dog along the beach near the harbour wall at sunset"])
    archive_video(root, "park.mp4", ["a cat in the park"])
    with ArchiveIndex(tmp_path / "index.sqlite") as index:
        ingest(index, find_sidecars([root]))
        hits = index.search("dog beach")
    assert [(h.start, h.end, h.clips, h.text) for h in hits] == [
        (0.0, 15.0, 3, "a dog on the beach"),  # three clips, one hit
        (20.0, 25.0, 1, "a dog on the beach"),  # the same text after a gap: its own hit
        (25.0, 30.0, 1, "a man walks his dog along the beach near the harbour wall at sunset"),
    ]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score == hits[1].score > hits[2].score > 0  # BM25: the short text first
    # The model's confidence: mean exp(score) of the merged clips (-0.1, -0.2, -0.3).
    assert hits[0].confidence == pytest.approx(sum(2.718281828 ** -s for s in (.1, .2, .3)) / 3)


def test_search_filters_by_kind_question_and_video(archive, tmp_path):
    with ArchiveIndex(tmp_path / "index.sqlite") as index:
        ingest(index, find_sidecars([archive]))
        both = index.search("blue")
        assert {h.kind for h in both} == {"caption", "answer"}
        answers = index.search("blue", kind="answer")
        assert {(Path(h.video).name, h.start, h.end) for h in answers} == {
            ("harbour.mp4", 10.0, 20.0), ("street.mp4", 0.0, 15.0)}
        assert all(h.question == QUESTION for h in answers)
        assert index.search("blue", kind="answer", question="What  color is the CAR?") == answers
        assert index.search("blue", question="how many cars?") == []
        captions = index.search("blue", kind="caption")
        assert [h.text for h in captions] == ["a blue car is parked",
                                              "a blue car turns left at the crossing"]
        assert {Path(h.video).name for h in index.search("red", video="harbour*")} == {
            "harbour.mp4"}
        assert index.search("blue", video="harbour.mp4", kind="caption") == []
        assert len(index.search("blue", video="2020/*/*.mp4")) == 3
        assert len(index.search("blue", video=str(archive / "2020") + "/*")) == 3
        assert len(index.search("blue", limit=1)) == 1


def test_a_video_filter_over_many_clips_finds_the_same(archive, tmp_path, monkeypatch):
    """Past _FEW_CLIPS the filter checks each text's clips in SQL instead of in memory."""
    with ArchiveIndex(tmp_path / "index.sqlite") as index:
        ingest(index, find_sidecars([archive]))
        searches = [("red", {"video": "harbour*"}), ("blue", {"video": "2020/*/*.mp4"}),
                    ("blue", {"video": "harbour.mp4", "kind": "caption"}),
                    ("blue", {"video": "*.mp4", "kind": "answer", "question": QUESTION})]
        few = [index.search(words, **options) for words, options in searches]
        monkeypatch.setattr("videoqa.index._FEW_CLIPS", 0)
        assert [index.search(words, **options) for words, options in searches] == few
        assert [len(hits) for hits in few] == [4, 3, 0, 2]


def test_plain_words_are_text_whatever_they_hold(archive, tmp_path):
    with ArchiveIndex(tmp_path / "index.sqlite") as index:
        ingest(index, find_sidecars([archive]))
        # Every word must occur; stop words aside; quotes, hyphens, operators are just text.
        assert [h.text for h in index.search("the blue car turns left")] == [
            "a blue car turns left at the crossing"]
        # (NOT is a word here, not FTS5's operator: nothing says it, so any word will do.)
        assert [h.text for h in index.search('"car turns" NOT AND (left')] == [
            "a blue car turns left at the crossing"]
        assert [h.text for h in index.search("blue-car")] == [
            "a blue car is parked", "a blue car turns left at the crossing"]
        assert index.search('"car left"') == []  # a quoted phrase: these words together
        # When nothing says all the words, clips that say any of them.
        relaxed = index.search("purple crane")
        assert [h.text for h in relaxed] == ["a crane lifts a container"]
        # FTS5 syntax only with fts=True.
        assert [h.text for h in index.search("blu*", fts=True, kind="caption")] == [
            "a blue car is parked", "a blue car turns left at the crossing"]
        with pytest.raises(SearchSyntaxError, match="not a valid FTS5 query: 'blue AND'"):
            index.search("blue AND", fts=True)
        with pytest.raises(SearchSyntaxError, match="no words to search for"):
            index.search(" -- ")
    assert plain_queries('the "red boat"') == ['"red boat"']
    assert plain_queries("boat harbour") == ['"boat" AND "harbour"', '"boat" OR "harbour"']


def test_a_video_name_that_is_not_utf8_is_kept_exactly(tmp_path):
    name = os.fsdecode(b"caf\xe9.mp4")
    video, json_path = archive_video(tmp_path, name, ["a cup of coffee"])
    with ArchiveIndex(tmp_path / "index.sqlite") as index:
        assert index.add_sidecar(json_path) == 1
        [hit] = index.search("coffee")
        assert os.fsencode(hit.video) == os.fsencode(video)
        assert index.clips(video)[0].text == "a cup of coffee"
        assert index.prune() == []


def test_cli_index_and_search_as_a_person_uses_them(archive, tmp_path):
    db = str(tmp_path / "index.sqlite")
    bad = archive / "2020" / "broken.videoqa.json"
    bad.write_text('{"schema_version": "1.1", "video": ', encoding="utf-8")
    result = run_cli("index", str(archive), "--db", db)
    assert result.exit_code == 1  # one bad file, reported, the others indexed
    lines = result.stderr.splitlines()
    assert f"videoqa: error: {bad}: not JSON: Expecting value: line 1 column 36 (char 35)" in lines
    assert lines[-1].startswith("videoqa: indexed 2 report(s) (18 clip rows), 0 unchanged, "
                                "1 failed in ")  # fmt: skip
    assert "Traceback" not in result.stderr

    table = run_cli("search", "blue car", "--db", db, "--kind", "caption")
    assert table.exit_code == 0, table.stderr
    rows = table.stdout.splitlines()
    assert len(rows) == 2
    assert rows[0].startswith(str(archive / "2020" / "city" / "street.mp4"))
    assert "00:00:10.000–00:00:15.000  a blue car is parked" in rows[0]

    found = run_cli("search", "blue", "--db", db, "--kind", "answer", "--json")
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert [(h["start"], h["end"], h["rank"]) for h in hits] == [(0.0, 15.0, 1),
                                                                 (10.0, 20.0, 2)]
    assert set(hits[0]) >= {"video", "start", "end", "kind", "question", "text", "score", "rank"}
    assert hits[0]["kind"] == "answer" and hits[0]["question"] == QUESTION
    assert hits[0]["text"] == "blue" and hits[0]["score"] > 0

    error = run_cli("search", "blue NEAR(", "--fts", "--db", db)
    assert error.exit_code == 1
    assert error.stderr.startswith("videoqa: error: not a valid FTS5 query: 'blue NEAR('")
    assert len(error.stderr.splitlines()) == 1
    assert run_cli("search", 'it\'s "a - "blue', "--db", db).exit_code == 0

    # The real program: one line and exit 1, no traceback.
    process = subprocess.run(
        [sys.executable, "-m", "videoqa", "search", '"unclosed', "--fts", "--db", db],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 1
    assert process.stderr == (
        "videoqa: error: not a valid FTS5 query: '\"unclosed' (unterminated string)\n")

    missing = run_cli("search", "x", "--db", str(tmp_path / "none.sqlite"))
    assert missing.exit_code == 1 and "no index here" in missing.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_cli_prune_and_json_tally(archive, tmp_path):
    db = str(tmp_path / "index.sqlite")
    assert run_cli("index", str(archive), "--db", db).exit_code == 0
    (archive / "2019" / "harbour.mp4").unlink()
    result = run_cli("index", "--prune", "--db", db, "--json")
    assert result.exit_code == 0, result.stderr
    tally = json.loads(result.stdout)
    assert tally["pruned"] == [str(archive / "2019" / "harbour.mp4")]
    assert (tally["indexed"], tally["failed"]) == (0, 0)
    assert run_cli("index", "--db", db).exit_code == 2  # nothing to do: a usage error


def test_the_index_adapter_indexes_what_the_daemon_delivers(tmp_path):
    db = tmp_path / "daemon-index.sqlite"
    config_file = tmp_path / "videoqa.toml"
    (tmp_path / "watched").mkdir()
    config_file.write_text(
        '[[folders]]\npath = "watched"\nadapters = ["sidecars", "index"]\n'
        f'[adapters.index]\ndb = "{db}"\n',
        encoding="utf-8",
    )
    config = load_config(config_file)
    settings = config.folders[0]
    adapters = load_adapters(settings.adapters, options=settings.adapter_options)
    assert [a.name for a in adapters] == ["sidecars", "index"]
    video = tmp_path / "watched" / "match.mp4"
    video.write_bytes(b"footage")
    errors, undelivered = deliver_report(adapters, make_report(video, ["a goal is scored"]),
                                         video, settings)  # fmt: skip
    assert (errors, undelivered) == ([], [])
    with ArchiveIndex(db) as index:
        [hit] = index.search("goal")
        assert (hit.video, hit.start, hit.end) == (str(video), 0.0, 5.0)
    renamed = tmp_path / "watched" / "final.mp4"
    video.rename(renamed)
    adapters[1].handle_rename(video, renamed, settings)
    with ArchiveIndex(db) as index:
        assert [h.video for h in index.search("goal")] == [str(renamed)]


def test_the_index_adapter_refuses_unknown_options(tmp_path, caplog):
    caplog.allow_errors = True
    assert load_adapters(["index"], options={"index": {"path": "x.sqlite"}}) == []
    assert "unknown option(s) ['path']" in caplog.text


def test_a_failed_batch_leaves_the_index_as_it_was_and_its_texts_forgotten(archive, tmp_path):
    """A failed write leaves the index as it was: the batch is rolled back whole."""
    db = tmp_path / "index.sqlite"
    with ArchiveIndex(db) as index:
        ingest(index, find_sidecars([archive / "2019"]))
        before = index.counts()
        video = archive / "2020" / "city" / "street.mp4"
        report = make_report(video, ["fine"])
        broken = dataclasses.replace(report, clips=[*report.clips, None])  # type: ignore[list-item]
        with pytest.raises(AttributeError), index.batch():
            index.add_report(report)
            index.add_report(broken)
        assert index.counts() == before
        # What the rolled-back batch added is forgotten, not reused by later reports.
        index.add_report(make_report(video, ["fine", "a new text"]))
        assert [r.text for r in index.clips(video)] == ["fine", "a new text"]
        assert [h.text for h in index.search("fine")] == ["fine"]


def test_two_writers_never_use_each_others_removed_texts(tmp_path):
    """The daemon's adapter and `videoqa index` may write one file: a text one of them removed
    (no clip said it any more) is not reused by the other from memory."""
    db = tmp_path / "index.sqlite"
    first_video, second_video = tmp_path / "v.mp4", tmp_path / "w.mp4"
    first_video.write_bytes(b"one")
    second_video.write_bytes(b"two")
    with ArchiveIndex(db) as first, ArchiveIndex(db) as second:
        first.add_report(make_report(first_video, ["a heron"]))
        second.add_report(make_report(first_video, ["a crane"]))  # "a heron" goes
        first.add_report(make_report(second_video, ["a heron"]))
        assert [r.text for r in first.clips(second_video)] == ["a heron"]
        assert [h.video for h in second.search("heron")] == [str(second_video)]


def test_a_file_that_is_not_an_index_is_refused_and_left_alone(tmp_path):
    other = tmp_path / "jobs.sqlite"  # say, the daemon's job store named by mistake
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE jobs (path TEXT)")
    result = run_cli("index", str(tmp_path), "--db", str(other))
    assert result.exit_code == 1
    assert result.stderr == (
        f"videoqa: error: {other}: not a videoqa index (it holds other tables)\n")
    with sqlite3.connect(other) as db:
        assert [n for (n,) in db.execute("SELECT name FROM sqlite_master")] == ["jobs"]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    newer = tmp_path / "newer.sqlite"
    ArchiveIndex(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version = 2")
    with pytest.raises(IndexDatabaseError, match="an index of another layout .version 2; videoqa"):
        ArchiveIndex(newer)
