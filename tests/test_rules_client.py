"""Client rules: when to suggest self-compassion, when to hold or wait (Winters tips 1-4)."""

from __future__ import annotations

from tests.rules_factories import decide, note

SUGGEST = "client.suggest.next-step"


def test_defers_at_session_two_without_an_established_alliance() -> None:
    decisions = decide(note("self_criticism", session_number=2, alliance="forming", phase="assessment"))
    assert list(decisions) == ["client.defer.no-alliance"]
    assert decisions["client.defer.no-alliance"].kind == "defer"
    assert decisions["client.defer.no-alliance"].message_key is None


def test_defer_records_that_the_suggestion_waits() -> None:
    decision = decide(note("shame", session_number=2, alliance="forming"))["client.defer.no-alliance"]
    assert decision.waiting_rule_id == SUGGEST
    assert ("the alliance is not established yet", {"client.alliance": "forming"}) in decision.conditions


def test_suggests_step_one_with_an_analogy_at_session_five_with_alliance_established() -> None:
    decision = decide(note("self_criticism", session_number=5, alliance="established"))[SUGGEST]
    assert decision.kind == "suggest"
    assert decision.ladder_step == 1
    assert decision.practice_id == "ladder.1.supportive_touch"
    assert decision.analogy_id == "friend"
    assert decision.timing == "before_next_appointment"


def test_first_suggestion_never_repeats_an_analogy_already_offered() -> None:
    decision = decide(note("perfectionism", analogies_offered=["friend", "garden"]))[SUGGEST]
    assert decision.analogy_id == "instrument"


def test_holds_for_empathy_difficulty() -> None:
    decisions = decide(note("self_criticism", "empathy_difficulty"))
    assert list(decisions) == ["client.hold.empathy-difficulty"]
    assert decisions["client.hold.empathy-difficulty"].kind == "hold"


def test_holds_for_care_paired_with_pain_when_no_step_was_tolerated() -> None:
    decisions = decide(note("shame", "care_paired_with_pain", tolerated_any=False))
    assert list(decisions) == ["client.hold.care-paired-with-pain"]


def test_care_paired_with_pain_no_longer_holds_once_a_step_was_tolerated() -> None:
    facts = note("shame", "care_paired_with_pain", tolerated_any=True, ladder_step=1,
                 last_step_response="tolerated", sessions_since_step=1)
    assert decide(facts)[SUGGEST].ladder_step == 2


def test_teen_gets_the_self_esteem_rollercoaster_framing() -> None:
    assert decide(note("low_self_worth", age=15))[SUGGEST].framing_id == "self_esteem_rollercoaster"


def test_abuse_survivor_gets_the_clear_mirror_framing() -> None:
    assert decide(note("shame", also_recent=["abuse_history"]))[SUGGEST].framing_id == "clear_mirror"


def test_abuse_survivor_climbs_slower_two_sessions_per_step() -> None:
    facts = note("shame", also_recent=["abuse_history"], ladder_step=1, last_step_response="tolerated",
                 sessions_since_step=1, tolerated_any=True)
    assert decide(facts)[SUGGEST].ladder_step == 1


def test_steps_back_after_an_overwhelming_response() -> None:
    facts = note("self_criticism", ladder_step=3, last_step_response="overwhelming", sessions_since_step=1)
    decision = decide(facts)[SUGGEST]
    assert decision.ladder_step == 2
    assert decision.practice_id == "ladder.2.acknowledge_pain"


def test_no_signal_decides_nothing() -> None:
    assert decide(note()) == {}


def test_signal_that_is_not_an_indication_decides_nothing() -> None:
    assert decide(note("trauma_history")) == {}


def test_practice_first_nudges_the_therapist_and_the_suggestion_waits() -> None:
    facts = note("self_criticism", therapist={"self_compassion_practice": "occasional", "own_practice_14d": 0})
    decisions = decide(facts)
    assert SUGGEST not in decisions
    nudge = decisions["therapist.practice-first"]
    assert (nudge.kind, nudge.audience, nudge.practice_id) == ("nudge", "therapist", "self_compassion_break")
    assert nudge.waiting_rule_id == SUGGEST


def test_practice_first_does_not_fire_once_the_therapist_has_practised() -> None:
    facts = note("self_criticism", therapist={"self_compassion_practice": "none", "own_practice_14d": 1})
    assert SUGGEST in decide(facts)


def test_practice_first_does_not_fire_when_no_suggestion_is_due() -> None:
    facts = note(therapist={"self_compassion_practice": "none", "own_practice_14d": 0})
    assert decide(facts) == {}


def test_hold_wins_over_practice_first() -> None:
    facts = note("shame", "empathy_difficulty", therapist={"self_compassion_practice": "none", "own_practice_14d": 0})
    assert list(decide(facts)) == ["client.hold.empathy-difficulty"]


def test_portal_message_with_self_criticism_can_suggest() -> None:
    from tests.rules_factories import make_facts
    facts = make_facts("client_message.received", client={"signals": ["self_criticism"]})
    assert decide(facts)[SUGGEST].ladder_step == 1


def test_suggestion_explains_itself_with_conditions_reasons_and_source() -> None:
    decision = decide(note("self_criticism"))[SUGGEST]
    assert decision.rule_version == 1
    assert dict(decision.conditions)["an indication for self-compassion is present"]["client.signals"] == ("self_criticism",)
    assert any("step 1" in r for r in decision.reasons)
    assert decision.source.startswith("Tips 1 and 4")
    assert decision.source_url.startswith("https://www.goodtherapy.org/")
