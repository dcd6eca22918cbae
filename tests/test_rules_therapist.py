"""Therapist self-care rules (Winters tip 5): practise it yourself, in and between sessions."""

from __future__ import annotations

from tests.rules_factories import appointment, decide, note, therapist_message

OVERFULL = "therapist.selfcare.overfull-day"


def test_overfull_day_nudges_a_short_practice_in_the_next_gap() -> None:
    decision = decide(note(therapist={"sessions_today": 6}))[OVERFULL]
    assert (decision.kind, decision.audience, decision.timing) == ("nudge", "therapist", "next_gap")
    assert decision.practice_id == "soothing_touch_breaths"


def test_five_sessions_is_not_an_overfull_day() -> None:
    assert OVERFULL not in decide(note(therapist={"sessions_today": 5}))


def test_three_back_to_back_sessions_is_an_overfull_day() -> None:
    decision = decide(note(therapist={"longest_back_to_back": 3}))[OVERFULL]
    seen = dict(decision.conditions)["the day is overfull (many sessions, or a long back-to-back run)"]
    assert seen["therapist.longest_back_to_back"] == 3
    assert seen["params.back_to_back"] == 3


def test_difficult_session_nudges_compassion_with_equanimity() -> None:
    decision = decide(note(therapist={"signals": ["difficult_session"]}))["therapist.selfcare.difficult-session"]
    assert decision.practice_id == "compassion_with_equanimity"


def test_a_rupture_counts_as_a_difficult_session() -> None:
    assert "therapist.selfcare.difficult-session" in decide(note(alliance="ruptured"))


def test_self_care_runs_alongside_a_client_suggestion() -> None:
    decisions = decide(note("self_criticism", therapist={"sessions_today": 7}))
    assert set(decisions) == {"client.suggest.next-step", OVERFULL}


def test_stress_message_is_answered_with_a_break_now() -> None:
    decision = decide(therapist_message("stress"))["therapist.selfcare.stress-message"]
    assert (decision.timing, decision.practice_id) == ("now", "self_compassion_break")


def test_self_blame_message_is_answered_with_a_break() -> None:
    assert "therapist.selfcare.stress-message" in decide(therapist_message("self_blame"))


def test_distress_stops_every_self_care_nudge_from_that_message() -> None:
    decisions = decide(therapist_message("risk_language", "stress", "self_blame"))
    assert list(decisions) == ["safety.therapist-distress"]


def test_pre_session_modelling_before_a_client_on_the_ladder() -> None:
    decision = decide(appointment(ladder_step=2))["therapist.modeling.pre-session"]
    assert (decision.timing, decision.practice_id) == ("pre_session", "grounding_before_session")


def test_no_pre_session_nudge_for_a_client_not_on_the_ladder() -> None:
    assert decide(appointment("appointment.updated", ladder_step=0)) == {}


def test_a_plain_therapist_message_decides_nothing() -> None:
    assert decide(therapist_message()) == {}
