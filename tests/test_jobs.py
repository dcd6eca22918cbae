"""evaluate -> suggestion log -> deliver, in process, against real Redis and the fake Slack."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from plugin import jobs
from plugin.store.models import DeliveryAttempt, Event, Suggestion
from tests.conftest import full_morning, make_env, running, therapist_data, zone_near_noon

NOW = datetime.now(timezone.utc)


@pytest.fixture
def slack_rt(tmp_path, database_url, redis_server, fake_slack):  # type: ignore[no-untyped-def]
    """A runtime delivering to the fake Slack, on SQLite and on PostgreSQL."""
    env = make_env(tmp_path, database_url, TEND_SLACK_BOT_TOKEN="xoxb-test", TEND_SLACK_API_URL=fake_slack.base_url)
    yield from running(env, redis_server)


@pytest.fixture
def overfull_day(slack_rt, post_to):  # type: ignore[no-untyped-def]
    """A therapist in a zone where it is about noon, seven sessions behind them this morning."""
    post_to("therapist.upserted", therapist_data(zone_near_noon(NOW)))
    for appointment in full_morning(NOW):
        post_to("appointment.booked", appointment)
    post_to("session_note.signed", note(note_id="N-0"))
    return slack_rt


@pytest.fixture
def post_to(slack_rt):  # type: ignore[no-untyped-def]
    """Record and evaluate one event the way the webhook and the worker would."""
    from plugin import admin, intake
    from plugin.events import from_wire
    from schemas.ehr import load_event

    clinic = admin.create_clinic(slack_rt.db, slack_rt.box, "Riverside", "riverside")
    counter = iter(range(1_000_000))

    def post(event_type: str, data: dict) -> int:
        _, loaded, occurred = load_event({"type": event_type, "occurred_at": NOW.isoformat(), "data": data})
        event = from_wire(clinic_id=clinic.clinic_id, source="ehr", dedupe_key=f"k{next(counter)}", event_type=event_type, occurred_at=occurred, data=loaded)
        accepted = intake.accept(slack_rt.db, event, pseudonym_key=slack_rt.settings.pseudonym_key, box=slack_rt.box)
        jobs.evaluate(accepted.event_id, now=NOW)
        return accepted.event_id

    return post


def note(**extra):  # type: ignore[no-untyped-def]
    return {
        "note_id": "N-1",
        "therapist_id": "T-100",
        "client_id": "P-0",
        "session_start": (NOW - timedelta(minutes=70)).isoformat(),
        "session_number": 5,
        "alliance": "established",
        "phase": "working",
        **extra,
    }


def suggestions(rt) -> list[Suggestion]:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return list(session.scalars(select(Suggestion).order_by(Suggestion.id)))


def test_an_overfull_day_schedules_one_self_care_nudge_now(overfull_day) -> None:
    nudges = [s for s in suggestions(overfull_day) if s.rule_id == "therapist.selfcare.overfull-day"]
    assert [n.status for n in nudges] == ["scheduled"]
    assert abs((nudges[0].deliver_at - NOW).total_seconds()) < 1


def test_evaluating_an_event_twice_logs_its_decisions_once(overfull_day, post_to) -> None:
    event_id = post_to("session_note.signed", note(tags=["self_criticism"]))
    before = len(suggestions(overfull_day))
    jobs.evaluate(event_id, now=NOW)
    assert len(suggestions(overfull_day)) == before


def test_deliver_posts_one_dm_with_the_suggestion_id_in_metadata(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    assert jobs.deliver(nudge.id) == "delivered"
    posts = fake_slack.calls_to("chat.postMessage")
    assert len(posts) == 1
    assert posts[0].params["metadata"]["event_payload"]["suggestion_id"] == nudge.id


def test_a_second_deliver_run_posts_nothing(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    jobs.deliver(nudge.id)
    assert jobs.deliver(nudge.id) == "noop"
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_delivery_stores_the_slack_ts(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    jobs.deliver(nudge.id)
    stored = next(s for s in suggestions(overfull_day) if s.id == nudge.id)
    assert stored.status == "delivered"
    assert stored.slack_ts == fake_slack.calls_to("chat.postMessage")[0].response["ts"]


def test_a_429_reschedules_after_retry_after(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(1, status=429, retry_after=7, method="chat.postMessage")
    assert jobs.deliver(nudge.id) == "retrying"
    scheduled = overfull_day.queue.rq.scheduled_job_registry.get_job_ids()
    assert any(job_id.startswith(f"deliver-{nudge.id}-") for job_id in scheduled)
    stored = next(s for s in suggestions(overfull_day) if s.id == nudge.id)
    assert stored.status == "scheduled"


def test_a_500_is_retried_and_the_retry_does_not_post_twice(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(1, status=500, method="chat.postMessage")
    assert jobs.deliver(nudge.id) == "retrying"
    assert jobs.deliver(nudge.id) == "delivered"
    assert len(fake_slack.messages_for("U0THERAPIST")) == 1


def test_a_permanent_error_fails_with_the_reason(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(1, error="user_not_found", method="conversations.open")
    assert jobs.deliver(nudge.id) == "failed"
    stored = next(s for s in suggestions(overfull_day) if s.id == nudge.id)
    assert stored.status == "failed"
    assert "user_not_found" in (stored.failure_reason or "")


def test_a_crash_after_posting_is_recovered_without_a_second_post(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    jobs.deliver(nudge.id)
    with overfull_day.db.session() as session:  # as if the worker died before recording the post
        row = session.get(Suggestion, nudge.id)
        row.status, row.claimed_at, row.slack_ts = "sending", NOW - timedelta(minutes=10), None
    assert jobs.deliver(nudge.id) == "delivered"
    assert len(fake_slack.messages_for("U0THERAPIST")) == 1


def test_a_client_suggestion_waits_for_the_gap_before_that_clients_next_session(slack_rt, post_to) -> None:
    post_to("therapist.upserted", therapist_data(zone_near_noon(NOW)))
    start = NOW + timedelta(hours=3)
    post_to("appointment.booked", {"appointment_id": "A-9", "therapist_id": "T-100", "client_id": "P-0", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()})
    post_to("session_note.signed", note(tags=["self_criticism"]))
    suggestion = next(s for s in suggestions(slack_rt) if s.rule_id == "client.suggest.next-step")
    assert suggestion.status == "scheduled"
    assert suggestion.deliver_at == start - timedelta(minutes=30)
    assert suggestion.expires_at == start
    assert suggestion.ladder_step == 1


def test_cancelling_the_session_cancels_its_prepared_suggestion(slack_rt, post_to) -> None:
    post_to("therapist.upserted", therapist_data(zone_near_noon(NOW)))
    start = NOW + timedelta(hours=3)
    appointment = {"appointment_id": "A-9", "therapist_id": "T-100", "client_id": "P-0", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()}
    post_to("appointment.booked", appointment)
    post_to("session_note.signed", note(tags=["self_criticism"]))
    post_to("appointment.cancelled", appointment)
    suggestion = next(s for s in suggestions(slack_rt) if s.rule_id == "client.suggest.next-step")
    assert suggestion.status == "cancelled"


def test_every_delivery_attempt_is_logged(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(1, status=500, method="chat.postMessage")
    jobs.deliver(nudge.id)
    jobs.deliver(nudge.id)
    with overfull_day.db.session() as session:
        outcomes = list(session.scalars(select(DeliveryAttempt.outcome).where(DeliveryAttempt.suggestion_id == nudge.id).order_by(DeliveryAttempt.id)))
    assert outcomes == ["transient", "delivered"]


def test_events_are_marked_evaluated(overfull_day) -> None:
    with overfull_day.db.session() as session:
        assert set(session.scalars(select(Event.status))) == {"evaluated"}


def test_an_amended_note_supersedes_its_waiting_suggestion(slack_rt, post_to) -> None:
    post_to("therapist.upserted", therapist_data(zone_near_noon(NOW)))
    start = NOW + timedelta(hours=3)
    post_to("appointment.booked", {"appointment_id": "A-9", "therapist_id": "T-100", "client_id": "P-0", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()})
    post_to("session_note.signed", note(tags=["self_criticism"]))
    post_to("session_note.signed", note(tags=["self_criticism", "perfectionism"]))  # the same note_id, amended
    steps = [s for s in suggestions(slack_rt) if s.rule_id == "client.suggest.next-step"]
    assert [s.status for s in steps] == ["cancelled", "scheduled"]
    assert "amended" in steps[0].timing_reason


def test_an_amended_note_after_the_send_sends_nothing_new(slack_rt, post_to, fake_slack) -> None:
    post_to("therapist.upserted", therapist_data(zone_near_noon(NOW)))
    start = NOW + timedelta(minutes=20)
    post_to("appointment.booked", {"appointment_id": "A-9", "therapist_id": "T-100", "client_id": "P-0", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()})
    post_to("session_note.signed", note(tags=["self_criticism"]))
    first = next(s for s in suggestions(slack_rt) if s.rule_id == "client.suggest.next-step")
    assert jobs.deliver(first.id) == "delivered"
    post_to("session_note.signed", note(tags=["self_criticism"]))
    second = [s for s in suggestions(slack_rt) if s.rule_id == "client.suggest.next-step"][1]
    assert second.status == "skipped"


def test_a_retry_keeps_its_new_time_so_the_sweeper_does_not_pull_it_forward(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(1, status=429, retry_after=600, method="chat.postMessage")
    jobs.deliver(nudge.id)
    stored = next(s for s in suggestions(overfull_day) if s.id == nudge.id)
    assert stored.deliver_at > datetime.now(timezone.utc) + timedelta(minutes=9)
    assert jobs.sweep(now=datetime.now(timezone.utc) + timedelta(minutes=2))["due"] == 0


def test_a_payload_the_guard_refuses_fails_without_posting(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    with overfull_day.db.session() as session:
        session.get(Suggestion, nudge.id).practice_id = "no_such_practice"
    assert jobs.deliver(nudge.id) == "noop"
    stored = next(s for s in suggestions(overfull_day) if s.id == nudge.id)
    assert stored.status == "failed"
    assert stored.timing_reason.startswith("payload refused")
    assert fake_slack.calls_to("chat.postMessage") == []


def test_a_recovered_send_past_its_moment_is_expired_not_posted(slack_rt, post_to, fake_slack) -> None:
    post_to("therapist.upserted", therapist_data(zone_near_noon(NOW)))
    start = NOW + timedelta(hours=3)
    post_to("appointment.booked", {"appointment_id": "A-9", "therapist_id": "T-100", "client_id": "P-0", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()})
    post_to("session_note.signed", note(tags=["self_criticism"]))
    suggestion = next(s for s in suggestions(slack_rt) if s.rule_id == "client.suggest.next-step")
    with slack_rt.db.session() as session:  # a worker died holding it, and the session has begun since
        row = session.get(Suggestion, suggestion.id)
        row.status, row.claimed_at = "sending", NOW - timedelta(hours=4)
        row.expires_at = NOW - timedelta(minutes=1)
    assert jobs.deliver(suggestion.id) == "expired"
    assert fake_slack.calls_to("chat.postMessage") == []


def test_a_failing_evaluation_is_marked_failed_after_five_tries(slack_rt, post_to, monkeypatch) -> None:
    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("canary-9a1 must not travel")

    monkeypatch.setattr(jobs, "evaluate_event", broken)
    with pytest.raises(jobs.JobFailed):
        post_to("therapist.upserted", therapist_data("UTC"))  # the first try
    with slack_rt.db.session() as session:
        event_id = session.scalars(select(Event.id).order_by(Event.id.desc())).first()
    for _ in range(4):
        with pytest.raises(jobs.JobFailed):
            jobs.evaluate(event_id)
    with slack_rt.db.session() as session:
        event = session.get(Event, event_id)
    assert (event.status, event.attempts, event.error) == ("failed", 5, "RuntimeError")
    assert jobs.evaluate(event_id) == []  # a failed event is left for an operator


def test_a_failed_job_carries_no_message_from_the_work(slack_rt, post_to, monkeypatch) -> None:
    def broken(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise ValueError("canary-77 from a note")

    monkeypatch.setattr(jobs, "evaluate_event", broken)
    with pytest.raises(jobs.JobFailed) as raised:
        post_to("therapist.upserted", therapist_data("UTC"))
    assert "canary" not in str(raised.value)
    assert raised.value.__suppress_context__


def test_a_live_evaluation_sends_what_is_due_now_without_a_second_job(slack_rt, post_to, fake_slack) -> None:
    from plugin import intake
    from plugin.events import from_wire

    event = from_wire(
        clinic_id="riverside", source="ehr", dedupe_key="live-1", event_type="client_message.received",
        occurred_at=datetime.now(timezone.utc),
        data={"message_id": "M-1", "therapist_id": "T-100", "client_id": "P-0", "sent_at": NOW.isoformat(), "text": "I want to end my life."},
    )
    post_to("therapist.upserted", therapist_data(zone_near_noon(NOW)))
    accepted = intake.accept(slack_rt.db, event, pseudonym_key=slack_rt.settings.pseudonym_key, box=slack_rt.box)
    jobs.evaluate(accepted.event_id)
    assert len(fake_slack.messages_for("U0THERAPIST")) == 1
    assert not any(j.startswith("deliver-") for j in slack_rt.queue.rq.job_ids)


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found"])
def test_other_permanent_errors_fail_at_once(overfull_day, fake_slack, error) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(1, error=error, method="chat.postMessage")
    assert jobs.deliver(nudge.id) == "failed"
    assert error in (next(s for s in suggestions(overfull_day) if s.id == nudge.id).failure_reason or "")


def test_a_connection_error_is_retried(overfull_day, fake_slack) -> None:
    from plugin.delivery.slack import SlackChannel

    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    overfull_day.__dict__["channel"] = SlackChannel("xoxb-test", "http://127.0.0.1:9/api/", timeout=1)  # nothing listens
    assert jobs.deliver(nudge.id) == "retrying"
    assert next(s for s in suggestions(overfull_day) if s.id == nudge.id).status == "scheduled"


def test_delivery_gives_up_after_the_last_attempt(overfull_day, fake_slack) -> None:
    from plugin.sending import MAX_ATTEMPTS

    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(MAX_ATTEMPTS, status=500, method="chat.postMessage")
    outcomes = []
    for _ in range(MAX_ATTEMPTS):
        with overfull_day.db.session() as session:  # let each retry fall due at once
            session.get(Suggestion, nudge.id).deliver_at = datetime.now(timezone.utc)
        outcomes.append(jobs.deliver(nudge.id))
    assert outcomes == ["retrying"] * (MAX_ATTEMPTS - 1) + ["failed"]
    assert fake_slack.messages_for("U0THERAPIST") == []


def test_a_429_waits_exactly_as_long_as_slack_asks(overfull_day, fake_slack) -> None:
    nudge = next(s for s in suggestions(overfull_day) if s.status == "scheduled")
    fake_slack.fail_next(1, status=429, retry_after=42, method="chat.postMessage")
    before = datetime.now(timezone.utc)
    jobs.deliver(nudge.id)
    wait = (next(s for s in suggestions(overfull_day) if s.id == nudge.id).deliver_at - before).total_seconds()
    assert 41 <= wait <= 44
