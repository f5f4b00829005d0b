"""FFmpeg's names as ffprobe prints them: colour and field order for the numbers PyAV hands out,
and codecs and containers by the names people know (``av1``, ``mp4``), not FFmpeg's decoders.

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


# -- codecs and containers as people name them ------------------------------------------------

DECODER_CODECS = {
    "libdav1d": "av1", "libaom-av1": "av1", "av1_cuvid": "av1", "av1_qsv": "av1",
    "libvpx": "vp8", "libvpx-vp9": "vp9", "h264_cuvid": "h264", "hevc_cuvid": "hevc",
    "mp3float": "mp3", "mp2float": "mp2", "libopus": "opus", "libvorbis": "vorbis",
    "libfdk_aac": "aac", "aac_fixed": "aac", "libopenjpeg": "jpeg2000",
}  # fmt: skip
"""Decoder (implementation) → codec, for reports written before the codec was named: PyAV's
``codec_context.name`` is the decoder FFmpeg picked (``libdav1d``), ffprobe's ``codec_name``
the codec (``av1``)."""

MP4_BRANDS = {"qt  ": "mov", "M4A ": "m4a", "M4B ": "m4a", "M4V ": "m4v", "M4VH": "m4v",
              "M4VP": "m4v", "mjp2": "mj2", "mj2s": "mj2"}  # fmt: skip


def codec_name(name: str | None) -> str | None:
    """The codec a decoder name stands for (``libdav1d`` → ``av1``); a codec name unchanged."""
    if not name:
        return name
    if name in DECODER_CODECS:
        return DECODER_CODECS[name]
    try:
        import av

        return str(av.codec.Codec(name, "r").canonical_name)
    except Exception:  # not a decoder this FFmpeg knows: keep the name given
        return name


def container_name(format_name: str | None, *, brand: str | None = None,
                   path: str | bytes | None = None) -> str | None:  # fmt: skip
    """The container as people name it: FFmpeg's demuxer names a family (``mov,mp4,m4a,3gp,
    3g2,mj2``, ``matroska,webm``); the file's MP4 brand or Matroska DocType says which member.

    ``brand`` is the ``major_brand`` tag (FFmpeg's mov demuxer exports it); without it, and
    for Matroska, the first bytes of ``path`` are read.
    """
    if not format_name:
        return format_name
    family = format_name.split(",")
    head = _head(path) if path is not None and brand is None else b""
    if "mp4" in family and "mov" in family:
        if brand is None and head[4:8] == b"ftyp":
            brand = head[8:12].decode("latin-1")
        if brand is None:
            return "mov" if head else "mp4"  # no ftyp box: a QuickTime file from before MP4
        if brand.startswith("3gp") or brand.startswith("3ge"):
            return "3gp"
        if brand.startswith("3g2"):
            return "3g2"
        return MP4_BRANDS.get(brand.ljust(4), "mp4")
    if family == ["matroska", "webm"]:
        if head.startswith(b"\x1a\x45\xdf\xa3"):
            return "webm" if b"\x42\x82\x84webm" in head else "matroska"
        return "matroska"
    return family[0]


def _head(path: str | bytes) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(64)
    except OSError:
        return b""
