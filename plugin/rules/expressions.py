"""CEL text handling the CEL library does not do for us.

The library reports only top-level identifiers, but a misspelt *field*
(``client.signal``) is the common mistake, and CEL would only notice it at
evaluation time with a KeyError. So we scan the expression once at load for
dotted fact paths, and inline ``params.x`` as literals so that a clinic's
thresholds cost nothing per evaluation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

import cel

_TOKEN: Final = re.compile(
    r"""
    (?P<str>[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ws>\s+)
  | (?P<op>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
_KEYWORDS: Final = frozenset({"true", "false", "null", "in"})
_CEL_POSITION: Final = re.compile(r"<input>:(\d+):(\d+):\s*(.*?)(?:\n|$)")


@dataclass(frozen=True, slots=True)
class Reference:
    """A dotted name as written (``client.signals``) and where it starts in the text (0-based)."""

    path: str
    offset: int


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    offset: int


def tokens(source: str) -> list[Token]:
    """Significant tokens (whitespace dropped), string literals kept whole so they are never read as names."""
    out: list[Token] = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "op"
        if kind != "ws":
            out.append(Token(kind, match.group(), match.start()))
    return out


def references(source: str) -> tuple[list[Reference], set[str]]:
    """Dotted names read as data (not called as functions), and the names comprehension macros bind."""
    toks = tokens(source)
    bound: set[str] = set()
    refs: list[Reference] = []
    n = len(toks)
    for i, tok in enumerate(toks):
        if (
            tok.kind == "ident"
            and tok.text in _MACROS
            and i > 0 and toks[i - 1].text == "."
            and i + 3 < n and toks[i + 1].text == "("
            and toks[i + 2].kind == "ident" and toks[i + 3].text == ","
        ):
            bound.add(toks[i + 2].text)
    i = 0
    while i < n:
        tok = toks[i]
        starts_chain = tok.kind == "ident" and not (i > 0 and toks[i - 1].text == ".")
        if not starts_chain or tok.text in _KEYWORDS:
            i += 1
            continue
        if i + 1 < n and toks[i + 1].text == "(":       # a function: size(x), has(x.y)
            i += 1
            continue
        parts = [tok.text]
        j = i + 1
        while (
            j + 1 < n and toks[j].text == "." and toks[j + 1].kind == "ident"
            and not (j + 2 < n and toks[j + 2].text == "(")  # .exists(...) is a method, not a field
        ):
            parts.append(toks[j + 1].text)
            j += 2
        refs.append(Reference(".".join(parts), tok.offset))
        i = j
    return refs, bound


def literal(value: Any) -> str:
    """A Python parameter value as CEL source."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"parameter values must be numbers, booleans, strings or lists of them, not {type(value).__name__}")


def inline_params(source: str, params: dict[str, Any]) -> str:
    """Replace ``params.name`` with the literal value; names were checked beforehand."""
    toks = tokens(source)
    pieces: list[str] = []
    cursor = 0
    for i, tok in enumerate(toks):
        if (
            tok.kind == "ident" and tok.text == "params"
            and not (i > 0 and toks[i - 1].text == ".")
            and i + 2 < len(toks) and toks[i + 1].text == "." and toks[i + 2].kind == "ident"
            and toks[i + 2].text in params
        ):
            end = toks[i + 2].offset + len(toks[i + 2].text)
            pieces.append(source[cursor:tok.offset])
            pieces.append("(" + literal(params[toks[i + 2].text]) + ")")
            cursor = end
    pieces.append(source[cursor:])
    return "".join(pieces)


class CompileError(Exception):
    """CEL rejected the text; ``line``/``column`` are 1-based inside the expression."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


def compile_expression(source: str) -> cel.Program:
    """Compile once, translating the library's message into a position and one line of text."""
    try:
        return cel.compile(source)
    except Exception as exc:  # the library raises ValueError; anything else is still a bad expression
        text = str(exc)
        found = _CEL_POSITION.search(text)
        if found:
            raise CompileError(found.group(3).strip(), int(found.group(1)), int(found.group(2))) from None
        raise CompileError(text.splitlines()[0] if text else type(exc).__name__, 1, 1) from None


def offset_to_line_column(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based offset."""
    before = source[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return line, column
