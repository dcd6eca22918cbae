"""rq job functions: evaluate, deliver, sweep.

rq delivers at least once, so each job is idempotent: ``evaluate`` does nothing
for an event already evaluated (and the suggestion log is unique per event and
rule); ``deliver`` claims its suggestion (``scheduled -> sending``) in a
transaction, and a suggestion found in ``sending`` after a crash is looked up in
the channel's history before anything is posted again.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import metrics, runtime, slack_sendtime, timing
from plugin.apply import apply_event, therapist_for
from plugin.context import build_facts, calendar_for, ledger_for, local_day
from plugin.delivery.base import DeliveryError
from plugin.delivery.compose import payload_for
from plugin.rules import Decision
from plugin.store.db import utcnow
from plugin.store.models import Appointment, Client, DeliveryAttempt, Event, Suggestion, Therapist

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"delivered", "failed", "expired", "skipped", "cancelled", "logged"})
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
SWEEP_EVENT_GRACE = timedelta(seconds=30)
SWEEP_DELIVERY_GRACE = timedelta(seconds=60)
SAFETY_PREFIX = "safety."


# --- evaluate -----------------------------------------------------------------


def _limits(therapist: Therapist, clinic_cap: int) -> timing.Limits:
    return timing.Limits(daily_cap=therapist.daily_limit or clinic_cap)


def _record_ladder(client: Client, decision: Decision, session_number: int) -> None:
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


def _slot_for(session: Session, decision: Decision, therapist: Therapist, event: Event, now: datetime, cap: int) -> timing.Slot:
    if decision.message_key is None or decision.timing == "none":
        return timing.Slot(status="logged", deliver_at=None, expires_at=None, reason="recorded for the log; nothing is sent")
    calendar = calendar_for(session, therapist, now, event.client_id)
    ledger = ledger_for(session, therapist, now)
    client_key = str(event.client_id) if event.client_id is not None else None
    return timing.plan(
        decision.timing,
        decision.audience,
        calendar,
        now,
        ledger,
        _limits(therapist, cap),
        client_key=client_key,
        safety=decision.rule_id.startswith(SAFETY_PREFIX),
    )


def _suggestion_row(event: Event, therapist: Therapist, decision: Decision, slot: timing.Slot, facts: dict, now: datetime) -> Suggestion:
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
    )


def evaluate(event_id: int, now: datetime | None = None) -> list[int]:
    """Apply one recorded event, run the rules, plan timing, log every decision.

    Returns the ids of suggestions scheduled for delivery (already enqueued).
    """
    rt = runtime.current()
    now = now or utcnow()
    scheduled: list[tuple[int, datetime]] = []
    with rt.db.session() as session:
        event = session.scalar(select(Event).where(Event.id == event_id).with_for_update())
        if event is None or event.status == "evaluated":
            return []
        apply_event(session, event)
        if event.therapist_ehr_id is not None and event.type not in ("therapist.upserted", "therapist.practice_logged"):
            therapist = therapist_for(session, event.clinic_id, event.therapist_ehr_id)
            session.flush()
            facts = build_facts(session, event, therapist, now, ledger_for(session, therapist, now))
            for decision in rt.rules_for(event.clinic_id, session).evaluate(facts):
                slot = _slot_for(session, decision, therapist, event, now, rt.settings.daily_cap)
                row = _suggestion_row(event, therapist, decision, slot, facts, now)
                session.add(row)
                session.flush()
                metrics.DECISIONS.labels(rule=decision.rule_id, kind=decision.kind).inc()
                if decision.kind == "suggest" and event.client_id is not None:
                    client = session.get(Client, event.client_id)
                    if client is not None:
                        _record_ladder(client, decision, facts["client"]["session_number"])
                if "pause_selfcare_today" in decision.effects:
                    therapist.stopped_until = local_day(now, therapist.timezone)[1]
                if slot.status == "scheduled" and slot.deliver_at is not None:
                    scheduled.append((row.id, slot.deliver_at))
        event.status = "evaluated"
        event.evaluated_at = now
    for suggestion_id, deliver_at in scheduled:
        rt.queue.deliver_at(deliver_at, suggestion_id)
    return [suggestion_id for suggestion_id, _ in scheduled]


# --- deliver ------------------------------------------------------------------


def _attempt(session: Session, suggestion_id: int, outcome: str, detail: str = "") -> None:
    session.add(DeliveryAttempt(suggestion_id=suggestion_id, at=utcnow(), outcome=outcome, detail=detail[:300]))
    metrics.DELIVERIES.labels(outcome=outcome).inc()


def _recheck(session: Session, row: Suggestion, therapist: Therapist, now: datetime, cap: int) -> timing.Slot:
    if row.rule_id.startswith(SAFETY_PREFIX):
        return timing.Slot(status="scheduled", deliver_at=now, expires_at=None, reason="safety messages are sent at once")
    if row.appointment_id is not None:
        appointment = session.get(Appointment, row.appointment_id)
        if appointment is None or appointment.status == "cancelled":
            return timing.Slot(status="cancelled", deliver_at=None, expires_at=None, reason="the session it prepared for was cancelled")
    calendar = calendar_for(session, therapist, now, row.client_id)
    ledger = ledger_for(session, therapist, now)
    # This suggestion is already counted in the ledger as scheduled; do not count it against itself.
    ledger = timing.Ledger(
        sent_or_scheduled_today=max(0, ledger.sent_or_scheduled_today - 1),
        last_selfcare_at=None if row.audience == "therapist" and ledger.last_selfcare_at == row.deliver_at else ledger.last_selfcare_at,
    )
    return timing.recheck(
        row.deliver_at or now,
        row.expires_at,
        row.audience,
        calendar,
        now,
        ledger,
        _limits(therapist, cap),
        timing=row.explanation.get("timing"),
        appointment_id=str(row.appointment_id) if row.appointment_id else None,
    )


def _claim(rt: runtime.Runtime, suggestion_id: int, now: datetime) -> tuple[Suggestion, Therapist, bool] | None:
    """Move the suggestion to ``sending``; None when there is nothing to send now.

    Returns the row, its therapist and whether this is a recovery of an
    earlier claim whose outcome is unknown.
    """
    presence = slack_sendtime.before_claim(rt, suggestion_id, now)  # Slack zone + DND, outside the transaction
    with rt.db.session() as session:
        row = session.scalar(select(Suggestion).where(Suggestion.id == suggestion_id).with_for_update())
        if row is None or row.status in FINAL_STATUSES:
            return None
        recovering = row.status == "sending"
        if recovering and row.claimed_at is not None and now - row.claimed_at < rt.settings.sending_lease:
            return None  # another worker holds a live claim
        therapist = session.get(Therapist, row.therapist_id)
        assert therapist is not None
        if not recovering:
            slot = _recheck(session, row, therapist, now, rt.settings.daily_cap)
            slot = slack_sendtime.respect_dnd(slot, presence, row.expires_at, therapist.timezone, now)
            if slot.status != "scheduled":
                row.status, row.timing_reason = slot.status, slot.reason
                _attempt(session, row.id, slot.status, slot.reason)
                return None
            if slot.deliver_at is not None and slot.deliver_at > now + timedelta(seconds=5):
                row.deliver_at, row.timing_reason = slot.deliver_at, slot.reason
                _attempt(session, row.id, "deferred", slot.reason)
                session.flush()
                rt.queue.deliver_at(slot.deliver_at, row.id, attempt=f"deferred-{int(slot.deliver_at.timestamp())}")
                return None
        row.status = "sending"
        row.claimed_at = now
        row.attempts += 1
        session.expunge(therapist)
        return row, therapist, recovering or row.attempts > 1


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def deliver(suggestion_id: int) -> str:
    """Send one suggestion if it is still due; returns the resulting status."""
    rt = runtime.current()
    now = utcnow()
    claimed = _claim(rt, suggestion_id, now)
    if claimed is None:
        return "noop"
    row, therapist, uncertain = claimed
    channel = rt.channel
    try:
        sent = slack_sendtime.find_sent(rt, therapist.slack_user_id, row) if uncertain else None
        if sent is None:
            sent = channel.send(therapist.slack_user_id, slack_sendtime.threaded(rt, row, payload_for(row, now, rt.settings.assistance_line)))
    except DeliveryError as err:
        return _after_failure(rt, row, err)
    with rt.db.session() as session:
        stored = session.get(Suggestion, row.id)
        assert stored is not None
        stored.status = "delivered"
        stored.slack_channel, stored.slack_ts = sent.channel, sent.ts
        stored.delivered_at = utcnow()
        _attempt(session, row.id, "delivered", channel.name)
        if stored.deliver_at is not None:
            metrics.DELIVERY_LATENCY.observe(max(0.0, (stored.delivered_at - stored.deliver_at).total_seconds()))
    return "delivered"


def _after_failure(rt: runtime.Runtime, row: Suggestion, err: DeliveryError) -> str:
    with rt.db.session() as session:
        stored = session.get(Suggestion, row.id)
        assert stored is not None
        if err.kind == "permanent" or (err.kind == "transient" and stored.attempts >= MAX_ATTEMPTS):
            stored.status, stored.failure_reason = "failed", err.reason
            _attempt(session, row.id, "failed", err.reason)
            log.warning("delivery of suggestion %s failed: %s", row.id, err.reason)
            return "failed"
        delay = err.retry_after if err.kind == "rate_limited" and err.retry_after else _backoff(stored.attempts)
        retry_at = utcnow() + timedelta(seconds=delay)
        stored.status = "scheduled"
        stored.claimed_at = None
        _attempt(session, row.id, err.kind, err.reason)
    rt.queue.deliver_at(retry_at, row.id, attempt=row.attempts)
    return "retrying"


# --- sweep --------------------------------------------------------------------


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Re-enqueue what a lost enqueue or a crashed worker left behind."""
    rt = runtime.current()
    now = now or utcnow()
    with rt.db.session() as session:
        events = list(
            session.scalars(
                select(Event.id).where(Event.status == "recorded", Event.received_at < now - SWEEP_EVENT_GRACE).limit(500)
            )
        )
        due = list(
            session.scalars(
                select(Suggestion.id)
                .where(Suggestion.status == "scheduled", Suggestion.deliver_at < now - SWEEP_DELIVERY_GRACE)
                .limit(500)
            )
        )
        stuck = list(
            session.scalars(
                select(Suggestion.id).where(Suggestion.status == "sending", Suggestion.claimed_at < now - rt.settings.sending_lease).limit(500)
            )
        )
    for event_id in events:
        rt.queue.evaluate(event_id)
    for suggestion_id in [*due, *stuck]:
        rt.queue.deliver_at(now, suggestion_id, attempt=f"swept-{int(now.timestamp())}")
    counts = {"events": len(events), "due": len(due), "stuck": len(stuck)}
    if any(counts.values()):
        log.info("sweep re-enqueued %s", counts)
    return counts


__all__ = ["evaluate", "deliver", "sweep"]
