"""``videoqa serve``: the review page over the archive index (the optional ``web`` extra).

Thin: checks the extra is there, the index and the folders exist and the port is free (each a
one-line error), then runs the app from ``videoqa.web.app`` on uvicorn until Ctrl-C.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from videoqa.errors import ConfigError, VideoQAError
from videoqa.pathnames import readable

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


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
def serve_command(db: Path | None, host: str, port: int, roots: Sequence[Path],
                  cache_dir: Path | None) -> None:
    """Search the index, watch the moments found with captions, and correct them, in a browser.

    Serves only videos that are in the index and under the --root folders.
    """
    from videoqa.web import INSTALL_HINT, missing_package

    missing = missing_package()
    if missing is not None:
        raise VideoQAError(None, f"{INSTALL_HINT} ({missing} is missing)")
    import uvicorn

    from videoqa.index import ArchiveIndex, default_db_path
    from videoqa.web.app import create_app
    from videoqa.web.library import roots_or_cwd

    db = db if db is not None else default_db_path()
    if not db.is_file():
        raise ConfigError(db, "no index here (make one with: videoqa index FOLDER --db FILE)")
    ArchiveIndex.checked(db).close()  # a damaged, newer-layout or foreign file: refused here,
    # not answered with 500s once a browser asks
    folders = roots_or_cwd(roots)
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(folder, "--root must be a folder", setting="roots")
    listener = _listen(host, port)
    loopback = host in LOOPBACK_NAMES
    allowed = ["127.0.0.1", "localhost", "::1", host] if loopback else None
    app = create_app(db, folders, cache_dir=cache_dir, allowed_hosts=allowed)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    served = ", ".join(readable(folder.resolve()) for folder in folders)
    click.echo(f"videoqa: serving {readable(db)} at http://{shown}:{bound}/ "
               f"(videos under {served}); Ctrl-C stops", err=True)  # fmt: skip
    if not loopback:
        click.echo("videoqa: warning: listening beyond this machine: anyone who reaches "
                   f"{host}:{bound} can watch and edit", err=True)  # fmt: skip
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        listener.close()


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


def start_serving(db: Path, root: Path, cache_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """``videoqa serve --port 0`` in a new process, and the address its first line says it
    serves at (read here, beside the line's making): for the tests and tools that drive a
    real server. ``RuntimeError`` with the process's output when it does not start."""
    server = subprocess.Popen(
        [sys.executable, "-m", "videoqa", "serve", "--db", str(db), "--root", str(root),
         "--port", "0", "--cache-dir", str(cache_dir)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stderr is not None
    line = server.stderr.readline()
    found = re.search(r" at (http://127\.0\.0\.1:\d+/) ", line)
    if found is None:
        server.kill()
        raise RuntimeError(f"videoqa serve did not start: {line}{server.stderr.read()}")
    return server, found.group(1)

