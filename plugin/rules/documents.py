"""YAML rule files read together with where each value sits in the file.

Rule authors fix errors by line and column, so the loader keeps the node
marks PyYAML already computes instead of re-deriving positions later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Key = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a value starts (1-based), and enough about its style to locate text inside it."""

    line: int
    column: int
    style: str | None = None        # None (plain), '"', "'", '|', '>'
    block_indent: int | None = None  # first content column (1-based) of a '|' block


@dataclass(slots=True)
class Document:
    """One parsed rules document, its origin and the marks of its values."""

    data: Any
    origin: str
    marks: dict[Key, Mark] = field(default_factory=dict)

    def mark(self, key: Key) -> Mark | None:
        """The mark of ``key``, or of its nearest enclosing value when the key itself is absent."""
        while True:
            found = self.marks.get(key)
            if found is not None or not key:
                return found
            key = key[:-1]


def _block_indent(node: yaml.Node) -> int | None:
    buffer = getattr(node.start_mark, "buffer", None)
    pointer = getattr(node.start_mark, "pointer", None)
    if not buffer or pointer is None:
        return None
    newline = buffer.find("\n", pointer)
    if newline < 0:
        return None
    rest = buffer[newline + 1:]
    stripped = rest.lstrip(" ")
    return len(rest) - len(stripped) + 1


def _walk(node: yaml.Node, key: Key, marks: dict[Key, Mark]) -> None:
    style = getattr(node, "style", None) if isinstance(node, yaml.ScalarNode) else None
    indent = _block_indent(node) if style == "|" else None
    marks[key] = Mark(node.start_mark.line + 1, node.start_mark.column + 1, style, indent)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                _walk(value_node, key + (key_node.value,), marks)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, key + (index,), marks)


def parse(text: str, origin: str) -> Document:
    """Parse YAML text; raises ``yaml.YAMLError`` (with its own mark) when it is not YAML."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    marks: dict[Key, Mark] = {}
    if node is not None:
        _walk(node, (), marks)
    return Document(data=data, origin=origin, marks=marks)


def read(path: str | Path) -> Document:
    """Parse a rules file from disk."""
    p = Path(path)
    return parse(p.read_text(encoding="utf-8"), str(p))


def position_in(mark: Mark | None, line: int, column: int) -> tuple[int | None, int | None]:
    """Translate a 1-based position inside a scalar's text to a position in the file.

    Exact for plain, quoted single-line and literal ('|') scalars; folded
    scalars lose their line breaks, so they report the scalar's start.
    """
    if mark is None:
        return (None, None)
    if mark.style in (None, '"', "'"):
        if line == 1:
            offset = 1 if mark.style in ('"', "'") else 0
            return (mark.line, mark.column + offset + column - 1)
        return (mark.line + line - 1, column)
    if mark.style == "|" and mark.block_indent is not None:
        return (mark.line + line, mark.block_indent + column - 1)
    return (mark.line, mark.column)
