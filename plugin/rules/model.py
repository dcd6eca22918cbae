"""The validated, compiled form of a rule, and the Decision it produces.

Kept apart from the loader so that code which only reads decisions (jobs,
review, replay) imports no YAML or CEL machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import cel

KINDS: Final = frozenset({"suggest", "nudge", "hold", "defer", "suppress"})
AUDIENCES: Final = frozenset({"client", "therapist"})
TIMINGS: Final = frozenset({"now", "next_gap", "before_next_appointment", "pre_session", "none"})
#: safety rules run first and may silence a group; client rules: first that holds wins;
#: selfcare rules: each that holds fires.
GROUPS: Final = ("safety", "client", "selfcare")
#: Safety rules' ids start with this (the schema enforces it), so a stored
#: suggestion row is recognised as a safety message by its rule id alone.
SAFETY_PREFIX: Final = "safety."


def is_safety_rule(rule_id: str) -> bool:
    """Safety messages ignore caps, pauses and DND, carry no buttons and are never cheerful."""
    return rule_id.startswith(SAFETY_PREFIX)
#: Effects a decision asks the caller to apply beyond its own delivery.
EFFECTS: Final = frozenset({"pause_selfcare_today"})


@dataclass(frozen=True, slots=True)
class Source:
    """Where a rule comes from, shown to supervisors beside every decision."""

    label: str
    url: str
    tips: tuple[int, ...] = ()

    def text(self) -> str:
        if not self.tips:
            return self.label
        if len(self.tips) == 1:
            return f"Tip {self.tips[0]}: {self.label}"
        numbers = ", ".join(str(t) for t in self.tips[:-1]) + f" and {self.tips[-1]}"
        return f"Tips {numbers}: {self.label}"


@dataclass(frozen=True, slots=True)
class Condition:
    """A named sub-condition: its CEL text as written, and what it reads for the explanation."""

    name: str
    expression: str
    fact_paths: tuple[tuple[str, tuple[str, ...]], ...]   # ("client.signals", ("client", "signals"))
    params: tuple[str, ...]                              # parameter names it reads


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule, validated and compiled; immutable so overrides build a new RuleSet."""

    id: str
    version: int
    priority: int
    group: str
    events: frozenset[str]
    conditions: tuple[Condition, ...]
    kind: str
    audience: str
    timing: str
    message: str | None
    practice: str | None
    params: dict[str, Any]
    source: Source
    origin: str
    order: int                                  # position across all loaded files, breaks priority ties
    preempts: str | None = None
    suppresses: tuple[str, ...] = ()
    effects: tuple[str, ...] = ()
    description: str = ""
    program: cel.Program | None = field(default=None, compare=False, repr=False)

    @property
    def why_key(self) -> str:
        """Copy key of the one line that tells the therapist why they got this."""
        return f"why.{self.id}"


@dataclass(frozen=True, slots=True)
class Decision:
    """What one rule decided for one event, with everything needed to explain it later."""

    rule_id: str                 # "client.suggest.next-step"
    rule_version: int
    kind: str                    # suggest | nudge | hold | defer | suppress
    audience: str                # "client" (about a client, for the therapist) | "therapist" (own care)
    timing: str                  # now | next_gap | before_next_appointment | pre_session | none
    message_key: str | None      # copy key of what the therapist receives; None = log only
    practice_id: str | None
    ladder_step: int | None
    analogy_id: str | None
    framing_id: str | None
    conditions: tuple[tuple[str, object], ...]   # (sub-condition name, {fact path or params.x: value seen})
    reasons: tuple[str, ...]     # plain-language lines for the supervisor's explanation view
    source: str                  # "Tip 2: know when not to use it (Winters, GoodTherapy 2018)"
    source_url: str
    # additions to the contract
    why_key: str = ""            # copy key of the one line said to the therapist ("why you got this")
    origin: str = ""             # file or rule pack the rule was loaded from
    effects: tuple[str, ...] = ()            # e.g. ("pause_selfcare_today",)
    waiting_rule_id: str | None = None       # the rule whose decision waits because this one pre-empted it
