"""rq job functions: evaluate, deliver, sweep. Plain functions; arguments are ids.

rq runs a job at least once, so each is idempotent: ``evaluate`` does nothing
for an event already evaluated (and the suggestion log is unique per event and
rule); ``deliver`` claims its suggestion before sending and recovers an
uncertain earlier attempt from the channel's history (``plugin/sending.py``).

A job that fails raises ``JobFailed`` naming only the exception's type and
where it happened: rq stores and logs a failed job's exception, and a message
could carry values from the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import ParamSpec, TypeVar

from sqlalchemy import select

from plugin import runtime, sending, slack_sendtime
from plugin.delivery.base import DeliveryError
from plugin.evaluation import evaluate_event
from plugin.failures import describe
from plugin.store.db import utcnow
from plugin.store.models import Event, Suggestion

log = logging.getLogger(__name__)

MAX_EVALUATIONS = 5
SWEEP_EVENT_GRACE = timedelta(seconds=30)
SWEEP_DELIVERY_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 500

P = ParamSpec("P")
R = TypeVar("R")


class JobFailed(Exception):
    """A job's failure, described without any value it was working on."""


def text_free_failures(job: Callable[P, R]) -> Callable[P, R]:
    @wraps(job)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return job(*args, **kwargs)
        except JobFailed:
            raise
        except Exception as err:
            raise JobFailed(describe(err)) from None

    return run


# --- evaluate -----------------------------------------------------------------


@text_free_failures
def evaluate(event_id: int, now: datetime | None = None) -> list[int]:
    """Apply one recorded event, run the rules, plan timing, log every decision.

    Returns the ids of suggestions scheduled for delivery: those due now are
    sent from this job, the others enqueued for their time.
    An event that keeps failing is marked ``failed`` after a few tries so the
    sweeper stops returning it.
    """
    rt = runtime.current()
    live = now is None  # a simulated clock (replay, tests) never sends from here
    now = now or utcnow()
    try:
        with rt.db.session() as session:
            event = session.scalar(select(Event).where(Event.id == event_id).with_for_update())
            if event is None or event.status != "recorded":
                return []
            scheduled = evaluate_event(session, event, rt.rules_for(event.clinic_id, session), now, rt.settings.daily_cap)
            event.status, event.evaluated_at = "evaluated", now
    except Exception as err:
        _count_failure(rt, event_id, err)
        raise
    for suggestion_id, deliver_at in scheduled:
        if live and deliver_at <= utcnow() and _deliver_inline(suggestion_id):
            continue
        rt.queue.deliver_at(deliver_at, suggestion_id)
    return [suggestion_id for suggestion_id, _ in scheduled]


def _deliver_inline(suggestion_id: int) -> bool:
    """Send a suggestion that is due now in this job rather than through a second one.

    Half the queue work per event. Safe because ``deliver`` claims the row
    first: if it fails after a claim, a queued retry finds the live claim and
    the sweeper recovers it; a crash here is swept up like a lost enqueue.
    """
    try:
        deliver(suggestion_id)
        return True
    except JobFailed:
        return False


def _count_failure(rt: runtime.Runtime, event_id: int, err: Exception) -> None:
    with rt.db.session() as session:
        event = session.get(Event, event_id)
        if event is None or event.status != "recorded":
            return
        event.attempts += 1
        event.error = type(err).__name__
        if event.attempts >= MAX_EVALUATIONS:
            event.status = "failed"
            log.error("event %s failed evaluation %s times (%s); left for an operator", event_id, event.attempts, event.error)


# --- deliver ------------------------------------------------------------------


@text_free_failures
def deliver(suggestion_id: int) -> str:
    """Send one suggestion if it is still due; returns what happened."""
    rt = runtime.current()
    now = utcnow()
    claimed = sending.claim(rt, suggestion_id, now)
    if claimed is None:
        return "noop"
    if isinstance(claimed, sending.Deferred):
        rt.queue.deliver_at(claimed.when, suggestion_id, attempt=f"deferred-{int(claimed.when.timestamp())}")
        return "deferred"
    row, therapist = claimed.row, claimed.therapist
    try:
        sent = slack_sendtime.find_sent(rt, therapist.slack_user_id, row) if claimed.uncertain else None
        if sent is None:
            if claimed.uncertain and sending.expire_if_late(rt, row, now):
                return "expired"
            sent = rt.channel.send(therapist.slack_user_id, slack_sendtime.threaded(rt, row, claimed.payload))
    except DeliveryError as err:
        retry_at = sending.after_failure(rt, row, err)
        if retry_at is None:
            return "failed"
        rt.queue.deliver_at(retry_at, row.id, attempt=row.attempts)
        return "retrying"
    sending.record_sent(rt, row, sent.channel, sent.ts, rt.channel.name)
    return "delivered"


# --- sweep --------------------------------------------------------------------


@text_free_failures
def sweep(now: datetime | None = None) -> dict[str, int]:
    """Re-enqueue what a lost enqueue or a crashed worker left behind."""
    rt = runtime.current()
    now = now or utcnow()
    with rt.db.session() as session:
        events = list(
            session.scalars(
                select(Event.id).where(Event.status == "recorded", Event.received_at < now - SWEEP_EVENT_GRACE).limit(SWEEP_BATCH)
            )
        )
        due = list(
            session.scalars(
                select(Suggestion.id)
                .where(Suggestion.status == "scheduled", Suggestion.deliver_at < now - SWEEP_DELIVERY_GRACE)
                .limit(SWEEP_BATCH)
            )
        )
        stuck = list(
            session.scalars(
                select(Suggestion.id).where(Suggestion.status == "sending", Suggestion.claimed_at < now - rt.settings.sending_lease).limit(SWEEP_BATCH)
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
