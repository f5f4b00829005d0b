"""Event ids: the same event, announced twice, carries the same id.

Adapters run at least once. A daemon killed after its worker announced a file ``done`` (the
``jsonl`` log written, the webhook posted) but before the job store recorded it finds the job
``running`` at the next start and processes the file again, which announces it again; a
webhook whose answer is lost is posted again. Recording the delivery cannot close that window
(the kill may fall between the announcement and the record), so each event carries an id that
names the event, not the sending: a consumer keeps the ids it has seen and drops a repeat.

In the daemon (and ``videoqa process``) the id is ``<store id>-<job id>-<generation>-<kind>``:
the job store's random id, the job (one file identity), how many times ``--retry-failed`` made
the job due again, and the event (``done``, ``failed``; ``renamed`` adds the moment of the
rename). The worker and the daemon set the job's :class:`EventScope` around the adapter calls;
adapters ask :func:`event_id`. Outside a job (an adapter called by other code) the id comes
from the file's identity (path, size, modification time) and the kind.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Protocol


class JobStoreLike(Protocol):
    """What an event scope reads of the daemon's job store (``videoqa.watch.jobstore``,
    which stands far above this module: described here, not imported)."""

    @property
    def store_id(self) -> str: ...

    def generation(self, job_id: int) -> int: ...


class JobLike(Protocol):
    """A job of that store: its id."""

    @property
    def id(self) -> int: ...


@dataclass(frozen=True)
class EventScope:
    """The job whose events the adapters are announcing now (picklable: it goes to the worker)."""

    store: str
    job: int
    generation: int = 0
    detail: str = ""
    """Appended to the id (a rename: its moment, as one job may be renamed many times)."""

    @classmethod
    def of(cls, store: JobStoreLike, job: JobLike) -> EventScope:
        return cls(store.store_id, job.id, store.generation(job.id))

    def renamed(self, moment: float) -> EventScope:
        """The scope of a rename recorded at ``moment`` (Unix seconds)."""
        return replace(self, detail=str(round(moment * 1000)))

    def event_id(self, kind: str) -> str:
        base = f"{self.store}-{self.job}-{self.generation}-{kind}"
        return f"{base}-{self.detail}" if self.detail else base


_current: ContextVar[EventScope | None] = ContextVar("videoqa_event_scope", default=None)


@contextmanager
def announcing(scope: EventScope | None) -> Iterator[None]:
    """Adapters called inside this block announce events of ``scope``'s job."""
    token = _current.set(scope)
    try:
        yield
    finally:
        _current.reset(token)


def event_id(kind: str, video_path: str | os.PathLike[str]) -> str:
    """The id of the ``kind`` event (``done``, ``failed``, ``renamed``) about ``video_path``
    being announced now: the same whenever this event is announced again."""
    scope = _current.get()
    if scope is not None:
        return scope.event_id(kind)
    try:
        status = os.stat(video_path)
        identity = f"{status.st_size}:{status.st_mtime_ns}"
    except OSError:
        identity = "gone"
    parts = (os.fsencode(video_path), identity.encode(), kind.encode())
    return "file-" + hashlib.sha256(b"\0".join(parts)).hexdigest()[:32]
