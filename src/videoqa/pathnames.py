"""File names that are not valid UTF-8: kept exact, shown readably, written to JSON safely.

POSIX file names are bytes. Python decodes those that are not UTF-8 (a Latin-1 ``é`` from an
SMB or NAS share is byte 0xE9) with ``surrogateescape`` (PEP 383): byte 0xE9 becomes the lone
surrogate U+DCE9, which ``os.fsencode`` turns back into the same byte, so the file can still be
opened and its sidecars named from the same bytes. But no UTF-8 encoder accepts a lone
surrogate: SQLite, a JSON file, a webhook body or a strict terminal would raise
``UnicodeEncodeError``. Each of those boundaries uses one of these functions instead.
"""

from __future__ import annotations

import json
import os
from typing import Any


def readable(text: str | os.PathLike[str]) -> str:
    """``text`` (a path or a message holding one) as valid UTF-8, each undecodable byte ``\\xNN``.

    For people (logs, terminals, error messages); not reversible in general, so never used
    to find a file again.
    """
    text = os.fspath(text)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def dumps_json(data: Any, **options: Any) -> str:
    """``json.dumps`` (non-ASCII text kept as is) whose output is always valid UTF-8.

    A lone surrogate in a string (a file name that is not UTF-8) is written as the JSON escape
    ``\\udcNN``, which ``json.loads`` reads back as the same surrogate, so
    ``os.fsencode(json.loads(text)["path"])`` gives the file name's exact bytes.
    """
    text = json.dumps(data, ensure_ascii=False, **options)
    # Surrogates only occur inside JSON strings, where "\udcNN" is the standard escape.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def sqlite_path(path: str | os.PathLike[str]) -> str | bytes:
    """How a path is kept in SQLite: text when it is UTF-8, else its exact bytes (a BLOB).

    A name that is not UTF-8 (``os.fsdecode`` gives lone surrogates) cannot be SQLite text;
    its bytes can, and :func:`path_from_sqlite` turns them back into the same ``str``.
    """
    path = os.fspath(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def path_from_sqlite(value: str | bytes) -> str:
    """The path :func:`sqlite_path` stored."""
    return os.fsdecode(value) if isinstance(value, bytes) else value
