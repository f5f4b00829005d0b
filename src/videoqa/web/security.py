"""Who may use the review page, and what a request may carry.

One ASGI layer in front of every route, so no route can forget a check:

- **Host**: the ``Host`` header must be one of the allowed names, on every bind address: a
  web page cannot reach the server through a DNS name of its own (DNS rebinding).
- **Token**: when the server has one (always off loopback), every request needs it: as
  ``?token=`` once (the answer sets a cookie and drops it from the address), the cookie, or
  ``Authorization: Bearer``. Without it: 401.
- **Writes** (POST, PUT, PATCH, DELETE): a browser always sends ``Origin`` with them; it must
  be this server's own. A request without ``Origin`` (not a browser's, or one that strips it)
  must carry the per-session CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) or
  the server's token as ``Authorization: Bearer`` (a header no other site's page can add).
- **Headers** on every answer: no framing, a Content-Security-Policy that allows this origin
  only, ``nosniff``, and no ``Referer`` to other sites (``same-origin``: with ``no-referrer``
  Chromium sends ``Origin: null`` on the page's own form posts).

Why the session and CSRF tokens are HMACs of a random key made at start: nothing to store,
and a restart invalidates them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "videoqa_token"
SESSION_COOKIE = "videoqa_session"
"""Cookie names, followed by ``_PORT``: a browser keeps cookies per host, not per port, and two
servers on one machine must not overwrite each other's session."""
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src-elem 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self'; media-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Only this origin's files. ``style-src-attr`` lets the server-rendered timeline place its
blocks with ``style="left: …"`` (no ``<style>`` element, no inline script)."""

SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """Any 127.0.0.0/8 or ::1 address, or ``localhost``: answers this machine only."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without the port, lower case (``[::1]:80`` → ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    """The checks above around ``app``. ``allowed_hosts`` None: any ``Host`` (for tests of one
    app in-process); ``token`` None: no authentication (loopback)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] | None,
                 token: str | None) -> None:  # fmt: skip
        self.app = app
        self.allowed = (None if allowed_hosts is None
                        else frozenset(host_name(h) for h in allowed_hosts))  # fmt: skip
        self.token = token
        self._key = secrets.token_bytes(32)

    # -- tokens ------------------------------------------------------------------------------

    def csrf_for(self, session: str) -> str:
        """The CSRF token of a session (what the forms carry)."""
        return hmac.new(self._key, b"csrf\0" + session.encode(), hashlib.sha256).hexdigest()[:32]

    def _token_ok(self, given: str | None) -> bool:
        return (self.token is not None and given is not None
                and hmac.compare_digest(given.encode(), self.token.encode()))  # fmt: skip

    # -- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                extra = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name.decode() not in extra:
                        extra.raw.append((name, value))
            await send(message)

        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        cookies = _cookies(headers)
        session_cookie = _named(SESSION_COOKIE, scope)
        session = cookies.get(session_cookie) or ""
        new_session = not _valid_session(session)
        if new_session:
            session = secrets.token_hex(16)
        scope.setdefault("state", {})
        scope["state"]["csrf"] = self.csrf_for(session)
        scope["state"]["csrf_ok"] = self._csrf_given(scope, headers, session, new_session)

        async def send_cookies(message: Message) -> None:
            if message["type"] == "http.response.start" and new_session:
                MutableHeaders(scope=message).append(
                    "set-cookie", _cookie(session_cookie, session))
            await send_with_headers(message)

        await self.app(scope, receive, send_cookies)

    def _refusal(self, scope: Scope, headers: Headers) -> ASGIApp | None:
        """The answer that refuses this request, or None when it may go on."""
        host = host_name(headers.get("host", ""))
        if self.allowed is not None and host not in self.allowed:
            return _refuse(scope, f"refused: {host or 'no'} Host is not this server's (start it "
                                  "with --allowed-host NAME to add one)", 400)
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            cookie = _cookies(headers).get(_named(TOKEN_COOKIE, scope))
            bearer = _bearer(headers)
            if self._token_ok(query.get("token")) and scope["method"] in ("GET", "HEAD"):
                # the link printed at start: keep it as a cookie and drop it from the address
                rest = urlencode([(k, v) for k, v in parse_qsl(
                    scope.get("query_string", b"").decode("latin-1")) if k != "token"])
                path = "/" + str(scope.get("path", "/")).lstrip("/")  # never //other.host
                target = path + (f"?{rest}" if rest else "")
                response = RedirectResponse(target, 303)
                # Lax: the link opened from another site's page (a chat, a mail) is a
                # cross-site navigation, and this redirect's target would not get a Strict
                # cookie; another site's writes are refused by Origin and CSRF all the same
                set_token = _cookie(_named(TOKEN_COOKIE, scope), self.token, same_site="Lax")
                response.headers.append("set-cookie", set_token)
                return response
            if not (self._token_ok(cookie) or self._token_ok(bearer)):
                return _refuse(
                    scope, "authentication needed: open the address with ?token= that videoqa "
                    "serve printed when it started, or send Authorization: Bearer TOKEN", 401,
                    headers={"www-authenticate": 'Bearer realm="videoqa"'})
        if scope["method"] in WRITE_METHODS:
            origin = headers.get("origin")
            if origin is not None and not _same_origin(origin, headers.get("host", "")):
                return _refuse(scope, "refused: the request came from another site's page "
                                      f"({origin})", 403)
        return None

    def _csrf_given(self, scope: Scope, headers: Headers, session: str, new: bool) -> bool:
        """Whether a write may go on without its form's ``csrf`` field: a same-origin
        ``Origin``, the ``X-CSRF-Token`` header, or the server's token as a bearer."""
        if headers.get("origin") is not None:
            return True  # checked in _refusal: same origin
        if self._token_ok(_bearer(headers)):
            return True
        given = headers.get(CSRF_HEADER)
        return (not new and given is not None
                and hmac.compare_digest(given.encode(), self.csrf_for(session).encode()))


def _refuse(scope: Scope, reason: str, status: int,
            headers: dict[str, str] | None = None) -> Response:  # fmt: skip
    """One line: as ``{"error": ...}`` under ``/api/``, plain text elsewhere."""
    if str(scope.get("path", "")).startswith("/api/"):
        return JSONResponse({"error": reason}, status, headers=headers)
    return PlainTextResponse(reason, status, headers=headers)


def csrf_field_ok(scope_state: Any, form_value: str | None) -> bool:
    """A write may go on: the Guard let it through on its headers, or the form's ``csrf`` field
    is this session's token."""
    if getattr(scope_state, "csrf_ok", False):
        return True
    expected = getattr(scope_state, "csrf", None)
    return (form_value is not None and expected is not None
            and hmac.compare_digest(form_value.encode(), str(expected).encode()))


def refused_csrf() -> Response:
    return PlainTextResponse("refused: no Origin and no CSRF token: reload the page and save "
                             "again", 403)


def _same_origin(origin: str, host_header: str) -> bool:
    """``Origin``'s host and port are the ``Host`` asked for (the scheme is left aside: behind
    a TLS proxy the page is https while this server is spoken to in http)."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    default = 443 if parts.scheme == "https" else 80
    try:
        port = parts.port or default
    except ValueError:
        return False
    host = host_name(host_header)
    text = host_header.strip().lower()
    tail = text.rsplit("]", 1)[-1] if text.startswith("[") else text
    host_port = int(tail.rsplit(":", 1)[1]) if ":" in tail and tail.rsplit(":", 1)[1].isdigit() \
        else default
    return parts.hostname.lower() == host and port == host_port


def _named(cookie: str, scope: Scope) -> str:
    server = scope.get("server")
    return f"{cookie}_{server[1]}" if server and server[1] else cookie


def _cookies(headers: Headers) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header: as if none
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials else None


def _valid_session(session: str) -> bool:
    return len(session) == 32 and all(c in "0123456789abcdef" for c in session)


def _cookie(name: str, value: str, *, same_site: str = "Strict") -> str:
    """A cookie for this server's pages, out of reach of scripts."""
    return f"{name}={value}; Path=/; SameSite={same_site}; HttpOnly"
