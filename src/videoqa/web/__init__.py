"""``videoqa serve``: a review page over the archive index, in the browser.

Search the index, watch a video at the moment found with its captions on screen, see the
answers along a timeline and correct a caption or an answer in place. Starlette on uvicorn,
server-rendered Jinja2 pages and a little plain JavaScript, every file served from this
package (no build step, no CDN). The optional extra ``videoqa[web]`` brings the three
packages; :data:`INSTALL_HINT` says so where they are missing.

Modules: ``library`` (which videos are served, looked up by a key, never by a path from a
request), ``thumbnails`` (frames from the sampler, cached as JPEG), ``edits`` (a correction
written through the sidecar writers and indexed again), ``app`` (the routes and pages).
"""

from __future__ import annotations

INSTALL_HINT = "the web extra is not installed: pip install 'videoqa[web]'"
"""What to do when starlette, uvicorn or jinja2 cannot be imported."""

WEB_PACKAGES = ("starlette", "uvicorn", "jinja2")
"""The packages ``videoqa[web]`` installs (import names)."""


def missing_package() -> str | None:
    """The first of :data:`WEB_PACKAGES` that cannot be imported, or None."""
    import importlib

    for name in WEB_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None
