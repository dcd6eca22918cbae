"""A therapist's own settings from Slack: pause, working hours, daily limit.

Pure parsing (``parse_pause``, ``parse_hours``, ``parse_limit``: ``ValueError``
on bad input, which the command answers with its usage line) and small store
updates. The EHR's ``therapist.upserted`` may set working hours too; whichever
came last wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from plugin.context import local_day
from plugin.delivery import copy
from plugin.store.models import Therapist
from schemas.ehr import is_working_span

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # date.weekday() order; slack.home.days.<key>
WEEKDAYS = DAY_KEYS[:5]
LIMIT_RANGE = range(1, 11)
MAX_PAUSE = timedelta(days=7)
_DURATION = re.compile(r"^(\d{1,4})\s*(m|min|mins|minutes?|h|hr|hrs|hours?|d|days?)$")
_CLOCK = re.compile(r"^([0-9]{1,2}):([0-9]{2})$")
_SPAN = re.compile(r"^(\S+)\s*[-–—]\s*(\S+)$")


@dataclass(frozen=True, slots=True)
class Pause:
    until: datetime | None  # None: pause off
    today: bool = False


def parse_pause(argument: str, now: datetime, tz: str) -> Pause:
    """``2h``, ``30m``, ``today`` or ``off``."""
    arg = argument.strip().lower()
    if arg == "off":
        return Pause(None)
    if arg == "today":
        return Pause(local_day(now, tz)[1], today=True)
    match = _DURATION.match(arg)
    if not match:
        raise ValueError("pause takes 2h, 30m, today or off")
    amount, unit = int(match.group(1)), match.group(2)[0]
    length = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[unit]
    if not timedelta(minutes=1) <= length <= MAX_PAUSE:
        raise ValueError("a pause lasts between a minute and a week")
    return Pause(now + length)


def _clock(value: str) -> str:
    """``8:30`` -> ``08:30`` (a one-digit hour is padded); the range is checked by ``is_working_span``."""
    match = _CLOCK.match(value)
    if not match:
        raise ValueError("not a time of day: HH:MM")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def parse_hours(argument: str) -> tuple[str, str]:
    """``08:00-17:00`` -> ("08:00", "17:00"), by the EHR's rule: 00:00-23:59, the start before the end."""
    match = _SPAN.match(argument.strip())
    if not match:
        raise ValueError("hours take the form 08:00-17:00")
    start, end = _clock(match.group(1)), _clock(match.group(2))
    if not is_working_span(start, end):
        raise ValueError("working hours run from 00:00 to 23:59, the start before the end")
    return start, end


def parse_limit(argument: str) -> int:
    arg = argument.strip()
    if not arg.isdigit() or int(arg) not in LIMIT_RANGE:
        raise ValueError("the daily limit is a whole number from 1 to 10")
    return int(arg)


def apply_pause(therapist: Therapist, pause: Pause) -> None:
    therapist.paused_until = pause.until


def apply_hours(therapist: Therapist, start: str, end: str) -> None:
    """Weekdays only: the therapist's weekends are off unless the EHR says otherwise."""
    therapist.working_hours = {day: [start, end] for day in WEEKDAYS}


def apply_limit(therapist: Therapist, limit: int) -> None:
    therapist.daily_limit = limit


def local_clock(moment: datetime, tz: str, now: datetime | None = None) -> str:
    """``15:30``, or ``Tue 15:30`` when it is not today (local); the day's name from the catalogue."""
    local = moment.astimezone(ZoneInfo(tz))
    if now is not None and local.date() != now.astimezone(ZoneInfo(tz)).date():
        return f"{copy.text(f'slack.home.days.{DAY_KEYS[local.weekday()]}')} {local:%H:%M}"
    return f"{local:%H:%M}"
