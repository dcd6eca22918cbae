"""What an accepted event changes in the store, before the rules look at it.

Each function takes the recorded event row and updates therapists,
appointments, notes or the practice log. Events can arrive out of order
(retries, several workers), so updates older than what a row already reflects
are ignored by comparing ``occurred_at`` with ``updated_from``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from plugin.store.db import utcnow
from plugin.store.models import Appointment, Client, Event, PracticeLog, SessionNote, Suggestion, Therapist

OPEN_STATUSES = ("scheduled",)


def therapist_for(session: Session, clinic_id: str, ehr_id: str) -> Therapist:
    """The therapist row, created with defaults when an event names them first."""
    row = session.scalar(select(Therapist).where(Therapist.clinic_id == clinic_id, Therapist.ehr_id == ehr_id))
    if row is None:
        row = Therapist(clinic_id=clinic_id, ehr_id=ehr_id, timezone="UTC", working_hours={}, created_at=utcnow())
        session.add(row)
        session.flush()
    return row


def _is_stale(updated_from: datetime | None, occurred_at: datetime) -> bool:
    return updated_from is not None and occurred_at < updated_from


def _therapist_upserted(session: Session, event: Event) -> None:
    therapist = therapist_for(session, event.clinic_id, event.therapist_ehr_id or "")
    if _is_stale(therapist.updated_from, event.occurred_at):
        return
    data = event.data
    for field, column in (
        ("slack_user_id", "slack_user_id"),
        ("display_name", "display_name"),
        ("timezone", "timezone"),
        ("working_hours", "working_hours"),
        ("supervisor_id", "supervisor_ehr_id"),
        ("self_compassion_practice", "self_compassion_practice"),
    ):
        if field in data:
            setattr(therapist, column, data[field])
    therapist.updated_from = event.occurred_at


def _practice_logged(session: Session, event: Event) -> None:
    therapist = therapist_for(session, event.clinic_id, event.therapist_ehr_id or "")
    session.add(
        PracticeLog(
            clinic_id=event.clinic_id,
            therapist_id=therapist.id,
            practice_id=event.data.get("practice_id"),
            source=event.source,
            at=event.occurred_at,
        )
    )


def cancel_prepared_suggestions(session: Session, appointment_id: int, reason: str) -> None:
    session.execute(
        update(Suggestion)
        .where(Suggestion.appointment_id == appointment_id, Suggestion.status.in_(OPEN_STATUSES))
        .values(status="cancelled", timing_reason=reason)
    )


def _appointment(session: Session, event: Event) -> None:
    data = event.data
    therapist = therapist_for(session, event.clinic_id, event.therapist_ehr_id or "")
    row = session.scalar(
        select(Appointment).where(Appointment.clinic_id == event.clinic_id, Appointment.ehr_id == data["appointment_id"])
    )
    if row is not None and _is_stale(row.updated_from, event.occurred_at):
        return
    cancelled = event.type == "appointment.cancelled" or data.get("status") in ("cancelled", "noshow")
    values = dict(
        therapist_id=therapist.id,
        client_id=event.client_id,
        start=datetime.fromisoformat(data["start"]),
        end=datetime.fromisoformat(data["end"]),
        status="cancelled" if cancelled else data.get("status", "booked"),
        updated_from=event.occurred_at,
    )
    if row is None:
        row = Appointment(clinic_id=event.clinic_id, ehr_id=data["appointment_id"], **values)
        session.add(row)
        session.flush()
    else:
        for key, value in values.items():
            setattr(row, key, value)
    if cancelled:
        cancel_prepared_suggestions(session, row.id, "the session it prepared for was cancelled")


def _session_note(session: Session, event: Event) -> None:
    data = event.data
    therapist = therapist_for(session, event.clinic_id, event.therapist_ehr_id or "")
    note = session.scalar(select(SessionNote).where(SessionNote.clinic_id == event.clinic_id, SessionNote.ehr_id == data["note_id"]))
    values = dict(
        event_id=event.id,
        therapist_id=therapist.id,
        client_id=event.client_id,
        session_start=datetime.fromisoformat(data["session_start"]),
        session_number=data.get("session_number"),
        signals=data.get("signals", []),
        historical_signals=data.get("historical_signals", []),
    )
    if note is None:  # an amended note keeps one row, carrying the latest signals
        session.add(SessionNote(clinic_id=event.clinic_id, ehr_id=data["note_id"], **values))
    else:
        for key, value in values.items():
            setattr(note, key, value)
    feedback = data.get("practice_feedback")
    client = session.get(Client, event.client_id) if event.client_id else None
    if feedback and client is not None:
        client.last_step_response = feedback["response"]
        client.tolerated_any = client.tolerated_any or feedback["response"] == "tolerated"


def _nothing(session: Session, event: Event) -> None:
    """Messages change no state: the rules read their signals from the event."""


#: Event type -> how it changes the store.
APPLY: dict[str, Callable[[Session, Event], None]] = {
    "therapist.upserted": _therapist_upserted,
    "therapist.practice_logged": _practice_logged,
    "appointment.booked": _appointment,
    "appointment.updated": _appointment,
    "appointment.cancelled": _appointment,
    "session_note.signed": _session_note,
    "client_message.received": _nothing,
    "therapist.message": _nothing,
}


def apply_event(session: Session, event: Event) -> None:
    APPLY[event.type](session, event)
