"""The values of ``quantize``, checked without torch (as ``fit.py`` does for ``fit``).

``int8`` is dynamic int8 quantisation of the Linear layers (``engine.quantize_linear_layers``),
on the CPU only. The command line and the daemon's config check it here, before any model
loads and without importing torch (the daemon's watching processes never do).
"""

from __future__ import annotations

from videoqa.errors import ConfigError

QUANTIZATIONS = ("int8",)
"""``quantize`` values: ``int8`` is dynamic int8 quantisation of the Linear layers (CPU only)."""


def check_quantize(quantize: str | None, device: str = "auto") -> str | None:
    """Refuse an unknown ``quantize`` value, or int8 asked for on a GPU, without torch.

    By the rule, not by what is present: ``quantize="int8", device="cuda"`` is refused on a
    machine without a GPU too. ``device="auto"`` is checked again once it is resolved
    (:func:`check_quantize_device`).
    """
    if quantize is None:
        return None
    if quantize not in QUANTIZATIONS:
        raise ConfigError(
            None,
            f"must be one of {', '.join(QUANTIZATIONS)} (or not given), not {quantize!r}",
            setting="quantize",
        )
    if device not in ("auto", "cpu"):
        raise ConfigError(
            None,
            f"{quantize} quantisation runs on the CPU only, not {device}: use device cpu "
            "(or no quantize on a GPU, where float16 is the fast format)",
            setting="quantize",
        )
    return quantize
