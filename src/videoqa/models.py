"""Which GIT checkpoint, on which device, in which precision: resolving names to local folders.

A checkpoint is a hub id (``microsoft/git-base-vqav2``) or a local folder. Hub checkpoints come
through the Hugging Face cache; only configs, tokenizer files and ``*.safetensors`` weights are
fetched, so pickled ``.bin`` weights are never downloaded nor loaded, and no remote code runs.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from videoqa.errors import ConfigError, ModelError
from videoqa.quantize import check_quantize

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

#: CPU features with which oneDNN computes bfloat16 matrix products natively (x86: AVX-512
#: BF16 or AMX; Arm: the BF16 extension), as ``torch.cpu.get_capabilities()`` names them.
#: Without one, bfloat16 is emulated through float32 and is slower than float32 itself.
NATIVE_BFLOAT16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16")
CPU_DTYPE_VARIABLE = "VIDEOQA_CPU_DTYPE"
"""Environment variable that fixes what ``auto`` is on the CPU (``float32`` or ``bfloat16``):
for settings with no dtype of their own (the daemon's processes), and the test suite, which
holds the engine to transformers' float32 results."""


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
        try:
            snapshot = _download(resolved, revision=revision)
        except ModelError as error:
            meant = meant_model(resolved)
            if meant is None:
                raise
            # A typo of a name we know beats advice on downloading what may not exist.
            download = f" (or download it: hf download {resolved})" if "/" in resolved else ""
            raise ModelError(
                resolved, f"{error.reason.split(';')[0]}; did you mean {meant}?{download}"
            ) from None
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


def meant_model(name: str) -> str | None:
    """The built-in name, documented checkpoint or cached checkpoint spelt most like ``name``
    (``demoo``: ``demo``), or ``None`` when ``name`` is one of them or like none."""
    known = [DEMO_MODEL, *KNOWN_MODELS, *_cached_models()]
    if name in known:
        return None
    # Case aside, and also by the part after the owner: ``git-base-vatx`` is
    # microsoft/git-base-vatex.
    for key in (str.lower, lambda model: model.rsplit("/", 1)[-1].lower()):
        candidates = {key(model): model for model in reversed(known)}
        close = difflib.get_close_matches(key(name), list(candidates), n=1, cutoff=0.8)
        if close:
            return candidates[close[0]]
    return None


def _cached_models() -> list[str]:
    """Hub ids with a snapshot in the Hugging Face cache (``models--owner--name`` folders)."""
    from huggingface_hub import constants

    try:
        entries = os.listdir(constants.HF_HUB_CACHE)
    except OSError:
        return []
    prefix = "models--"
    return sorted(entry[len(prefix):].replace("--", "/")
                  for entry in entries if entry.startswith(prefix))  # fmt: skip


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


def cpu_computes_bfloat16(capabilities: Mapping[str, Any] | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (``NATIVE_BFLOAT16_FEATURES``).

    ``capabilities`` is ``torch.cpu.get_capabilities()`` unless given (tests pass others);
    oneDNN (``torch.backends.mkldnn``) must be built in, as it is what uses those instructions.
    """
    import torch

    if capabilities is None:
        if not torch.backends.mkldnn.is_available():
            return False
        capabilities = torch.cpu.get_capabilities()
    return any(bool(capabilities.get(feature)) for feature in NATIVE_BFLOAT16_FEATURES)


def choose_dtype(
    dtype: str,
    device: torch.device,
    *,
    quantize: str | None = None,
    capabilities: Mapping[str, Any] | None = None,
) -> torch.dtype:
    """``auto`` is float16 on a GPU; on the CPU bfloat16 where the CPU computes it natively
    (twice float32's speed, the same answers: docs/engine.md), else float32. With
    ``quantize`` the layers left unquantised stay float32, as dynamic int8 needs."""
    import torch

    if dtype == "auto":
        if device.type != "cpu":
            return torch.float16
        fixed = os.environ.get(CPU_DTYPE_VARIABLE)
        if fixed and fixed not in ("float32", "bfloat16"):
            raise ConfigError(
                None,
                f"{CPU_DTYPE_VARIABLE} must be float32 or bfloat16, not {fixed!r}",
                setting="dtype",
            )
        if quantize is not None:
            return torch.float32
        if fixed:
            return torch.float32 if fixed == "float32" else torch.bfloat16
        if cpu_computes_bfloat16(capabilities):
            return torch.bfloat16
        return torch.float32
    if dtype not in DTYPES:
        choices = ", ".join(["auto", *DTYPES])
        raise ConfigError(None, f"must be one of {choices}, not {dtype!r}", setting="dtype")
    if quantize is not None and dtype != "float32":
        raise ConfigError(
            None,
            f"{quantize} quantisation keeps the other layers in float32, not {dtype}: "
            "leave dtype auto or float32",
            setting="dtype",
        )
    chosen: torch.dtype = getattr(torch, dtype)
    return chosen


def check_quantize_device(quantize: str | None, device: torch.device) -> None:
    """:func:`videoqa.quantize.check_quantize` once ``auto`` has picked the device."""
    if quantize is not None and device.type != "cpu":
        check_quantize(quantize, device.type)


def read_json_object(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file as a dict: ``ModelError`` naming it when it is unreadable or
    not an object (config.json, preprocessor_config.json)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(str(path), f"unreadable ({error})".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ModelError(str(path), "not a JSON object")
    return data
