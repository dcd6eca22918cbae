"""When may a decision reach a therapist (DESIGN.md §4.5).

Pure functions over small dataclasses: no I/O, no clock, no globals. ``now`` is
always passed in so that the delivery worker, the planner and the tests agree on
what "today" means. Local days and working hours are computed with ``zoneinfo``
in the therapist's IANA zone, so daylight-saving days get the right length;
every datetime handed back is aware UTC.

Two entry points:

* :func:`plan` runs when a decision is made and picks the moment to deliver it.
* :func:`recheck` runs at send time, because the calendar, the pause and the
  ledger may have changed since planning (a session booked into the gap, a
  ``/tend pause``, other nudges sent).

Safety messages (``safety=True``) are the one exception to every limit here:
they go out at once, ignoring the daily cap, the self-care cooldown, the pause
and working hours, because a therapist following a risk protocol must not wait
for a gap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "AUDIENCES",
    "DEFAULT_WORKING_HOURS",
    "TIMINGS",
    "Busy",
    "Calendar",
    "Ledger",
    "Limits",
    "Slot",
    "plan",
    "recheck",
]

TIMINGS = frozenset({"now", "next_gap", "before_next_appointment", "pre_session", "none"})
AUDIENCES = frozenset({"therapist", "client"})
# plan()/recheck() return the first three; callers also record decisions that send
# nothing ("logged") and sends whose session was cancelled ("cancelled") as Slots.
STATUSES = frozenset({"scheduled", "expired", "skipped", "logged", "cancelled"})

_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WORKING_HOURS: Mapping[str, tuple[str, str]] = {
    day: ("08:00", "18:00") for day in _DAY_KEYS[:5]
}

Interval = tuple[datetime, datetime]
Hold = tuple[datetime, str]


def _require_aware(value: datetime | None, name: str) -> None:
    """Naive datetimes would silently be read as server-local time; refuse them."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be a timezone-aware datetime")


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class Busy:
    """One appointment. Aware datetimes, validated here so that a bad EHR
    payload fails loudly at the seam instead of producing a nudge at 3 a.m."""

    start: datetime
    end: datetime
    appointment_id: str
    client_key: str | None

    def __post_init__(self) -> None:
        _require_aware(self.start, "Busy.start")
        _require_aware(self.end, "Busy.end")
        if self.end < self.start:
            raise ValueError(f"appointment {self.appointment_id} ends before it starts")


@dataclass(frozen=True, slots=True)
class Calendar:
    """What the therapist's day looks like. An empty ``working_hours`` means the
    clinic never configured it, so Mon–Fri 08:00–18:00 applies; a non-empty one
    is authoritative and a missing day is a day off."""

    tz: str
    working_hours: Mapping[str, tuple[str, str]]
    appointments: Sequence[Busy]
    paused_until: datetime | None = None

    def __post_init__(self) -> None:
        _require_aware(self.paused_until, "Calendar.paused_until")
        unknown = set(self.working_hours) - set(_DAY_KEYS)
        if unknown:
            # "monday" instead of "mon" would otherwise read as a week of days off.
            raise ValueError(f"unknown working-hours day(s) {sorted(unknown)}; use {', '.join(_DAY_KEYS)}")


@dataclass(frozen=True, slots=True)
class Ledger:
    """What this therapist already has today (their local day).

    For :func:`recheck` the ledger must *exclude* the suggestion being
    rechecked, otherwise it would count against itself."""

    sent_or_scheduled_today: int
    last_selfcare_at: datetime | None

    def __post_init__(self) -> None:
        _require_aware(self.last_selfcare_at, "Ledger.last_selfcare_at")


@dataclass(frozen=True, slots=True)
class Limits:
    """Clinic-tunable thresholds; defaults are the ones DESIGN.md §4.5 names."""

    daily_cap: int = 3
    selfcare_cooldown: timedelta = timedelta(hours=2)
    min_gap: timedelta = timedelta(minutes=5)
    pre_buffer: timedelta = timedelta(minutes=2)
    client_lead: timedelta = timedelta(minutes=30)
    pre_session_lead: timedelta = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Slot:
    """The verdict. ``reason`` is for logs and supervisors, never Slack copy."""

    status: str
    deliver_at: datetime | None
    expires_at: datetime | None
    reason: str
    appointment_id: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown slot status {self.status!r}")
        _require_aware(self.deliver_at, "Slot.deliver_at")
        _require_aware(self.expires_at, "Slot.expires_at")


# --------------------------------------------------------------------------
# Calendar arithmetic
# --------------------------------------------------------------------------


def _zone(cal: Calendar) -> ZoneInfo:
    """A bad zone name is a configuration error, not a reason to guess UTC."""
    try:
        return ZoneInfo(cal.tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {cal.tz!r}") from exc


def _local_instant(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    """Wall-clock time on a local day, as UTC; "24:00" is the next midnight so
    a shift can run to the end of the day. Times skipped by a spring-forward
    resolve with fold=0 (the pre-transition offset), as zoneinfo does."""
    try:
        hours, minutes = (int(part) for part in hhmm.split(":"))
    except ValueError as exc:
        raise ValueError(f"working hours must be HH:MM, got {hhmm!r}") from exc
    if (hours, minutes) == (24, 0):
        return datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone).astimezone(
            timezone.utc
        )
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ValueError(f"working hours must be HH:MM, got {hhmm!r}")
    return datetime.combine(day, time(hours, minutes), tzinfo=zone).astimezone(timezone.utc)


def _working_window(cal: Calendar, zone: ZoneInfo, day: date) -> Interval | None:
    """Working hours of one local day in UTC, so DST days are 23 or 25 hours
    long where they should be. None means a day off."""
    hours = cal.working_hours or DEFAULT_WORKING_HOURS
    span = hours.get(_DAY_KEYS[day.weekday()])
    if span is None:
        return None
    start, end = _local_instant(day, span[0], zone), _local_instant(day, span[1], zone)
    if end <= start:
        raise ValueError(f"working hours {span[0]}-{span[1]} end before they start")
    return start, end


def _blocked_intervals(cal: Calendar, limits: Limits) -> list[Interval]:
    """Appointments widened by the pre-buffer, sorted and merged: the therapist
    is getting ready in the two minutes before a session, so that is not a gap."""
    spans = sorted(
        (_utc(busy.start) - limits.pre_buffer, _utc(busy.end)) for busy in cal.appointments
    )
    merged: list[Interval] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _subtract(window: Interval, blocked: Sequence[Interval]) -> list[Interval]:
    """The parts of ``window`` no appointment touches."""
    cursor, hi = window
    free: list[Interval] = []
    for start, end in blocked:
        if end <= cursor:
            continue
        if start >= hi:
            break
        if start > cursor:
            free.append((cursor, start))
        cursor = max(cursor, end)
        if cursor >= hi:
            return free
    if cursor < hi:
        free.append((cursor, hi))
    return free


def _free_moments(
    cal: Calendar, zone: ZoneInfo, blocked: Sequence[Interval], lo: datetime, hi: datetime
) -> Iterator[Interval]:
    """Free working intervals within [lo, hi), in order, day by day. A generator
    so that a search for the *first* gap stops early even when the appointment
    it prepares for is weeks away."""
    if hi <= lo:
        return
    day = lo.astimezone(zone).date()
    last = (hi - timedelta(microseconds=1)).astimezone(zone).date()
    while day <= last:
        window = _working_window(cal, zone, day)
        if window is not None:
            clipped = (max(window[0], lo), min(window[1], hi))
            if clipped[0] < clipped[1]:
                yield from _subtract(clipped, blocked)
        day += timedelta(days=1)


def _gaps(free: Iterator[Interval], min_gap: timedelta) -> Iterator[Interval]:
    """A gap counts only if it leaves ``min_gap`` from the delivery moment to the
    next blocked time: a 3-minute hole between sessions is no time for a break."""
    return (span for span in free if span[1] - span[0] >= min_gap)


def _first_gap(
    cal: Calendar, zone: ZoneInfo, blocked: Sequence[Interval], limits: Limits,
    lo: datetime, hi: datetime,
) -> datetime | None:
    return next((span[0] for span in _gaps(_free_moments(cal, zone, blocked, lo, hi), limits.min_gap)), None)


def _first_unblocked(blocked: Sequence[Interval], lo: datetime, hi: datetime) -> datetime | None:
    """First moment in [lo, hi) outside every appointment, working hours aside."""
    free = _subtract((lo, hi), blocked) if lo < hi else []
    return free[0][0] if free else None


def _is_free_working_moment(
    cal: Calendar, zone: ZoneInfo, blocked: Sequence[Interval], moment: datetime
) -> bool:
    window = _working_window(cal, zone, moment.astimezone(zone).date())
    if window is None or not window[0] <= moment < window[1]:
        return False
    return not any(start <= moment < end for start, end in blocked)


def _next_appointment(cal: Calendar, client_key: str | None, after: datetime) -> Busy | None:
    """The next session starting after ``after``; with a client key, the next
    session *with that client*, since a suggestion prepares for that one."""
    upcoming = [
        busy for busy in cal.appointments
        if _utc(busy.start) > after and (client_key is None or busy.client_key == client_key)
    ]
    return min(upcoming, key=lambda busy: _utc(busy.start), default=None)


def _find_appointment(cal: Calendar, appointment_id: str) -> Busy | None:
    return next((b for b in cal.appointments if b.appointment_id == appointment_id), None)


# --------------------------------------------------------------------------
# Wording: reasons carry local time and zone so a supervisor can read them
# --------------------------------------------------------------------------


def _at(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return f"{local:%H:%M} {zone.key}"
    return f"{local:%a %d %b %H:%M} {zone.key}"


def _minutes(span: timedelta) -> str:
    count = int(span.total_seconds() // 60)
    return f"{count} minute" if count == 1 else f"{count} minutes"


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours.is_integer():
        return "1 hour" if hours == 1 else f"{int(hours)} hours"
    return _minutes(span)


def _it_is(zone: ZoneInfo, now: datetime) -> str:
    return f"(it is {now.astimezone(zone):%a %H:%M} {zone.key})"


# --------------------------------------------------------------------------
# Limits: cap, pause, cooldown
# --------------------------------------------------------------------------


def _cap_reached(ledger: Ledger, limits: Limits, zone: ZoneInfo, now: datetime) -> Slot | None:
    if ledger.sent_or_scheduled_today >= limits.daily_cap:
        return Slot("skipped", None, None, f"daily limit of {limits.daily_cap} reached {_it_is(zone, now)}")
    return None


def _holds(
    audience: str, cal: Calendar, ledger: Ledger, limits: Limits, zone: ZoneInfo,
    now: datetime, *, cooldown: bool,
) -> list[Hold]:
    """Moments before which nothing may go out, each with its plain reason.
    The cooldown only binds unprompted self-care nudges to the therapist."""
    holds: list[Hold] = []
    if cal.paused_until is not None and _utc(cal.paused_until) > now:
        until = _utc(cal.paused_until)
        holds.append((until, f"paused until {_at(until, zone, now)}"))
    if cooldown and audience == "therapist" and ledger.last_selfcare_at is not None:
        until = _utc(ledger.last_selfcare_at) + limits.selfcare_cooldown
        if until > now:
            holds.append((
                until,
                f"one self-care nudge per {_hours(limits.selfcare_cooldown)}; the last went out at "
                f"{_at(_utc(ledger.last_selfcare_at), zone, now)}, the next may follow from "
                f"{_at(until, zone, now)}",
            ))
    return holds


def _binding(holds: Sequence[Hold], moment: datetime) -> Hold | None:
    """The latest hold still in force at ``moment``: deferring past it clears all."""
    later = [hold for hold in holds if hold[0] > moment]
    return max(later, key=lambda hold: hold[0]) if later else None


# --------------------------------------------------------------------------
# Per-timing planners (shared by plan and recheck)
# --------------------------------------------------------------------------


def _send_now(now: datetime, reason: str, expires_at: datetime | None = None) -> Slot:
    return Slot("scheduled", now, expires_at, reason)


def _immediate(holds: Sequence[Hold], zone: ZoneInfo, now: datetime) -> Slot:
    """A reply to the therapist's own message makes no sense later, so a pause
    skips it rather than deferring it."""
    hold = _binding(holds, now)
    if hold is not None:
        return Slot("skipped", None, None, f"{hold[1]}; an immediate reply cannot wait")
    return _send_now(now, f"immediate reply at {_at(now, zone, now)}")


def _next_gap(
    cal: Calendar, zone: ZoneInfo, limits: Limits, holds: Sequence[Hold],
    now: datetime, lo: datetime, limit: datetime | None,
) -> Slot:
    """Therapist nudges belong to *today*: the next gap in today's working
    hours, or nothing. Expiry is the end of today's working hours so that a
    late worker never sends it at night or tomorrow."""
    today = now.astimezone(zone).date()
    window = _working_window(cal, zone, today)
    if window is None:
        return Slot("expired", None, None, f"{today:%A} is not a working day {_it_is(zone, now)}")
    expires = window[1] if limit is None else min(window[1], limit)
    blocked = _blocked_intervals(cal, limits)
    moment = _first_gap(cal, zone, blocked, limits, lo, expires)
    if moment is None:
        return Slot(
            "expired", None, None,
            f"no gap of {_minutes(limits.min_gap)} left in today's working hours {_it_is(zone, now)}",
        )
    hold = _binding(holds, moment)
    if hold is None:
        return Slot("scheduled", moment, expires, f"next gap at {_at(moment, zone, now)}")
    moment = _first_gap(cal, zone, blocked, limits, hold[0], expires)
    if moment is None:
        reason = f"{hold[1]}; no gap of {_minutes(limits.min_gap)} after that today"
        return Slot("skipped", None, None, reason)
    return Slot("scheduled", moment, expires, f"next gap at {_at(moment, zone, now)}, after: {hold[1]}")


def _pre_session(
    cal: Calendar, zone: ZoneInfo, limits: Limits, holds: Sequence[Hold],
    now: datetime, lo: datetime, appt: Busy,
) -> Slot:
    """Between ``pre_session_lead`` and ``pre_buffer`` before the session, at the
    first moment no other appointment covers. Not bound to working hours: the
    session itself shows the therapist is at work (an evening client)."""
    start = _utc(appt.start)
    expires = start - limits.pre_buffer
    blocked = _blocked_intervals(cal, limits)
    moment = _first_unblocked(blocked, max(lo, start - limits.pre_session_lead), expires)
    session = f"the session at {_at(start, zone, now)}"
    if moment is None:
        return Slot(
            "expired", None, expires,
            f"no free moment between {_minutes(limits.pre_session_lead)} and "
            f"{_minutes(limits.pre_buffer)} before {session}",
            appt.appointment_id,
        )
    hold = _binding(holds, moment)
    if hold is not None:
        moment = _first_unblocked(blocked, hold[0], expires)
        if moment is None:
            return Slot("skipped", None, expires, f"{hold[1]}; too late for {session}", appt.appointment_id)
    minutes = _minutes(start - moment)
    return Slot(
        "scheduled", moment, expires,
        f"at {_at(moment, zone, now)}, {minutes} before {session}", appt.appointment_id,
    )


def _client_moment(
    cal: Calendar, zone: ZoneInfo, limits: Limits, blocked: Sequence[Interval],
    now: datetime, earliest: datetime, start: datetime,
) -> tuple[datetime, str] | None:
    """Where a client suggestion lands, in order of preference: the last gap on
    the session's day nearest to ``client_lead`` before it; the first gap from
    the next working morning; the next gap from now; now itself if it is a free
    working moment. Each step keeps it strictly before the session."""
    target = start - limits.client_lead
    day = start.astimezone(zone).date()
    day_start = datetime.combine(day, time(0, 0), tzinfo=zone).astimezone(timezone.utc)
    last = None
    for span in _gaps(_free_moments(cal, zone, blocked, max(earliest, day_start), start), limits.min_gap):
        last = span
    if last is not None:
        moment = min(max(target, last[0]), last[1] - limits.min_gap)
        exact = moment == target
        label = f"{_minutes(limits.client_lead)} before" if exact else "in the last free gap before"
        return moment, label
    morning = _next_working_morning(cal, zone, earliest, start)
    if morning is not None:
        moment = _first_gap(cal, zone, blocked, limits, morning, start)
        if moment is not None:
            return moment, "the next working morning, before"
    moment = _first_gap(cal, zone, blocked, limits, earliest, start)
    if moment is not None:
        return moment, "in the next free gap before"
    if earliest == now and _is_free_working_moment(cal, zone, blocked, now):
        return now, "now, the last free working moment before"
    return None


def _next_working_morning(
    cal: Calendar, zone: ZoneInfo, after: datetime, before: datetime
) -> datetime | None:
    """Start of the first working window that opens at or after ``after``."""
    day = after.astimezone(zone).date()
    last = before.astimezone(zone).date()
    while day <= last:
        window = _working_window(cal, zone, day)
        if window is not None and window[0] >= after:
            return window[0] if window[0] < before else None
        day += timedelta(days=1)
    return None


def _before_appointment(
    cal: Calendar, zone: ZoneInfo, limits: Limits, holds: Sequence[Hold],
    now: datetime, lo: datetime, appt: Busy,
) -> Slot:
    start = _utc(appt.start)
    blocked = _blocked_intervals(cal, limits)
    session = f"the session at {_at(start, zone, now)}"
    found = _client_moment(cal, zone, limits, blocked, now, lo, start)
    if found is None:
        return Slot("expired", None, start, f"no free working moment before {session}", appt.appointment_id)
    hold = _binding(holds, found[0])
    if hold is not None:
        found = _client_moment(cal, zone, limits, blocked, now, hold[0], start)
        if found is None:
            reason = f"{hold[1]}; no free moment after that before {session}"
            return Slot("skipped", None, start, reason, appt.appointment_id)
    moment, label = found
    reason = f"{_at(moment, zone, now)}, {label} {session}"
    return Slot("scheduled", moment, start, reason, appt.appointment_id)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def _check_inputs(timing: str, audience: str, now: datetime) -> None:
    if timing not in TIMINGS:
        raise ValueError(f"unknown timing {timing!r}")
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    _require_aware(now, "now")


def _safety(now: datetime, zone: ZoneInfo) -> Slot:
    return _send_now(
        now, f"safety message: sent at once at {_at(now, zone, now)}, ignoring caps, pause and working hours"
    )


def plan(
    decision_timing: str,
    audience: str,
    cal: Calendar,
    now: datetime,
    ledger: Ledger,
    limits: Limits = Limits(),
    *,
    client_key: str | None = None,
    safety: bool = False,
) -> Slot:
    """Pick the moment a fresh decision may reach the therapist.

    ``safety=True`` marks the safety lines (risk language, therapist distress):
    they are delivered now whatever the cap, pause, cooldown or hour.
    """
    _check_inputs(decision_timing, audience, now)
    now, zone = _utc(now), _zone(cal)
    if safety:
        return _safety(now, zone)
    if decision_timing == "none":
        return Slot("skipped", None, None, f"log only: this decision is not delivered {_it_is(zone, now)}")
    capped = _cap_reached(ledger, limits, zone, now)
    if capped is not None:
        return capped
    if decision_timing == "now":
        return _immediate(_holds(audience, cal, ledger, limits, zone, now, cooldown=False), zone, now)
    holds = _holds(audience, cal, ledger, limits, zone, now, cooldown=True)
    if decision_timing == "next_gap":
        return _next_gap(cal, zone, limits, holds, now, now, None)
    if decision_timing == "pre_session":
        appt = _next_appointment(cal, client_key, now + limits.pre_buffer)
        if appt is None:
            return Slot("skipped", None, None, f"no upcoming session with this client {_it_is(zone, now)}")
        return _pre_session(cal, zone, limits, holds, now, now, appt)
    if client_key is None:
        raise ValueError("before_next_appointment needs a client_key")
    appt = _next_appointment(cal, client_key, now)
    if appt is None:
        return Slot("skipped", None, None, f"no upcoming session with this client {_it_is(zone, now)}")
    return _before_appointment(cal, zone, limits, holds, now, now, appt)


def _default_timing(audience: str) -> str:
    return "next_gap" if audience == "therapist" else "before_next_appointment"


def recheck(
    deliver_at: datetime,
    expires_at: datetime | None,
    audience: str,
    cal: Calendar,
    now: datetime,
    ledger: Ledger,
    limits: Limits = Limits(),
    *,
    timing: str | None = None,
    safety: bool = False,
    appointment_id: str | None = None,
) -> Slot:
    """Re-validate a planned slot at send time against the calendar as it is now.

    ``scheduled`` with ``deliver_at <= now`` means send now; a later
    ``deliver_at`` means defer to it (e.g. a session was booked into the gap).
    ``timing`` defaults to ``next_gap`` for the therapist's own care and
    ``before_next_appointment`` for client suggestions. With ``appointment_id``
    the session is looked up again, so a cancelled session skips the suggestion
    and a moved one moves its expiry. ``ledger`` must exclude this suggestion.
    """
    timing = timing or _default_timing(audience)
    _check_inputs(timing, audience, now)
    _require_aware(deliver_at, "deliver_at")
    _require_aware(expires_at, "expires_at")
    now, zone = _utc(now), _zone(cal)
    if safety:
        return _safety(now, zone)
    appt = None
    if appointment_id is not None:
        appt = _find_appointment(cal, appointment_id)
        if appt is None:
            reason = f"the session it was for was cancelled {_it_is(zone, now)}"
            return Slot("skipped", None, None, reason, appointment_id)
        expires_at = _utc(appt.start) - (limits.pre_buffer if timing == "pre_session" else timedelta(0))
    if expires_at is not None and now >= _utc(expires_at):
        expires_at = _utc(expires_at)
        reason = f"expired at {_at(expires_at, zone, now)}"
        return Slot("expired", None, expires_at, reason, appointment_id)
    if timing == "none":
        return Slot("skipped", None, None, f"log only: this decision is not delivered {_it_is(zone, now)}")
    capped = _cap_reached(ledger, limits, zone, now)
    if capped is not None:
        return capped
    lo = max(now, _utc(deliver_at))
    if timing == "now":
        return _immediate(_holds(audience, cal, ledger, limits, zone, now, cooldown=False), zone, now)
    holds = _holds(audience, cal, ledger, limits, zone, now, cooldown=True)
    if timing == "next_gap":
        return _next_gap(cal, zone, limits, holds, now, lo, None if expires_at is None else _utc(expires_at))
    appt = appt or _appointment_ending_at(cal, expires_at, limits, timing)
    if appt is None:
        return Slot("skipped", None, None, f"the session it was for is no longer booked {_it_is(zone, now)}")
    if timing == "pre_session":
        return _pre_session(cal, zone, limits, holds, now, lo, appt)
    return _before_appointment(cal, zone, limits, holds, now, lo, appt)


def _appointment_ending_at(
    cal: Calendar, expires_at: datetime | None, limits: Limits, timing: str
) -> Busy | None:
    """Without an appointment id, the session is the one whose start the slot
    expires at; if none starts there any more, it was cancelled or moved."""
    if expires_at is None:
        return None
    offset = limits.pre_buffer if timing == "pre_session" else timedelta(0)
    return next((b for b in cal.appointments if _utc(b.start) - offset == _utc(expires_at)), None)
