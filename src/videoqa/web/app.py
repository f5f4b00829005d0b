"""The review page's routes: search, a video with its timeline, the edit form, and the media.

Every video is named by its key (``library.video_key``) and looked up among the indexed
videos under the roots; nothing from a request's path is joined onto the file system (the
static files are read from the package into memory when the app starts). Pages are rendered
on the server with Jinja2 (autoescaped); ``video.js`` seeks, moves the play head and shows the
note when the browser cannot play the file after all.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
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
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from videoqa.errors import MediaError, OutputError, VideoQAError
from videoqa.ffmpeg_names import codec_name, container_name
from videoqa.index import KINDS
from videoqa.pathnames import dumps_json, readable
from videoqa.report import ClipResult, Report, ReportFormatError
from videoqa.sidecars import VttWriter, format_timestamp
from videoqa.version import __version__
from videoqa.web.edits import EditError, edit_clip
from videoqa.web.library import Colours, Library, ServedVideo, browser_media_type
from videoqa.web.security import CSRF_FIELD, Guard, csrf_field_ok, refused_csrf
from videoqa.web.thumbnails import DEFAULT_MAX_BYTES, ThumbnailCache, default_cache_dir

SEARCH_LIMIT = 20
"""Hits on a search page (``limit=`` asks for up to :data:`MAX_LIMIT`)."""
MAX_LIMIT = 200
VIDEO_LIST_LIMIT = 500
"""Videos listed on the start page (the rest are found by searching)."""

MAX_EDIT_BYTES = 64 * 1024
"""The largest edit request body: a form or JSON of a clip's caption and answers (413 beyond,
refused from ``Content-Length`` or as soon as the streamed body passes it)."""
MAX_TEXT_CHARS = 4096
"""The longest caption or answer an edit may set (413 beyond)."""

STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}  # fmt: skip


def create_app(
    db_path: str | os.PathLike[str],
    roots: Iterable[str | os.PathLike[str]],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    allowed_hosts: Sequence[str] | None = None,
    token: str | None = None,
    cache_bytes: int = DEFAULT_MAX_BYTES,
) -> Starlette:
    """The review app over the index at ``db_path``, serving videos under ``roots``.

    ``cache_dir`` keeps the thumbnails (default :func:`default_cache_dir`, at most
    ``cache_bytes``); ``allowed_hosts`` are the ``Host`` names requests may carry (None: any),
    which stops a web page from reaching the server through a DNS name of its own (DNS
    rebinding); ``token``, when given, is needed by every request (``web.security.Guard``).
    """
    thumbnails = ThumbnailCache(cache_dir or default_cache_dir(), max_bytes=cache_bytes)
    review = _Review(Library(db_path, roots), thumbnails)
    routes = [
        Route("/", review.search_page),
        Route("/video/{key:str}", review.video_page),
        Route("/video/{key:str}/media", review.media, methods=["GET", "HEAD"]),
        Route("/video/{key:str}/captions.vtt", review.captions),
        Route("/video/{key:str}/thumbnail", review.thumbnail),
        Route("/video/{key:str}/clip/{index:int}/edit", review.edit_page,
              methods=["GET", "POST"]),
        Route("/static/{name:str}", review.static),
        Route("/api/videos", review.api_videos),
        Route("/api/search", review.api_search),
        Route("/api/videos/{key:str}", review.api_video),
        Route("/api/videos/{key:str}/clips/{index:int}", review.api_clip,
              methods=["GET", "PUT", "PATCH"]),
    ]  # fmt: skip
    middleware = [Middleware(Guard, allowed_hosts=allowed_hosts, token=token)]
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
        self._streams_lock = threading.Lock()
        self._stream_facts: OrderedDict[tuple[bytes, int, int], tuple[Any, ...]] = OrderedDict()

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
            **await run_in_threadpool(self._names, video, report),
            "rows": _timeline(report, duration),
            "saved": request.query_params.get("saved"),
            "query": "",
        }
        return self._page("video.html", context)

    async def edit_page(self, request: Request) -> Response:
        video = await self._video(request)
        report = await run_in_threadpool(_report_of, video)
        index = int(request.path_params["index"])
        position = next((n for n, c in enumerate(report.clips) if c.index == index), None)
        if position is None:
            return _not_found(f"{video.name} has no clip {index}")
        clip = report.clips[position]
        neighbours = [report.clips[n].index if 0 <= n < len(report.clips) else None
                      for n in (position - 1, position + 1)]  # fmt: skip
        context: dict[str, Any] = {
            "video": video, "clip": clip, "query": "", "error": None,
            "media_type": browser_media_type(report.video.codec, report.video.format_name),
            "previous": neighbours[0], "next": neighbours[1],
            "csrf": request.state.csrf, "csrf_field": CSRF_FIELD, "max_text": MAX_TEXT_CHARS,
            **await run_in_threadpool(self._names, video, report),
        }  # fmt: skip
        if request.method == "GET":
            return self._page("edit.html", context)
        body = await _limited_body(request)
        if body is None:
            return _too_large()
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        if not csrf_field_ok(request.state, form.get(CSRF_FIELD, [None])[0]):
            return refused_csrf()
        caption = form["caption"][0] if "caption" in form else None
        answers = {
            form[f"question-{n}"][0]: form[f"answer-{n}"][0]
            for n in range(len(clip.answers))
            if f"question-{n}" in form and f"answer-{n}" in form
        }
        if _too_long(caption, answers):
            return _too_large()
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

    def _names(self, video: ServedVideo, report: Report) -> dict[str, Any]:
        """The codec and container as people name them, and a note when the stream a browser
        plays (the file's first video stream) is not the one the report describes."""
        streams = self._streams(video.path)
        first = next((s for s in streams if s.kind == "video"), None)
        analysed = next((s for s in streams if s.index == report.video.stream), None)
        note = None
        if first is not None and analysed is not None and first.index != analysed.index:
            note = (f"The player shows the first video stream, #{first.index} "
                    f"({first.width}x{first.height}); the captions and answers describe "
                    f"stream #{analysed.index} ({analysed.width}x{analysed.height}).")
        return {"codec": codec_name(report.video.codec) or "?",
                "container": container_name(report.video.format_name,
                                            path=os.fsencode(video.path)) or "?",
                "stream_note": note}  # fmt: skip

    def _streams(self, path: Path) -> tuple[Any, ...]:
        """The file's streams from its headers (no decoding), remembered per file version."""
        from videoqa.media import describe

        try:
            stat = path.stat()
            identity = (os.fsencode(path), stat.st_size, stat.st_mtime_ns)
            with self._streams_lock:
                if identity in self._stream_facts:
                    return self._stream_facts[identity]
            streams = describe(path).streams
        except (OSError, VideoQAError):
            return ()
        with self._streams_lock:
            self._stream_facts[identity] = streams
            while len(self._stream_facts) > 256:
                self._stream_facts.popitem(last=False)
        return streams

    # -- the JSON API ------------------------------------------------------------------------

    async def api_videos(self, request: Request) -> Response:
        """Every served video: key, path, duration, and where its page and record are."""
        videos = await run_in_threadpool(self.library.videos)
        return _json({"videos": [_video_json(video) for video in videos]})

    async def api_search(self, request: Request) -> Response:
        """``videoqa search --json``'s fields per hit, with the video's key and page."""
        params = request.query_params
        query = params.get("q", "").strip()
        kind = params.get("kind") or None
        if not query:
            return _json({"error": "q: a query is needed"}, 400)
        if kind is not None and kind not in KINDS:
            return _json({"error": f"kind: choose {', '.join(KINDS)}"}, 400)
        limit = _bounded_int(params.get("limit"), SEARCH_LIMIT, 1, MAX_LIMIT)
        try:
            hits, hidden = await run_in_threadpool(
                self.library.search, query, kind=kind,
                question=params.get("question", "").strip() or None, limit=limit)
        except VideoQAError as error:
            return _json({"error": error.reason}, 400)
        return _json({"query": query, "hidden": hidden, "hits": [
            {**hit.to_dict(), "key": video.key,
             "url": f"/video/{video.key}?t={hit.start:g}"} for hit, video in hits]})

    async def api_video(self, request: Request) -> Response:
        """One video's record: the report as its JSON sidecar holds it."""
        video = await self._video(request)
        report = await run_in_threadpool(_report_of, video)
        return _json({**_video_json(video), "report": report.to_dict()})

    async def api_clip(self, request: Request) -> Response:
        """GET a clip; PUT or PATCH ``{"caption": ..., "answers": {question: text}}`` corrects
        it as the edit page does (the same checks, files and index update)."""
        video = await self._video(request)
        report = await run_in_threadpool(_report_of, video)
        index = int(request.path_params["index"])
        clip = _clip_json(report, index)
        if clip is None:
            return _json({"error": f"{video.name} has no clip {index}"}, 404)
        if request.method == "GET":
            return _json({"key": video.key, "clip": clip})
        if not request.state.csrf_ok:
            return _json({"error": "refused: send Origin, X-CSRF-Token or Authorization: "
                                   "Bearer TOKEN"}, 403)  # fmt: skip
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _json({"error": "send the edit as Content-Type: application/json"}, 415)
        body = await _limited_body(request)
        if body is None:
            return _json({"error": f"an edit is at most {MAX_EDIT_BYTES} bytes"}, 413)
        try:
            data = json.loads(body)
        except ValueError as error:
            return _json({"error": f"not JSON: {error}"}, 400)
        caption, answers, problem = _edit_fields(data)
        if problem is not None:
            return _json({"error": problem}, 400)
        if _too_long(caption, answers):
            return _json({"error": f"a text is at most {MAX_TEXT_CHARS} characters"}, 413)
        try:
            result = await run_in_threadpool(self._save, video, index, caption, answers)
        except EditError as error:
            return _json({"error": error.reason}, 400)
        except OutputError as error:
            return _json({"error": str(error)}, 500)
        return _json({"key": video.key, "clip": _clip_json(result.report, index),
                      "written": [readable(path.name) for path in result.written]})

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


async def _limited_body(request: Request, limit: int = MAX_EDIT_BYTES) -> bytes | None:
    """The request's body, or None when it is over ``limit`` bytes: refused from its
    ``Content-Length`` before reading, or as soon as the stream passes the limit (never
    more than ``limit`` plus one chunk in memory)."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            if int(length) > limit:
                return None
        except ValueError:
            return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _too_large() -> Response:
    return PlainTextResponse(f"refused: an edit is at most {MAX_EDIT_BYTES} bytes, and each "
                             f"text at most {MAX_TEXT_CHARS} characters", 413)


def _too_long(caption: str | None, answers: dict[str, str]) -> bool:
    return any(len(text) > MAX_TEXT_CHARS for text in (caption or "", *answers.values()))


def _edit_fields(data: Any) -> tuple[str | None, dict[str, str], str | None]:
    """(caption, answers, problem) of an API edit's JSON."""
    if not isinstance(data, dict) or not set(data) <= {"caption", "answers"} or not data:
        return None, {}, 'send {"caption": TEXT} and/or {"answers": {QUESTION: TEXT}}'
    caption = data.get("caption")
    answers = data.get("answers", {})
    if caption is not None and not isinstance(caption, str):
        return None, {}, "caption: a string"
    if not isinstance(answers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in answers.items()
    ):
        return None, {}, "answers: an object of question: answer strings"
    return caption, answers, None


def _json(data: Any, status: int = 200) -> Response:
    """JSON as the CLI writes it (a file name that is not UTF-8 with ``\\udcNN`` escapes)."""
    return Response(dumps_json(data), status, media_type="application/json",
                    headers={"cache-control": "no-store"})  # fmt: skip


def _video_json(video: ServedVideo) -> dict[str, Any]:
    return {"key": video.key, "path": video.indexed_path, "name": video.name,
            "duration": video.duration, "url": f"/video/{video.key}",
            "record": f"/api/videos/{video.key}"}  # fmt: skip


def _clip_json(report: Report, index: int) -> dict[str, Any] | None:
    clips = report.to_dict()["clips"]
    return next((clip for clip in clips if clip["index"] == index), None)


def _timeline(report: Report, duration: float) -> list[TimelineRow]:
    """The caption row (when there are captions) and one row per question; one colour per
    distinct text across the rows (``library.Colours``)."""
    texts: list[str] = []
    for clip in report.clips:
        texts.extend(qa.answer for qa in clip.answers)
    for clip in report.clips:
        texts.extend([clip.caption.text] if clip.caption else [])
    colours = Colours(texts)
    rows = []
    if report.has_captions:
        rows.append(_row("captions", report.clips, duration, _caption_text, colours))
    for question in report.questions:
        rows.append(_row(question, report.clips, duration,
                         lambda clip, q=question: _answer_text(clip, q), colours))  # fmt: skip
    return rows


def _caption_text(clip: ClipResult) -> tuple[str, float, bool] | None:
    if clip.caption is None:
        return None
    return clip.caption.text, clip.caption.confidence, clip.caption.edited


def _answer_text(clip: ClipResult, question: str) -> tuple[str, float, bool] | None:
    answer = clip.answer_for(question)
    return (answer.answer, answer.confidence, answer.edited) if answer else None


def _row(label: str, clips: Sequence[ClipResult], duration: float, text_of: Any,
         colours: Colours) -> TimelineRow:  # fmt: skip
    segments: list[Segment] = []
    legend: dict[str, str] = {}
    scale = 100.0 / duration if duration > 0 else 0.0
    for clip in clips:
        found = text_of(clip)
        if found is None:
            continue
        text, confidence, edited = found
        colour = legend.setdefault(text, colours(text))
        span = f"{format_timestamp(clip.start)} – {format_timestamp(clip.end)}"
        mark = ", edited" if edited else ""
        segments.append(Segment(
            start=clip.start, end=clip.end, left=clip.start * scale,
            width=max(0.0, (clip.end - clip.start) * scale), colour=colour, text=text,
            tooltip=f"{span}\n{text}\nconfidence {confidence:.2f}{mark}",
        ))  # fmt: skip
    return TimelineRow(label, segments, list(legend.items()))

