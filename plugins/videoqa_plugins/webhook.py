"""POST each report (and each failure) as JSON to a URL, with a timeout and bounded retries.

Standard library only (``urllib.request``). Connection errors, timeouts, ``429`` and ``5xx``
are retried with exponential back-off; other ``4xx`` answers mean the request itself is wrong
and are not. After the last try the adapter raises, which the daemon logs and records.
Every body has an ``id`` (``videoqa.events``), also sent as the ``Idempotency-Key``
header: a POST of the same event (a retry, or the same event announced again after a kill)
repeats it, so the receiver drops a repeat.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from videoqa.adapters import Adapter
from videoqa.errors import ConfigError, OutputError
from videoqa.events import event_id
from videoqa.pathnames import dumps_json
from videoqa.version import __version__

logger = logging.getLogger("videoqa.plugins.webhook")

_OPTIONS = {"url", "timeout", "retries", "backoff", "headers"}


class WebhookAdapter(Adapter):
    """``{"id", "event": "done", "video", "report": {...}}``, ``{"id", "event": "failed",
    "video", "error"}`` or ``{"id", "event": "renamed", "video", "from"}``."""

    name = "webhook"
    description = "POST the report as JSON to a URL (options: url, timeout, retries, backoff)"
    announces = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        where = "[adapters.webhook]"
        unknown = sorted(set(self.options) - _OPTIONS)
        if unknown:
            raise ConfigError(where, f"unknown option(s) {unknown}")
        url = self.options.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(where, f"'url' must be an http(s) URL, got {url!r}")
        self.url = url
        self.timeout = float(self.options.get("timeout", 10.0))
        self.retries = int(self.options.get("retries", 3))
        self.backoff = float(self.options.get("backoff", 1.0))
        self.headers = {str(k): str(v) for k, v in dict(self.options.get("headers", {})).items()}
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise ConfigError(where, "timeout must be positive; retries and backoff not negative")

    def post(self, payload: dict[str, Any]) -> int:
        """POST ``payload``; returns the HTTP status, raises ``OutputError`` after the last try.

        An event (one with ``event`` and ``video``) gets its ``id`` first, and the same value
        as the ``Idempotency-Key`` header.
        """
        if "event" in payload and "video" in payload and "id" not in payload:
            payload = {"id": event_id(payload["event"], payload["video"]), **payload}
        body = dumps_json(payload).encode("utf-8")  # a non-UTF-8 file name as \udcNN
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"videoqa/{__version__}",
            **({"Idempotency-Key": payload["id"]} if "id" in payload else {}),
            **self.headers,
        }
        last_error = ""
        about = f"{payload['video']}: " if "video" in payload else ""  # the log names the file
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status
            except urllib.error.HTTPError as error:
                last_error = f"HTTP {error.code} {error.reason}"
                error.close()
                if error.code != 429 and error.code < 500:
                    break
            except (urllib.error.URLError, TimeoutError, OSError) as error:
                reason = getattr(error, "reason", error)
                last_error = f"{type(reason).__name__}: {reason}"
            logger.warning("%swebhook %s: try %d failed: %s", about, self.url, attempt + 1,
                           last_error)  # fmt: skip
        raise OutputError(self.url, f"webhook failed: {last_error}")

    def handle_report(self, report: Any, video_path: Path, settings: Any) -> None:
        self.post({"event": "done", "video": os.fspath(video_path), "report": report.to_dict()})

    def handle_failure(self, video_path: Path, error: str) -> None:
        self.post({"event": "failed", "video": os.fspath(video_path), "error": error})

    def handle_rename(self, old_path: Path, new_path: Path, settings: Any) -> None:
        self.post({"event": "renamed", "video": os.fspath(new_path), "from": os.fspath(old_path)})
