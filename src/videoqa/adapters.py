"""Adapters: what else happens with a finished report (and with each failure).

Adapters are found through the entry-point group ``videoqa.adapters`` (like OpenTimelineIO's
adapters and Mopidy's extensions), so a package of one's own adds one by declaring an entry
point. A broken adapter is logged and skipped, never fatal: one that fails to load or raises
does not stop the others. ``VIDEOQA_NO_THIRD_PARTY_ADAPTERS=1`` loads only the adapters that
ship with videoqa (for debugging, or a locked-down install).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, ClassVar

from videoqa.errors import VideoQAError

logger = logging.getLogger("videoqa.adapters")

GROUP = "videoqa.adapters"
NO_THIRD_PARTY_ENV = "VIDEOQA_NO_THIRD_PARTY_ADAPTERS"
BUNDLED_DISTRIBUTION = "videoqa"


class Adapter:
    """Base of every adapter. Subclasses set ``name`` and override the handlers they need.

    ``options`` are the adapter's table from the config (``[adapters.<name>]``); the
    constructor should check them and raise ``ConfigError`` when they are wrong.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    announces: ClassVar[bool] = False
    """True for an adapter that tells others a video is done (an event log, a webhook): it
    runs after the others have delivered the results, and not while one of them has not."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})

    def prepare(self, video_path: Path, settings: Any) -> None:
        """Before any work on the video: raise ``VideoQAError`` to refuse it (say, because
        results could not be delivered), which fails the file without spending inference."""

    def handle_report(self, report: Any, video_path: Path, settings: Any) -> None:
        """A video was processed: ``report`` is its ``videoqa.report.Report``."""

    def handle_failure(self, video_path: Path, error: str) -> None:
        """A video ended ``failed``: ``error`` is the one-line reason."""

    def handle_rename(self, old_path: Path, new_path: Path, settings: Any) -> None:
        """A processed video was renamed: move what was delivered for it (no new report)."""

    def close(self) -> None:
        """Release what the adapter holds (files, connections)."""


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter as the entry points declare it, before loading."""

    name: str
    value: str
    distribution: str | None

    @property
    def bundled(self) -> bool:
        return self.distribution == BUNDLED_DISTRIBUTION


def third_party_disabled() -> bool:
    return os.environ.get(NO_THIRD_PARTY_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _entry_points() -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for entry_point in entry_points(group=GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def _distribution(entry_point: EntryPoint) -> str | None:
    dist = getattr(entry_point, "dist", None)
    return dist.metadata["Name"] if dist is not None else None


def available_adapters() -> list[AdapterInfo]:
    """Every adapter declared in the group (third-party ones hidden when disabled), by name."""
    infos = [
        AdapterInfo(name, ep.value, _distribution(ep)) for name, ep in _entry_points().items()
    ]
    if third_party_disabled():
        infos = [info for info in infos if info.bundled]
    return sorted(infos, key=lambda info: info.name)


def load_adapters(
    names: Iterable[str], *, options: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Adapter]:
    """Instantiate the named adapters; unknown, disabled or broken ones are logged and skipped."""
    declared = _entry_points()
    options = options or {}
    adapters: list[Adapter] = []
    for name in names:
        entry_point = declared.get(name)
        if entry_point is None:
            logger.error("adapter %r: not installed (see `videoqa adapters`)", name)
            continue
        if third_party_disabled() and _distribution(entry_point) != BUNDLED_DISTRIBUTION:
            logger.warning("adapter %r: third-party adapters are disabled (%s)",
                           name, NO_THIRD_PARTY_ENV)  # fmt: skip
            continue
        try:
            adapter_class = entry_point.load()
            adapter = adapter_class(options.get(name, {}))
        except Exception as error:
            logger.error("adapter %r: cannot load: %s", name, error)
            continue
        if not isinstance(adapter, Adapter):
            logger.error("adapter %r: %s is not an Adapter", name, entry_point.value)
            continue
        adapters.append(adapter)
    return adapters


def prepare_adapters(adapters: Sequence[Adapter], video_path: Path, settings: Any) -> list[str]:
    """Ask every adapter whether it can take ``video_path``; before any work on it.

    A ``VideoQAError`` from an adapter is a refusal and propagates (the file fails, no
    inference spent); any other exception is logged and returned like a failed delivery.
    """
    errors = []
    for adapter in adapters:
        try:
            adapter.prepare(video_path, settings)
        except VideoQAError:
            raise
        except Exception as error:
            logger.error("%s: adapter %s failed to prepare: %s", video_path, adapter.name, error)
            errors.append(f"adapter {adapter.name}: {error}")
    return errors


def run_report_adapters(
    adapters: Sequence[Adapter], report: Any, video_path: Path, settings: Any
) -> list[str]:
    """Give ``report`` to every adapter; one that raises is logged and the rest still run.

    Returns the errors, one line per failed adapter.
    """
    return _each(adapters, video_path, "",
                 lambda adapter: adapter.handle_report(report, video_path, settings))  # fmt: skip


def deliver_report(
    adapters: Sequence[Adapter], report: Any, video_path: Path, settings: Any
) -> tuple[list[str], list[str]]:
    """Give ``report`` to the adapters that deliver results, then to those that announce them.

    Announcing adapters run only once every other one has delivered, so no event says
    "done" about results that are not there. Returns the errors (one line per failed
    adapter) and the names of the adapters still to deliver: those that failed and, when a
    delivering one failed, every announcing one.
    """
    errors: list[str] = []
    undelivered: list[str] = []
    for announcing in (False, True):
        group = [adapter for adapter in adapters if adapter.announces is announcing]
        if undelivered:
            undelivered += [adapter.name for adapter in group]
            break
        for adapter in group:
            failed = run_report_adapters([adapter], report, video_path, settings)
            errors += failed
            undelivered += [adapter.name] if failed else []
    return errors, undelivered


def run_rename_adapters(
    adapters: Sequence[Adapter], old_path: Path, new_path: Path, settings: Any
) -> list[str]:
    """Tell every adapter a processed video was renamed; one that raises is logged and the
    rest still run. Returns the errors."""
    return _each(adapters, new_path, " on a rename",
                 lambda adapter: adapter.handle_rename(old_path, new_path, settings))  # fmt: skip


def run_failure_adapters(adapters: Sequence[Adapter], video_path: Path, error: str) -> list[str]:
    """Tell every adapter about a failed video; one that raises is logged and the rest still run."""
    return _each(adapters, video_path, " on a failure",
                 lambda adapter: adapter.handle_failure(video_path, error))  # fmt: skip


def _each(
    adapters: Sequence[Adapter], video_path: Path, what: str, call: Callable[[Adapter], object]
) -> list[str]:
    """``call(adapter)`` for each adapter: one that raises is logged and the rest still run.

    Returns the errors, one line per failed adapter.
    """
    errors = []
    for adapter in adapters:
        try:
            call(adapter)
        except Exception as error:
            logger.error("%s: adapter %s failed%s: %s", video_path, adapter.name, what, error)
            errors.append(f"adapter {adapter.name}: {error}")
    return errors


def close_adapters(adapters: Iterable[Adapter]) -> None:
    for adapter in adapters:
        try:
            adapter.close()
        except Exception as error:
            logger.warning("adapter %s: close failed: %s", adapter.name, error)
