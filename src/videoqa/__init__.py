"""videoqa: ask questions of video and caption it with Microsoft's GIT."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger("videoqa").addHandler(logging.NullHandler())
