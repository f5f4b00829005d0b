"""Log lines of the daemon and its worker: an ISO-8601 timestamp, then valid UTF-8 text.

A daemon's log is read long after the fact, beside other logs, so each line says when
(``2026-11-28T07:24:24.123+01:00 videoqa: INFO: …``, local time with its UTC offset). Under
systemd, when stderr is the journal (``JOURNAL_STREAM`` names it), journald stamps every line
itself, so the timestamp is left out there. File names that are not UTF-8 are shown with
``\\xNN`` escapes (``videoqa.pathnames.readable``).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from videoqa.pathnames import readable


def stderr_is_journal() -> bool:
    """Whether stderr is connected to journald (systemd sets ``JOURNAL_STREAM=dev:inode``).

    The variable is inherited by children whose stderr may go elsewhere, so it counts only
    when it names the file stderr really is, as systemd's documentation advises.
    """
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        stat = os.fstat(2)
    except OSError:
        return False
    return expected == f"{stat.st_dev}:{stat.st_ino}"


class DaemonLogFormatter(logging.Formatter):
    """``<ISO-8601 time> <prefix>: <LEVEL>: <message>``; no time when journald adds its own."""

    def __init__(self, prefix: str = "videoqa", *, timestamps: bool | None = None) -> None:
        if timestamps is None:
            timestamps = not stderr_is_journal()
        when = "%(asctime)s " if timestamps else ""
        super().__init__(f"{when}{prefix}: %(levelname)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        moment = datetime.fromtimestamp(record.created).astimezone()
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        return readable(super().format(record))


def use_daemon_log_format(prefix: str = "videoqa") -> None:
    """Give the CLI's stderr handler (on the root logger) the daemon's format.

    Only plain ``StreamHandler``s: handlers someone else installed (a test harness's
    capture, say) keep their own format.
    """
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.setFormatter(DaemonLogFormatter(prefix))
