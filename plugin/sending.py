"""Sending one suggestion exactly once in effect.

A send is claimed in a transaction (``scheduled -> sending``), made outside
any transaction, and recorded in a second one. A claim left in ``sending`` by a
crash is recovered after a lease: the channel's history is searched for the
message (it carries the suggestion id in its metadata) before posting again.
Slack and Redis are never called while a database lock is held.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import metrics, runtime, slack_sendtime, timing
from plugin.context import calendar_for, ledger_for
from plugin.delivery.base import DeliveryError
from plugin.delivery.compose import payload_for
from plugin.delivery.copy import MissingCopy
from plugin.evaluation import limits_for
from plugin.rules import is_safety_rule
from plugin.store.db import utcnow
from plugin.store.models import Appointment, DeliveryAttempt, Suggestion, Therapist

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"delivered", "failed", "expired", "skipped", "cancelled", "logged"})
MAX_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
DEFER_THRESHOLD = timedelta(seconds=5)


@dataclass(frozen=True)
class Claim:
    """A suggestion this worker may send now."""

    row: Suggestion
    therapist: Therapist
    payload: dict[str, Any]
    uncertain: bool  # an earlier attempt may have posted: look before posting


@dataclass(frozen=True)
class Deferred:
    when: datetime


def record_attempt(session: Session, suggestion_id: int, outcome: str, detail: str = "") -> None:
    session.add(DeliveryAttempt(suggestion_id=suggestion_id, at=utcnow(), outcome=outcome, detail=detail[:300]))
    metrics.DELIVERIES.labels(outcome=outcome).inc()


def _recheck(session: Session, row: Suggestion, therapist: Therapist, now: datetime, cap: int) -> timing.Slot:
    if is_safety_rule(row.rule_id):
        return timing.Slot(status="scheduled", deliver_at=now, expires_at=None, reason="safety messages are sent at once")
    if row.appointment_id is not None:
        appointment = session.get(Appointment, row.appointment_id)
        if appointment is None or appointment.status == "cancelled":
            return timing.Slot(status="cancelled", deliver_at=None, expires_at=None, reason="the session it prepared for was cancelled")
    ledger = ledger_for(session, therapist, now)
    # This suggestion is already counted in the ledger as scheduled; it must not count against itself.
    ledger = timing.Ledger(
        sent_or_scheduled_today=max(0, ledger.sent_or_scheduled_today - 1),
        last_selfcare_at=None if row.audience == "therapist" and ledger.last_selfcare_at == row.deliver_at else ledger.last_selfcare_at,
    )
    return timing.recheck(
        row.deliver_at or now,
        row.expires_at,
        row.audience,
        calendar_for(session, therapist, now, row.client_id),
        now,
        ledger,
        limits_for(therapist, cap),
        timing=row.explanation.get("timing"),
        appointment_id=str(row.appointment_id) if row.appointment_id else None,
    )


def _refuse(session: Session, row: Suggestion, status: str, reason: str) -> None:
    row.status, row.timing_reason = status, reason
    record_attempt(session, row.id, status, reason)


def claim(rt: runtime.Runtime, suggestion_id: int, now: datetime) -> Claim | Deferred | None:
    """Take the suggestion for sending, defer it, or close it; None when nothing is to be done."""
    presence = slack_sendtime.before_claim(rt, suggestion_id, now)  # Slack zone + DND, outside the transaction
    with rt.db.session() as session:
        row = session.scalar(select(Suggestion).where(Suggestion.id == suggestion_id).with_for_update())
        if row is None or row.status in FINAL_STATUSES:
            return None
        recovering = row.status == "sending"
        if recovering and row.claimed_at is not None and now - row.claimed_at < rt.settings.sending_lease:
            return None  # another worker holds a live claim
        therapist = session.get(Therapist, row.therapist_id)
        if therapist is None:
            _refuse(session, row, "failed", "the therapist is no longer known")
            return None
        if not recovering:
            slot = _recheck(session, row, therapist, now, rt.settings.daily_cap)
            slot = slack_sendtime.respect_dnd(slot, presence, row.expires_at, therapist.timezone, now)
            if slot.status != "scheduled":
                _refuse(session, row, slot.status, slot.reason)
                return None
            if slot.deliver_at is not None and slot.deliver_at > now + DEFER_THRESHOLD:
                row.deliver_at, row.timing_reason = slot.deliver_at, slot.reason
                record_attempt(session, row.id, "deferred", slot.reason)
                return Deferred(slot.deliver_at)
        try:
            payload = payload_for(row, now, rt.assistance_line(row.clinic_id, session))
        except (MissingCopy, ValueError) as err:  # PhiLeak is a ValueError: never retried, never sent
            _refuse(session, row, "failed", f"payload refused: {type(err).__name__}")
            log.error("suggestion %s: payload refused (%s)", row.id, type(err).__name__)
            return None
        row.status = "sending"
        row.claimed_at = now
        row.attempts += 1
        session.expunge(therapist)
        return Claim(row, therapist, payload, uncertain=recovering or row.attempts > 1)


def expire_if_late(rt: runtime.Runtime, row: Suggestion, now: datetime) -> bool:
    """A recovered send found nowhere is not posted after its moment has passed."""
    if row.expires_at is None or now < row.expires_at:
        return False
    with rt.db.session() as session:
        stored = session.get(Suggestion, row.id)
        if stored is not None and stored.status == "sending":
            _refuse(session, stored, "expired", "its moment passed while a worker was down")
    return True


def record_sent(rt: runtime.Runtime, row: Suggestion, channel: str, ts: str, channel_name: str) -> None:
    with rt.db.session() as session:
        stored = session.get(Suggestion, row.id)
        if stored is None:
            return
        stored.status = "delivered"
        stored.slack_channel, stored.slack_ts = channel, ts
        stored.delivered_at = utcnow()
        record_attempt(session, row.id, "delivered", channel_name)
        if stored.deliver_at is not None:
            metrics.DELIVERY_LATENCY.observe(max(0.0, (stored.delivered_at - stored.deliver_at).total_seconds()))


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def after_failure(rt: runtime.Runtime, row: Suggestion, err: DeliveryError) -> datetime | None:
    """Record a failed send; returns when to retry, or None when it has failed for good."""
    with rt.db.session() as session:
        stored = session.get(Suggestion, row.id)
        if stored is None:
            return None
        if err.kind == "permanent" or (err.kind == "transient" and stored.attempts >= MAX_ATTEMPTS):
            stored.status, stored.failure_reason = "failed", err.reason
            record_attempt(session, row.id, "failed", err.reason)
            log.warning("delivery of suggestion %s failed: %s", row.id, err.reason)
            return None
        delay = err.retry_after if err.kind == "rate_limited" and err.retry_after else backoff(stored.attempts)
        retry_at = utcnow() + timedelta(seconds=delay)
        # The new time is stored so the sweeper does not pull the retry forward.
        stored.status, stored.claimed_at, stored.deliver_at = "scheduled", None, retry_at
        record_attempt(session, row.id, err.kind, err.reason)
        return retry_at
