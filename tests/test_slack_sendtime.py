"""At send time: Slack's time zone, do-not-disturb, pause, caps; exactly once across a crash and 429s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from plugin import jobs
from plugin.store.models import DeliveryAttempt, Suggestion, Therapist
from tests.conftest import wait_until
from tests.slack_harness import USER, TendSlack, tend_slack  # noqa: F401


def row(h: TendSlack, suggestion_id: int) -> Suggestion:
    with h.rt.db.session() as session:
        return session.get(Suggestion, suggestion_id)


def therapist_row(h: TendSlack) -> Therapist:
    with h.rt.db.session() as session:
        return session.scalars(select(Therapist)).one()


def scheduled_nudge(h: TendSlack) -> Suggestion:
    now = datetime.now(timezone.utc)
    from tests.conftest import full_morning
    from tests.slack_harness import note

    for appointment in full_morning(now):
        h.ehr("appointment.booked", appointment, now)
    h.ehr("session_note.signed", note(now), now)
    return next(s for s in h.suggestions() if s.rule_id == "therapist.selfcare.overfull-day" and s.status == "scheduled")


def bot_messages(h: TendSlack) -> list[dict]:
    return [m for m in h.fake.messages_for(USER) if m.get("user") != USER]


# --- time zone --------------------------------------------------------------------


def test_the_time_zone_comes_from_slack_and_is_cached(tend_slack: TendSlack) -> None:
    tend_slack.fake.set_user(USER, tz="Pacific/Auckland")
    nudge = scheduled_nudge(tend_slack)
    jobs.deliver(nudge.id)
    therapist = therapist_row(tend_slack)
    assert therapist.timezone == "Pacific/Auckland"
    assert therapist.slack_tz_fetched_at is not None
    tend_slack.slack.command("break")  # anything; then a second delivery
    jobs.deliver(scheduled_nudge_again(tend_slack))
    assert len(tend_slack.fake.calls_to("users.info")) == 1


def scheduled_nudge_again(h: TendSlack) -> int:
    now = datetime.now(timezone.utc)
    start = now + timedelta(minutes=20)
    from tests.slack_harness import note

    h.ehr("appointment.booked", {"appointment_id": "A-9", "therapist_id": "T-100", "client_id": "P-9", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()}, now)
    h.ehr("session_note.signed", note(now, note_id="N-9", client_id="P-9", tags=["self_criticism"]), now)
    return next(s.id for s in h.suggestions() if s.rule_id == "client.suggest.next-step")


def test_a_user_change_event_refreshes_the_time_zone(tend_slack: TendSlack) -> None:
    answer = tend_slack.slack.event({"type": "user_change", "user": {"id": USER, "tz": "Asia/Kolkata", "is_bot": False}})
    assert answer.status == 200
    wait_until(lambda: therapist_row(tend_slack).timezone == "Asia/Kolkata")


def test_a_failed_users_info_keeps_the_zone_and_still_delivers(tend_slack: TendSlack) -> None:
    nudge = scheduled_nudge(tend_slack)
    tend_slack.fake.fail_next(1, status=500, method="users.info")
    assert jobs.deliver(nudge.id) == "delivered"
    assert therapist_row(tend_slack).timezone == tend_slack.tz


# --- do not disturb, pause, caps -----------------------------------------------------


def test_dnd_defers_the_nudge_to_its_end(tend_slack: TendSlack) -> None:
    end = int(time.time()) + 600
    tend_slack.fake.set_user(USER, tz=tend_slack.tz, dnd={"snooze_enabled": True, "snooze_endtime": end})
    nudge = scheduled_nudge(tend_slack)
    assert jobs.deliver(nudge.id) == "deferred"
    stored = row(tend_slack, nudge.id)
    assert stored.status == "scheduled"
    assert stored.deliver_at == datetime.fromtimestamp(end, timezone.utc)
    assert "do-not-disturb" in stored.timing_reason
    assert bot_messages(tend_slack) == []


def test_dnd_past_the_end_of_the_window_skips_with_the_reason(tend_slack: TendSlack) -> None:
    tend_slack.fake.set_user(USER, tz=tend_slack.tz, dnd={"dnd_enabled": True, "next_dnd_start_ts": int(time.time()) - 60, "next_dnd_end_ts": int(time.time()) + 86400})
    nudge = scheduled_nudge(tend_slack)
    jobs.deliver(nudge.id)
    stored = row(tend_slack, nudge.id)
    assert stored.status == "skipped"
    assert "do-not-disturb" in stored.timing_reason
    assert bot_messages(tend_slack) == []


def test_dnd_does_not_hold_the_reply_to_the_therapists_own_message(tend_slack: TendSlack) -> None:
    tend_slack.fake.set_user(USER, tz=tend_slack.tz, dnd={"snooze_enabled": True, "snooze_endtime": int(time.time()) + 600})
    tend_slack.slack.dm("I am completely overwhelmed")
    wait_until(lambda: bot_messages(tend_slack), timeout=10)


def test_a_pause_defers_the_nudge_past_it(tend_slack: TendSlack) -> None:
    nudge = scheduled_nudge(tend_slack)
    tend_slack.slack.command("pause 2h")
    jobs.deliver(nudge.id)
    stored = row(tend_slack, nudge.id)
    assert bot_messages(tend_slack) == []
    assert stored.status == "skipped" or stored.deliver_at >= therapist_row(tend_slack).paused_until


def test_the_daily_limit_skips_what_is_over_it(tend_slack: TendSlack) -> None:
    tend_slack.delivered_nudge()
    suggestion_id = scheduled_nudge_again(tend_slack)
    tend_slack.slack.command("limit 1")
    jobs.deliver(suggestion_id)
    stored = row(tend_slack, suggestion_id)
    assert stored.status == "skipped"
    assert "limit" in stored.timing_reason
    assert len(bot_messages(tend_slack)) == 1


# --- exactly once ----------------------------------------------------------------------


def test_a_crash_between_post_and_commit_is_recovered_without_a_second_post(tend_slack: TendSlack) -> None:
    nudge = scheduled_nudge(tend_slack)
    tend_slack.fake.hold_answers("chat.postMessage", 30)
    worker = subprocess.Popen(
        [sys.executable, "-c", f"from plugin import jobs; jobs.deliver({nudge.id})"],
        env={**os.environ, **tend_slack.env},
        start_new_session=True,
    )
    try:
        wait_until(lambda: tend_slack.fake.calls_to("chat.postMessage"), timeout=60)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # dies after Slack posted, before it recorded the post
        worker.wait()
    tend_slack.fake.hold_answers("chat.postMessage", 0)
    assert row(tend_slack, nudge.id).status == "sending"
    time.sleep(1.1)  # the claim's lease (TEND_SENDING_LEASE_SECONDS=1) runs out
    assert jobs.deliver(nudge.id) == "delivered"
    assert len(bot_messages(tend_slack)) == 1
    assert row(tend_slack, nudge.id).slack_ts == bot_messages(tend_slack)[0]["ts"]


def test_a_crashed_reply_in_a_thread_is_found_in_the_thread(tend_slack: TendSlack) -> None:
    ts = tend_slack.fake.add_user_message(USER, "placeholder")
    tend_slack.slack.dm("I am so overwhelmed", ts=ts)
    wait_until(lambda: bot_messages(tend_slack), timeout=10)
    reply = next(s for s in tend_slack.suggestions() if s.rule_id == "therapist.selfcare.stress-message")
    with tend_slack.rt.db.session() as session:  # as if the process died before recording the post
        stored = session.get(Suggestion, reply.id)
        stored.status, stored.claimed_at, stored.slack_ts = "sending", datetime.now(timezone.utc) - timedelta(minutes=10), None
    assert jobs.deliver(reply.id) == "delivered"
    assert len(bot_messages(tend_slack)) == 1
    assert tend_slack.fake.calls_to("conversations.replies")


def test_a_429_storm_delivers_once_after_the_storm(tend_slack: TendSlack) -> None:
    nudge = scheduled_nudge(tend_slack)
    tend_slack.fake.fail_next(8, status=429, retry_after=1, method="chat.postMessage")
    outcomes = [jobs.deliver(nudge.id) for _ in range(8)]
    assert outcomes == ["retrying"] * 8
    assert jobs.deliver(nudge.id) == "delivered"
    assert len(bot_messages(tend_slack)) == 1
    with tend_slack.rt.db.session() as session:
        kinds = list(session.scalars(select(DeliveryAttempt.outcome).where(DeliveryAttempt.suggestion_id == nudge.id)))
    assert kinds.count("rate_limited") == 8


# --- Retry-After and finding Tend's own message ------------------------------------------


def test_retry_after_in_seconds_is_read_as_seconds() -> None:
    from plugin.delivery.slack import retry_after_seconds

    assert retry_after_seconds({"Retry-After": "30"}) == 30.0
    assert retry_after_seconds({"retry-after": "2"}) == 2.0


def test_retry_after_as_an_http_date_is_the_time_until_then() -> None:
    from plugin.delivery.slack import retry_after_seconds

    now = datetime(2015, 10, 21, 7, 27, 0, tzinfo=timezone.utc)
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=now) == 60.0
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:26:00 GMT"}, now=now) == 0.0


def test_a_missing_or_unreadable_retry_after_means_one_second() -> None:
    from plugin.delivery.slack import retry_after_seconds

    for headers in ({}, None, {"Retry-After": ""}, {"Retry-After": "soon"}, {"Retry-After": "-5"}, {"Retry-After": "nan"}):
        assert retry_after_seconds(headers) == 1.0


def test_retry_after_is_capped_at_fifteen_minutes() -> None:
    from plugin.delivery.slack import retry_after_seconds

    assert retry_after_seconds({"Retry-After": "86400"}) == 900.0
    assert retry_after_seconds({"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}) == 900.0


def test_a_429_with_an_http_date_retry_after_is_retried_not_raised(tend_slack: TendSlack) -> None:
    nudge = scheduled_nudge(tend_slack)
    soon = datetime.now(timezone.utc) + timedelta(seconds=30)
    tend_slack.fake.fail_next(1, status=429, retry_after=soon.strftime("%a, %d %b %Y %H:%M:%S GMT"), method="chat.postMessage")
    assert jobs.deliver(nudge.id) == "retrying"
    with tend_slack.rt.db.session() as session:
        kinds = list(session.scalars(select(DeliveryAttempt.outcome).where(DeliveryAttempt.suggestion_id == nudge.id)))
    assert kinds == ["rate_limited"]


def test_find_tend_message_picks_the_message_carrying_this_suggestions_metadata() -> None:
    from plugin.delivery.slack import find_tend_message

    def posted(ts: str, suggestion_id: object, event_type: str = "tend_suggestion") -> dict:
        return {"ts": ts, "metadata": {"event_type": event_type, "event_payload": {"suggestion_id": suggestion_id}}}

    messages = [{"ts": "1.0", "text": "a therapist's own message"}, posted("2.0", 7, "someone_else"), posted("3.0", 8), posted("4.0", "7")]
    assert find_tend_message(messages, 7)["ts"] == "4.0"
    assert find_tend_message(messages, 9) is None
