"""Record a subscription notification: its events, exactly once, and the subscription's state.

Each notification event becomes one ``Event`` with source ``fhir`` and dedupe
key ``<subscription>#<eventNumber>``. A full resource is mapped and read here
(its text becomes signals and is dropped); an id-only event, or a note whose
text sits behind an attachment ``url``, is recorded as ``fetching`` with the
reference only, and the worker fetches it (``plugin.fhir.fetch``). The
subscription's row tracks the highest event number, the numbers still missing
and when a gap opened, for ``/metrics`` and ``/readyz``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from rq import Retry
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from plugin import intake, metrics
from plugin.events import InboundEvent, from_wire
from plugin.fhir import gaps
from plugin.fhir.mapping import Ignored, map_resource
from plugin.fhir.notification import Notification, NotificationEvent
from plugin.runtime import Runtime
from plugin.store.db import utcnow
from plugin.pseudonyms import client_key
from plugin.store.models import Client, FhirSubscription, SessionNote
from schemas.fhir import MAPPED_RESOURCES

log = logging.getLogger(__name__)
SOURCE = "fhir"
PENDING_TYPE = "fhir.pending"
FETCH_JOB = "plugin.fhir.fetch.fetch_and_evaluate"
FETCH_RETRY = Retry(max=4, interval=[10, 60, 300, 900])
#: A hole younger than this may still be a late delivery (reordering); older ones fail /readyz.
GAP_GRACE = timedelta(minutes=2)
#: Set in an event's data when its text could not be read for signals (the rules treat it as no indication).
UNREAD = "signals_unread"


@dataclass
class Outcome:
    event_number: int
    status: str  # accepted | duplicate | ignored | fetching
    event_id: int | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"event_number": self.event_number, "status": self.status}
        if self.event_id is not None:
            body["event_id"] = self.event_id
        if self.reason:
            body["reason"] = self.reason
        return body


@dataclass
class Receipt:
    type: str
    subscription: str
    outcomes: list[Outcome] = field(default_factory=list)
    missing: int = 0

    @property
    def accepted_any(self) -> bool:
        return any(o.status in ("accepted", "fetching") for o in self.outcomes)


def dedupe_key(subscription: str, number: int) -> str:
    return f"{subscription}#{number}"


def enqueue_fetch(rt: Runtime, event_id: int) -> bool:
    try:
        rt.queue.rq.enqueue(FETCH_JOB, event_id, job_id=f"fhir-fetch-{event_id}", retry=FETCH_RETRY)
        return True
    except RedisError as err:
        log.warning("could not enqueue a FHIR fetch (%s); the sweeper will pick it up", type(err).__name__)
        return False


def record_pending(rt: Runtime, event: InboundEvent) -> intake.Accepted:
    """``intake.accept`` with the event waiting in ``fetching`` for the worker."""
    return intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box, status="fetching")


def with_session_number(rt: Runtime, clinic_id: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """FHIR notes carry no session number: count this client's earlier signed notes.

    Without it the rules would treat every FHIR note as early in therapy
    (``client.defer.no-alliance`` holds while the alliance is unknown and the
    session number is below the minimum), and no suggestion would ever come.
    """
    if event_type != "session_note.signed" or "session_number" in data:
        return data
    key = client_key(rt.settings.pseudonym_key, clinic_id, data["client_id"])
    with rt.db.session() as session:
        earlier = session.scalar(
            select(func.count())
            .select_from(SessionNote)
            .join(Client, Client.id == SessionNote.client_id)
            .where(Client.clinic_id == clinic_id, Client.key_hash == key, SessionNote.ehr_id != data["note_id"])
        ) or 0
    return {**data, "session_number": earlier + 1}


def read_event(*, clinic_id: str, dedupe_key: str, event_type: str, occurred_at: datetime, data: dict[str, Any]) -> InboundEvent:
    """``from_wire`` for a FHIR event, logging when its text could not be read.

    Fail safe rather than fail the delivery (a 500 would make the EHR retry the
    same text forever): ``from_wire`` keeps the signals of the tags only and
    flags the event ``signals_unread``, which the rules must read as no indication.
    """
    event = from_wire(clinic_id=clinic_id, source=SOURCE, dedupe_key=dedupe_key, event_type=event_type, occurred_at=occurred_at, data=data)
    if event.signals_unread:
        log.warning("FHIR event %s of clinic %s: signal extraction failed; recorded without text signals", dedupe_key, clinic_id)
    return event


def _event(rt: Runtime, clinic_id: str, note: Notification, item: NotificationEvent, now: datetime) -> Outcome:
    key = dedupe_key(note.subscription, item.number)
    occurred_at = item.timestamp or now
    pending = {"reference": item.focus, "models": note.models, "attempts": 0}
    if item.resource is None:
        kind = (item.focus or "").split("/")[0]
        if kind not in MAPPED_RESOURCES:
            return Outcome(item.number, "ignored", reason="focus is missing or not a resource type Tend reads")
        waiting = InboundEvent(clinic_id, SOURCE, key, PENDING_TYPE, occurred_at, None, None, fields={"fhir": pending})
        accepted = record_pending(rt, waiting)
        if not accepted.duplicate:
            enqueue_fetch(rt, accepted.event_id)
        return Outcome(item.number, "duplicate" if accepted.duplicate else "fetching", accepted.event_id)
    mapped = map_resource(item.resource)
    if isinstance(mapped, Ignored):
        return Outcome(item.number, "ignored", reason=mapped.reason)
    data = with_session_number(rt, clinic_id, mapped.event_type, mapped.data)
    event = read_event(clinic_id=clinic_id, dedupe_key=key, event_type=mapped.event_type, occurred_at=occurred_at, data=data)
    data.pop("text", None)
    mapped.data.pop("text", None)  # the text goes no further than the signals
    if mapped.attachment_url:
        accepted = record_pending(rt, replace(event, fields={**event.fields, "fhir": {**pending, "attachment_url": mapped.attachment_url}}))
        if not accepted.duplicate:
            enqueue_fetch(rt, accepted.event_id)
        return Outcome(item.number, "duplicate" if accepted.duplicate else "fetching", accepted.event_id)
    accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
    if not accepted.duplicate:
        rt.queue.evaluate(accepted.event_id)
    return Outcome(item.number, "duplicate" if accepted.duplicate else "accepted", accepted.event_id)


def _subscription_row(session, clinic_id: str, note: Notification, now: datetime) -> tuple[FhirSubscription, bool]:  # type: ignore[no-untyped-def]
    query = select(FhirSubscription).where(FhirSubscription.clinic_id == clinic_id, FhirSubscription.subscription == note.subscription)
    row = session.scalar(query.with_for_update())
    if row is not None:
        return row, False
    try:
        with session.begin_nested():
            row = FhirSubscription(
                clinic_id=clinic_id, subscription=note.subscription, status="", last_type="", highest_event_number=0, missing=[],
                gaps_seen=0, last_seen_at=now, created_at=now,
            )
            session.add(row)
            session.flush()
            return row, True
    except IntegrityError:
        return session.scalar(query.with_for_update()), False


def _track(rt: Runtime, clinic_id: str, note: Notification, numbers: list[int], now: datetime) -> int:
    """Update the subscription's state; returns how many event numbers are missing."""
    with rt.db.session() as session:
        row, created = _subscription_row(session, clinic_id, note, now)
        row.topic = note.topic or row.topic
        row.status = note.status or row.status
        row.last_type = note.type
        row.last_seen_at = now
        if note.type == "handshake":
            row.handshake_at = now
        highest, missing = row.highest_event_number, [list(r) for r in row.missing or []]
        if created and note.type != "handshake":
            # First sight without a handshake: start counting here rather than flag the past.
            highest = min(numbers) - 1 if numbers else (note.events_since_start or 0)
        opened = closed = 0
        for number in sorted(numbers):
            seen = gaps.event_received(highest, missing, number)
            highest, missing, opened, closed = seen.highest, seen.missing, opened + seen.opened, closed + seen.closed
        if note.events_since_start is not None and note.type in ("heartbeat", "event-notification"):
            seen = gaps.total_reported(highest, missing, note.events_since_start)
            highest, missing, opened = seen.highest, seen.missing, opened + seen.opened
        if opened:
            metrics.FHIR_GAPS.labels(state="opened").inc(opened)
            row.gaps_seen += 1
            log.warning(
                "FHIR subscription %s of clinic %s: %d event(s) missing (highest event %d)", note.subscription, clinic_id, opened, highest
            )
        if closed:
            metrics.FHIR_GAPS.labels(state="closed").inc(closed)
        row.highest_event_number, row.missing = highest, missing
        if missing and row.missing_since is None:
            row.missing_since = now
        elif not missing:
            row.missing_since = None
        return gaps.count(missing)


def receive(rt: Runtime, clinic_id: str, note: Notification, now: datetime | None = None) -> Receipt:
    now = now or utcnow()
    receipt = Receipt(note.type, note.subscription)
    if note.type == "event-notification":
        for item in note.events:
            outcome = _event(rt, clinic_id, note, item, now)
            receipt.outcomes.append(outcome)
            metrics.EVENTS.labels(source=SOURCE, outcome=outcome.status).inc()
    else:
        metrics.EVENTS.labels(source=SOURCE, outcome=note.type).inc()
    numbers = [item.number for item in note.events] if note.type == "event-notification" else []
    receipt.missing = _track(rt, clinic_id, note, numbers, now)
    return receipt


def ready_check(rt: Runtime) -> str:
    """``/readyz``: "ok", or which subscriptions have had events missing for longer than the grace."""
    cutoff = utcnow() - GAP_GRACE
    try:
        with rt.db.session() as session:
            rows = list(
            session.execute(
                    select(FhirSubscription.clinic_id, FhirSubscription.subscription, FhirSubscription.missing).where(
                        FhirSubscription.missing_since.is_not(None), FhirSubscription.missing_since < cutoff
                    ).limit(20)
                )
            )
    except SQLAlchemyError as err:
        return f"unreadable ({type(err).__name__})"
    if not rows:
        return "ok"
    # /readyz is unauthenticated: the answer gives a count, the log names the clinics and subscriptions.
    for clinic, sub, missing in rows:
        log.warning("readyz: FHIR subscription %s of clinic %s has %d event(s) missing", sub, clinic, gaps.count(missing))
    return f"FHIR events missing on {len(rows)} subscription(s)"
