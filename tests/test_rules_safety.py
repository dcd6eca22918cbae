"""Safety rules: risk language never yields a suggestion or anything cheerful."""

from __future__ import annotations

from plugin.delivery import copy
from tests.rules_factories import decide, make_facts, note, therapist_message

RISK = "safety.risk-language"
DISTRESS = "safety.therapist-distress"


def test_risk_language_suppresses_the_client_suggestion() -> None:
    decisions = decide(note("self_criticism", "risk_language"))
    assert "client.suggest.next-step" not in decisions
    assert decisions[RISK].kind == "suppress"


def test_risk_language_sends_one_neutral_protocol_line_now() -> None:
    decision = decide(note("risk_language"))[RISK]
    assert (decision.message_key, decision.timing) == ("messages.safety_protocol", "now")
    assert "protocol" in copy.text("messages.safety_protocol.lead")


def test_historical_risk_mention_also_suppresses() -> None:
    decisions = decide(note("shame", historical_signals=["risk_language"]))
    assert list(decisions) == [RISK]


def test_risk_language_in_a_portal_message_suppresses() -> None:
    facts = make_facts("client_message.received", client={"signals": ["risk_language", "shame"]})
    assert list(decide(facts)) == [RISK]


def test_risk_language_suppresses_practice_first_too() -> None:
    facts = note("shame", "risk_language", therapist={"self_compassion_practice": "none", "own_practice_14d": 0})
    assert list(decide(facts)) == [RISK]


def test_risk_language_leaves_the_therapists_own_care_in_place() -> None:
    facts = note("risk_language", therapist={"sessions_today": 7})
    assert set(decide(facts)) == {RISK, "therapist.selfcare.overfull-day"}


def test_therapist_distress_sends_a_plain_message_and_pauses_nudges_for_the_day() -> None:
    decision = decide(therapist_message("risk_language"))[DISTRESS]
    assert (decision.kind, decision.audience, decision.timing) == ("suppress", "therapist", "now")
    assert decision.effects == ("pause_selfcare_today",)
    assert "988" in copy.text("messages.therapist_distress.lead", assistance_line="x")


def test_safety_rules_cite_the_protocol_and_988() -> None:
    decision = decide(note("risk_language"))[RISK]
    assert decision.source_url == "https://988lifeline.org/"
    assert "protocol" in decision.source


def test_safety_messages_are_nothing_cheerful() -> None:
    for key in ("messages.safety_protocol", "messages.therapist_distress"):
        words = " ".join(str(v) for v in copy.entry(key).values())
        assert "!" not in words
        assert not any(w in words.lower() for w in ("great", "yay", "awesome", "congrat", ":)"))
