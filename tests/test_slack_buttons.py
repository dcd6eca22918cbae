"""Feedback buttons over real HTTP: recorded exactly once, then the message is updated in place."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from plugin.context import ledger_for, local_day
from plugin.store.models import Client, Feedback, PracticeLog, Suggestion, Therapist
from tests.conftest import wait_until
from tests.slack_harness import OTHER_USER, USER, TendSlack, tend_slack  # noqa: F401


def feedback_rows(h: TendSlack, suggestion_id: int) -> list[str]:
    with h.rt.db.session() as session:
        return list(session.scalars(select(Feedback.feedback).where(Feedback.suggestion_id == suggestion_id)))


def practice_count(h: TendSlack) -> int:
    with h.rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(PracticeLog)) or 0


def therapist_row(h: TendSlack) -> Therapist:
    with h.rt.db.session() as session:
        return session.scalars(select(Therapist)).one()


def updated_text(h: TendSlack) -> str:
    (message,) = h.fake.messages_for(USER)
    return message["text"] + " ".join(str(b) for b in message["blocks"])


def test_done_is_acknowledged_within_three_seconds(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    answer = tend_slack.slack.action("done", nudge.id, message_ts=nudge.slack_ts)
    assert answer.status == 200
    assert float(answer.headers["X-Test-Elapsed"]) < 3


def test_done_records_feedback_and_own_practice_and_updates_the_message(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("done", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    assert feedback_rows(tend_slack, nudge.id) == ["done"]
    assert practice_count(tend_slack) == 1
    update = tend_slack.fake.calls_to("chat.update")[0]
    assert (update.params["channel"], update.params["ts"]) == (nudge.slack_channel, nudge.slack_ts)
    assert "Recorded: Done" in str(update.params["blocks"])
    assert not any(b["type"] == "actions" for b in update.params["blocks"])
    assert update.params["metadata"]["event_payload"]["suggestion_id"] == nudge.id


def test_a_button_pressed_twice_records_one_row(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("done", nudge.id, message_ts=nudge.slack_ts)
    tend_slack.slack.action("done", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: len(tend_slack.fake.calls_to("chat.update")) == 2)
    assert feedback_rows(tend_slack, nudge.id) == ["done"]
    assert practice_count(tend_slack) == 1
    assert len(tend_slack.fake.messages_for(USER)) == 1
    first, second = tend_slack.fake.calls_to("chat.update")
    assert first.params["blocks"] == second.params["blocks"]


def test_snooze_for_an_hour_pauses_nudges_for_an_hour(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("snooze_1h", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    paused = therapist_row(tend_slack).paused_until
    assert paused is not None
    assert abs((paused - datetime.now(timezone.utc) - timedelta(hours=1)).total_seconds()) < 30
    assert "Snoozed for an hour" in updated_text(tend_slack)


def test_snooze_for_the_rest_of_the_day_pauses_until_local_midnight(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("snooze_today", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    assert therapist_row(tend_slack).paused_until == local_day(datetime.now(timezone.utc), tend_slack.tz)[1]


def test_not_now_on_a_nudge_is_not_a_pause(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("not_now", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    assert feedback_rows(tend_slack, nudge.id) == ["not_now"]
    assert therapist_row(tend_slack).paused_until is None


def test_not_now_on_a_nudge_leaves_client_suggestions_to_go_out(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("not_now", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    assert tend_slack.delivered_client_suggestion().status == "delivered"


def test_not_now_on_a_nudge_starts_the_two_hour_self_care_cooldown(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    with tend_slack.rt.db.session() as session:  # the nudge went out three hours ago: its own cooldown is over
        row = session.get(Suggestion, nudge.id)
        row.deliver_at = row.delivered_at = datetime.now(timezone.utc) - timedelta(hours=3)
    tend_slack.slack.action("not_now", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    now = datetime.now(timezone.utc)
    with tend_slack.rt.db.session() as session:
        pressed = session.scalars(select(Feedback.created_at).where(Feedback.suggestion_id == nudge.id)).one()
        ledger = ledger_for(session, session.scalars(select(Therapist)).one(), now)
    assert ledger.last_selfcare_at == pressed


def test_client_found_it_hard_steps_the_ladder_back_next_time(tend_slack: TendSlack) -> None:
    suggestion = tend_slack.delivered_client_suggestion()
    tend_slack.slack.action("client_found_it_hard", suggestion.id, message_ts=suggestion.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    with tend_slack.rt.db.session() as session:
        client = session.get(Client, suggestion.client_id)
        assert client.last_step_response == "overwhelming"
    assert practice_count(tend_slack) == 0


def test_used_in_session_is_recorded_without_moving_the_ladder(tend_slack: TendSlack) -> None:
    suggestion = tend_slack.delivered_client_suggestion()
    tend_slack.slack.action("used_in_session", suggestion.id, message_ts=suggestion.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    assert feedback_rows(tend_slack, suggestion.id) == ["used_in_session"]
    with tend_slack.rt.db.session() as session:
        assert session.get(Client, suggestion.client_id).last_step_response == ""


def test_a_client_button_on_a_self_care_nudge_is_refused(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("client_found_it_hard", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.ephemerals)
    assert feedback_rows(tend_slack, nudge.id) == []
    assert not tend_slack.fake.calls_to("chat.update")


def test_someone_elses_button_press_records_nothing(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.ehr("therapist.upserted", {"therapist_id": "T-200", "slack_user_id": OTHER_USER, "timezone": tend_slack.tz})
    tend_slack.slack.action("done", nudge.id, user=OTHER_USER)
    wait_until(lambda: tend_slack.fake.ephemerals)
    assert feedback_rows(tend_slack, nudge.id) == []
    assert "someone else" in tend_slack.fake.ephemerals[0]["text"]


def test_an_unknown_slack_user_is_told_how_to_get_linked(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("done", nudge.id, user="U0STRANGER")
    wait_until(lambda: tend_slack.fake.ephemerals)
    assert "clinic admin" in tend_slack.fake.ephemerals[0]["text"]
    assert feedback_rows(tend_slack, nudge.id) == []


def test_a_rate_limited_update_is_retried_and_the_feedback_kept_once(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.fake.fail_next(2, status=429, retry_after=1, method="chat.update")
    tend_slack.slack.action("helpful", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: any(c.ok for c in tend_slack.fake.calls_to("chat.update")), timeout=15)
    assert feedback_rows(tend_slack, nudge.id) == ["helpful"]
    assert "Recorded: Helpful" in updated_text(tend_slack)


def test_a_429_storm_on_updates_still_records_the_feedback_once(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.fake.fail_next(50, status=429, retry_after=0, method="chat.update")
    for _ in range(3):
        assert tend_slack.slack.action("not_helpful", nudge.id, message_ts=nudge.slack_ts).status == 200
    wait_until(lambda: len(tend_slack.fake.calls_to("chat.update")) >= 9, timeout=20)
    assert feedback_rows(tend_slack, nudge.id) == ["not_helpful"]
