"""App Home over real HTTP: this week, own practice, settings, and exactly what supervisors see."""

from __future__ import annotations

from plugin.delivery import copy
from tests.conftest import wait_until
from tests.slack_harness import USER, TendSlack, tend_slack  # noqa: F401


def open_home(h: TendSlack) -> dict:
    assert h.slack.event({"type": "app_home_opened", "user": USER, "channel": "D0HOME", "tab": "home"}).status == 200
    return wait_until(lambda: h.fake.home_view(USER))


def home_text(view: dict) -> str:
    return "\n".join(b.get("text", {}).get("text", "") for b in view["blocks"] if "text" in b)


def test_the_home_tab_lists_this_weeks_nudges_and_answers(tend_slack: TendSlack) -> None:
    nudge = tend_slack.delivered_nudge()
    tend_slack.slack.action("done", nudge.id, message_ts=nudge.slack_ts)
    wait_until(lambda: tend_slack.fake.calls_to("chat.update"))
    text = home_text(open_home(tend_slack))
    assert "1 messages reached you; 1 done" in text
    assert "a minute for you, done" in text


def test_the_home_tab_shows_the_own_practice_streak_and_settings(tend_slack: TendSlack) -> None:
    tend_slack.slack.command("break")
    tend_slack.slack.command("limit 4")
    tend_slack.slack.command("hours 09:00-17:00")
    text = home_text(open_home(tend_slack))
    assert "Days in a row: 1." in text
    assert "Daily limit: 4 messages" in text
    assert "Mon 09:00-17:00" in text
    assert copy.text("slack.home.not_paused") in text


def test_the_home_tab_says_exactly_what_supervisors_can_see(tend_slack: TendSlack) -> None:
    text = home_text(open_home(tend_slack))
    for line in copy.entry("slack.home.supervisors") + copy.entry("slack.home.supervisors_not"):
        assert line.replace("&", "&amp;") in text


def test_the_messages_tab_publishes_nothing(tend_slack: TendSlack) -> None:
    tend_slack.slack.event({"type": "app_home_opened", "user": USER, "channel": "D0HOME", "tab": "messages"})
    import time

    time.sleep(0.5)
    assert tend_slack.fake.home_view(USER) is None


def test_a_pause_ending_on_another_day_names_the_day_from_the_catalogue(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta, timezone

    from plugin.therapist_settings import local_clock

    monkeypatch.setitem(copy.catalogue()["slack"]["home"]["days"], "wed", "Mittwoch")
    now = datetime(2024, 5, 7, 12, 0, tzinfo=timezone.utc)  # a Tuesday
    assert local_clock(now + timedelta(days=1), "UTC", now) == "Mittwoch 12:00"
