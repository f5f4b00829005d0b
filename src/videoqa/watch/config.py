"""What the daemon does per folder, read from a TOML file and validated up front.

A typo in the config should stop the daemon at start with one clear line, not surface hours
later as a strange failure, so unknown keys and wrong types raise ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videoqa.clips import DEFAULT_MAX_CLIP, DEFAULT_MIN_CLIP, check_clip_options
from videoqa.errors import ConfigError
from videoqa.fit import FITS
from videoqa.sidecars import DEFAULT_FORMATS, FORMATS, check_subtitle_language
from videoqa.videofiles import DEFAULT_EXTENSIONS

DEFAULT_PROCESSOR = "videoqa.watch.worker:process_file"
"""The processing seam: ``module:function`` called as ``function(path, settings) -> Report``."""

DEINTERLACE_MODES = ("auto", "on", "off")
"""``deinterlace`` values (``videoqa.deinterlace``'s, repeated: reading a config needs no av)."""


def default_jobstore_path() -> Path:
    """``$XDG_STATE_HOME/videoqa/jobs.sqlite``: state, not configuration, and not in the folder."""
    state_home = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state_home) / "videoqa" / "jobs.sqlite"


@dataclass(frozen=True)
class FolderSettings:
    """What to do with the videos of one watched folder (sent to the worker, so picklable)."""

    folder: Path
    questions: tuple[str, ...] = ()
    captions: bool = True
    model: str = "microsoft/git-base-vqav2"
    caption_model: str | None = None
    device: str = "auto"
    threads: int | None = None
    batch_size: int | None = None
    """Clips the model takes at once through the collection runner (decoding in a thread
    beside inference); ``None``: the one-file pipeline, one clip at a time."""
    clip_length: float = 5.0
    stride: float | None = None
    clips: str = "fixed"
    min_clip: float = DEFAULT_MIN_CLIP
    max_clip: float = DEFAULT_MAX_CLIP
    detector: str = "content"
    frames_per_clip: int | None = None
    deinterlace: str = "auto"
    fit: str | None = None
    max_new_tokens: int | None = None
    caption_max_new_tokens: int | None = None
    max_pixels: int | None = None
    max_duration: float | None = None
    output_dir: Path | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    subtitle_language: str | None = None
    """Names the subtitles ``<stem>.<language>.srt`` (what media servers read as the language)."""
    adapters: tuple[str, ...] = ("sidecars",)
    adapter_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    recursive: bool = True
    processor: str = DEFAULT_PROCESSOR

    def output_dir_for(self, video: Path) -> Path | None:
        """Where this video's sidecars go: beside it, or the same sub-path under ``output_dir``."""
        if self.output_dir is None:
            return None
        relative = Path(video).parent.relative_to(self.folder)
        return self.output_dir / relative


@dataclass(frozen=True)
class WatchConfig:
    """The daemon's own settings and the folders it watches."""

    folders: tuple[FolderSettings, ...]
    jobstore: Path = field(default_factory=default_jobstore_path)
    settle: float = 5.0
    poll: bool = False
    poll_interval: float = 2.0
    rescan_interval: float = 300.0
    max_attempts: int = 3
    retry_delay: float = 30.0
    time_limit: float = 600.0
    backlog: int = 8
    """Queued files of one folder handed to the worker at once, their clips batched across
    files by the collection runner; 1: one file at a time."""
    defaults: FolderSettings | None = None

    def settings_for(self, path: str | os.PathLike[str]) -> FolderSettings:
        """The settings of the watched folder holding ``path`` (innermost wins)."""
        absolute = Path(os.path.abspath(path))
        matches = [s for s in self.folders if absolute.is_relative_to(s.folder)]
        if not matches:
            raise ConfigError(path, "is not inside a watched folder")
        return max(matches, key=lambda s: len(s.folder.parts))


_DAEMON_KEYS = {
    "jobstore": str, "settle": float, "poll": bool, "poll_interval": float,
    "rescan_interval": float, "max_attempts": int, "retry_delay": float, "time_limit": float,
    "backlog": int,
}  # fmt: skip
_FOLDER_KEYS = {
    "questions": list, "captions": bool, "model": str, "caption_model": str, "device": str,
    "threads": int, "batch_size": int, "clip_length": float, "stride": float,
    "frames_per_clip": int, "fit": str,
    "max_new_tokens": int, "caption_max_new_tokens": int, "max_pixels": int,
    "max_duration": float, "output_dir": str, "formats": list, "adapters": list, "extensions": list,
    "recursive": bool, "processor": str, "deinterlace": str, "clips": str, "min_clip": float,
    "max_clip": float, "detector": str, "subtitle_language": str,
}  # fmt: skip


def _checked(where: str, key: str, value: Any, kind: type[Any]) -> Any:
    """``value`` converted to ``kind``, or a ConfigError naming the key."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(where, f"'{key}' must be {kind.__name__}, got {value!r}")
    if kind is list and not all(isinstance(item, str) for item in value):
        raise ConfigError(where, f"'{key}' must be a list of strings, got {value!r}")
    if kind in (int, float) and value <= 0 and key not in ("retry_delay", "min_clip"):
        raise ConfigError(where, f"'{key}' must be positive, got {value!r}")
    if kind in (int, float) and value < 0:
        raise ConfigError(where, f"'{key}' must not be negative, got {value!r}")
    return value


def _resolve(base: Path, value: str) -> Path:
    """A path from the config: ``~`` expanded, relative to the config file's folder, normalised."""
    return Path(os.path.abspath(base / Path(value).expanduser()))


def _folder_fields(where: str, table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Validated ``FolderSettings`` keyword arguments from one TOML table."""
    fields: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _FOLDER_KEYS:
            raise ConfigError(where, f"unknown setting '{key}'")
        value = _checked(where, key, value, _FOLDER_KEYS[key])
        if key == "output_dir":
            value = _resolve(base, value)
        elif key == "formats":
            unknown = sorted(set(value) - set(FORMATS) - {"all"})
            if unknown:
                raise ConfigError(where, f"unknown sidecar format(s) {unknown}")
            value = FORMATS if "all" in value else tuple(value)
        elif key == "subtitle_language":
            try:
                check_subtitle_language(value)
            except ConfigError as error:
                raise ConfigError(where, f"'subtitle_language': {error.reason}") from None
        elif key == "fit" and value not in FITS:
            raise ConfigError(where, f"'fit' must be 'crop' or 'pad', got {value!r}")
        elif key == "deinterlace" and value not in DEINTERLACE_MODES:
            raise ConfigError(where, f"'deinterlace' must be auto, on or off, got {value!r}")
        elif key == "extensions":
            value = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in value)
        elif isinstance(value, list):
            value = tuple(value)
        fields[key] = value
    return fields


def _settings(folder: Path, fields: Mapping[str, Any], adapter_options: dict) -> FolderSettings:
    where = str(folder)
    settings = FolderSettings(folder=folder, adapter_options=adapter_options, **fields)
    if not settings.questions and not settings.captions:
        raise ConfigError(where, "nothing to do: no questions and captions = false")
    try:
        check_clip_options(settings.clips, detector=settings.detector,
                           min_clip=settings.min_clip, max_clip=settings.max_clip,
                           stride=settings.stride)  # fmt: skip
    except ConfigError as error:
        raise ConfigError(where, f"'{error.setting}': {error.reason}") from None
    if "processor" in fields and ":" not in settings.processor:
        raise ConfigError(where, "'processor' must be 'module:function'")
    return settings


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    folders: Sequence[str | os.PathLike[str]] = (),
    check_folders: bool = True,
    **overrides: Any,
) -> WatchConfig:
    """The daemon configuration from a TOML file (optional), folders and command-line overrides.

    ``folders`` given on the command line replace the file's list; a folder that the file also
    configures keeps its settings, the others get ``[defaults]``. ``overrides`` are daemon
    settings (``settle=0.5``, ``jobstore=...``); ``None`` values are ignored. A watched folder
    that does not exist is an error unless ``check_folders=False``: reading the job store
    (``videoqa jobs``) must work while a share is unmounted.
    """
    document: dict[str, Any] = {}
    base = Path.cwd()
    where = "config"
    if path is not None:
        where = os.fspath(path)
        base = Path(path).expanduser().absolute().parent
        try:
            with open(Path(path).expanduser(), "rb") as handle:
                document = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(path, "no such config file") from None
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(path, f"cannot read TOML: {error}") from None

    known = set(_DAEMON_KEYS) | {"defaults", "folders", "adapters"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(where, f"unknown setting(s) {unknown}")

    daemon: dict[str, Any] = {}
    for key, value in document.items():
        if key in _DAEMON_KEYS:
            daemon[key] = _checked(where, key, value, _DAEMON_KEYS[key])
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in _DAEMON_KEYS:
            raise TypeError(f"unknown override {key!r}")
        daemon[key] = _checked("command line", key, value, _DAEMON_KEYS[key])
    daemon["jobstore"] = (
        _resolve(base, os.fspath(daemon["jobstore"]))
        if "jobstore" in daemon
        else default_jobstore_path()
    )

    adapter_options = document.get("adapters", {})
    if not isinstance(adapter_options, dict) or not all(
        isinstance(v, dict) for v in adapter_options.values()
    ):
        raise ConfigError(where, "[adapters.<name>] tables hold each adapter's options")
    adapter_options = {name: dict(options) for name, options in adapter_options.items()}
    adapter_options.setdefault("jsonl", {}).setdefault(
        "path", str(daemon["jobstore"].parent / "events.jsonl")
    )

    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(where, "[defaults] must be a table")
    default_fields = _folder_fields(f"{where} [defaults]", defaults, base)

    configured: dict[Path, dict[str, Any]] = {}
    folder_tables = document.get("folders", [])
    if not isinstance(folder_tables, list):
        raise ConfigError(where, "folders must be an array of tables: [[folders]]")
    for table in folder_tables:
        if not isinstance(table, dict) or not isinstance(table.get("path"), str):
            raise ConfigError(where, "each [[folders]] table needs a 'path'")
        folder = _resolve(base, table["path"])
        rest = {k: v for k, v in table.items() if k != "path"}
        configured[folder] = {**default_fields, **_folder_fields(f"{where} {folder}", rest, base)}

    if folders:
        chosen = [Path(os.path.abspath(Path(f).expanduser())) for f in folders]
    else:
        chosen = list(configured)
    settings = []
    for folder in chosen:
        if check_folders and not folder.is_dir():
            raise ConfigError(folder, "watched folder does not exist")
        fields = configured.get(folder, default_fields)
        settings.append(_settings(folder, fields, adapter_options))

    default_settings = _settings(Path(base), default_fields, adapter_options)
    return WatchConfig(folders=tuple(settings), defaults=default_settings, **daemon)


def with_folder(config: WatchConfig, folder: Path) -> WatchConfig:
    """``config`` extended by ``folder`` with the default settings (for ``videoqa process``)."""
    defaults = config.defaults or FolderSettings(folder=folder)
    added = dataclasses.replace(defaults, folder=Path(os.path.abspath(folder)))
    return dataclasses.replace(config, folders=(*config.folders, added))
