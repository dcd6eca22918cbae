"""Describing a failure without its message.

An exception's message can carry what the code was working on (a database
error's parameters, a value from an event), so logs and stored job failures
name only the exception type and where it was raised.
"""

from __future__ import annotations

import traceback
from pathlib import Path


def where_raised(err: BaseException, frames: int = 3) -> str:
    """``file.py:12 <- file.py:34``: the innermost frames of ``err``, never its message."""
    last = traceback.extract_tb(err.__traceback__)[-frames:]
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(last)) or "?"


def describe(err: BaseException) -> str:
    """``ValueError at file.py:12 <- ...``"""
    return f"{type(err).__name__} at {where_raised(err)}"
