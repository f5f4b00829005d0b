"""What a long ``ask``/``caption`` call tells the user while it runs, and how Ctrl-C ends it.

``RunProgress`` keeps the call's tally (files done and failed, clips) for the closing summary
and, on a terminal, draws one bar for the whole call: files done of all, clips, clips/s and
the time left (the collection runner works on several files at once, so there is no bar per
file). ``Interrupts`` makes Ctrl-C stop the call at once,
except while a file's sidecars are being written: that finishes first, so a file is either
wholly delivered or not at all.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import click
from tqdm import tqdm

from videoqa.report import ClipResult

INTERRUPTED_EXIT_CODE = 130
"""What shells expect of a program ended by Ctrl-C (128 + SIGINT)."""

_RUN_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} clips [{elapsed}<{remaining}, "
    "{rate_fmt}]"
)


def say(line: str) -> None:
    """One line on stderr, above any progress bar rather than through it; flushed, so it is
    out before the next step (click's test runner before 8.2.1 dropped unflushed lines)."""
    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()


class RunProgress:
    """The tally of one call over ``files`` videos, and its whole-run bar.

    The bar counts clips; its label is the file's name for one file, else the files finished
    of all (``3/40 files``). How many clips a file holds is only known once it is probed, so
    until the last file is probed the total is an estimate: the clips of the files probed so
    far, plus their mean for each file still to come. The bar appears with the first file (after
    the models are loaded, whose lines it would otherwise cut through).
    """

    def __init__(self, files: int) -> None:
        self.files = files
        self.done = self.failed = self.clips = 0
        self.began: float | None = None  # when the first file started (after the models load)
        self._started = self._planned_files = self._planned_clips = self._unplanned = 0
        self._current_planned = False
        self._bar: tqdm[Any] = tqdm(disable=True)  # draws nothing until start_file

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bar.close()

    def start_file(self, name: str | None = None) -> None:
        """A file is begun (with the collection runner: planned; others may still run)."""
        self._started += 1
        self._current_planned = False
        if self.began is None:
            self.began = time.monotonic()
        if self._started == 1 and sys.stderr.isatty():
            self._bar = tqdm(total=0, desc=self._label(name), unit="clip", file=sys.stderr,
                             leave=False, dynamic_ncols=True, bar_format=_RUN_BAR_FORMAT)
        self._update_total()

    def planned(self, clips: int) -> None:
        """The file being started holds ``clips`` clips."""
        self._planned_files += 1
        self._planned_clips += clips
        self._current_planned = True
        self._update_total()

    def clip_done(self) -> None:
        self.clips += 1
        self._bar.update(1)

    def file_ended(self, *, ok: bool, clips_left: int = 0, planned: bool | None = None) -> None:
        """A file is delivered, or failed with ``clips_left`` not done; ``planned`` says
        whether it was probed (default: whether the file being processed was)."""
        if ok:
            self.done += 1
        else:
            self.failed += 1
            self._planned_clips -= clips_left
            if not (self._current_planned if planned is None else planned):
                self._unplanned += 1  # failed before it was probed: holds no clips
            self._update_total()
        if self.files > 1:
            self._bar.set_description_str(self._label())

    def _label(self, name: str | None = None) -> str:
        """The bar's label: the file's name for one file, else how many files are finished."""
        if self.files == 1:
            return name or ""
        return f"{self.done + self.failed}/{self.files} files"

    def summary(self, *, interrupted: bool = False) -> str:
        noun = "file" if self.files == 1 else "files"
        tally = f"{self.files} {noun}: {self.done} done, {self.failed} failed"
        if interrupted:
            tally = f"interrupted: {tally}, {self.files - self.done - self.failed} not done"
        seconds = time.monotonic() - self.began if self.began is not None else 0.0
        return f"videoqa: {tally}; {self.clips} clips in {seconds:.1f} s"

    def _update_total(self) -> None:
        per_file = self._planned_clips / self._planned_files if self._planned_files else 0.0
        not_probed = self.files - self._planned_files - self._unplanned
        self._bar.total = self._planned_clips + round(per_file * not_probed)
        self._bar.refresh()


def end_run(run: RunProgress, *, interrupted: bool) -> None:
    """The call's summary line, then its exit code: 130 after Ctrl-C, 1 when a file failed."""
    click.echo(run.summary(interrupted=interrupted), err=True)
    if interrupted:
        click.get_current_context().exit(INTERRUPTED_EXIT_CODE)
    if run.failed:
        click.get_current_context().exit(1)


class Interrupts:
    """Ctrl-C (SIGINT) raises ``KeyboardInterrupt`` at once, except inside ``deferred()``.

    A Ctrl-C inside ``deferred()`` is remembered and raised by the next ``check()``. Python runs
    signal handlers in the main thread only, so elsewhere (a test's worker thread) this changes
    nothing.
    """

    def __init__(self) -> None:
        self._deferring = False
        self._pending = False
        self._previous: Any = None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        if self._deferring:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A step that must finish once begun: Ctrl-C waits for its end."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False

    def check(self) -> None:
        """Raise the ``KeyboardInterrupt`` of a Ctrl-C that came during ``deferred()``."""
        if self._pending:
            self._pending = False
            raise KeyboardInterrupt


def clip_summary(clip: ClipResult, *, captions: bool) -> list[str]:
    """The lines printed for a clip as it is done, each with its confidence (0 to 1)."""
    lines = [f"{qa.question}: {qa.answer} (confidence {qa.confidence:.2f})"
             for qa in clip.answers]  # fmt: skip
    if captions and clip.caption is not None:
        lines.insert(0, f"{clip.caption.text} (confidence {clip.caption.confidence:.2f})")
    return lines
