"""The last check before anything leaves for Slack: no PHI, whatever the bug upstream.

Slack is outside the clinic's boundary (DESIGN §5.3), so a payload must carry
no client identifier, date of birth, contact detail, record number, diagnosis
or risk flag. ``blocks.py`` builds payloads only from the copy catalogue and
Tend's own ids, so a leak there would be a programming error; this guard makes
such an error fail loudly instead of reaching a therapist's phone.

Two kinds of text are vouched for. ``vocabulary`` is Tend's own wording (the
literal parts of the catalogue templates the builder rendered, and the
structural ids it emits): an event value or pattern lying wholly inside it is
ours, not the event's — a client called May does not make "may I be kind to
myself" a leak. Risk words are vouched for only by the fixed safety copy, and
diagnosis words by nothing. ``PhiLeak`` names where, never what: its message
may itself end up in a log.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from plugin.delivery import copy

# Copy keys whose wording may name risk: the neutral protocol line and the crisis line.
SAFETY_COPY_KEYS: tuple[str, ...] = (
    "chrome.safety.risk_language",
    "chrome.safety.therapist_distress",
    "chrome.safety.assistance_line",
    "slack.dm.signals_unread",
)

# Block Kit and metadata keys: structure, not content. Any other key is checked like a value.
STRUCTURAL_KEYS = frozenset(
    {
        "text", "blocks", "metadata", "event_type", "event_payload", "suggestion_id", "type",
        "block_id", "elements", "action_id", "value", "style", "emoji", "verbatim", "fields",
        "accessory", "options", "placeholder", "confirm", "title", "deny",
        "initial_option", "url", "alt_text", "image_url",
    }
)

_MIN_FORBIDDEN = 2
_SHORT_FORBIDDEN = 3  # at most this long: matched as a whole word, or "Al" would match "always"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an email address", re.compile(r"[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+")),
    (
        "a phone number",
        re.compile(
            r"(?<![\w.])(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?![\w])"
            r"|(?<![\w.])\+\d[\d\s().-]{6,}\d"
        ),
    ),
    (
        "a date (date of birth)",
        re.compile(
            r"\b(?:19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])\b"
            r"|\b(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:\d{4}|\d{2})\b"
            r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?,?\s+\d{4}\b"
            r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?,?\s+\d{4}\b"
            r"|\bd\.?o\.?b\b|\bdate of birth\b|\bbirth ?date\b",
            re.IGNORECASE,
        ),
    ),
    (
        "a record number",
        re.compile(r"\bMRN\b|\bmedical record\b|\bpatient (?:id|number)\b|\b\d{3}-\d{2}-\d{4}\b", re.IGNORECASE),
    ),
    ("a long digit run (identifier-like)", re.compile(r"\d{6,}")),
    ("an ICD-10 code", re.compile(r"\b[A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?\b")),
)

_DIAGNOSIS = re.compile(
    r"\bdepress(?:ion|ive|ed)\b|\bptsd\b|\bc-?ptsd\b|\bbipolar\b|\b(?:generali[sz]ed )?anxiety disorder\b"
    r"|\bpanic disorder\b|\bschizo\w*|\bborderline personality\b|\beating disorder\b|\banorexi\w*"
    r"|\bbulimi\w*|\bocd\b|\badhd\b|\bpsychos[ie]s\b|\bpsychotic\b",
    re.IGNORECASE,
)

_RISK = re.compile(
    r"\bsuicid\w*|\bself[\s-]?harm\w*|\boverdos\w*|\bkill(?:ing)?\s+(?:myself|themselves|himself|herself)\b"
    r"|\bwant(?:s|ed)?\s+to\s+die\b",
    re.IGNORECASE,
)


class PhiLeak(ValueError):
    """A payload that must not leave: names the field and the kind of leak, never the value."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"payload field {path} carries {reason}")
        self.path = path
        self.reason = reason


def fragments(template: str) -> tuple[str, ...]:
    """The literal parts of a ``str.format`` template: the wording Tend vouches for."""
    return tuple(literal for literal, *_ in string.Formatter().parse(template) if literal)


def escape_mrkdwn(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` in mrkdwn as markup; catalogue wording means them literally."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safety_fragments() -> tuple[str, ...]:
    """The only wording allowed to name risk, read from the catalogue on each call (tests swap it)."""
    found: list[str] = []
    for key in SAFETY_COPY_KEYS:
        try:
            literal = fragments(copy.text(key))
        except copy.MissingCopy:
            continue
        found.extend(literal)
        found.extend(escape_mrkdwn(f) for f in literal)
    return tuple(found)


def check_payload(
    payload: Mapping[str, Any],
    *,
    forbidden: Iterable[str] = (),
    vocabulary: Iterable[str] = (),
) -> None:
    """Raise ``PhiLeak`` when ``payload`` carries event content or PHI-shaped text anywhere.

    ``forbidden`` are values the caller knows came from the event (client ids,
    names, note text); ``vocabulary`` is Tend's own wording (see module docs).
    """
    wanted = _forbidden_patterns(forbidden)
    vouched = tuple(sorted({v for v in vocabulary if v}, key=len, reverse=True))
    safe = safety_fragments()
    own_id = _own_suggestion_id(payload)
    for path, value in _strings(payload, "payload"):
        _check_string(path, value, wanted, vouched, safe, own_id)


def _check_string(
    path: str,
    value: str,
    wanted: tuple[re.Pattern[str], ...],
    vouched: tuple[str, ...],
    safe: tuple[str, ...],
    own_id: str | None,
) -> None:
    covered = _coverage(value, vouched)
    for pattern in wanted:
        if _uncovered_match(pattern, value, covered):
            raise PhiLeak(path, "a value from the event")
    if value != own_id:
        for reason, pattern in _PATTERNS:
            if _uncovered_match(pattern, value, covered):
                raise PhiLeak(path, reason)
    if _DIAGNOSIS.search(value):
        raise PhiLeak(path, "a diagnosis word")
    if _uncovered_match(_RISK, value, _coverage(value, safe)):
        raise PhiLeak(path, "a risk word outside the safety copy")


def _forbidden_patterns(forbidden: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    patterns = []
    # Slack shows "&amp;" as "&": a value must be caught in its escaped form too.
    variants = {form for raw in forbidden for form in (str(raw), escape_mrkdwn(str(raw)))}
    for raw in sorted(variants):
        words = raw.split()
        if not words or len(" ".join(words)) < _MIN_FORBIDDEN:
            continue
        body = r"\s+".join(re.escape(w) for w in words)
        if len(" ".join(words)) <= _SHORT_FORBIDDEN:
            body = rf"(?<!\w){body}(?!\w)"
        patterns.append(re.compile(body, re.IGNORECASE))
    return tuple(patterns)


def _coverage(value: str, vouched: Iterable[str]) -> bytearray:
    """Which characters of ``value`` belong to vouched-for wording."""
    covered = bytearray(len(value))
    for fragment in vouched:
        if fragment.isdigit():  # our "30" minutes must not vouch for a record number "3030"
            for match in re.finditer(rf"(?<!\d){fragment}(?!\d)", value):
                covered[match.start() : match.end()] = b"\x01" * len(fragment)
            continue
        start = value.find(fragment)
        while start != -1:
            covered[start : start + len(fragment)] = b"\x01" * len(fragment)
            start = value.find(fragment, start + 1)
    return covered


def _uncovered_match(pattern: re.Pattern[str], value: str, covered: bytearray) -> bool:
    return any(not all(covered[m.start() : m.end()]) for m in pattern.finditer(value) if m.end() > m.start())


def _own_suggestion_id(payload: Mapping[str, Any]) -> str | None:
    """The id Tend put in the metadata: button values repeat it, and it is no client's number."""
    metadata = payload.get("metadata")
    if isinstance(metadata, Mapping):
        event_payload = metadata.get("event_payload")
        if isinstance(event_payload, Mapping):
            found = event_payload.get("suggestion_id")
            if isinstance(found, int) and not isinstance(found, bool):
                return str(found)
    return None


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string and number in the payload with its path; unknown keys count as content."""
    if isinstance(node, Mapping):
        for key, child in node.items():
            child_path = f"{path}.{key}" if key in STRUCTURAL_KEYS else f"{path}.<key>"
            if key not in STRUCTURAL_KEYS:
                yield child_path, str(key)
            yield from _strings(child, child_path)
    elif isinstance(node, (list, tuple)):
        for index, child in enumerate(node):
            yield from _strings(child, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, str(node)
