"""The facts the rules see and the calendar timing needs, read from the store.

Every query here is bounded (one therapist, one local day, one client's last
few notes) and served by an index, so evaluation cost does not grow with the
size of the suggestion log.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plugin.rules import SAFETY_PREFIX
from plugin.rules.facts import default_facts
from plugin.store.models import Appointment, Client, Event, Feedback, PracticeLog, SessionNote, Suggestion, Therapist
from plugin.timing import Busy, Calendar, Ledger

RECENT_NOTES = 5
BACK_TO_BACK_GAP = timedelta(minutes=10)
PRACTICE_WINDOW = timedelta(days=14)
COUNTED_STATUSES = ("scheduled", "sending", "delivered")


def local_day(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """The therapist's local calendar day around ``now``, as aware UTC bounds."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone).date()
    start = datetime.combine(local, time.min, zone)
    end = datetime.combine(local + timedelta(days=1), time.min, zone)
    return start, end


def appointments_around(session: Session, therapist: Therapist, now: datetime, days: int = 2) -> list[Appointment]:
    """Booked appointments from the start of today to ``days`` ahead (for timing)."""
    start, _ = local_day(now, therapist.timezone)
    return list(
        session.scalars(
            select(Appointment)
            .where(
                Appointment.therapist_id == therapist.id,
                Appointment.status != "cancelled",
                Appointment.end > start,
                Appointment.start < start + timedelta(days=days + 1),
            )
            .order_by(Appointment.start)
        )
    )


CLIENT_HORIZON_DAYS = 31


def next_session_with(session: Session, therapist: Therapist, client_id: int, now: datetime) -> datetime | None:
    """The start of this therapist's next session with this client (not another therapist's)."""
    return session.scalar(
        select(func.min(Appointment.start)).where(
            Appointment.therapist_id == therapist.id,
            Appointment.client_id == client_id,
            Appointment.status != "cancelled",
            Appointment.start > now,
        )
    )


def paused_until(therapist: Therapist) -> datetime | None:
    """The later of the therapist's own pause and a safety stop."""
    return max([p for p in (therapist.paused_until, therapist.stopped_until) if p is not None], default=None)


def calendar_for(session: Session, therapist: Therapist, now: datetime, client_id: int | None = None) -> Calendar:
    """The therapist's appointments from today up to two days ahead, or to the client's next session."""
    days = 2
    if client_id is not None and (upcoming := next_session_with(session, therapist, client_id, now)) is not None:
        days = max(days, min(CLIENT_HORIZON_DAYS, (upcoming - now).days + 1))
    appointments = appointments_around(session, therapist, now, days=days)
    busy = [Busy(a.start, a.end, str(a.id), str(a.client_id)) for a in appointments]
    hours = {day: tuple(span) for day, span in (therapist.working_hours or {}).items()}
    return Calendar(tz=therapist.timezone, working_hours=hours, appointments=busy, paused_until=paused_until(therapist))


def ledger_for(session: Session, therapist: Therapist, now: datetime) -> Ledger:
    start, end = local_day(now, therapist.timezone)
    counted = (
        Suggestion.therapist_id == therapist.id,
        Suggestion.status.in_(COUNTED_STATUSES),
        Suggestion.deliver_at >= start,
        Suggestion.deliver_at < end,
        ~Suggestion.rule_id.startswith(SAFETY_PREFIX),  # safety messages never count against the cap
    )
    sent = session.scalar(select(func.count()).select_from(Suggestion).where(*counted)) or 0
    last_selfcare = session.scalar(select(func.max(Suggestion.deliver_at)).where(*counted, Suggestion.audience == "therapist"))
    # "Not now" on a self-care nudge starts the same cooldown a sent nudge does.
    declined = session.scalar(
        select(func.max(Feedback.created_at))
        .join(Suggestion, Suggestion.id == Feedback.suggestion_id)
        .where(
            Suggestion.therapist_id == therapist.id,
            Suggestion.audience == "therapist",
            Feedback.feedback == "not_now",
            Feedback.created_at >= start,
            Feedback.created_at <= now,
        )
    )
    last_selfcare = max((t for t in (last_selfcare, declined) if t is not None), default=None)
    return Ledger(sent_or_scheduled_today=sent, last_selfcare_at=last_selfcare)


def _longest_back_to_back(todays: list[Appointment]) -> int:
    longest = run = 0
    previous_end: datetime | None = None
    for appointment in todays:
        run = run + 1 if previous_end is not None and appointment.start - previous_end < BACK_TO_BACK_GAP else 1
        longest = max(longest, run)
        previous_end = max(previous_end or appointment.end, appointment.end)
    return longest


def therapist_facts(session: Session, therapist: Therapist, now: datetime, signals: list[str], ledger: Ledger) -> dict[str, Any]:
    start, end = local_day(now, therapist.timezone)
    todays = [a for a in appointments_around(session, therapist, now, days=0) if a.start < end and a.end > start]
    practice = session.scalar(
        select(func.count()).select_from(PracticeLog).where(PracticeLog.therapist_id == therapist.id, PracticeLog.at >= now - PRACTICE_WINDOW)
    )
    paused = paused_until(therapist)
    return {
        "self_compassion_practice": therapist.self_compassion_practice,
        "signals": sorted(signals),
        "sessions_today": len(todays),
        "longest_back_to_back": _longest_back_to_back(todays),
        "booked_minutes_today": int(sum(((a.end - a.start).total_seconds() for a in todays), 0.0) // 60),
        "own_practice_14d": practice or 0,
        "nudges_today": ledger.sent_or_scheduled_today,
        "paused": paused is not None and paused > now,
    }


def client_facts(session: Session, client: Client, event: Event, therapist: Therapist, now: datetime) -> dict[str, Any]:
    data = event.data
    notes = list(
        session.scalars(
            select(SessionNote).where(SessionNote.client_id == client.id).order_by(SessionNote.session_start.desc()).limit(RECENT_NOTES)
        )
    )
    recent = {s for note in notes for s in (*note.signals, *note.historical_signals)}
    recent.update(data.get("signals", []))
    session_number = data.get("session_number") or (notes[0].session_number if notes and notes[0].session_number else -1)
    since_step = -1
    if client.step_session_number is not None and session_number > 0:
        since_step = session_number - client.step_session_number
    upcoming = next_session_with(session, therapist, client.id, now)
    return {
        "present": True,
        "signals": list(data.get("signals", [])),
        "recent_signals": sorted(recent),
        "historical_signals": list(data.get("historical_signals", [])),
        "session_number": session_number,
        "alliance": data.get("alliance", ""),
        "phase": data.get("phase", ""),
        "age": data.get("client_age", -1),
        "ladder_step": client.ladder_step,
        "last_step_response": client.last_step_response,
        "sessions_since_step": since_step,
        "tolerated_any": client.tolerated_any,
        "analogies_offered": list(client.analogies_offered or []),
        "next_appointment_in_minutes": int((upcoming - now).total_seconds() // 60) if upcoming else -1,
    }


def build_facts(session: Session, event: Event, therapist: Therapist, now: datetime, ledger: Ledger) -> dict[str, Any]:
    """The facts dict of docs/contracts.md for one recorded event."""
    facts = default_facts()
    facts["event"] = {"type": event.type, "time": event.occurred_at.isoformat()}
    therapist_signals = list(event.data.get("therapist_signals", []))
    if event.data.get("alliance") == "ruptured":
        therapist_signals.append("difficult_session")
    facts["therapist"] = therapist_facts(session, therapist, now, sorted(set(therapist_signals)), ledger)
    if event.client_id is not None:
        # Locked: two events for one client on two workers must not both climb the ladder.
        client = session.get(Client, event.client_id, with_for_update=True)
        if client is not None:
            facts["client"] = client_facts(session, client, event, therapist, now)
    return facts
