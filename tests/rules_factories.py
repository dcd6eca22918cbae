"""Facts dicts for rules tests: a realistic baseline plus the one thing a test is about.

The baseline is an ordinary session-5 note in the working stage with an
established alliance and no signals, for a therapist with a regular practice
on a light day: nothing fires, so each test adds only what it is about.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from plugin.rules import RuleSet, default_facts

EVENT_TIME = "2026-03-09T14:50:00+00:00"


@lru_cache(maxsize=1)
def default_rules() -> RuleSet:
    """The shipped ruleset, compiled once per test session."""
    return RuleSet.load()


def make_facts(event: str = "session_note.signed", *, client: dict[str, Any] | None = None,
               therapist: dict[str, Any] | None = None, with_client: bool = True) -> dict[str, Any]:
    facts = default_facts()
    facts["event"].update(type=event, time=EVENT_TIME)
    if with_client:
        facts["client"].update(
            present=True, session_number=5, alliance="established", phase="working", age=34,
            next_appointment_in_minutes=7 * 24 * 60,
        )
    facts["therapist"].update(
        self_compassion_practice="regular", sessions_today=3, longest_back_to_back=1,
        booked_minutes_today=150, own_practice_14d=2,
    )
    facts["client"].update(client or {})
    facts["therapist"].update(therapist or {})
    return facts


def note(*signals: str, therapist: dict[str, Any] | None = None, **client: Any) -> dict[str, Any]:
    """A signed session note carrying ``signals`` (current, and so also recent)."""
    client.setdefault("signals", list(signals))
    client.setdefault("recent_signals", list(dict.fromkeys(list(signals) + list(client.pop("also_recent", [])))))
    return make_facts("session_note.signed", client=client, therapist=therapist)


def therapist_message(*signals: str, **therapist: Any) -> dict[str, Any]:
    """A therapist's DM to the bot carrying ``signals``; no client is involved."""
    therapist.setdefault("signals", list(signals))
    return make_facts("therapist.message", therapist=therapist, with_client=False)


def appointment(event: str = "appointment.booked", **client: Any) -> dict[str, Any]:
    return make_facts(event, client=client)


def decide(facts: dict[str, Any], rules: RuleSet | None = None) -> dict[str, Any]:
    """Decisions keyed by rule id (each rule decides at most once per event)."""
    return {d.rule_id: d for d in (rules or default_rules()).evaluate(facts)}
