"""Which step of the self-compassion ladder to offer next (Winters tip 4: start small, go slow).

Pure and separate from the engine so the clinical pacing can be read and
tested on its own: advance only after a step was tolerated, never more than
one new step per session, step back after an overwhelming response (the
"backdraft" Germer and Neff describe), and go slower with abuse survivors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

STEPS: Final[dict[int, str]] = {
    1: "supportive_touch",
    2: "acknowledge_pain",
    3: "guided_meditation",
    4: "own_phrases",
}
TOP_STEP: Final = max(STEPS)
#: Offered in this order to a client, never the same one twice (tip 3).
ANALOGIES: Final[tuple[str, ...]] = ("friend", "garden", "instrument", "muscle", "old_car")
TEEN_FRAMING: Final = "self_esteem_rollercoaster"
SURVIVOR_FRAMING: Final = "clear_mirror"


@dataclass(frozen=True, slots=True)
class Pace:
    """Tunable pacing; the engine fills it from the suggest rule's params."""

    sessions_per_step: int = 1
    survivor_sessions_per_step: int = 2
    teen_min_age: int = 13
    teen_max_age: int = 19


@dataclass(frozen=True, slots=True)
class LadderChoice:
    step: int
    practice_id: str
    analogy_id: str | None
    framing_id: str | None
    reasons: tuple[str, ...]


def practice_id(step: int) -> str:
    """Copy key suffix of a ladder step: ``ladder.1.supportive_touch``."""
    return f"ladder.{step}.{STEPS[step]}"


def is_survivor(client: Mapping[str, Any]) -> bool:
    """An abuse history anywhere in what we know of the client, current or past."""
    return (
        "abuse_history" in client["signals"]
        or "abuse_history" in client["recent_signals"]
        or "abuse_history" in client["historical_signals"]
    )


def is_teen(client: Mapping[str, Any], pace: Pace = Pace()) -> bool:
    age = client["age"]
    return isinstance(age, int) and pace.teen_min_age <= age <= pace.teen_max_age


def choose_analogy(offered: Iterable[str]) -> str | None:
    """The first analogy this client has not heard; None once all have been offered."""
    seen = set(offered)
    for analogy in ANALOGIES:
        if analogy not in seen:
            return analogy
    return None


def choose_framing(client: Mapping[str, Any], pace: Pace = Pace()) -> str | None:
    """Survivors' framing wins over the teen one: it is the one that keeps them safe."""
    if is_survivor(client):
        return SURVIVOR_FRAMING
    if is_teen(client, pace):
        return TEEN_FRAMING
    return None


def next_step(client: Mapping[str, Any], pace: Pace = Pace()) -> LadderChoice:
    """The step to suggest now, with the plain reasons a supervisor will read."""
    current = min(max(int(client["ladder_step"]), 0), TOP_STEP)
    response = client["last_step_response"]
    since = client["sessions_since_step"]
    survivor = is_survivor(client)
    needed = pace.survivor_sessions_per_step if survivor else pace.sessions_per_step
    reasons: list[str] = []
    analogy: str | None = None

    if current == 0:
        step = 1
        analogy = choose_analogy(client["analogies_offered"])
        reasons.append("First suggestion: start small with step 1 (supportive touch).")
        if analogy:
            reasons.append(f"It comes with an analogy this client has not heard yet ({analogy}).")
    elif response == "overwhelming":
        step = max(1, current - 1)
        reasons.append(
            f"The client found step {current} overwhelming, so go back to step {step} "
            "(kindness can first bring old pain up)."
        )
    elif response == "tolerated" and current < TOP_STEP:
        if since >= needed:
            step = current + 1
            reasons.append(f"Step {current} was tolerated, so offer step {step}.")
        else:
            step = current
            if since <= 0:
                reasons.append(f"Step {current} was tolerated, but at most one new step per session: repeat it.")
            else:
                reasons.append(
                    f"Step {current} was tolerated; wait {needed} sessions at each step before the next: repeat it."
                )
    elif response == "tolerated":
        step = TOP_STEP
        reasons.append(f"Step {TOP_STEP} is the top of the ladder: keep practising it.")
    else:
        step = current
        if response == "not_tried":
            reasons.append(f"Step {current} was not tried yet: offer it again.")
        else:
            reasons.append(f"No response recorded to step {current} yet: offer it again.")

    if survivor:
        reasons.append(f"Abuse history: a slower ladder ({pace.survivor_sessions_per_step} sessions per step).")
    framing = choose_framing(client, pace)
    if framing == TEEN_FRAMING:
        reasons.append("Teen client: framed as stepping off the self-esteem roller coaster.")
    elif framing == SURVIVOR_FRAMING:
        reasons.append("Framed as becoming your own clear mirror.")
    return LadderChoice(step, practice_id(step), analogy, framing, tuple(reasons))
