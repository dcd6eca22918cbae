"""The self-compassion ladder (Winters tip 4): start small, go slow."""

from __future__ import annotations

from typing import Any

from plugin.rules import default_facts
from plugin.rules.ladder import ANALOGIES, Pace, choose_analogy, next_step


def client(**values: Any) -> dict[str, Any]:
    facts = default_facts()["client"]
    facts.update({"present": True, "age": 30, **values})
    return facts


def test_first_suggestion_is_step_one() -> None:
    assert next_step(client()).step == 1


def test_advances_one_step_after_tolerated() -> None:
    assert next_step(client(ladder_step=2, last_step_response="tolerated", sessions_since_step=1)).step == 3


def test_at_most_one_new_step_per_session() -> None:
    assert next_step(client(ladder_step=2, last_step_response="tolerated", sessions_since_step=0)).step == 2


def test_repeats_the_current_step_when_not_tried() -> None:
    assert next_step(client(ladder_step=2, last_step_response="not_tried", sessions_since_step=3)).step == 2


def test_repeats_the_current_step_without_a_response() -> None:
    assert next_step(client(ladder_step=3, last_step_response="", sessions_since_step=1)).step == 3


def test_steps_back_one_after_overwhelming() -> None:
    assert next_step(client(ladder_step=4, last_step_response="overwhelming", sessions_since_step=1)).step == 3


def test_never_steps_below_one() -> None:
    assert next_step(client(ladder_step=1, last_step_response="overwhelming", sessions_since_step=1)).step == 1


def test_never_goes_beyond_step_four() -> None:
    choice = next_step(client(ladder_step=4, last_step_response="tolerated", sessions_since_step=5))
    assert (choice.step, choice.practice_id) == (4, "ladder.4.own_phrases")


def test_survivor_needs_two_sessions_per_step() -> None:
    base = dict(ladder_step=1, last_step_response="tolerated", historical_signals=["abuse_history"])
    assert next_step(client(sessions_since_step=1, **base)).step == 1
    assert next_step(client(sessions_since_step=2, **base)).step == 2


def test_pace_is_tunable() -> None:
    choice = next_step(client(ladder_step=1, last_step_response="tolerated", sessions_since_step=1),
                       Pace(sessions_per_step=2))
    assert choice.step == 1


def test_only_the_first_suggestion_carries_an_analogy() -> None:
    assert next_step(client()).analogy_id == "friend"
    assert next_step(client(ladder_step=1, last_step_response="tolerated", sessions_since_step=1)).analogy_id is None


def test_no_analogy_once_all_were_offered() -> None:
    assert choose_analogy(ANALOGIES) is None


def test_teens_are_13_to_19() -> None:
    assert next_step(client(age=13)).framing_id == "self_esteem_rollercoaster"
    assert next_step(client(age=19)).framing_id == "self_esteem_rollercoaster"
    assert next_step(client(age=20)).framing_id is None
    assert next_step(client(age=12)).framing_id is None


def test_survivor_framing_wins_over_teen_framing() -> None:
    assert next_step(client(age=15, recent_signals=["abuse_history"])).framing_id == "clear_mirror"


def test_reasons_explain_a_step_back_in_plain_words() -> None:
    choice = next_step(client(ladder_step=3, last_step_response="overwhelming", sessions_since_step=1))
    assert any("overwhelming" in r and "step 2" in r for r in choice.reasons)
