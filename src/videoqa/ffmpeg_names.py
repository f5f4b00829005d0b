"""FFmpeg's names for the numbers PyAV hands out for colour and field order, as ffprobe prints them.

PyAV gives ``color_range``, ``colorspace``, ``color_primaries``, ``color_trc`` and
``field_order`` as the plain integers of FFmpeg's enums (``libavutil/pixfmt.h``,
``libavcodec/defs.h``); these tables are FFmpeg's own ``av_color_*_name`` strings, so
``videoqa info`` says ``bt709`` where ffprobe does. "Unspecified" is None.
"""

from __future__ import annotations

FIELD_ORDERS = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
"""AVFieldOrder: tt/bb are interlaced with the top/bottom field coded and shown first; tb/bt are
coded in one order and shown in the other."""

INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})

COLOR_RANGES = {1: "tv", 2: "pc"}
"""AVColorRange: tv is limited (16-235 for 8-bit luma), pc is full (0-255)."""

COLOR_SPACES = {
    0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
    9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
    13: "chroma-derived-c", 14: "ictcp",
}  # fmt: skip
"""AVColorSpace: the matrix between R'G'B' and Y'CbCr."""

COLOR_PRIMARIES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}  # fmt: skip

COLOR_TRANSFERS = {
    1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
    14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}  # fmt: skip


def name_of(table: dict[int, str], value: object) -> str | None:
    """The name of an enum value: None when unspecified, ``"unknown (N)"`` when not listed."""
    if value is None:
        return None
    number = int(value)  # type: ignore[call-overload]
    if number in table:
        return table[number]
    return None if number in (0, 2) else f"unknown ({number})"
