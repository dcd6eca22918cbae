"""Normalised domain events: every inbound format ends here, text already gone.

``InboundEvent`` is what the store records and the rules evaluate. Building one
is the only place that reads note or message text: it is reduced to signals in
``from_wire`` and the returned event carries none of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from plugin import signals as signal_extraction
from plugin.signals import Signals

#: Where each event type keeps its idempotency-relevant EHR ids.
CLIENT_EVENTS = frozenset(
    {"session_note.signed", "appointment.booked", "appointment.updated", "appointment.cancelled", "client_message.received"}
)
#: Fields never stored: text is read once, client ids are pseudonymised.
DROPPED_FIELDS = frozenset({"text", "client_id"})
#: Sensitivity labels that forbid reading a document's text (psychotherapy notes).
DO_NOT_READ = frozenset({"PSYTHPN"})


@dataclass(frozen=True, slots=True)
class InboundEvent:
    clinic_id: str
    source: str  # ehr | fhir | cds | slack
    dedupe_key: str
    type: str
    occurred_at: datetime
    therapist_ehr_id: str | None
    client_ehr_id: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe, text-free
    signals: Signals = field(default_factory=Signals)
    therapist_signals: frozenset[str] = frozenset()
    signals_unread: bool = False  # the text could not be read: treated as carrying no indication

    def storable(self) -> dict[str, Any]:
        """The event's data as stored: its fields plus its signals."""
        return {
            **self.fields,
            "signals": sorted(self.signals.current),
            "historical_signals": sorted(self.signals.historical),
            "therapist_signals": sorted(self.therapist_signals),
            **({"signals_unread": True} if self.signals_unread else {}),
        }


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


#: Note tags that describe the session for the therapist rather than the client.
THERAPIST_TAGS = {"difficult_session": "difficult_session", "rupture": "difficult_session"}


def therapist_signals_of(data: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(THERAPIST_TAGS[t] for t in data.get("tags", ()) if t in THERAPIST_TAGS)


def signals_of(event_type: str, data: Mapping[str, Any]) -> Signals:
    """Client signals from structured tags and, where allowed, from the text."""
    found = Signals()
    tags = [t for t in data.get("tags", ()) if t not in THERAPIST_TAGS]
    if tags:
        found = found.merged(signal_extraction.from_tags(tags))
    text = data.get("text")
    if text and not DO_NOT_READ.intersection(data.get("sensitivity", ())):
        found = found.merged(signal_extraction.extract_client(text))
    return found


def from_wire(
    *, clinic_id: str, source: str, dedupe_key: str, event_type: str, occurred_at: datetime, data: Mapping[str, Any]
) -> InboundEvent:
    """The domain event for a validated §3.2 payload (any source maps to that shape).

    If the text cannot be read, the event is still accepted (nothing accepted
    is lost) with its structured signals only, flagged ``signals_unread``.
    """
    unread = False
    try:
        found = signals_of(event_type, data)
    except signal_extraction.ExtractionError:
        found, unread = signals_of(event_type, {k: v for k, v in data.items() if k != "text"}), True
    return InboundEvent(
        clinic_id=clinic_id,
        source=source,
        dedupe_key=dedupe_key,
        type=event_type,
        occurred_at=occurred_at,
        therapist_ehr_id=data.get("therapist_id"),
        client_ehr_id=data.get("client_id") if event_type in CLIENT_EVENTS else None,
        fields=_json_safe({k: v for k, v in data.items() if k not in DROPPED_FIELDS}),
        signals=found,
        therapist_signals=therapist_signals_of(data),
        signals_unread=unread,
    )


def from_slack_message(
    *, clinic_id: str, therapist_ehr_id: str, event_id: str, occurred_at: datetime, text: str, thread_ts: str | None
) -> InboundEvent:
    """A therapist's DM to the bot (``therapist.message``): the text is read for signals here, once.

    Only the therapist signals are kept, plus the message's ts (Slack's opaque id
    of it, so the reply can go into its thread). The dedupe key is Slack's
    ``event_id``, so a retried event is the same event.
    """
    found = signal_extraction.extract_therapist(text)
    return InboundEvent(
        clinic_id=clinic_id,
        source="slack",
        dedupe_key=event_id,
        type="therapist.message",
        occurred_at=occurred_at,
        therapist_ehr_id=therapist_ehr_id,
        client_ehr_id=None,
        fields={"slack_thread_ts": thread_ts} if thread_ts else {},
        # Risk language counts even when phrased as past ("I wanted to die last week"): safety errs that way.
        therapist_signals=found.current | (found.historical & {"risk_language"}),
    )
