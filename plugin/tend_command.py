"""``/tend <subcommand>``: parse, apply, and answer with a guarded, ephemeral payload.

``break`` (a self-compassion break now; logged as own practice, source ``slack``),
``pause 2h|today|off``, ``hours 08:00-17:00`` (weekdays), ``limit N`` (1-10),
``stats``, ``help``. Anything else, or a bad argument, gets the usage line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin import home, therapist_settings
from plugin.delivery.slack_views import Lines, line
from plugin.store.db import Database
from plugin.store.models import PracticeLog, Therapist

BREAK_PRACTICE = "self_compassion_break"


def usage() -> dict[str, Any]:
    return line("slack.commands.usage")


def answer(db: Database, therapist_id: int, text: str, now: datetime) -> dict[str, Any]:
    words = (text or "").strip().split(None, 1)
    verb = words[0].lower() if words else "help"
    argument = words[1] if len(words) > 1 else ""
    handler = _VERBS.get(verb)
    if handler is None:
        return usage()
    try:
        return handler(db, therapist_id, argument, now)
    except ValueError:
        return usage()


def _no_argument(argument: str) -> None:
    if argument.strip():
        raise ValueError("takes no argument")


def _help(db: Database, therapist_id: int, argument: str, now: datetime) -> dict[str, Any]:
    _no_argument(argument)
    return Lines().section_list("slack.commands.help", bullet="").message()


def _break(db: Database, therapist_id: int, argument: str, now: datetime) -> dict[str, Any]:
    _no_argument(argument)
    with db.session() as session:
        therapist = _therapist(session, therapist_id)
        session.add(PracticeLog(clinic_id=therapist.clinic_id, therapist_id=therapist.id, practice_id=BREAK_PRACTICE, source="slack", at=now))
    return (
        Lines()
        .header("headers.break")
        .section(f"practices.{BREAK_PRACTICE}.body")
        .context("slack.commands.break_logged")
        .message()
    )


def _pause(db: Database, therapist_id: int, argument: str, now: datetime) -> dict[str, Any]:
    with db.session() as session:
        therapist = _therapist(session, therapist_id)
        tz = therapist.timezone or "UTC"
        pause = therapist_settings.parse_pause(argument, now, tz)
        therapist_settings.apply_pause(therapist, pause)
        stopped = therapist.stopped_until if therapist.stopped_until and therapist.stopped_until > now else None
    if pause.until is None:
        if stopped is not None:
            return line("slack.commands.pause_off_still_stopped", until=therapist_settings.local_clock(stopped, tz, now), zone=tz)
        return line("slack.commands.pause_off")
    key = "slack.commands.paused_today" if pause.today else "slack.commands.paused_for"
    return line(key, until=therapist_settings.local_clock(pause.until, tz, now), zone=tz)


def _hours(db: Database, therapist_id: int, argument: str, now: datetime) -> dict[str, Any]:
    start, end = therapist_settings.parse_hours(argument)
    with db.session() as session:
        therapist = _therapist(session, therapist_id)
        therapist_settings.apply_hours(therapist, start, end)
        tz = therapist.timezone or "UTC"
    return line("slack.commands.hours_set", start=start, end=end, zone=tz)


def _limit(db: Database, therapist_id: int, argument: str, now: datetime) -> dict[str, Any]:
    limit = therapist_settings.parse_limit(argument)
    with db.session() as session:
        therapist_settings.apply_limit(_therapist(session, therapist_id), limit)
    return line("slack.commands.limit_set", n=limit)


def _stats(db: Database, therapist_id: int, argument: str, now: datetime) -> dict[str, Any]:
    _no_argument(argument)
    found = home.stats_for(db, therapist_id, now)
    if found is None:
        raise ValueError("unknown therapist")
    return found


def _therapist(session: Any, therapist_id: int) -> Therapist:
    therapist = session.get(Therapist, therapist_id)
    if therapist is None:
        raise ValueError("unknown therapist")
    return therapist


_VERBS = {"help": _help, "break": _break, "pause": _pause, "hours": _hours, "limit": _limit, "stats": _stats}
