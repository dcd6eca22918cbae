"""A therapist's DM to Tend: read once, recorded as a text-free event, answered at once.

The text is passed to ``plugin.signals.extract_therapist`` inside
``events.from_slack_message`` and dropped; the event row holds only the signal
names (and the message's ts, to answer in its thread). Slack's ``event_id`` is
the dedupe key, so a retried event (``X-Slack-Retry-Num``) or a repeated id is
a duplicate and produces no second reply.

The event is evaluated right here rather than waiting for a worker, and
anything the rules decided for ``now`` (the self-compassion break, or the
distress message) is delivered through the normal ``jobs.deliver`` path, with
its claim, metadata and recovery. The deliver job ``evaluate`` also queued
finds the suggestion already delivered and does nothing. Should this fail
midway, the sweeper evaluates the recorded event and the worker delivers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from plugin import intake, jobs, runtime
from plugin.events import from_slack_message
from plugin.signals import ExtractionError
from plugin.store.db import utcnow
from plugin.store.models import Suggestion

log = logging.getLogger(__name__)

IMMEDIATE = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Handled:
    event_id: int | None
    duplicate: bool
    delivered: tuple[int, ...] = ()


def handle_message(
    rt: runtime.Runtime,
    *,
    clinic_id: str,
    therapist_ehr_id: str,
    event_id: str,
    text: str,
    thread_ts: str | None,
    occurred_at: datetime | None = None,
) -> Handled:
    now = utcnow()
    try:
        event = from_slack_message(
            clinic_id=clinic_id,
            therapist_ehr_id=therapist_ehr_id,
            event_id=event_id,
            occurred_at=occurred_at or now,
            text=text,
            thread_ts=thread_ts,
        )
    except ExtractionError:
        log.warning("therapist message not read: signal extraction failed")
        return Handled(None, duplicate=False)
    accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
    if accepted.duplicate:
        return Handled(accepted.event_id, duplicate=True)
    scheduled = jobs.evaluate(accepted.event_id)
    delivered = []
    with rt.db.session() as session:
        due = [
            sid
            for sid in scheduled
            if (row := session.get(Suggestion, sid)) is not None and row.deliver_at is not None and row.deliver_at <= utcnow() + IMMEDIATE
        ]
    for suggestion_id in due:
        if jobs.deliver(suggestion_id) == "delivered":
            delivered.append(suggestion_id)
    return Handled(accepted.event_id, duplicate=False, delivered=tuple(delivered))
