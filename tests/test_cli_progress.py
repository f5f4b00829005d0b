"""Ctrl-C handling of ``ask``/``caption`` with real SIGINTs: a step begun is finished first.

The whole call under a real Ctrl-C is tested in ``test_cli_qa.py`` (a ``videoqa`` subprocess);
here, the moment a SIGINT comes while sidecars are being written, which is too short to hit
from outside.
"""

from __future__ import annotations

import signal

import pytest

from videoqa.cli.progress import Interrupts, RunProgress


def test_a_sigint_during_a_deferred_step_is_raised_once_it_is_over():
    before = signal.getsignal(signal.SIGINT)
    steps = []
    with Interrupts() as interrupts:
        with interrupts.deferred():
            signal.raise_signal(signal.SIGINT)
            steps.append("written")  # the step goes on to its end
        assert steps == ["written"]
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
        interrupts.check()  # raised once, not again
        with pytest.raises(KeyboardInterrupt):  # outside a deferred step: at once
            signal.raise_signal(signal.SIGINT)
            steps.append("not reached")
    assert steps == ["written"]
    assert signal.getsignal(signal.SIGINT) is before


def test_the_summary_counts_what_is_not_done_when_interrupted():
    with RunProgress(3) as run:
        run.start_file()
        run.planned(2)
        run.clip_done()
        run.clip_done()
        run.file_ended(ok=True)
        run.start_file()
        run.file_ended(ok=False)
        run.start_file()
        run.planned(4)
        run.clip_done()
    assert run.summary(interrupted=True).startswith(
        "videoqa: interrupted: 3 files: 1 done, 1 failed, 1 not done; 3 clips in "
    )
    assert run.summary().startswith("videoqa: 3 files: 1 done, 1 failed; 3 clips in ")
