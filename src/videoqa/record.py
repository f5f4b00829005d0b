"""One record per video: what a new run delivers is merged into what earlier runs found.

A video's JSON sidecar is its record. Every runner (``ask``/``caption``, the collection runner,
``--ray``, the daemon's sidecar adapter, ``find --db``, the review page's edits) delivers
through :func:`videoqa.sidecars.write_sidecars`, which reads the record already there and
calls :func:`merge_records` before writing, so the rules below hold whichever ran:

- **Entries accumulate.** Captions, each question's answers and each ``find`` query's ranges
  are kept until a later run recomputes the same thing. An entry is recomputed when a new run
  makes the same kind (the caption, the answer to the same question, the ranges of the same
  find question) with the same model and the same options that change results (frames per
  clip, frame size, fit, deinterlacing, token limit; for ``find`` its step and threshold) on
  the same clip plan: then the new entry replaces it.
- **One timeline.** ``clips`` hold one clip plan: the newest run's. A new entry made with
  another model or other options on the same plan takes the place in ``clips`` and the one it
  displaced moves to ``alternatives``; when the new run's clip plan differs (another
  ``--clip-length``, ``--clips shots``), everything on the old plan moves to ``alternatives``
  (one entry per kind, question and run) and ``clips`` hold the new plan. Subtitles are
  rendered from ``clips`` only, so timelines never mix in them.
- **Edits win.** A text a person edited (``edited: true``) is kept when a run recomputes the
  entry at the same clip (``KeptEdits`` counts these).
- **Provenance.** Each caption, answer and finding names its run (``run``), and ``runs`` says
  which model made it, with which options, and when it was delivered.

This module imports neither torch nor the media stack.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from videoqa.report import (
    Alternative,
    AlternativeText,
    Caption,
    ClipResult,
    FindingRecord,
    ModelInfo,
    QuestionAnswer,
    Report,
    RunInfo,
)


@dataclass(frozen=True)
class KeptEdits:
    """Edited texts a merge kept in place of a recomputed text, and those it moved to
    ``alternatives`` because the new run's clip plan has no such clip."""

    captions: int = 0
    answers: int = 0
    moved: int = 0


def now() -> str:
    """The delivery time recorded with a run: UTC, ISO 8601, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def new_run_id() -> str:
    """A run id unique across machines and runs (records from many hosts may meet)."""
    return uuid.uuid4().hex[:12]


def stamp_runs(report: Report, *, time: str | None = None) -> Report:
    """``report`` with a ``RunInfo`` for each caption and answer not yet tagged with one.

    A fresh report (as every runner makes it) has untagged entries: its answers get a run of
    ``report.model`` and its captions one of ``report.caption_model``. A report older than
    schema 1.3 gets runs with no time. Tagged entries are left as they are."""
    clips = report.clips
    answer_run = caption_run = None
    if any(qa.run is None for clip in clips for qa in clip.answers):
        answer_run = RunInfo(new_run_id(), "answers", report.model, report.sampling, time,
                             report.generator)  # fmt: skip
    if any(clip.caption is not None and clip.caption.run is None for clip in clips):
        model = report.caption_model or report.model
        caption_run = RunInfo(new_run_id(), "captions", model, report.sampling, time,
                              report.generator)  # fmt: skip
    if answer_run is None and caption_run is None:
        return report
    tagged = []
    for clip in clips:
        caption = clip.caption
        if caption is not None and caption.run is None and caption_run is not None:
            caption = replace(caption, run=caption_run.id)
        answers = tuple(
            replace(qa, run=answer_run.id) if qa.run is None and answer_run is not None else qa
            for qa in clip.answers
        )
        tagged.append(replace(clip, caption=caption, answers=answers))
    runs = [*report.runs, *(run for run in (answer_run, caption_run) if run is not None)]
    return replace(report, clips=tagged, runs=runs)


def merge_records(previous: Report | None, new: Report, *, time: str | None = None
                  ) -> tuple[Report, KeptEdits]:
    """The record after delivering ``new`` over ``previous`` (see the module's rules).

    ``new``'s untagged entries are stamped with runs delivered at ``time`` (default: now).
    Merging a record with itself (an edit read from the sidecar and written back) changes
    nothing but the edited texts."""
    new = stamp_runs(new, time=time or now())
    if previous is None:
        return _tidy(new), KeptEdits()
    previous = stamp_runs(previous)
    runs = {run.id: run for run in [*previous.runs, *new.runs]}
    alternatives = [*previous.alternatives, *new.alternatives]
    kept = KeptEdits()
    if not new.clips:  # find alone: the clips stay as they were
        clips, view = previous.clips, previous
    elif not previous.clips or _plan(previous) == _plan(new):
        clips, displaced, kept = _merge_clips(previous.clips, new.clips, runs)
        alternatives.extend(displaced)
        view = new
    else:
        clips, view = list(new.clips), new
        moved = list(_as_alternatives(previous.clips))
        alternatives.extend(moved)
        kept = KeptEdits(moved=sum(t.edited for alt in moved for t in alt.texts))
    merged = replace(
        view,
        video=new.video,
        clips=clips,
        model=_answer_model(previous, new, view),
        caption_model=new.caption_model or (
            previous.caption_model if any(c.caption for c in clips) else None),
        questions=tuple(dict.fromkeys(
            qa.question for clip in clips for qa in clip.answers)) or new.questions,
        findings=_merge_findings(previous.findings, new.findings, runs),
        alternatives=_drop_recomputed(alternatives, clips, runs),
        runs=list(runs.values()),
        schema_version=new.schema_version,
        generator=new.generator,
    )
    return _tidy(merged), kept


def _plan(report: Report) -> tuple[tuple[float, float], ...]:
    """The clip plan: every clip's bounds, to the microsecond."""
    return tuple((round(c.start, 6), round(c.end, 6)) for c in report.clips)


def _signature(run_id: str | None, runs: dict[str, RunInfo]) -> tuple[object, ...] | None:
    """What decides whether two entries are the same computation: model and the options
    that change results (None when the run is unknown: never the same as another)."""
    run = runs.get(run_id) if run_id is not None else None
    if run is None:
        return None
    model, sampling = run.model, run.sampling
    tokens = sampling.caption_max_new_tokens if run.made == "captions" else None
    return (run.made, model.id, model.revision, model.frames_per_clip, model.frame_size,
            model.fit, sampling.deinterlace, tokens or sampling.max_new_tokens,
            sampling.clip_mode)  # fmt: skip


def _same(old: str | None, new: str | None, runs: dict[str, RunInfo]) -> bool:
    signature = _signature(old, runs)
    return old == new or (signature is not None and signature == _signature(new, runs))


def _merge_clips(old_clips: list[ClipResult], new_clips: list[ClipResult],
                 runs: dict[str, RunInfo]) -> tuple[list[ClipResult], list[Alternative], KeptEdits]:
    """Clip by clip on one plan: new entries in, old ones kept or displaced."""
    displaced: dict[tuple[str, str | None, str | None], list[AlternativeText]] = {}
    kept_captions = kept_answers = 0
    merged: list[ClipResult] = []
    old_by_bounds = {(round(c.start, 6), round(c.end, 6)): c for c in old_clips}
    for clip in new_clips:
        old = old_by_bounds.get((round(clip.start, 6), round(clip.end, 6)))
        if old is None:
            merged.append(clip)
            continue
        caption = clip.caption
        if caption is None:
            caption = old.caption
        elif old.caption is not None:
            caption, was_kept = _keep_edit_caption(old.caption, caption)
            kept_captions += was_kept
            if not _same(old.caption.run, caption.run, runs):
                displaced.setdefault(("caption", None, old.caption.run), []).append(AlternativeText(
                    old.start, old.end, old.caption.text, old.caption.score, old.caption.edited))
        answers = {qa.question: qa for qa in old.answers}
        for qa in clip.answers:
            earlier = answers.get(qa.question)
            if earlier is not None:
                qa, was_kept = _keep_edit_answer(earlier, qa)
                kept_answers += was_kept
                if not _same(earlier.run, qa.run, runs):
                    text = AlternativeText(old.start, old.end, earlier.answer, earlier.score,
                                           earlier.edited)
                    displaced.setdefault(("answer", qa.question, earlier.run), []).append(text)
            answers[qa.question] = qa
        merged.append(replace(clip, caption=caption, answers=tuple(answers.values())))
    alternatives = [Alternative(kind, question, run, tuple(texts))  # type: ignore[arg-type]
                    for (kind, question, run), texts in displaced.items()]
    return merged, alternatives, KeptEdits(kept_captions, kept_answers)


def _keep_edit_caption(old: Caption, new: Caption) -> tuple[Caption, bool]:
    if old.edited and not new.edited and old.text != new.text:
        return replace(new, text=old.text, edited=True), True
    if old.edited and not new.edited:
        return replace(new, edited=True), False
    return new, False


def _keep_edit_answer(old: QuestionAnswer, new: QuestionAnswer) -> tuple[QuestionAnswer, bool]:
    if old.edited and not new.edited and old.answer != new.answer:
        return replace(new, answer=old.answer, edited=True), True
    if old.edited and not new.edited:
        return replace(new, edited=True), False
    return new, False


def _as_alternatives(clips: Iterable[ClipResult]) -> Iterator[Alternative]:
    """Every caption and answer of ``clips``, one alternative per kind, question and run."""
    grouped: dict[tuple[str, str | None, str | None], list[AlternativeText]] = {}
    for clip in clips:
        if clip.caption is not None:
            grouped.setdefault(("caption", None, clip.caption.run), []).append(AlternativeText(
                clip.start, clip.end, clip.caption.text, clip.caption.score, clip.caption.edited))
        for qa in clip.answers:
            grouped.setdefault(("answer", qa.question, qa.run), []).append(AlternativeText(
                clip.start, clip.end, qa.answer, qa.score, qa.edited))
    for (kind, question, run), texts in grouped.items():
        yield Alternative(kind, question, run, tuple(texts))  # type: ignore[arg-type]


def _drop_recomputed(alternatives: list[Alternative], clips: list[ClipResult],
                     runs: dict[str, RunInfo]) -> list[Alternative]:
    """Alternatives that the clips now hold again, made the same way on the same plan, go:
    a recomputed entry replaces its old self wherever that was kept. Repeats merge."""
    plan = tuple((round(c.start, 6), round(c.end, 6)) for c in clips)
    in_view: set[tuple[str, str | None, tuple[object, ...] | None]] = set()
    for clip in clips:
        if clip.caption is not None:
            in_view.add(("caption", None, _signature(clip.caption.run, runs)))
        for qa in clip.answers:
            in_view.add(("answer", qa.question, _signature(qa.run, runs)))
    kept: dict[tuple[str, str | None, str | None], Alternative] = {}
    for alt in alternatives:
        bounds = tuple((round(t.start, 6), round(t.end, 6)) for t in alt.texts)
        signature = _signature(alt.run, runs)
        on_plan = set(bounds) <= set(plan)
        if signature is not None and on_plan and (alt.kind, alt.question, signature) in in_view:
            continue
        key = (alt.kind, alt.question, alt.run)
        if key in kept:  # the same run displaced twice (two deliveries): one entry
            texts = {(t.start, t.end): t for t in (*kept[key].texts, *alt.texts)}
            alt = replace(alt, texts=tuple(sorted(texts.values(), key=lambda t: t.start)))
        kept[key] = alt
    return list(kept.values())


def _merge_findings(old: list[FindingRecord], new: list[FindingRecord],
                    runs: dict[str, RunInfo]) -> list[FindingRecord]:
    """One finding per question, model and options: a new one replaces its old self."""
    def key(finding: FindingRecord) -> tuple[object, ...]:
        run = runs.get(finding.run) if finding.run is not None else None
        model = (run.model.id, run.model.revision) if run is not None else None
        return (finding.question, model, finding.threshold, finding.step)

    merged = {key(finding): finding for finding in old}
    for finding in new:
        merged.pop(key(finding), None)
        merged[key(finding)] = finding
    return list(merged.values())


def _answer_model(previous: Report, new: Report, view: Report) -> ModelInfo:
    """The record's ``model``: the newest run's that asked questions, as before 1.3."""
    if new.questions or not previous.questions:
        return view.model
    return previous.model


def _tidy(record: Report) -> Report:
    """Runs no entry names any more go (a record does not grow with every delivery)."""
    used = {alt.run for alt in record.alternatives} | {f.run for f in record.findings}
    for clip in record.clips:
        if clip.caption is not None:
            used.add(clip.caption.run)
        used.update(qa.run for qa in clip.answers)
    runs = [run for run in record.runs if run.id in used]
    return record if len(runs) == len(record.runs) else replace(record, runs=runs)


def adopt(target: Report, record: Report) -> None:
    """Make ``target`` the merged ``record`` in place: callers that hold the report a runner
    made (to print it, or hand it to the next adapter) see what was delivered."""
    for name in record.__dataclass_fields__:
        setattr(target, name, getattr(record, name))


__all__ = ["KeptEdits", "adopt", "merge_records", "new_run_id", "now", "stamp_runs"]
