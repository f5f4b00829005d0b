"""Which GIT checkpoint, on which device, in which precision: resolving names to local folders.

A checkpoint is a hub id (``microsoft/git-base-vqav2``) or a local folder. Hub checkpoints come
through the Hugging Face cache; only configs, tokenizer files and ``*.safetensors`` weights are
fetched, so pickled ``.bin`` weights are never downloaded nor loaded, and no remote code runs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from videoqa.errors import ConfigError, ModelError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("videoqa.models")

DEFAULT_QA_MODEL = "microsoft/git-base-vqav2"
DEFAULT_CAPTION_MODEL = "microsoft/git-base-vatex"
DEMO_MODEL = "demo"

#: Checkpoints documented as supported (any GIT checkpoint in the same layout also works).
KNOWN_MODELS: dict[str, str] = {
    "microsoft/git-base-vqav2": "image question answering, 480 px",
    "microsoft/git-base-msrvtt-qa": "video question answering, 6 frames",
    "microsoft/git-base-vatex": "video captions, 6 frames",
    "microsoft/git-base-coco": "image captions",
    "microsoft/git-base-textcaps": "image captions that read text",
    "microsoft/git-large-vqav2": "image question answering, large",
    "microsoft/git-large-msrvtt-qa": "video question answering, large, 6 frames",
    "microsoft/git-large-vatex": "video captions, large, 6 frames",
    "microsoft/git-large-coco": "image captions, large",
    "microsoft/git-large-textcaps": "image captions that read text, large",
}

#: Files a checkpoint needs: never ``*.bin`` / ``*.pt`` (pickles) nor ``*.py`` (remote code).
CHECKPOINT_FILES = ["*.json", "*.safetensors", "*.txt"]

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("float32", "float16", "bfloat16")
"""torch dtypes by name (torch is imported only to load a model: planning and decoding
processes never need it)."""


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint resolved to a local folder: what the user called it, and which commit."""

    model_id: str
    revision: str | None
    folder: Path


def resolve_model(name: str) -> str:
    """Map ``"demo"`` to the checkpoint folder shipped inside the package; other names as given."""
    if name == DEMO_MODEL:
        return str(Path(__file__).parent / "demo_model")
    return name


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or os.sep in name.replace("/", "")
        or name.endswith("/")
    )


def locate_checkpoint(model: str, *, revision: str | None = None) -> Checkpoint:
    """Find ``model`` as a local folder or in (or through) the Hugging Face cache.

    Raises ``ModelError`` with a one-line hint when the checkpoint is missing, cannot be
    downloaded (offline, no network) or has no safetensors weights.
    """
    resolved = resolve_model(model)
    folder = Path(resolved).expanduser()
    if folder.is_dir():
        checkpoint = Checkpoint(model_id=model, revision=None, folder=folder)
    elif folder.exists():
        raise ModelError(resolved, "not a folder; a model is a checkpoint folder or a hub id")
    elif _looks_like_path(resolved) or model == DEMO_MODEL:
        raise ModelError(resolved, "no such checkpoint folder")
    else:
        snapshot = _download(resolved, revision=revision)
        # A cache snapshot folder is named by its commit: record exactly what was loaded.
        checkpoint = Checkpoint(model_id=model, revision=snapshot.name, folder=snapshot)
    if not (checkpoint.folder / "config.json").is_file():
        raise ModelError(str(checkpoint.folder), "not a checkpoint folder (no config.json)")
    if not any(checkpoint.folder.glob("*.safetensors")):
        raise ModelError(
            resolved,
            "no safetensors weights (pickled .bin weights are not loaded); "
            "convert them or pick a revision that has model.safetensors",
        )
    return checkpoint


def _download(repo_id: str, *, revision: str | None) -> Path:
    """The cached snapshot of ``repo_id``, downloading what is missing when the hub is reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    how_to_get = (
        f"download it where the hub is reachable (hf download {repo_id}"
        f"{f' --revision {revision}' if revision else ''}) or give the model as a local folder"
    )
    try:
        path = snapshot_download(repo_id, revision=revision, allow_patterns=CHECKPOINT_FILES)
    except HFValidationError:
        raise ModelError(repo_id, "neither a local folder nor a valid hub model id") from None
    except RevisionNotFoundError:
        raise ModelError(repo_id, f"the hub has no revision {revision!r}") from None
    except RepositoryNotFoundError:
        raise ModelError(repo_id, "no such model on the hub (or it is private/gated)") from None
    except LocalEntryNotFoundError:
        raise ModelError(
            repo_id, f"not in the local cache and the hub cannot be reached; {how_to_get}"
        ) from None
    except OSError as error:  # network failures surface as OSError subclasses
        raise ModelError(
            repo_id, f"download failed ({error.__class__.__name__}); {how_to_get}"
        ) from None
    return Path(path)


def choose_device(device: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; an explicit GPU must be present."""
    if device not in DEVICES:
        raise ConfigError(
            None, f"must be one of {', '.join(DEVICES)}, not {device!r}", setting="device"
        )
    import torch

    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if device == "cuda" and not cuda:
        raise ConfigError(None, "cuda asked for, but torch sees no CUDA GPU here", setting="device")
    if device == "mps" and not mps:
        raise ConfigError(None, "mps asked for, but torch sees no Apple MPS here", setting="device")
    return torch.device(device)


def choose_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is half precision on a GPU (fp16) and float32 on the CPU."""
    import torch

    if dtype == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    if dtype not in DTYPES:
        choices = ", ".join(["auto", *DTYPES])
        raise ConfigError(None, f"must be one of {choices}, not {dtype!r}", setting="dtype")
    chosen: torch.dtype = getattr(torch, dtype)
    return chosen
