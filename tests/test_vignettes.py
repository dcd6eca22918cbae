"""Clinical vignettes: small event logs run through `tend replay`'s code path.

Each ``tests/vignettes/NAME.jsonl`` is a log of webhook bodies (DESIGN §3.2, plus
replay's ``therapist.message``); ``NAME.expected.json`` lists every decision the
log must produce, in order, each as ``{rule_id, decision, status}`` plus any of:
``event_index``, ``ladder_step``, ``analogy`` (true: an analogy is offered; false:
none), ``framing_id``, ``practice_id``, ``message_key``, ``deliver_at``,
``expires_at`` (ISO 8601) and ``reason_contains`` (a substring of one reason).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from plugin.replay import ReplayDecision, ReplayResult, replay_file

VIGNETTES = Path(__file__).with_name("vignettes")
NAMES = sorted(p.name.removesuffix(".jsonl") for p in VIGNETTES.glob("*.jsonl"))
EXACT = ("rule_id", "decision", "status", "event_index", "ladder_step", "framing_id", "practice_id", "message_key")


def _run(name: str) -> ReplayResult:
    return replay_file(VIGNETTES / f"{name}.jsonl")


def _mismatches(actual: ReplayDecision, expected: dict) -> list[str]:
    problems = []
    for key in EXACT:
        if key in expected and getattr(actual, key) != expected[key]:
            problems.append(f"{key}: expected {expected[key]!r}, got {getattr(actual, key)!r}")
    if "analogy" in expected and (actual.analogy_id is not None) != expected["analogy"]:
        problems.append(f"analogy: expected {'one' if expected['analogy'] else 'none'}, got {actual.analogy_id!r}")
    for key in ("deliver_at", "expires_at"):
        if key in expected:
            want = datetime.fromisoformat(expected[key]) if expected[key] else None
            if getattr(actual, key) != want:
                problems.append(f"{key}: expected {want}, got {getattr(actual, key)}")
    if "reason_contains" in expected and not any(expected["reason_contains"] in r for r in actual.reasons):
        problems.append(f"no reason contains {expected['reason_contains']!r}: {list(actual.reasons)}")
    return problems


def test_there_are_at_least_25_vignettes() -> None:
    assert len(NAMES) >= 25


@pytest.mark.parametrize("name", NAMES)
def test_vignette(name: str) -> None:
    result = _run(name)
    expected = json.loads((VIGNETTES / f"{name}.expected.json").read_text())
    assert result.bad_lines == []
    got = [f"{d.event_index}: {d.rule_id} {d.decision} {d.status} step={d.ladder_step} analogy={d.analogy_id} | {d.reasons[-1]}" for d in result.decisions]
    assert len(result.decisions) == len(expected), "decisions:\n" + "\n".join(got)
    for actual, want in zip(result.decisions, expected):
        assert not _mismatches(actual, want), f"{want['rule_id']}: {_mismatches(actual, want)}\ndecisions:\n" + "\n".join(got)


def test_risk_language_brings_only_the_safety_line() -> None:
    result = _run("risk_language_in_portal_message_suppresses")
    assert {d.message_key for d in result.decisions} == {"messages.safety_protocol"}


def test_nothing_is_sent_during_a_replay() -> None:
    result = _run("self_critical_session_5_suggests_step_1_with_analogy")
    assert result.queue.deliveries and all(isinstance(sid, int) for _, sid, _ in result.queue.deliveries)


def test_self_care_is_never_planned_inside_a_session() -> None:
    lines = (VIGNETTES / "overfull_day_nudges_in_the_next_gap.jsonl").read_text().splitlines()
    sessions = [json.loads(line)["data"] for line in lines if json.loads(line)["type"] == "appointment.booked"]
    for decision in _run("overfull_day_nudges_in_the_next_gap").decisions:
        for s in sessions:
            assert not datetime.fromisoformat(s["start"]) <= decision.deliver_at < datetime.fromisoformat(s["end"])
