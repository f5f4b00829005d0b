"""The review page's routes: search, a video with its timeline, the edit form, and the media.

Every video is named by its key (``library.video_key``) and looked up among the indexed
videos under the roots; nothing from a request's path is joined onto the file system (the
static files are read from the package into memory when the app starts). Pages are rendered
on the server with Jinja2 (autoescaped); ``video.js`` seeks, moves the play head and shows the
note when the browser cannot play the file after all.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from videoqa.errors import MediaError, OutputError, VideoQAError
from videoqa.index import KINDS
from videoqa.pathnames import readable
from videoqa.report import ClipResult, Report, ReportFormatError
from videoqa.sidecars import VttWriter, format_timestamp
from videoqa.version import __version__
from videoqa.web.edits import EditError, edit_clip
from videoqa.web.library import Library, ServedVideo, browser_media_type, clip_colour
from videoqa.web.thumbnails import ThumbnailCache, default_cache_dir

SEARCH_LIMIT = 20
"""Hits on a search page (``limit=`` asks for up to :data:`MAX_LIMIT`)."""
MAX_LIMIT = 200
VIDEO_LIST_LIMIT = 500
"""Videos listed on the start page (the rest are found by searching)."""

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}  # fmt: skip


def create_app(
    db_path: str | os.PathLike[str],
    roots: Iterable[str | os.PathLike[str]],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    allowed_hosts: Sequence[str] | None = None,
) -> Starlette:
    """The review app over the index at ``db_path``, serving videos under ``roots``.

    ``cache_dir`` keeps the thumbnails (default :func:`default_cache_dir`); ``allowed_hosts``
    are the ``Host`` names requests may carry (None: any), which stops a web page from
    reaching the server through a DNS name of its own (DNS rebinding).
    """
    review = _Review(Library(db_path, roots), ThumbnailCache(cache_dir or default_cache_dir()))
    routes = [
        Route("/", review.search_page),
        Route("/video/{key:str}", review.video_page),
        Route("/video/{key:str}/media", review.media, methods=["GET", "HEAD"]),
        Route("/video/{key:str}/captions.vtt", review.captions),
        Route("/video/{key:str}/thumbnail", review.thumbnail),
        Route("/video/{key:str}/clip/{index:int}/edit", review.edit_page,
              methods=["GET", "POST"]),
        Route("/static/{name:str}", review.static),
    ]  # fmt: skip
    middleware = []
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={_NotServed: _not_served,
                                         ReportFormatError: _unreadable})


@dataclass(frozen=True)
class Segment:
    """One clip on a timeline row: where it sits (percent of the video), its colour and text."""

    start: float
    end: float
    left: float
    width: float
    colour: str
    text: str
    tooltip: str


@dataclass(frozen=True)
class TimelineRow:
    label: str
    segments: list[Segment]
    legend: list[tuple[str, str]]
    """(text, colour) of each distinct text on the row, in order of first appearance."""


class _Review:
    """The handlers, sharing the library, the thumbnail cache and the templates."""

    def __init__(self, library: Library, thumbnails: ThumbnailCache) -> None:
        self.library = library
        self.thumbnails = thumbnails
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("videoqa.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.filters["timestamp"] = format_timestamp
        self.templates.globals["version"] = __version__
        folder = resources.files("videoqa.web") / "static"
        self.static_files = {
            item.name: item.read_bytes() for item in folder.iterdir() if item.is_file()
        }
        self._edit_lock = threading.Lock()

    # -- pages -------------------------------------------------------------------------------

    async def search_page(self, request: Request) -> Response:
        params = request.query_params
        query = params.get("q", "").strip()
        kind = params.get("kind") or None
        question = params.get("question", "").strip() or None
        context: dict[str, Any] = {"query": query, "kind": kind or "", "kinds": KINDS,
                                   "question": question or "", "error": None, "hits": None,
                                   "hidden": 0, "videos": None, "more": 0}  # fmt: skip
        if kind is not None and kind not in KINDS:
            return self._page("search.html", context, error=f"kind: choose {', '.join(KINDS)}")
        if not query:
            videos = await run_in_threadpool(self.library.videos)
            context.update(videos=videos[:VIDEO_LIST_LIMIT], more=len(videos) - VIDEO_LIST_LIMIT,
                           hits=None, hidden=0)  # fmt: skip
            return self._page("search.html", context)
        limit = _bounded_int(params.get("limit"), SEARCH_LIMIT, 1, MAX_LIMIT)
        try:
            hits, hidden = await run_in_threadpool(
                self.library.search, query, kind=kind, question=question, limit=limit
            )
        except VideoQAError as error:
            return self._page("search.html", context, error=error.reason)
        context.update(hits=hits, hidden=hidden, videos=None, more=0)
        return self._page("search.html", context)

    async def video_page(self, request: Request) -> Response:
        video = await self._video(request)
        report = await run_in_threadpool(_report_of, video)
        start = _time_param(request.query_params.get("t"))
        duration = report.video.duration or max((c.end for c in report.clips), default=0.0)
        media_type = browser_media_type(report.video.codec, report.video.format_name)
        context = {
            "video": video,
            "report": report,
            "start": start,
            "media_type": media_type,
            "container": (report.video.format_name or "?").split(",")[0],
            "rows": _timeline(report, duration),
            "saved": request.query_params.get("saved"),
            "query": "",
        }
        return self._page("video.html", context)

    async def edit_page(self, request: Request) -> Response:
        video = await self._video(request)
        report = await run_in_threadpool(_report_of, video)
        index = int(request.path_params["index"])
        clip = next((c for c in report.clips if c.index == index), None)
        if clip is None:
            return _not_found(f"{video.name} has no clip {index}")
        context: dict[str, Any] = {"video": video, "clip": clip, "query": "", "error": None}
        if request.method == "GET":
            return self._page("edit.html", context)
        if not _same_origin(request):
            return Response("refused: the form was not sent from this page's origin", 403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"),
                        keep_blank_values=True)  # fmt: skip
        caption = form["caption"][0] if "caption" in form else None
        answers = {
            form[f"question-{n}"][0]: form[f"answer-{n}"][0]
            for n in range(len(clip.answers))
            if f"question-{n}" in form and f"answer-{n}" in form
        }
        try:
            result = await run_in_threadpool(self._save, video, index, caption, answers)
        except EditError as error:
            return self._page("edit.html", context, error=error.reason, status=400)
        except OutputError as error:
            return self._page("edit.html", context, error=str(error), status=500)
        saved = ", ".join(readable(path.name) for path in result.written) or "nothing changed"
        query = urlencode({"t": f"{clip.start:g}", "saved": saved})
        return RedirectResponse(f"/video/{video.key}?{query}", status_code=303)

    def _save(self, video: ServedVideo, index: int, caption: str | None,
              answers: dict[str, str]) -> Any:  # fmt: skip
        if video.report_path is None:
            raise EditError(video.indexed_path, "was indexed without a JSON sidecar to correct")
        with self._edit_lock:  # one correction at a time: each reads what the last wrote
            result = edit_clip(video.report_path, video.indexed_path, index,
                               caption=caption, answers=answers)  # fmt: skip
            if result.written:
                self.library.reindex(video, result.report)
        return result

    # -- files -------------------------------------------------------------------------------

    async def media(self, request: Request) -> Response:
        """The video file itself, with range requests (206, 416) as Starlette serves them."""
        video = await self._video(request)
        report = await run_in_threadpool(_report_of, video)
        media_type = browser_media_type(report.video.codec, report.video.format_name)
        return FileResponse(video.path, media_type=media_type or "application/octet-stream")

    async def captions(self, request: Request) -> Response:
        """The WebVTT the CLI writes, rendered from the JSON sidecar as it is now."""
        video = await self._video(request)
        report = await run_in_threadpool(_report_of, video)
        return Response(VttWriter().render(report), media_type="text/vtt; charset=utf-8",
                        headers={"cache-control": "no-cache"})  # fmt: skip

    async def thumbnail(self, request: Request) -> Response:
        video = await self._video(request)
        time = _time_param(request.query_params.get("t"))
        if time is None:
            return Response("t: a time in seconds is needed", 400)
        try:
            path = await run_in_threadpool(self.thumbnails.thumbnail, video.path, time)
        except MediaError as error:
            return Response(f"cannot make a thumbnail: {error.reason}", 422)
        return FileResponse(path, media_type="image/jpeg",
                            headers={"cache-control": "max-age=86400"})  # fmt: skip

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        data = self.static_files.get(name)
        if data is None:
            return _not_found("no such file")
        media_type = STATIC_TYPES.get(Path(name).suffix, "application/octet-stream")
        return Response(data, media_type=media_type, headers={"cache-control": "no-cache"})

    # -- helpers -----------------------------------------------------------------------------

    async def _video(self, request: Request) -> ServedVideo:
        video = await run_in_threadpool(self.library.video, request.path_params["key"])
        if video is None:
            raise _NotServed()
        return video

    def _page(self, name: str, context: dict[str, Any], *, error: str | None = None,
              status: int | None = None) -> HTMLResponse:  # fmt: skip
        context = {**context, "error": error}
        html = self.templates.get_template(name).render(context)
        return HTMLResponse(html, status_code=status or (400 if error else 200))


class _NotServed(Exception):
    """The key names no indexed video under the roots."""


async def _not_served(_request: Request, _error: Exception) -> Response:
    return _not_found("no such video here (not indexed, or not under a served folder)")


async def _unreadable(_request: Request, error: Exception) -> Response:
    """A JSON sidecar gone or broken since it was indexed: one line, not a traceback."""
    return Response(f"cannot show this video: {error}", 500,
                    media_type="text/plain; charset=utf-8")  # fmt: skip


def _not_found(reason: str) -> Response:
    return Response(reason, 404, media_type="text/plain; charset=utf-8")


def _report_of(video: ServedVideo) -> Report:
    """The video's report; a video indexed without a JSON sidecar is not served, and one whose
    sidecar is gone or broken raises ``ReportFormatError`` (answered with its one line)."""
    report = video.load_report()
    if report is None:
        raise _NotServed()
    return report


def _time_param(value: str | None) -> float | None:
    """``t=12.5`` as seconds; None when absent or not a finite time."""
    try:
        time = float(value) if value is not None else None
    except ValueError:
        return None
    return time if time is not None and math.isfinite(time) and time >= 0 else None


def _bounded_int(value: str | None, default: int, low: int, high: int) -> int:
    try:
        number = int(value) if value else default
    except ValueError:
        number = default
    return min(max(number, low), high)


def _same_origin(request: Request) -> bool:
    """A form post from this server's own page: a browser sends ``Origin``, and another
    site's page would send its own (cross-site request forgery)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host')}"


def _timeline(report: Report, duration: float) -> list[TimelineRow]:
    """The caption row (when there are captions) and one row per question."""
    rows = []
    if report.has_captions:
        rows.append(_row("captions", report.clips, duration,
                         lambda clip: _caption_text(clip)))  # fmt: skip
    for question in report.questions:
        rows.append(_row(question, report.clips, duration,
                         lambda clip, q=question: _answer_text(clip, q)))  # fmt: skip
    return rows


def _caption_text(clip: ClipResult) -> tuple[str, float, bool] | None:
    if clip.caption is None:
        return None
    return clip.caption.text, clip.caption.confidence, clip.caption.edited


def _answer_text(clip: ClipResult, question: str) -> tuple[str, float, bool] | None:
    answer = clip.answer_for(question)
    return (answer.answer, answer.confidence, answer.edited) if answer else None


def _row(label: str, clips: Sequence[ClipResult], duration: float, text_of: Any) -> TimelineRow:
    segments: list[Segment] = []
    legend: dict[str, str] = {}
    scale = 100.0 / duration if duration > 0 else 0.0
    for clip in clips:
        found = text_of(clip)
        if found is None:
            continue
        text, confidence, edited = found
        colour = legend.setdefault(text, clip_colour(text))
        span = f"{format_timestamp(clip.start)} – {format_timestamp(clip.end)}"
        mark = ", edited" if edited else ""
        segments.append(Segment(
            start=clip.start, end=clip.end, left=clip.start * scale,
            width=max(0.0, (clip.end - clip.start) * scale), colour=colour, text=text,
            tooltip=f"{span}\n{text}\nconfidence {confidence:.2f}{mark}",
        ))  # fmt: skip
    return TimelineRow(label, segments, list(legend.items()))

