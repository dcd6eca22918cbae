"""A small, realistic world for the review tests: two clinics, supervisors, therapists, a log.

Real events go through intake and ``jobs.evaluate`` (so explanations are the real
thing); older weeks are added as rows with varied decisions, statuses and feedback.
Riverside's supervisor and Lakeside's share the EHR id ``S-1`` on purpose: scoping
must still keep each to their own clinic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from plugin import admin, intake, jobs
from plugin.events import from_slack_message, from_wire
from plugin.runtime import Runtime
from plugin.store.models import DeliveryAttempt, Event, Feedback, Suggestion, Therapist
from schemas.ehr import load_event
from tests.conftest import ALL_WEEK, zone_near_noon

NOW = datetime.now(timezone.utc)
# clinic -> therapist EHR id -> (display name, supervisor EHR id)
THERAPISTS = {
    "riverside": {"T-100": ("Dr. Rowan", "S-1"), "T-200": ("Dr. Okafor", "S-1"), "T-300": ("Dr. Lind", "S-2")},
    "lakeside": {"T-900": ("Dr. Vega", "S-1")},
}
USERS = {
    # key: (clinic, email, role, therapist EHR id)
    "admin": ("riverside", "admin@riverside.example", "admin", None),
    "supervisor": ("riverside", "sup@riverside.example", "supervisor", "S-1"),
    "therapist": ("riverside", "rowan@riverside.example", "therapist", "T-100"),
    "other_admin": ("lakeside", "admin@lakeside.example", "admin", None),
    "other_supervisor": ("lakeside", "sup@lakeside.example", "supervisor", "S-1"),
}
KINDS = ("suggest", "nudge", "hold", "defer", "suppress")
STATUSES = ("delivered", "delivered", "scheduled", "logged", "expired", "skipped")
FEEDBACK = ("helpful", "not_helpful", "used_in_session", None, None)
_MESSAGES = itertools.count()  # Slack event ids of the therapists' messages to Tend


@dataclass
class World:
    rt: Runtime
    tokens: dict[str, str] = field(default_factory=dict)
    suggestion_ids: dict[str, list[int]] = field(default_factory=dict)  # therapist EHR id -> ids

    def visible_to(self, who: str) -> set[str]:
        """The therapists each user should see (the scoping matrix's expectation)."""
        clinic, _, role, ehr_id = USERS[who]
        mine = THERAPISTS[clinic]
        if role == "admin":
            return set(mine)
        if role == "supervisor":
            return {t for t, (_, sup) in mine.items() if sup == ehr_id}
        return {ehr_id} if ehr_id in mine else set()

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def _post(rt: Runtime, clinic_id: str, counter: Any, event_type: str, data: dict[str, Any]) -> int:
    _, loaded, occurred = load_event({"type": event_type, "occurred_at": NOW.isoformat(), "data": data})
    event = from_wire(clinic_id=clinic_id, source="ehr", dedupe_key=f"k{next(counter)}", event_type=event_type, occurred_at=occurred, data=loaded)
    accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
    jobs.evaluate(accepted.event_id, now=NOW)
    return accepted.event_id


def _real_day(rt: Runtime, clinic_id: str, ehr_id: str, name: str, supervisor: str, counter: Any) -> None:
    tz = zone_near_noon(NOW)
    therapist = {
        "therapist_id": ehr_id,
        "slack_user_id": f"U{ehr_id.replace('-', '')}",
        "display_name": name,
        "timezone": tz,
        "working_hours": ALL_WEEK,
        "self_compassion_practice": "regular",
        "supervisor_id": supervisor,
    }
    _post(rt, clinic_id, counter, "therapist.upserted", therapist)
    end = NOW - timedelta(minutes=20)
    for i in range(7):
        start = end - timedelta(minutes=50)
        _post(rt, clinic_id, counter, "appointment.booked", {
            "appointment_id": f"A-{ehr_id}-{i}", "therapist_id": ehr_id, "client_id": f"P-{ehr_id}-{i % 3}",
            "start": start.isoformat(), "end": end.isoformat(), "status": "booked",
        })
        end = start - (timedelta(0) if i < 2 else timedelta(minutes=15))
    start = NOW + timedelta(hours=2)
    _post(rt, clinic_id, counter, "appointment.booked", {
        "appointment_id": f"A-{ehr_id}-next", "therapist_id": ehr_id, "client_id": f"P-{ehr_id}-0",
        "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat(), "status": "booked",
    })
    for n, tags in enumerate((["self_criticism"], ["shame", "needs_self_soothing"], ["perfectionism"])):
        _post(rt, clinic_id, counter, "session_note.signed", {
            "note_id": f"N-{ehr_id}-{n}", "therapist_id": ehr_id, "client_id": f"P-{ehr_id}-0",
            "session_start": (NOW - timedelta(minutes=70 + 60 * n)).isoformat(), "session_number": 5 + n,
            "alliance": "established", "phase": "working", "tags": tags,
        })


def _history(rt: Runtime, clinic_id: str, ehr_id: str, weeks: int = 6, per_week: int = 5) -> None:
    """Older weeks of the log: varied decisions, statuses, feedback and delivery attempts."""
    cycle = itertools.count()
    with rt.db.session() as session:
        therapist = session.scalar(select(Therapist).where(Therapist.clinic_id == clinic_id, Therapist.ehr_id == ehr_id))
        sample = session.scalar(select(Suggestion).where(Suggestion.therapist_id == therapist.id).limit(1))
        explanation = sample.explanation if sample is not None else {"conditions": [], "reasons": [], "source": "", "source_url": "", "timing": "next_gap", "facts": {}}
        for week in range(1, weeks + 1):
            for i in range(per_week):
                n = next(cycle)
                at = NOW - timedelta(weeks=week, hours=i * 7 + 1)
                event = Event(clinic_id=clinic_id, source="history", dedupe_key=f"h-{ehr_id}-{week}-{i}", type="session_note.signed",
                              occurred_at=at, received_at=at, therapist_ehr_id=ehr_id, data={}, status="evaluated", evaluated_at=at)
                session.add(event)
                session.flush()
                kind = KINDS[n % len(KINDS)]
                status = STATUSES[n % len(STATUSES)]
                delivered = at + timedelta(minutes=20) if status == "delivered" else None
                row = Suggestion(
                    clinic_id=clinic_id, event_id=event.id, therapist_id=therapist.id, client_id=None,
                    rule_id=("client.suggest.next-step", "therapist.selfcare.overfull-day", "client.hold.empathy-difficulty")[n % 3],
                    rule_version=1, kind=kind, audience="therapist", message_key="messages.overfull_day", status=status,
                    deliver_at=at + timedelta(minutes=20), timing_reason="next gap at 14:50 Europe/London", explanation=explanation,
                    delivered_at=delivered, created_at=at,
                )
                session.add(row)
                session.flush()
                if delivered is not None:
                    session.add(DeliveryAttempt(suggestion_id=row.id, at=delivered, outcome="delivered", detail=""))
                    value = FEEDBACK[n % len(FEEDBACK)]
                    if value:
                        session.add(Feedback(clinic_id=clinic_id, suggestion_id=row.id, feedback=value, source="slack", created_at=delivered + timedelta(minutes=5 + n)))


def add_private_message(rt: Runtime, clinic_id: str, ehr_id: str, text: str = "I'm exhausted and overwhelmed today", at: datetime = NOW) -> list[int]:
    """The therapist writes to Tend (a real ``therapist.message``); returns the ids of the decisions it produced."""
    event = from_slack_message(clinic_id=clinic_id, therapist_ehr_id=ehr_id, event_id=f"Ev-{ehr_id}-{next(_MESSAGES)}", occurred_at=at, text=text, thread_ts=None)
    accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
    jobs.evaluate(accepted.event_id, now=at)
    with rt.db.session() as session:
        return sorted(session.scalars(select(Suggestion.id).where(Suggestion.event_id == accepted.event_id)))


def build_world(rt: Runtime) -> World:
    world = World(rt)
    counter = itertools.count()
    for clinic_id, therapists in THERAPISTS.items():
        admin.create_clinic(rt.db, rt.box, clinic_id.title(), clinic_id)
        for ehr_id, (name, supervisor) in therapists.items():
            _real_day(rt, clinic_id, ehr_id, name, supervisor, counter)
            _history(rt, clinic_id, ehr_id)
    for key, (clinic_id, email, role, ehr_id) in USERS.items():
        world.tokens[key] = admin.add_user(rt.db, email, role, clinic_id, ehr_id).token
    with rt.db.session() as session:
        for clinic_id, therapists in THERAPISTS.items():
            for ehr_id in therapists:
                ids = session.scalars(
                    select(Suggestion.id).join(Therapist, Therapist.id == Suggestion.therapist_id).where(Therapist.clinic_id == clinic_id, Therapist.ehr_id == ehr_id)
                )
                world.suggestion_ids[ehr_id] = sorted(ids)
    return world
