"""From a suggestion-log row to the one Slack payload Tend may send for it.

Only ids, copy keys and minutes Tend computed go into ``Outgoing``; the
builder in ``blocks.py`` turns them into text from the catalogue and refuses
anything that looks like PHI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.delivery.blocks import Anchor, Kind, Outgoing, build
from plugin.rules import is_safety_rule
from plugin.store.models import Suggestion

#: Rules whose message is a self-compassion break rather than a practice suggestion.
BREAK_RULES = frozenset({"therapist.selfcare.stress-message"})
SAFETY_KEYS = {Kind.SUPPRESS: "chrome.safety.risk_language", Kind.DISTRESS: "chrome.safety.therapist_distress"}


def kind_of(row: Suggestion) -> Kind:
    """Safety about a client is the protocol line; safety about the therapist, the crisis line."""
    if is_safety_rule(row.rule_id):
        return Kind.SUPPRESS if row.audience == "client" else Kind.DISTRESS
    if row.rule_id in BREAK_RULES:
        return Kind.BREAK
    return Kind.SUGGEST if row.audience == "client" else Kind.NUDGE


def outgoing_for(row: Suggestion, now: datetime, assistance_line: str | None = None) -> Outgoing:
    kind = kind_of(row)
    if kind.is_safety:
        return Outgoing(
            suggestion_id=row.id,
            kind=kind,
            audience=row.audience,
            message_key=SAFETY_KEYS[kind],
            assistance_line=(assistance_line or None) if kind is Kind.DISTRESS else None,
        )
    anchor = None
    if row.audience == "client" and row.expires_at is not None:
        minutes = int((row.expires_at - now).total_seconds() // 60)
        anchor = Anchor.before_session(minutes) if minutes >= 1 else Anchor("before_session_later")
    source = (row.explanation or {}).get("source")
    message_key = row.message_key or ""
    if message_key.startswith("messages."):
        message_key += ".lead"  # the header comes from the message kind; the rule's message opens the body
    return Outgoing(
        suggestion_id=row.id,
        kind=kind,
        audience=row.audience,
        message_key=message_key,
        practice_id=row.practice_id,
        why_key=row.rule_id,
        source_label=source,
        anchor=anchor,
        analogy_id=row.analogy_id,
        framing_id=row.framing_id,
    )


def payload_for(row: Suggestion, now: datetime, assistance_line: str | None = None) -> dict[str, Any]:
    return build(outgoing_for(row, now, assistance_line))
