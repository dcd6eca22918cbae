"""Rules evaluation throughput (DESIGN §7: >= 20,000 decisions/s on one core, facts in memory).

Run by hand: ``python bench/bench_rules.py``. The baseline is a hand-written
Python ``if`` chain over the same facts in the same process, so the ratio says
what rules-as-data costs on this machine, whatever the machine is. PASS/MISS
is judged on evaluations/s (each evaluation is one event's full decision),
the stricter reading: decisions/s is higher because events can yield several.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.rules import RuleSet, default_facts  # noqa: E402

TARGET = 20_000
SECONDS = 3.0


def _facts(event: str, client: dict[str, Any] | None = None, therapist: dict[str, Any] | None = None,
           with_client: bool = True) -> dict[str, Any]:
    facts = default_facts()
    facts["event"].update(type=event, time="2026-03-09T14:50:00+00:00")
    if with_client:
        facts["client"].update(present=True, session_number=6, alliance="established", phase="working", age=41,
                               recent_signals=["shame"], next_appointment_in_minutes=10080)
    facts["therapist"].update(self_compassion_practice="occasional", sessions_today=4, longest_back_to_back=2,
                              booked_minutes_today=200, own_practice_14d=3)
    facts["client"].update(client or {})
    facts["therapist"].update(therapist or {})
    return facts


WORKLOAD: list[dict[str, Any]] = [
    # a busy day, a self-critical client further up the ladder: suggest + overfull-day nudge
    _facts("session_note.signed", {"signals": ["self_criticism", "perfectionism"], "ladder_step": 2,
                                   "last_step_response": "tolerated", "sessions_since_step": 1, "tolerated_any": True,
                                   "analogies_offered": ["friend"]}, {"sessions_today": 7}),
    # an early session: defer
    _facts("session_note.signed", {"signals": ["shame"], "session_number": 2, "alliance": "forming",
                                   "phase": "assessment"}),
    # risk language: safety suppresses the suggestion
    _facts("session_note.signed", {"signals": ["risk_language", "shame"]}),
    # a teen survivor after an overwhelming step; therapist without practice: practice-first
    _facts("client_message.received", {"signals": ["low_self_worth"], "age": 16, "historical_signals": ["abuse_history"],
                                       "ladder_step": 2, "last_step_response": "overwhelming", "sessions_since_step": 1},
           {"self_compassion_practice": "none", "own_practice_14d": 0}),
    # an ordinary note: nothing
    _facts("session_note.signed"),
    # the therapist writes "exhausted, I messed up"
    _facts("therapist.message", therapist={"signals": ["stress", "self_blame"]}, with_client=False),
    # a booking for a client on the ladder: pre-session modelling
    _facts("appointment.booked", {"ladder_step": 1}),
]


def baseline(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """The same default policy as a plain if chain: what the engine is measured against."""
    out: list[tuple[str, str]] = []
    event, c, t = facts["event"]["type"], facts["client"], facts["therapist"]
    client_event = event in ("session_note.signed", "client_message.received")
    silenced_client = silenced_selfcare = False
    if client_event and ("risk_language" in c["signals"] or "risk_language" in c["historical_signals"]):
        out.append(("safety.risk-language", "suppress"))
        silenced_client = True
    if event == "therapist.message" and "risk_language" in t["signals"]:
        out.append(("safety.therapist-distress", "suppress"))
        silenced_selfcare = True
    indications = ("self_criticism", "perfectionism", "shame", "low_self_worth", "needs_self_soothing", "abuse_history")
    if client_event and not silenced_client and c["present"] and any(s in indications for s in c["signals"]):
        if "empathy_difficulty" in c["recent_signals"]:
            out.append(("client.hold.empathy-difficulty", "hold"))
        elif "care_paired_with_pain" in c["recent_signals"] and not c["tolerated_any"]:
            out.append(("client.hold.care-paired-with-pain", "hold"))
        elif c["alliance"] != "established" and (c["session_number"] < 4 or c["phase"] in ("intake", "assessment")):
            out.append(("client.defer.no-alliance", "defer"))
        elif t["self_compassion_practice"] != "regular" and t["own_practice_14d"] < 1:
            out.append(("therapist.practice-first", "nudge"))
        else:
            out.append(("client.suggest.next-step", "suggest"))
    if not silenced_selfcare:
        if event == "session_note.signed" and (t["sessions_today"] >= 6 or t["longest_back_to_back"] >= 3):
            out.append(("therapist.selfcare.overfull-day", "nudge"))
        if event == "session_note.signed" and ("difficult_session" in t["signals"] or c["alliance"] == "ruptured"):
            out.append(("therapist.selfcare.difficult-session", "nudge"))
        if event == "therapist.message" and ("stress" in t["signals"] or "self_blame" in t["signals"]):
            out.append(("therapist.selfcare.stress-message", "nudge"))
        if event in ("appointment.booked", "appointment.updated") and c["present"] and c["ladder_step"] >= 1:
            out.append(("therapist.modeling.pre-session", "nudge"))
    return out


def run(fn: Callable[[dict[str, Any]], list[Any]], seconds: float) -> tuple[float, float]:
    """Evaluations/s and decisions/s of ``fn`` over the workload for about ``seconds``."""
    evaluations = decisions = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(50):
            for facts in WORKLOAD:
                decisions += len(fn(facts))
            evaluations += len(WORKLOAD)
    elapsed = time.perf_counter() - start
    return evaluations / elapsed, decisions / elapsed


def main() -> int:
    rules = RuleSet.load()
    engine_ids = [[d.rule_id for d in rules.evaluate(f)] for f in WORKLOAD]
    baseline_ids = [[rid for rid, _ in baseline(f)] for f in WORKLOAD]
    if engine_ids != baseline_ids:
        print("baseline and engine disagree:", engine_ids, baseline_ids)
        return 2
    run(rules.evaluate, 0.3)  # warm-up
    engine_eval, engine_dec = run(rules.evaluate, SECONDS)
    base_eval, base_dec = run(baseline, SECONDS / 3)
    print(f"workload: {len(WORKLOAD)} facts dicts, {sum(map(len, engine_ids))} decisions per pass")
    print(f"engine:   {engine_eval:>12,.0f} evaluations/s  {engine_dec:>12,.0f} decisions/s")
    print(f"baseline: {base_eval:>12,.0f} evaluations/s  {base_dec:>12,.0f} decisions/s  (hand-written if chain)")
    print(f"ratio engine/baseline: {engine_eval / base_eval:.3f}")
    verdict = "PASS" if engine_eval >= TARGET else "MISS"
    print(f"{verdict}: {engine_eval:,.0f} evaluations/s against a target of {TARGET:,}/s")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
