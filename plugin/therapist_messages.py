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

When the text cannot be read (``ExtractionError``), the message is still
recorded, text-free, as a ``therapist.message`` with ``signals_unread``, and
answered with a neutral line that names 988 and the clinic's assistance line:
the distress rule cannot fire for a message nobody could read, so the person
who wrote it gets the crisis numbers anyway, and never a cheerful break.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from plugin import intake, jobs, metrics, runtime
from plugin.delivery.blocks import is_assistance_line
from plugin.delivery.slack_views import Lines
from plugin.events import InboundEvent, from_slack_message
from plugin.signals import ExtractionError
from plugin.slack_sendtime import MESSAGE_EVENT, THREAD_FIELD
from plugin.store.db import utcnow
from plugin.store.models import Suggestion

log = logging.getLogger(__name__)

IMMEDIATE = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Handled:
    event_id: int | None
    duplicate: bool
    delivered: tuple[int, ...] = ()
    reply: dict[str, Any] | None = None  # for the listener to post in the message's thread


def unread_reply(assistance_line: str | None) -> dict[str, Any]:
    """The neutral answer to a message Tend could not read: 988, and the clinic's line when set."""
    lines = Lines().section("slack.dm.signals_unread")
    if assistance_line and is_assistance_line(assistance_line):
        lines.vocabulary.add(assistance_line)  # clinic configuration, a phone number
        lines.section("chrome.safety.assistance_line", line=assistance_line)
    return lines.message()


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
        return _unread(rt, clinic_id, therapist_ehr_id, event_id, thread_ts, occurred_at or now)
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


def _unread(rt: runtime.Runtime, clinic_id: str, therapist_ehr_id: str, event_id: str, thread_ts: str | None, occurred_at: datetime) -> Handled:
    """Record the unread message (no text, no signals) once, and answer it with the neutral line."""
    event = InboundEvent(
        clinic_id=clinic_id,
        source="slack",
        dedupe_key=event_id,
        type=MESSAGE_EVENT,
        occurred_at=occurred_at,
        therapist_ehr_id=therapist_ehr_id,
        client_ehr_id=None,
        fields={THREAD_FIELD: thread_ts} if thread_ts else {},
        signals_unread=True,
    )
    accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
    if accepted.duplicate:
        return Handled(accepted.event_id, duplicate=True)
    metrics.THERAPIST_MESSAGES_UNREAD.inc()
    # Not evaluated here: with no signals nothing can fire, and the reply must not wait on (or fail
    # with) evaluation. The sweeper evaluates the recorded event like any other.
    return Handled(accepted.event_id, duplicate=False, reply=unread_reply(rt.assistance_line(clinic_id)))
