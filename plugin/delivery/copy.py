"""The keyed catalogue of every sentence a therapist reads.

All wording lives in ``copy.yaml`` beside this module so that its tone can be
reviewed in one place; code refers to sentences only by key. Placeholders use
``str.format`` syntax and are filled only with values Tend itself produced
(durations, counts, times), never with text that arrived in an event.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CATALOGUE_PATH = Path(__file__).with_name("copy.yaml")


class MissingCopy(KeyError):
    """A key that the catalogue does not hold: a programming error, caught by tests."""


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Any]:
    """The whole catalogue as nested dicts, loaded once per process."""
    with CATALOGUE_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def entry(key: str) -> Any:
    """The raw entry at a dotted key (a string, list or mapping)."""
    node: Any = catalogue()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise MissingCopy(key)
        node = node[part]
    return node


def text(key: str, **params: Any) -> str:
    """The sentence at ``key`` with its placeholders filled."""
    value = entry(key)
    if not isinstance(value, str):
        raise MissingCopy(f"{key} is not a sentence")
    return value.format(**params) if params else value
