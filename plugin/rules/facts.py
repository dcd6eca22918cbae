"""The shape of the facts the rules read, and their neutral defaults.

One table serves two masters: ``plugin/context.py`` starts from
``default_facts()`` so that every key is always present (CEL raises on a
missing key), and the rules loader checks every fact a condition names against
``FACT_PATHS`` so that a typo is a load error instead of a rule that silently
never holds.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

#: Event types a rule may list under ``events``. ``therapist.message`` is a
#: therapist's direct message to the bot (Slack DM).
EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        "session_note.signed",
        "client_message.received",
        "appointment.booked",
        "appointment.updated",
        "appointment.cancelled",
        "therapist.message",
        "therapist.upserted",
        "therapist.practice_logged",
    }
)

#: Fact roots a condition may start from. ``params`` is the rule's own
#: parameters and is checked separately against that rule.
FACT_ROOTS: Final[tuple[str, ...]] = ("event", "client", "therapist")

_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "event": {
        "type": "",
        "time": "",
    },
    "client": {
        "present": False,
        "signals": [],
        "recent_signals": [],
        "historical_signals": [],
        "session_number": -1,
        "alliance": "",
        "phase": "",
        "age": -1,
        "ladder_step": 0,
        "last_step_response": "",
        "sessions_since_step": -1,
        "tolerated_any": False,
        "analogies_offered": [],
        "next_appointment_in_minutes": -1,
    },
    "therapist": {
        "self_compassion_practice": "none",
        "signals": [],
        "sessions_today": 0,
        "longest_back_to_back": 0,
        "booked_minutes_today": 0,
        "own_practice_14d": 0,
        "nudges_today": 0,
        "paused": False,
    },
}


def _paths(tree: Mapping[str, Any], prefix: str = "") -> dict[str, type]:
    out: dict[str, type] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        out[path] = type(value)
        if isinstance(value, Mapping):
            out.update(_paths(value, f"{path}."))
    return out


#: Every addressable fact path ("client", "client.signals", ...) with the
#: Python type of its value; used for name checks and for facts validation.
FACT_TYPES: Final[dict[str, type]] = _paths(_DEFAULTS)
FACT_PATHS: Final[frozenset[str]] = frozenset(FACT_TYPES)


def default_facts() -> dict[str, Any]:
    """A fresh, fully populated facts dict: callers fill in what they know."""
    return copy.deepcopy(_DEFAULTS)


def missing_facts(facts: Mapping[str, Any]) -> list[str]:
    """Fact paths absent from ``facts``: cheap enough for tests and context checks, not the hot path."""
    missing: list[str] = []
    for root, keys in _DEFAULTS.items():
        section = facts.get(root)
        if not isinstance(section, Mapping):
            missing.append(root)
            continue
        missing.extend(f"{root}.{key}" for key in keys if key not in section)
    return missing
