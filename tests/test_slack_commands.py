"""/tend over real HTTP: answered in the ack, ephemeral, wording from the catalogue."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from plugin.context import local_day
from plugin.delivery import copy
from plugin.store.models import PracticeLog, Therapist
from tests.slack_harness import TendSlack, tend_slack  # noqa: F401

USAGE = copy.text("slack.commands.usage")


def run(h: TendSlack, text: str) -> dict:
    answer = h.slack.command(text)
    assert answer.status == 200
    assert float(answer.headers["X-Test-Elapsed"]) < 3
    body = answer.json()
    assert body["response_type"] == "ephemeral"
    return body


def therapist_row(h: TendSlack) -> Therapist:
    with h.rt.db.session() as session:
        return session.scalars(select(Therapist)).one()


def test_break_sends_a_self_compassion_break_and_counts_as_own_practice(tend_slack: TendSlack) -> None:
    body = run(tend_slack, "break")
    assert body["blocks"][0]["type"] == "header"
    assert "May I be kind to myself" in body["text"]
    with tend_slack.rt.db.session() as session:
        logged = session.scalars(select(PracticeLog)).one()
    assert (logged.source, logged.practice_id) == ("slack", "self_compassion_break")


def test_pause_2h_pauses_for_two_hours(tend_slack: TendSlack) -> None:
    body = run(tend_slack, "pause 2h")
    paused = therapist_row(tend_slack).paused_until
    assert abs((paused - datetime.now(timezone.utc) - timedelta(hours=2)).total_seconds()) < 30
    assert body["text"].startswith("Paused until")


def test_pause_today_pauses_until_local_midnight(tend_slack: TendSlack) -> None:
    run(tend_slack, "pause today")
    assert therapist_row(tend_slack).paused_until == local_day(datetime.now(timezone.utc), tend_slack.tz)[1]


def test_pause_off_clears_the_pause(tend_slack: TendSlack) -> None:
    run(tend_slack, "pause 2h")
    body = run(tend_slack, "pause off")
    assert therapist_row(tend_slack).paused_until is None
    assert body["text"] == copy.text("slack.commands.pause_off")


def test_hours_sets_weekday_working_hours(tend_slack: TendSlack) -> None:
    run(tend_slack, "hours 08:00-17:00")
    hours = therapist_row(tend_slack).working_hours
    assert hours == {day: ["08:00", "17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def test_limit_sets_the_daily_limit(tend_slack: TendSlack) -> None:
    body = run(tend_slack, "limit 5")
    assert therapist_row(tend_slack).daily_limit == 5
    assert "5" in body["text"]


@pytest.mark.parametrize(
    "text",
    ["limit 11", "limit 0", "limit many", "pause forever", "pause", "hours 17:00-08:00", "hours 8-5", "hours 25:00-26:00", "dance", "stats now", "break twice"],
)
def test_bad_arguments_get_the_usage_line_and_change_nothing(tend_slack: TendSlack, text: str) -> None:
    before = therapist_row(tend_slack)
    body = run(tend_slack, text)
    assert body["text"] == USAGE
    after = therapist_row(tend_slack)
    assert (after.daily_limit, after.paused_until, after.working_hours) == (before.daily_limit, before.paused_until, before.working_hours)


def test_stats_reports_the_streak_and_this_weeks_messages(tend_slack: TendSlack) -> None:
    run(tend_slack, "break")
    body = run(tend_slack, "stats")
    assert "Days in a row with your own practice: 1." in body["text"]
    assert "This week: 0 messages" in body["text"]


def test_help_lists_the_commands(tend_slack: TendSlack) -> None:
    body = run(tend_slack, "help")
    for verb in ("break", "pause", "hours", "limit", "stats"):
        assert f"/tend {verb}" in body["text"]


def test_an_empty_command_is_help(tend_slack: TendSlack) -> None:
    assert "/tend break" in run(tend_slack, "")["text"]


def test_an_unknown_slack_user_is_told_how_to_get_linked(tend_slack: TendSlack) -> None:
    answer = tend_slack.slack.command("break", user="U0STRANGER")
    assert answer.json()["text"] == copy.text("slack.commands.not_linked")
    with tend_slack.rt.db.session() as session:
        assert session.scalars(select(PracticeLog)).first() is None


def test_hours_ending_at_24_00_are_refused_as_the_ehr_refuses_them(tend_slack: TendSlack) -> None:
    before = therapist_row(tend_slack).working_hours
    assert run(tend_slack, "hours 08:00-24:00")["text"] == USAGE
    assert therapist_row(tend_slack).working_hours == before


@pytest.mark.parametrize("start, end", [("08:00", "24:00"), ("00:00", "23:59"), ("09:00", "09:00"), ("17:00", "08:00"), ("23:60", "23:59"), ("07:05", "19:45")])
def test_tend_hours_accepts_exactly_the_spans_the_ehr_schema_accepts(start: str, end: str) -> None:
    from plugin.therapist_settings import parse_hours
    from schemas.ehr import TherapistUpsertedSchema

    ehr_accepts = not TherapistUpsertedSchema().validate({"therapist_id": "T-1", "working_hours": {"mon": [start, end]}})
    try:
        tend_accepts = parse_hours(f"{start}-{end}") == (start, end)
    except ValueError:
        tend_accepts = False
    assert tend_accepts == ehr_accepts
