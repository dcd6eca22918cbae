"""Evaluating one recorded event: apply it, decide, plan timing, log every decision.

Runs inside one transaction, so a crash leaves either nothing or the whole
result; re-running an evaluated event does nothing. An amended note (the same
``note_id`` signed again) does not repeat what its first version already
produced: an earlier suggestion still waiting is superseded by the new one, and
one already sent makes the new one a logged skip.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import metrics, timing
from plugin.apply import apply_event, therapist_for
from plugin.context import build_facts, calendar_for, ledger_for, local_day
from plugin.rules import Decision, RuleSet, is_safety_rule
from plugin.store.models import Client, Event, SessionNote, Suggestion, Therapist

#: Events that change state only; the rules have nothing to say about them.
STATE_ONLY = frozenset({"therapist.upserted", "therapist.practice_logged"})
#: Events whose decisions are private to their therapist: what they write to Tend, and the replies.
PRIVATE_EVENTS = frozenset({"therapist.message"})
SENT_OR_SENDING = ("sending", "delivered")


def limits_for(therapist: Therapist, clinic_cap: int) -> timing.Limits:
    return timing.Limits(daily_cap=therapist.daily_limit or clinic_cap)


def record_ladder(client: Client, decision: Decision, session_number: int) -> None:
    """A suggested step becomes the client's current step; its analogy is used up."""
    if decision.ladder_step is None:
        return
    if decision.ladder_step != client.ladder_step or client.step_session_number is None:
        # Only a new step restarts the count: "sessions since the current step was offered"
        # (repeating a step must not reset it, or a two-sessions-per-step ladder never advances).
        client.step_session_number = session_number if session_number > 0 else None
    client.ladder_step = decision.ladder_step
    client.last_step_response = ""
    if decision.analogy_id and decision.analogy_id not in (client.analogies_offered or []):
        client.analogies_offered = [*(client.analogies_offered or []), decision.analogy_id]


def plan_slot(session: Session, decision: Decision, therapist: Therapist, event: Event, now: datetime, cap: int) -> timing.Slot:
    if decision.message_key is None or decision.timing == "none":
        return timing.Slot(status="logged", deliver_at=None, expires_at=None, reason="recorded for the log; nothing is sent")
    return timing.plan(
        decision.timing,
        decision.audience,
        calendar_for(session, therapist, now, event.client_id),
        now,
        ledger_for(session, therapist, now),
        limits_for(therapist, cap),
        client_key=str(event.client_id) if event.client_id is not None else None,
        safety=is_safety_rule(decision.rule_id),
    )


def suggestion_row(event: Event, therapist: Therapist, decision: Decision, slot: timing.Slot, facts: dict[str, Any], now: datetime) -> Suggestion:
    return Suggestion(
        clinic_id=event.clinic_id,
        event_id=event.id,
        therapist_id=therapist.id,
        client_id=event.client_id if decision.audience == "client" else None,
        appointment_id=int(slot.appointment_id) if slot.appointment_id else None,
        rule_id=decision.rule_id,
        rule_version=decision.rule_version,
        kind=decision.kind,
        audience=decision.audience,
        message_key=decision.message_key,
        practice_id=decision.practice_id,
        ladder_step=decision.ladder_step,
        analogy_id=decision.analogy_id,
        framing_id=decision.framing_id,
        status=slot.status,
        deliver_at=slot.deliver_at,
        expires_at=slot.expires_at,
        timing_reason=slot.reason,
        explanation={
            "conditions": [[name, value] for name, value in decision.conditions],
            "reasons": list(decision.reasons),
            "source": decision.source,
            "source_url": decision.source_url,
            "timing": decision.timing,
            "facts": facts,
        },
        created_at=now,
        # The therapist's own message and Tend's answer to it: only they may read this row
        # (their signals stay in the facts, for their own explanation); see plugin.review.access.
        private=event.type in PRIVATE_EVENTS,
    )


def _earlier_version(session: Session, event: Event) -> int | None:
    """The event that carried the previous version of this note, if this one amends it."""
    if event.type != "session_note.signed":
        return None
    return session.scalar(
        select(SessionNote.event_id).where(SessionNote.clinic_id == event.clinic_id, SessionNote.ehr_id == event.data["note_id"])
    )


def _supersede(session: Session, earlier_event_id: int | None, rule_id: str, slot: timing.Slot) -> timing.Slot:
    """Reconcile a decision with what the note's earlier version already produced."""
    if earlier_event_id is None:
        return slot
    earlier = session.scalar(select(Suggestion).where(Suggestion.event_id == earlier_event_id, Suggestion.rule_id == rule_id))
    if earlier is None:
        return slot
    if earlier.status in SENT_OR_SENDING:
        return timing.Slot(status="skipped", deliver_at=None, expires_at=None, reason="already sent for this session; the note was amended")
    if earlier.status == "scheduled":
        earlier.status, earlier.timing_reason = "cancelled", "superseded by an amended version of the note"
    return slot


def evaluate_event(session: Session, event: Event, rules: RuleSet, now: datetime, clinic_cap: int) -> list[tuple[int, datetime]]:
    """Apply and decide one event; returns (suggestion id, deliver_at) of what is scheduled."""
    earlier_event_id = _earlier_version(session, event)
    apply_event(session, event)
    scheduled: list[tuple[int, datetime]] = []
    if event.therapist_ehr_id is None or event.type in STATE_ONLY:
        return scheduled
    therapist = therapist_for(session, event.clinic_id, event.therapist_ehr_id)
    session.flush()
    facts = build_facts(session, event, therapist, now, ledger_for(session, therapist, now))
    for decision in rules.evaluate(facts):
        slot = plan_slot(session, decision, therapist, event, now, clinic_cap)
        slot = _supersede(session, earlier_event_id, decision.rule_id, slot)
        row = suggestion_row(event, therapist, decision, slot, facts, now)
        session.add(row)
        session.flush()
        metrics.DECISIONS.labels(rule=decision.rule_id, kind=decision.kind).inc()
        if decision.kind == "suggest" and event.client_id is not None and slot.status != "skipped":
            client = session.get(Client, event.client_id)
            if client is not None:
                record_ladder(client, decision, facts["client"]["session_number"])
        if "pause_selfcare_today" in decision.effects:
            therapist.stopped_until = local_day(now, therapist.timezone)[1]
        if slot.status == "scheduled" and slot.deliver_at is not None:
            scheduled.append((row.id, slot.deliver_at))
    return scheduled
