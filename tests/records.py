"""Comparing records made by different runs: the results, not which run made them or when.

A record (schema 1.3) names the run of each entry (``run``: a random id) and lists the runs
(``runs``: ids and delivery times); two runs that computed the same results differ there only.
"""

from __future__ import annotations

import json
from typing import Any

RUN_KEYS = ("run", "runs")


def without_runs(data: Any) -> Any:
    """``data`` (a parsed record) without run ids and the runs list."""
    if isinstance(data, dict):
        return {key: without_runs(value) for key, value in data.items() if key not in RUN_KEYS}
    if isinstance(data, list):
        return [without_runs(value) for value in data]
    return data


def comparable(name: str, content: bytes) -> Any:
    """A sidecar's content to compare: a JSON record without its runs, other files as they are."""
    if name.endswith(".json"):
        return without_runs(json.loads(content))
    return content
