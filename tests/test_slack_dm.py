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
