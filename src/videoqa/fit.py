"""How a frame goes into a model's square input: the values of ``fit``, checked without torch.

GIT takes a square. ``crop`` is the checkpoint's own processor (Microsoft's resize the short
side and cut out the middle square, so a 16:9 frame loses 44 % of its width); ``pad``
letterboxes the whole frame into the square (``videoqa.preprocess.FramePreprocessing`` does both).
The command line and the daemon's config check a ``fit`` here, before any model loads.
"""

from __future__ import annotations

from videoqa.errors import ConfigError

FITS = ("crop", "pad")


def check_fit(fit: str | None) -> str | None:
    """``fit`` when it is one of :data:`FITS` (or ``None``); else ``ConfigError`` naming it."""
    if fit is not None and fit not in FITS:
        raise ConfigError(None, f"{fit!r} is not one of crop, pad", setting="fit")
    return fit
