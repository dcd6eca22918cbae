"""Timing (DESIGN.md §4.5): when a decision may reach a therapist.

Calendars are built from local wall-clock strings so every test reads like the
therapist's day; expectations are written in UTC so the offsets (and DST) are
checked, not assumed.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.timing import Busy, Calendar, Ledger, Limits, Slot, plan, recheck

LONDON = "Europe/London"
NEW_YORK = "America/New_York"
KOLKATA = "Asia/Kolkata"
TUE = date(2026, 3, 10)  # an ordinary Tuesday, London on GMT (UTC+0)
FRESH = Ledger(sent_or_scheduled_today=0, last_selfcare_at=None)


def local(tz: str, day: date, hhmm: str) -> datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hours, minutes, tzinfo=ZoneInfo(tz))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def calendar(
    tz: str = LONDON,
    day: date = TUE,
    sessions: tuple[tuple[str, str, str | None], ...] = (),
    hours: dict[str, tuple[str, str]] | None = None,
    paused_until: datetime | None = None,
) -> Calendar:
    """A therapist's day: sessions as (local start, local end, client key)."""
    appointments = [
        Busy(local(tz, day, start), local(tz, day, end), f"appt-{i}", client)
        for i, (start, end, client) in enumerate(sessions, 1)
    ]
    return Calendar(tz=tz, working_hours=hours or {}, appointments=appointments, paused_until=paused_until)


def at(hhmm: str, tz: str = LONDON, day: date = TUE) -> datetime:
    return local(tz, day, hhmm)


def nudge(cal: Calendar, now: datetime, ledger: Ledger = FRESH, **kw: object) -> Slot:
    return plan("next_gap", "therapist", cal, now, ledger, **kw)


def suggest(cal: Calendar, now: datetime, client: str = "c1", ledger: Ledger = FRESH) -> Slot:
    return plan("before_next_appointment", "client", cal, now, ledger, client_key=client)


# --------------------------------------------------------------------------
# Therapist nudges: the next gap
# --------------------------------------------------------------------------


def test_nudge_goes_to_the_start_of_the_next_gap() -> None:
    cal = calendar(sessions=(("09:00", "09:50", "c1"), ("10:00", "10:50", "c2")))
    slot = nudge(cal, at("09:20"))
    assert slot.status == "scheduled"
    assert slot.deliver_at == utc("2026-03-10T09:50")


def test_nudge_is_delivered_now_when_now_is_inside_a_gap() -> None:
    cal = calendar(sessions=(("11:00", "11:50", "c1"),))
    slot = nudge(cal, at("09:20"))
    assert slot.deliver_at == utc("2026-03-10T09:20")


def test_nudge_is_never_inside_an_appointment() -> None:
    cal = calendar(sessions=(("09:00", "10:30", "c1"),))
    slot = nudge(cal, at("09:00"))
    assert slot.deliver_at == utc("2026-03-10T10:30")


def test_nudge_is_never_in_the_two_minutes_before_a_session() -> None:
    cal = calendar(sessions=(("09:00", "09:50", "c1"), ("09:55", "10:45", "c2")))
    slot = nudge(cal, at("09:30"))
    # 09:50-09:53 is free but only 3 minutes; 09:53-09:55 is the pre-buffer.
    assert slot.deliver_at == utc("2026-03-10T10:45")


def test_gap_shorter_than_five_minutes_is_skipped() -> None:
    cal = calendar(sessions=(("09:00", "09:50", "c1"), ("09:56", "10:45", "c2")))
    slot = nudge(cal, at("09:10"))
    assert slot.deliver_at == utc("2026-03-10T10:45")


def test_gap_of_exactly_five_minutes_counts() -> None:
    cal = calendar(sessions=(("09:00", "09:50", "c1"), ("09:57", "10:45", "c2")))
    slot = nudge(cal, at("09:10"))
    assert slot.deliver_at == utc("2026-03-10T09:50")


def test_gap_is_counted_from_the_delivery_moment_not_its_start() -> None:
    cal = calendar(sessions=(("10:00", "10:50", "c1"),))
    # 09:00-09:58 is free, but at 09:55 only 3 minutes remain before the buffer.
    slot = nudge(cal, at("09:55"))
    assert slot.deliver_at == utc("2026-03-10T10:50")


def test_nudge_expires_when_no_gap_remains_today() -> None:
    cal = calendar(sessions=(("16:00", "16:50", "c1"), ("16:54", "17:57", "c2")))
    slot = nudge(cal, at("16:10"))  # 16:50-16:52 and 17:57-18:00 are too short
    assert slot.status == "expired"
    assert slot.deliver_at is None
    assert "no gap of 5 minutes left in today's working hours" in slot.reason
    assert "16:10 Europe/London" in slot.reason


def test_nudge_is_never_sent_at_night() -> None:
    slot = nudge(calendar(), at("22:30"))
    assert slot.status == "expired"
    assert slot.deliver_at is None


def test_nudge_made_before_working_hours_waits_for_the_start_of_the_day() -> None:
    slot = nudge(calendar(), at("06:15"))
    assert slot.deliver_at == utc("2026-03-10T08:00")


def test_nudge_expires_at_the_end_of_todays_working_hours() -> None:
    slot = nudge(calendar(), at("10:00"))
    assert slot.expires_at == utc("2026-03-10T18:00")


def test_nudge_is_never_sent_on_a_weekend_by_default() -> None:
    saturday = date(2026, 3, 14)
    slot = nudge(calendar(day=saturday), at("10:00", day=saturday))
    assert slot.status == "expired"
    assert "Saturday is not a working day" in slot.reason


def test_a_day_missing_from_configured_hours_is_a_day_off() -> None:
    cal = calendar(hours={"mon": ("09:00", "17:00"), "wed": ("09:00", "17:00")})
    slot = nudge(cal, at("10:00"))  # a Tuesday
    assert slot.status == "expired"
    assert "Tuesday is not a working day" in slot.reason


def test_configured_working_hours_replace_the_default() -> None:
    cal = calendar(hours={"tue": ("10:00", "16:00")})
    assert nudge(cal, at("08:30")).deliver_at == utc("2026-03-10T10:00")
    assert nudge(cal, at("16:01")).status == "expired"


def test_self_care_lands_in_the_next_real_gap_on_a_day_of_seven_sessions() -> None:
    sessions = (
        ("08:00", "08:50", "c1"),
        ("09:00", "09:50", "c2"),
        ("09:50", "10:40", "c3"),  # three back to back
        ("10:40", "11:30", "c4"),
        ("12:30", "13:20", "c5"),
        ("13:25", "14:15", "c6"),  # 3-minute hole before it: not a gap
        ("15:00", "15:50", "c7"),
    )
    cal = calendar(sessions=sessions)
    assert nudge(cal, at("09:05")).deliver_at == utc("2026-03-10T11:30")
    assert nudge(cal, at("13:00")).deliver_at == utc("2026-03-10T14:15")
    for busy in cal.appointments:
        for now in (busy.start, busy.start + timedelta(minutes=20)):
            slot = nudge(cal, now)
            if slot.status == "scheduled":
                assert all(
                    not (b.start - timedelta(minutes=2) <= slot.deliver_at < b.end) for b in cal.appointments
                )


def test_reason_names_the_local_time_and_zone() -> None:
    cal = calendar(sessions=(("14:00", "14:50", "c1"),))
    assert nudge(cal, at("14:10")).reason == "next gap at 14:50 Europe/London"


# --------------------------------------------------------------------------
# Time zones and daylight saving
# --------------------------------------------------------------------------


def test_kolkata_working_hours_are_local_time() -> None:
    day = date(2026, 3, 10)
    cal = calendar(tz=KOLKATA, day=day)
    slot = nudge(cal, utc("2026-03-10T02:00"))  # 07:30 IST
    assert slot.deliver_at == utc("2026-03-10T02:30")  # 08:00 IST
    assert slot.expires_at == utc("2026-03-10T12:30")  # 18:00 IST
    assert "08:00 Asia/Kolkata" in slot.reason


def test_kolkata_nudge_expires_after_local_end_of_day_even_at_midday_utc() -> None:
    slot = nudge(calendar(tz=KOLKATA), utc("2026-03-10T12:31"))  # 18:01 IST
    assert slot.status == "expired"


def test_kolkata_appointments_block_in_local_time() -> None:
    cal = calendar(tz=KOLKATA, sessions=(("10:00", "10:45", "c1"),))
    slot = nudge(cal, utc("2026-03-10T04:30"))  # 10:00 IST, inside the session
    assert slot.deliver_at == utc("2026-03-10T05:15")  # 10:45 IST


def test_working_hours_follow_local_time_across_spring_forward() -> None:
    friday, monday = date(2026, 3, 6), date(2026, 3, 9)
    before = nudge(calendar(tz=NEW_YORK, day=friday), utc("2026-03-06T11:00"))
    after = nudge(calendar(tz=NEW_YORK, day=monday), utc("2026-03-09T11:00"))
    assert before.deliver_at == utc("2026-03-06T13:00")  # 08:00 EST (UTC-5)
    assert after.deliver_at == utc("2026-03-09T12:00")  # 08:00 EDT (UTC-4)


def test_working_hours_on_the_spring_forward_day_itself() -> None:
    day = date(2026, 3, 8)  # Sunday; clocks jump 02:00 -> 03:00
    cal = calendar(tz=NEW_YORK, day=day, hours={"sun": ("00:00", "06:00")})
    slot = nudge(cal, utc("2026-03-08T04:00"))  # 23:00 EST on the 7th: not yet that day
    assert slot.status == "expired"
    slot = nudge(cal, utc("2026-03-08T05:30"))  # 00:30 EST
    assert slot.deliver_at == utc("2026-03-08T05:30")
    assert slot.expires_at == utc("2026-03-08T10:00")  # 06:00 EDT: a 5-hour working day


def test_working_hours_follow_local_time_across_fall_back() -> None:
    friday, monday = date(2026, 10, 30), date(2026, 11, 2)
    before = nudge(calendar(tz=NEW_YORK, day=friday), utc("2026-10-30T11:00"))
    after = nudge(calendar(tz=NEW_YORK, day=monday), utc("2026-11-02T11:00"))
    assert before.deliver_at == utc("2026-10-30T12:00")  # 08:00 EDT
    assert after.deliver_at == utc("2026-11-02T13:00")  # 08:00 EST


def test_working_hours_on_the_fall_back_day_itself() -> None:
    day = date(2026, 11, 1)  # Sunday; clocks fall back 02:00 -> 01:00
    cal = calendar(tz=NEW_YORK, day=day, hours={"sun": ("00:00", "06:00")})
    slot = nudge(cal, utc("2026-11-01T03:00"))  # 23:00 EDT on Oct 31
    assert slot.status == "expired"
    slot = nudge(cal, utc("2026-11-01T04:00"))  # 00:00 EDT
    assert slot.deliver_at == utc("2026-11-01T04:00")
    assert slot.expires_at == utc("2026-11-01T11:00")  # 06:00 EST: a 7-hour working day
    slot = nudge(calendar(tz=NEW_YORK, day=day, hours={"sun": ("08:00", "18:00")}), utc("2026-11-01T11:00"))
    assert slot.deliver_at == utc("2026-11-01T13:00")  # 08:00 EST on the day itself
    assert "08:00 America/New_York" in slot.reason


# --------------------------------------------------------------------------
# Client suggestions: before the next appointment with that client
# --------------------------------------------------------------------------


def test_client_suggestion_lands_30_minutes_before_the_next_session_with_that_client() -> None:
    cal = calendar(sessions=(("09:00", "09:50", "c2"), ("15:00", "15:50", "c1")))
    slot = suggest(cal, at("09:10"))
    assert slot.status == "scheduled"
    assert slot.deliver_at == utc("2026-03-10T14:30")
    assert slot.appointment_id == "appt-2"
    assert "14:30 Europe/London, 30 minutes before the session at 15:00 Europe/London" == slot.reason


def test_client_suggestion_ignores_sessions_with_other_clients() -> None:
    cal = calendar(sessions=(("11:00", "11:50", "c2"), ("13:00", "13:50", "c1")))
    slot = suggest(cal, at("09:00"))
    assert slot.appointment_id == "appt-2"
    assert slot.deliver_at == utc("2026-03-10T12:30")


def test_client_suggestion_moves_to_the_gap_after_a_busy_ideal_moment() -> None:
    cal = calendar(sessions=(("13:50", "14:40", "c2"), ("15:00", "15:50", "c1")))
    slot = suggest(cal, at("09:00"))
    assert slot.deliver_at == utc("2026-03-10T14:40")
    assert "last free gap" in slot.reason


def test_client_suggestion_falls_back_to_the_last_free_gap_when_that_moment_is_busy() -> None:
    cal = calendar(sessions=(("14:00", "14:58", "c2"), ("15:00", "15:50", "c1")))
    slot = suggest(cal, at("09:00"))
    # blocked 13:58-15:50; the last gap ends at 13:58, leave it 5 minutes.
    assert slot.deliver_at == utc("2026-03-10T13:53")


def test_client_suggestion_goes_to_the_next_working_morning() -> None:
    thursday = date(2026, 3, 12)
    cal = Calendar(
        tz=LONDON, working_hours={},
        appointments=[Busy(at("08:00", day=thursday), at("08:50", day=thursday), "early", "c1")],
    )
    slot = suggest(cal, at("18:30"))  # Tuesday evening; Thursday has no gap before 08:00
    assert slot.deliver_at == utc("2026-03-11T08:00")  # Wednesday morning
    assert "next working morning" in slot.reason


def test_client_suggestion_made_in_the_evening_lands_at_the_start_of_the_morning() -> None:
    wednesday = date(2026, 3, 11)
    cal = Calendar(
        tz=LONDON, working_hours={},
        appointments=[Busy(at("08:20", day=wednesday), at("09:10", day=wednesday), "early", "c1")],
    )
    slot = suggest(cal, at("19:00"))
    assert slot.deliver_at == utc("2026-03-11T08:00")


def test_client_suggestion_expires_at_the_appointment_start() -> None:
    cal = calendar(sessions=(("15:00", "15:50", "c1"),))
    slot = suggest(cal, at("09:00"))
    assert slot.expires_at == utc("2026-03-10T15:00")


def test_client_suggestion_without_an_upcoming_session_is_skipped() -> None:
    cal = calendar(sessions=(("08:00", "08:50", "c1"),))
    slot = suggest(cal, at("09:00"))
    assert slot.status == "skipped"
    assert slot.reason.startswith("no upcoming session with this client")


def test_client_suggestion_is_sent_now_when_now_is_the_last_free_moment() -> None:
    cal = calendar(sessions=(("08:00", "08:54", "c2"), ("09:00", "09:50", "c1")))
    slot = suggest(cal, at("08:55"))  # 3 free minutes, no 5-minute gap left
    assert slot.deliver_at == utc("2026-03-10T08:55")


def test_client_suggestion_expires_when_no_free_moment_remains_before_the_session() -> None:
    cal = calendar(sessions=(("08:00", "08:58", "c2"), ("09:00", "09:50", "c1")))
    slot = suggest(cal, at("08:10"))
    assert slot.status == "expired"
    assert "09:00 Europe/London" in slot.reason


def test_client_suggestion_is_never_sent_at_night() -> None:
    wednesday = date(2026, 3, 11)
    cal = Calendar(
        tz=LONDON, working_hours={},
        appointments=[Busy(at("08:00", day=wednesday), at("08:50", day=wednesday), "early", "c1")],
    )
    slot = suggest(cal, at("06:00", day=wednesday))
    assert slot.status == "expired"


# --------------------------------------------------------------------------
# Pre-session modelling nudge
# --------------------------------------------------------------------------


def test_pre_session_nudge_lands_ten_minutes_before_the_session() -> None:
    cal = calendar(sessions=(("11:00", "11:50", "c1"),))
    slot = plan("pre_session", "therapist", cal, at("09:00"), FRESH, client_key="c1")
    assert slot.deliver_at == utc("2026-03-10T10:50")
    assert slot.expires_at == utc("2026-03-10T10:58")
    assert slot.appointment_id == "appt-1"


def test_pre_session_nudge_waits_for_the_previous_session_to_end() -> None:
    cal = calendar(sessions=(("10:00", "10:55", "c2"), ("11:00", "11:50", "c1")))
    slot = plan("pre_session", "therapist", cal, at("09:00"), FRESH, client_key="c1")
    assert slot.deliver_at == utc("2026-03-10T10:55")


def test_pre_session_nudge_expires_when_sessions_are_back_to_back() -> None:
    cal = calendar(sessions=(("10:00", "10:58", "c2"), ("11:00", "11:50", "c1")))
    slot = plan("pre_session", "therapist", cal, at("09:00"), FRESH, client_key="c1")
    assert slot.status == "expired"


# --------------------------------------------------------------------------
# Immediate and safety messages
# --------------------------------------------------------------------------


def test_stress_reply_is_sent_now() -> None:
    cal = calendar(sessions=(("09:00", "09:50", "c1"),))
    slot = plan("now", "therapist", cal, at("09:52"), Ledger(1, at("09:00")))
    assert slot.status == "scheduled"
    assert slot.deliver_at == utc("2026-03-10T09:52")


def test_stress_reply_still_counts_toward_the_daily_cap() -> None:
    slot = plan("now", "therapist", calendar(), at("10:00"), Ledger(3, None))
    assert slot.status == "skipped"


def test_stress_reply_is_skipped_while_paused() -> None:
    slot = plan("now", "therapist", calendar(paused_until=at("12:00")), at("10:00"), FRESH)
    assert slot.status == "skipped"
    assert "paused until 12:00 Europe/London" in slot.reason


def test_safety_line_ignores_cap_pause_cooldown_and_night() -> None:
    cal = calendar(paused_until=at("23:59"))
    slot = plan("now", "therapist", cal, at("23:00"), Ledger(9, at("22:59")), safety=True)
    assert slot.status == "scheduled"
    assert slot.deliver_at == utc("2026-03-10T23:00")
    assert "safety" in slot.reason


def test_log_only_decision_is_skipped() -> None:
    assert plan("none", "client", calendar(), at("10:00"), FRESH).status == "skipped"


# --------------------------------------------------------------------------
# Caps, cooldown, pause
# --------------------------------------------------------------------------


def test_daily_cap_skips_the_next_nudge() -> None:
    slot = nudge(calendar(), at("10:00"), Ledger(3, None))
    assert slot.status == "skipped"
    assert slot.reason.startswith("daily limit of 3 reached")


def test_daily_cap_applies_to_client_suggestions() -> None:
    cal = calendar(sessions=(("15:00", "15:50", "c1"),))
    assert suggest(cal, at("10:00"), ledger=Ledger(3, None)).status == "skipped"


def test_daily_cap_is_clinic_tunable() -> None:
    slot = nudge(calendar(), at("10:00"), Ledger(3, None), limits=Limits(daily_cap=5))
    assert slot.status == "scheduled"


def test_self_care_nudge_waits_out_the_two_hour_cooldown() -> None:
    cal = calendar(sessions=(("11:00", "11:50", "c1"),))
    slot = nudge(cal, at("10:00"), Ledger(1, at("09:30")))
    assert slot.deliver_at == utc("2026-03-10T11:50")  # 11:30 is inside the session
    assert "one self-care nudge per 2 hours" in slot.reason


def test_cooldown_reaching_past_the_working_day_skips_the_nudge() -> None:
    slot = nudge(calendar(), at("16:30"), Ledger(1, at("16:10")))
    assert slot.status == "skipped"
    assert "16:10 Europe/London" in slot.reason


def test_cooldown_does_not_apply_to_client_suggestions() -> None:
    cal = calendar(sessions=(("11:00", "11:50", "c1"),))
    slot = suggest(cal, at("10:00"), ledger=Ledger(1, at("09:50")))
    assert slot.deliver_at == utc("2026-03-10T10:30")


def test_pause_defers_the_nudge_to_the_first_gap_after_it() -> None:
    cal = calendar(sessions=(("13:00", "13:50", "c1"),), paused_until=at("12:59"))
    slot = nudge(cal, at("10:00"))
    assert slot.deliver_at == utc("2026-03-10T13:50")
    assert "paused until 12:59" in slot.reason


def test_pause_until_tomorrow_skips_the_nudge() -> None:
    cal = calendar(paused_until=at("09:00", day=date(2026, 3, 11)))
    slot = nudge(cal, at("10:00"))
    assert slot.status == "skipped"
    assert "paused" in slot.reason


def test_a_pause_that_has_ended_is_ignored() -> None:
    slot = nudge(calendar(paused_until=at("09:00")), at("10:00"))
    assert slot.deliver_at == utc("2026-03-10T10:00")


def test_pause_defers_a_client_suggestion() -> None:
    cal = calendar(sessions=(("15:00", "15:50", "c1"),), paused_until=at("14:45"))
    slot = suggest(cal, at("10:00"))
    assert slot.deliver_at == utc("2026-03-10T14:45")


# --------------------------------------------------------------------------
# recheck at send time
# --------------------------------------------------------------------------


def test_recheck_sends_now_when_the_gap_is_still_free() -> None:
    cal = calendar(sessions=(("09:00", "09:50", "c1"),))
    planned = nudge(cal, at("09:10"))
    slot = recheck(planned.deliver_at, planned.expires_at, "therapist", cal, at("09:50"), FRESH)
    assert slot.status == "scheduled"
    assert slot.deliver_at <= at("09:50")


def test_recheck_moves_to_the_next_gap_when_a_session_was_booked_into_it() -> None:
    before = calendar(sessions=(("09:00", "09:50", "c1"),))
    planned = nudge(before, at("09:10"))
    after = calendar(sessions=(("09:00", "09:50", "c1"), ("09:55", "10:40", "c9")))
    slot = recheck(planned.deliver_at, planned.expires_at, "therapist", after, at("09:50"), FRESH)
    assert slot.status == "scheduled"
    assert slot.deliver_at == utc("2026-03-10T10:40")


def test_recheck_moves_a_client_suggestion_to_the_next_gap_before_its_session() -> None:
    before = calendar(sessions=(("15:00", "15:50", "c1"),))
    planned = suggest(before, at("09:00"))
    after = calendar(sessions=(("15:00", "15:50", "c1"), ("14:20", "14:45", "c9")))  # any order
    slot = recheck(
        planned.deliver_at, planned.expires_at, "client", after, at("14:30"), FRESH,
        appointment_id=planned.appointment_id,
    )
    assert slot.deliver_at == utc("2026-03-10T14:45")
    assert slot.expires_at == utc("2026-03-10T15:00")


def test_recheck_expires_once_expires_at_has_passed() -> None:
    cal = calendar(sessions=(("15:00", "15:50", "c1"),))
    planned = suggest(cal, at("09:00"))
    slot = recheck(planned.deliver_at, planned.expires_at, "client", cal, at("15:01"), FRESH)
    assert slot.status == "expired"


def test_recheck_expires_a_nudge_when_no_gap_remains_today() -> None:
    before = calendar(sessions=(("16:00", "16:50", "c1"),))
    planned = nudge(before, at("16:10"))
    after = calendar(sessions=(("16:00", "16:50", "c1"), ("16:55", "17:58", "c9")))
    slot = recheck(planned.deliver_at, planned.expires_at, "therapist", after, at("16:50"), FRESH)
    assert slot.status == "expired"


def test_recheck_skips_when_paused_with_no_later_moment_today() -> None:
    planned = nudge(calendar(), at("10:00"))
    paused = calendar(paused_until=at("19:00"))
    slot = recheck(planned.deliver_at, planned.expires_at, "therapist", paused, at("10:00"), FRESH)
    assert slot.status == "skipped"


def test_recheck_defers_past_a_short_pause() -> None:
    planned = nudge(calendar(), at("10:00"))
    paused = calendar(paused_until=at("10:30"))
    slot = recheck(planned.deliver_at, planned.expires_at, "therapist", paused, at("10:00"), FRESH)
    assert slot.deliver_at == utc("2026-03-10T10:30")


def test_recheck_skips_at_the_daily_cap() -> None:
    planned = nudge(calendar(), at("10:00"))
    slot = recheck(planned.deliver_at, planned.expires_at, "therapist", calendar(), at("10:00"), Ledger(3, None))
    assert slot.status == "skipped"


def test_recheck_skips_a_suggestion_whose_session_was_cancelled() -> None:
    cal = calendar(sessions=(("15:00", "15:50", "c1"),))
    planned = suggest(cal, at("09:00"))
    slot = recheck(
        planned.deliver_at, planned.expires_at, "client", calendar(), at("14:30"), FRESH,
        appointment_id=planned.appointment_id,
    )
    assert slot.status == "skipped"
    assert "cancelled" in slot.reason


def test_recheck_follows_a_session_moved_later() -> None:
    cal = calendar(sessions=(("15:00", "15:50", "c1"),))
    planned = suggest(cal, at("09:00"))
    moved = calendar(sessions=(("16:00", "16:50", "c1"),))
    slot = recheck(
        planned.deliver_at, planned.expires_at, "client", moved, at("15:10"), FRESH,
        appointment_id=planned.appointment_id,
    )
    assert slot.status == "scheduled"
    assert slot.expires_at == utc("2026-03-10T16:00")


def test_recheck_lets_a_safety_line_through() -> None:
    slot = recheck(at("23:00"), None, "therapist", calendar(), at("23:00"), Ledger(9, None), safety=True)
    assert slot.deliver_at == utc("2026-03-10T23:00")


# --------------------------------------------------------------------------
# Input discipline
# --------------------------------------------------------------------------


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now"):
        nudge(calendar(), datetime(2026, 3, 10, 10, 0))


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        nudge(Calendar(tz="Mars/Olympus", working_hours={}, appointments=[]), at("10:00"))


def test_misspelt_working_hours_day_is_refused_not_read_as_a_day_off() -> None:
    with pytest.raises(ValueError, match="working-hours day"):
        calendar(hours={"monday": ("08:00", "18:00")})


def test_returned_datetimes_are_utc() -> None:
    cal = calendar(tz=KOLKATA, sessions=(("15:00", "15:50", "c1"),))
    slot = suggest(cal, utc("2026-03-10T04:00"))
    assert slot.deliver_at.tzinfo is timezone.utc
    assert slot.expires_at.tzinfo is timezone.utc


# --------------------------------------------------------------------------
# Property: never inside an appointment, never outside working hours
# --------------------------------------------------------------------------

ZONES = st.sampled_from([LONDON, NEW_YORK, KOLKATA, "Australia/Sydney"])
DAYS = st.sampled_from([date(2026, 3, 6), date(2026, 3, 8), date(2026, 3, 9), TUE, date(2026, 11, 1), date(2026, 11, 2)])


@st.composite
def days(draw: st.DrawFn) -> tuple[Calendar, datetime, date]:
    """A random local day of up to nine sessions, some overlapping or back to back."""
    tz, day = draw(ZONES), draw(DAYS)
    base = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    appointments = []
    for i in range(draw(st.integers(0, 9))):
        start = base + timedelta(minutes=draw(st.integers(6 * 60, 20 * 60)))
        length = timedelta(minutes=draw(st.integers(5, 120)))
        client = draw(st.sampled_from(["c1", "c2", "c3"]))
        appointments.append(Busy(start, start + length, f"a{i}", client))
    weekend_shift = draw(st.booleans())
    hours = {"sat": ("09:00", "13:00"), "sun": ("07:30", "12:00"), "mon": ("08:00", "18:00")} if weekend_shift else {}
    cal = Calendar(tz=tz, working_hours=hours, appointments=appointments)
    now = base + timedelta(minutes=draw(st.integers(0, 24 * 60 - 1)))
    return cal, now.astimezone(timezone.utc), day


def _inside_working_hours(cal: Calendar, moment: datetime) -> bool:
    zone = ZoneInfo(cal.tz)
    day = moment.astimezone(zone).date()
    hours = cal.working_hours or {d: ("08:00", "18:00") for d in ("mon", "tue", "wed", "thu", "fri")}
    span = hours.get(("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()])
    if span is None:
        return False
    return local(cal.tz, day, span[0]) <= moment < local(cal.tz, day, span[1])


def _inside_an_appointment(cal: Calendar, moment: datetime) -> bool:
    return any(b.start - timedelta(minutes=2) <= moment < b.end for b in cal.appointments)


@settings(max_examples=300, deadline=None)
@given(days(), st.sampled_from(["next_gap", "before_next_appointment", "pre_session"]))
def test_scheduled_moments_are_never_inside_a_session_and_gaps_stay_in_working_hours(
    case: tuple[Calendar, datetime, date], timing: str
) -> None:
    cal, now, _ = case
    audience = "client" if timing == "before_next_appointment" else "therapist"
    slot = plan(timing, audience, cal, now, FRESH, client_key="c1")
    if slot.status != "scheduled":
        return
    assert slot.deliver_at >= now
    assert slot.deliver_at.tzinfo is timezone.utc
    if slot.expires_at is not None:
        assert slot.deliver_at < slot.expires_at
    assert not _inside_an_appointment(cal, slot.deliver_at)
    if timing != "pre_session":  # pre-session follows the session, even an evening one
        assert _inside_working_hours(cal, slot.deliver_at)


@settings(max_examples=200, deadline=None)
@given(days(), st.integers(0, 600), st.integers(5, 90), st.sampled_from(["next_gap", "before_next_appointment"]))
def test_recheck_never_sends_into_a_session_booked_after_planning(
    case: tuple[Calendar, datetime, date], offset: int, length: int, timing: str
) -> None:
    cal, now, _ = case
    audience = "client" if timing == "before_next_appointment" else "therapist"
    planned = plan(timing, audience, cal, now, FRESH, client_key="c1")
    if planned.status != "scheduled":
        return
    booked = planned.deliver_at - timedelta(minutes=offset % 30)
    changed = Calendar(
        tz=cal.tz, working_hours=cal.working_hours,
        appointments=[*cal.appointments, Busy(booked, booked + timedelta(minutes=length), "new", "c9")],
    )
    send_time = planned.deliver_at
    slot = recheck(
        planned.deliver_at, planned.expires_at, audience, changed, send_time, FRESH,
        appointment_id=planned.appointment_id,
    )
    if slot.status != "scheduled":
        return
    assert slot.deliver_at >= send_time
    assert not _inside_an_appointment(changed, slot.deliver_at)
    assert _inside_working_hours(changed, slot.deliver_at)
