"""A therapist's DM to Tend over real HTTP: read once, answered in its thread, never kept, never twice."""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import select

from plugin.delivery import copy
from plugin.store.models import Event, Suggestion, Therapist
from tests.conftest import wait_until
from tests.slack_harness import USER, TendSlack, tend_slack  # noqa: F401

CANARY = "zebrafinch-canary-51c2"


def replies(h: TendSlack) -> list[dict]:
    return [m for m in h.fake.messages_for(USER) if m.get("user") != USER]


def slack_events(h: TendSlack) -> list[Event]:
    with h.rt.db.session() as session:
        return list(session.scalars(select(Event).where(Event.source == "slack")))


def test_a_stressed_message_gets_a_break_in_its_thread_within_seconds(tend_slack: TendSlack) -> None:
    ts = tend_slack.fake.add_user_message(USER, "placeholder")
    started = time.monotonic()
    assert tend_slack.slack.dm("I am so exhausted and overwhelmed today", ts=ts).status == 200
    (reply,) = wait_until(lambda: replies(tend_slack), timeout=10)
    assert time.monotonic() - started < 5
    assert reply["thread_ts"] == ts
    assert reply["blocks"][0]["text"]["text"] == copy.text("headers.break")
    assert "May I be kind to myself" in reply["text"]


def test_the_event_keeps_the_signals_and_not_the_words(tend_slack: TendSlack) -> None:
    tend_slack.slack.dm(f"I messed up with a client, it is all my fault {CANARY}")
    wait_until(lambda: replies(tend_slack))
    (event,) = slack_events(tend_slack)
    assert event.type == "therapist.message"
    assert event.data["therapist_signals"] == ["self_blame"]
    assert CANARY not in json.dumps(event.data)
    with tend_slack.rt.db.session() as session:
        assert all(CANARY not in json.dumps(s.explanation) for s in session.scalars(select(Suggestion)))


def test_the_text_reaches_no_log_line(tend_slack: TendSlack, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    tend_slack.slack.dm(f"so overwhelmed {CANARY}")
    wait_until(lambda: replies(tend_slack))
    assert CANARY not in caplog.text


def test_a_slack_retry_of_the_same_event_gets_no_second_reply(tend_slack: TendSlack) -> None:
    tend_slack.slack.dm("I feel overwhelmed", event_id="Ev0RETRY01", ts="1700000000.000100")
    wait_until(lambda: replies(tend_slack))
    for attempt in (1, 2, 3):
        assert tend_slack.slack.dm("I feel overwhelmed", event_id="Ev0RETRY01", ts="1700000000.000100", retry=attempt).status == 200
    time.sleep(0.5)
    assert len(replies(tend_slack)) == 1
    assert len(slack_events(tend_slack)) == 1


def test_the_same_event_id_sent_concurrently_is_answered_once(tend_slack: TendSlack) -> None:
    import threading

    threads = [threading.Thread(target=tend_slack.slack.dm, args=("I feel overwhelmed",), kwargs={"event_id": "Ev0SAME"}) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_until(lambda: replies(tend_slack))
    time.sleep(0.5)
    assert len(replies(tend_slack)) == 1


def test_risk_language_gets_the_distress_message_and_stops_nudges_for_today(tend_slack: TendSlack) -> None:
    tend_slack.slack.dm("honestly some days I want to die")
    (reply,) = wait_until(lambda: replies(tend_slack), timeout=10)
    assert "988" in reply["text"]
    assert not any(b["type"] == "actions" for b in reply["blocks"])
    assert "May I be kind" not in reply["text"]
    with tend_slack.rt.db.session() as session:
        therapist = session.scalars(select(Therapist)).one()
        assert therapist.stopped_until is not None
        rules = set(session.scalars(select(Suggestion.rule_id)))
    assert "safety.therapist-distress" in rules
    time.sleep(0.3)
    assert len(replies(tend_slack)) == 1


def test_a_neutral_message_gets_no_reply(tend_slack: TendSlack) -> None:
    tend_slack.slack.dm("thanks, see you tomorrow")
    wait_until(lambda: slack_events(tend_slack))
    time.sleep(0.5)
    assert replies(tend_slack) == []


def test_bot_messages_edits_and_other_subtypes_are_ignored(tend_slack: TendSlack) -> None:
    tend_slack.slack.dm("I am overwhelmed", bot_id="B0SOMEBOT")
    tend_slack.slack.dm("I am overwhelmed", subtype="message_changed")
    tend_slack.slack.dm("I am overwhelmed", subtype="file_share")
    tend_slack.slack.event({"type": "message", "channel": "C0PUBLIC", "channel_type": "channel", "user": USER, "text": "I am overwhelmed", "ts": "1.2"})
    time.sleep(1.0)
    assert slack_events(tend_slack) == []
    assert replies(tend_slack) == []


def test_an_unknown_user_is_told_how_to_get_linked_once(tend_slack: TendSlack) -> None:
    stranger = "U0STRANGER"
    tend_slack.fake.add_user_message(stranger, "hello")
    tend_slack.slack.dm("hello", user=stranger, event_id="Ev0STRANGE")
    tend_slack.slack.dm("hello", user=stranger, event_id="Ev0STRANGE", retry=1)
    wait_until(lambda: len(tend_slack.fake.messages_for(stranger)) > 1)
    time.sleep(0.5)
    (reply,) = [m for m in tend_slack.fake.messages_for(stranger) if m.get("user") != stranger]
    assert reply["text"] == copy.text("slack.commands.not_linked")


# --- a listener that fails, and the Slack SDK at DEBUG ---------------------------------


def test_a_failing_listener_logs_only_the_exception_type_and_where(tend_slack: TendSlack, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from plugin import therapist_messages

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        # As a database error renders its statement and parameters: here, a distress DM's risk flag.
        raise OperationalError("INSERT INTO events (data) VALUES (?)", ({"therapist_signals": ["risk_language"], "x": CANARY},), Exception(CANARY))

    monkeypatch.setattr(therapist_messages, "handle_message", broken)
    caplog.set_level(logging.DEBUG)
    assert tend_slack.slack.dm(f"I want to die {CANARY}").status == 200
    wait_until(lambda: any(r.levelno >= logging.ERROR for r in caplog.records))
    time.sleep(0.2)
    assert CANARY not in caplog.text
    assert "risk_language" not in caplog.text
    assert "Slack listener failed: OperationalError at test_slack_dm.py:" in caplog.text


def test_the_slack_sdk_logs_no_dm_text_even_at_debug(tend_slack: TendSlack, caplog) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta, timezone

    tend_slack.fake.add_user_message(USER, f"I am not coping {CANARY}")
    caplog.set_level(logging.DEBUG)
    # Recovery reads the DM back (conversations.history): Slack's answer holds the therapist's words.
    assert tend_slack.rt.channel.find_sent(USER, 999_999, datetime.now(timezone.utc) - timedelta(minutes=5)) is None
    assert tend_slack.fake.calls_to("conversations.history")
    assert CANARY not in caplog.text


# --- a message Tend could not read -------------------------------------------------------


def unreadable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from plugin import signals

    def fail(text: str):  # type: ignore[no-untyped-def]
        raise signals.ExtractionError("therapist signal extraction failed (input withheld)")

    monkeypatch.setattr(signals, "extract_therapist", fail)


def test_an_unreadable_message_is_recorded_text_free_and_flagged_unread(tend_slack: TendSlack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    unreadable(monkeypatch)
    ts = tend_slack.fake.add_user_message(USER, "placeholder")
    tend_slack.slack.dm(f"I want to die {CANARY}", ts=ts)
    (event,) = wait_until(lambda: slack_events(tend_slack))
    assert event.type == "therapist.message"
    assert event.data["signals_unread"] is True
    assert event.data["therapist_signals"] == []
    assert event.data["slack_thread_ts"] == ts
    assert CANARY not in json.dumps(event.data)


def test_an_unreadable_message_gets_the_neutral_line_with_988_in_its_thread(tend_slack: TendSlack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    unreadable(monkeypatch)
    ts = tend_slack.fake.add_user_message(USER, "placeholder")
    tend_slack.slack.dm("I want to die", ts=ts)
    (reply,) = wait_until(lambda: replies(tend_slack), timeout=10)
    assert reply["thread_ts"] == ts
    assert reply["text"] == copy.text("slack.dm.signals_unread")
    assert "988" in reply["text"]
    assert "May I be kind" not in reply["text"]
    assert not any(b["type"] in ("actions", "header") for b in reply["blocks"])


def test_the_neutral_line_names_the_clinic_assistance_line_when_configured(tend_slack: TendSlack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    unreadable(monkeypatch)
    monkeypatch.setattr(tend_slack.rt, "settings", dataclasses.replace(tend_slack.rt.settings, assistance_line="+1 800 555 0199"))
    tend_slack.slack.dm("I want to die", ts=tend_slack.fake.add_user_message(USER, "placeholder"))
    (reply,) = wait_until(lambda: replies(tend_slack), timeout=10)
    assert copy.text("chrome.safety.assistance_line", line="+1 800 555 0199") in reply["text"]
    assert "988" in reply["text"]


def test_a_retried_unreadable_message_gets_no_second_reply(tend_slack: TendSlack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    unreadable(monkeypatch)
    ts = tend_slack.fake.add_user_message(USER, "placeholder")
    tend_slack.slack.dm("I want to die", event_id="Ev0UNREAD1", ts=ts)
    wait_until(lambda: replies(tend_slack))
    assert tend_slack.slack.dm("I want to die", event_id="Ev0UNREAD1", ts=ts, retry=1).status == 200
    time.sleep(0.5)
    assert len(replies(tend_slack)) == 1
    assert len(slack_events(tend_slack)) == 1


def test_unreadable_messages_are_counted(tend_slack: TendSlack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from plugin import metrics

    unreadable(monkeypatch)
    before = metrics.THERAPIST_MESSAGES_UNREAD._value.get()
    tend_slack.slack.dm("I want to die", ts=tend_slack.fake.add_user_message(USER, "placeholder"))
    wait_until(lambda: replies(tend_slack))
    assert metrics.THERAPIST_MESSAGES_UNREAD._value.get() == before + 1
