"""``videoqa serve``: the review page over the archive index (the optional ``web`` extra).

Thin: checks the extra is there, the index and the folders exist and the port is free (each a
one-line error), decides who may connect (the ``Host`` names always; a token off loopback),
then runs the app from ``videoqa.web.app`` on uvicorn until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from videoqa.errors import ConfigError, VideoQAError
from videoqa.pathnames import readable

TOKEN_ENV = "VIDEOQA_SERVE_TOKEN"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~-]{16,}")
"""A token travels in URLs, cookies and headers as it is: 16 or more of these characters."""


@click.command("serve")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The index file [default: $VIDEOQA_INDEX, else "
                   "~/.local/share/videoqa/index.sqlite].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default answers this machine only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port, printed when it starts).")
@click.option("--root", "roots", multiple=True, type=click.Path(path_type=Path),
              help="Serve indexed videos under this folder only (repeat for more) "
                   "[default: the current folder].")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where thumbnails are kept [default: ~/.cache/videoqa/thumbnails].")
@click.option("--cache-size", type=click.IntRange(min=1), default=256, show_default=True,
              metavar="MIB", help="Keep the thumbnail folder under this many MiB.")
@click.option("--token", default=None, envvar=TOKEN_ENV, show_envvar=True,
              help="Every request needs this token (16+ letters, digits, . _ ~ -) [default: "
                   "off loopback, a new one, printed at start; on loopback, none].")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another name requests may give as Host, e.g. the proxy's public name "
                   "(repeat for more; the bind address and loopback names always are).")
def serve_command(db: Path | None, host: str, port: int, roots: Sequence[Path],
                  cache_dir: Path | None, cache_size: int, token: str | None,
                  allowed_hosts: Sequence[str]) -> None:  # fmt: skip
    """Search the index, watch the moments found with captions, and correct them, in a browser.

    Serves only videos that are in the index and under the --root folders. Off loopback
    every request needs a token (printed at start); see docs/serve.md for a TLS proxy.
    """
    from videoqa.web import INSTALL_HINT, missing_package

    missing = missing_package()
    if missing is not None:
        raise VideoQAError(None, f"{INSTALL_HINT} ({missing} is missing)")
    import uvicorn

    from videoqa.index import default_db_path
    from videoqa.web.app import create_app
    from videoqa.web.library import roots_or_cwd

    db = db if db is not None else default_db_path()
    if not db.is_file():
        raise ConfigError(db, "no index here (make one with: videoqa index FOLDER --db FILE)")
    folders = roots_or_cwd(roots)
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(folder, "--root must be a folder", setting="roots")
    from videoqa.web.security import is_loopback

    if token is not None and not TOKEN_PATTERN.fullmatch(token):
        raise ConfigError(None, "16 or more letters, digits, '.', '_', '~' or '-'",
                          setting="token")  # fmt: skip
    loopback = is_loopback(host)
    given = token is not None
    if token is None and not loopback:
        token = secrets.token_urlsafe(24)
    listener = _listen(host, port)
    allowed = [*default_hosts(host), *allowed_hosts]
    app = create_app(db, folders, cache_dir=cache_dir, allowed_hosts=allowed, token=token,
                     cache_bytes=cache_size * 1024 * 1024)  # fmt: skip
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    served = ", ".join(readable(folder.resolve()) for folder in folders)
    click.echo(f"videoqa: serving {readable(db)} at http://{shown}:{bound}/ "
               f"(videos under {served}); Ctrl-C stops", err=True)  # fmt: skip
    if token is not None:
        wildcard = host.strip("[]") in ("0.0.0.0", "::")
        name = socket.gethostname() if wildcard else shown  # 0.0.0.0 is no address to open
        where = (f"http://{name}:{bound}/?token={token}" if not given
                 else f"the address with ?token= and the token from --token or ${TOKEN_ENV}")
        click.echo(f"videoqa: every request needs the token: open {where} once (it is "
                   "kept as a cookie), or send Authorization: Bearer TOKEN", err=True)
    if not loopback:
        click.echo(f"videoqa: warning: listening beyond this machine on {host}:{bound} over "
                   "plain HTTP: the token and the pages cross the network unencrypted (put "
                   "a TLS proxy in front, docs/serve.md); Host names accepted: "
                   f"{', '.join(allowed)}", err=True)  # fmt: skip
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


def default_hosts(host: str) -> list[str]:
    """The ``Host`` names accepted without ``--allowed-host``: the bind address and the
    loopback names; on a wildcard address (``0.0.0.0``, ``::``) also this machine's own
    name and addresses, which is how others on the network reach it."""
    names = [host.strip("[]"), "127.0.0.1", "localhost", "::1"]
    if host.strip("[]") in ("0.0.0.0", "::", ""):
        hostname = socket.gethostname()
        names += [hostname, socket.getfqdn()]
        with contextlib.suppress(OSError):
            names += [str(entry[4][0]) for entry in socket.getaddrinfo(hostname, None)]
    return list(dict.fromkeys(name for name in names if name))


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, or one line saying why not (a port in use, an unknown address)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise ConfigError(None, f"cannot listen on {host}: {error}", setting="host") from None
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host.strip("[]"), port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise ConfigError(
            None, f"cannot listen on {host}:{port}: {error.strerror or error}", setting="port"
        ) from None
    listener.set_inheritable(True)
    return listener


COMMANDS: list[click.Command] = [serve_command]


def start_serving(
    db: Path, root: Path, cache_dir: Path, *, host: str = "127.0.0.1",
    options: Sequence[str] = (), env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[str], str]:  # fmt: skip
    """``videoqa serve --port 0`` in a new process, and the address to reach it at, always
    on 127.0.0.1 (the port its first line says, read here, beside the line's making): for
    the tests and tools that drive a real server. ``RuntimeError`` with the process's output
    when it does not start. The process's other lines stay in its ``stderr`` pipe."""
    server = subprocess.Popen(
        [sys.executable, "-m", "videoqa", "serve", "--db", str(db), "--root", str(root),
         "--port", "0", "--cache-dir", str(cache_dir), "--host", host, *options],
        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert server.stderr is not None
    line = server.stderr.readline()
    found = re.search(r" at http://[^ ]+:(\d+)/ ", line)
    if found is None:
        server.kill()
        raise RuntimeError(f"videoqa serve did not start: {line}{server.stderr.read()}")
    return server, f"http://127.0.0.1:{found.group(1)}/"

