"""videoqa: ask questions of video and caption it with Microsoft's GIT.

The names a user needs are here: ``from videoqa import VideoQA, FrameSampler, probe, Report,
write_sidecars``. They load on first use (PEP 562), so ``import videoqa`` stays light: the
command line, the daemon and the media tools never import torch unless a model runs.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from videoqa.version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them
    from videoqa.collection import find_videos, run_collection
    from videoqa.errors import (
        ConfigError,
        MediaError,
        ModelError,
        NoDecodableFrameError,
        NoVideoStreamError,
        OutputError,
        TooLargeError,
        UnsupportedCodecError,
        VideoQAError,
    )
    from videoqa.media import (
        Frame,
        FrameSampler,
        MediaInfo,
        StreamInfo,
        VideoInfo,
        describe,
        probe,
    )
    from videoqa.pipeline import VideoJob, VideoQA
    from videoqa.report import (
        Caption,
        ClipResult,
        FrameAnswer,
        QuestionAnswer,
        Report,
        ReportFormatError,
    )
    from videoqa.sidecars import write_sidecars

__all__ = [
    "__version__",
    # the work
    "VideoQA",
    "VideoJob",
    "run_collection",
    "find_videos",
    "FrameSampler",
    "Frame",
    "probe",
    "describe",
    "VideoInfo",
    "MediaInfo",
    "StreamInfo",
    "write_sidecars",
    # the results
    "Report",
    "ClipResult",
    "Caption",
    "QuestionAnswer",
    "FrameAnswer",
    # the errors
    "VideoQAError",
    "MediaError",
    "UnsupportedCodecError",
    "TooLargeError",
    "NoDecodableFrameError",
    "NoVideoStreamError",
    "ModelError",
    "OutputError",
    "ConfigError",
    "ReportFormatError",
]

_MODULES = {
    "videoqa.pipeline": ("VideoQA", "VideoJob"),
    "videoqa.collection": ("run_collection", "find_videos"),
    "videoqa.media": (
        "FrameSampler", "Frame", "probe", "describe", "VideoInfo", "MediaInfo", "StreamInfo"
    ),
    "videoqa.sidecars": ("write_sidecars",),
    "videoqa.report": (
        "Report", "ClipResult", "Caption", "QuestionAnswer", "FrameAnswer", "ReportFormatError"
    ),
    "videoqa.errors": (
        "VideoQAError", "MediaError", "UnsupportedCodecError", "TooLargeError",
        "NoDecodableFrameError", "NoVideoStreamError", "ModelError", "OutputError",
        "ConfigError",
    ),
}
_MODULE_OF = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'videoqa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


logging.getLogger("videoqa").addHandler(logging.NullHandler())
