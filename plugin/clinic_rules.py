"""Per-clinic rule overrides: disabled rules and tuned parameters, validated before storing.

Stored in ``Clinic.settings["rules"]`` as ``{"disabled": [rule ids], "params":
{rule_id: {name: value}}}`` (the shape ``RuleSet.with_overrides`` takes);
``Runtime.rules_for(clinic_id)`` applies them at evaluation time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from plugin.admin import AdminError
from plugin.rules import RuleSet
from plugin.store.db import Database
from plugin.store.models import Clinic


def parse_param(text: str) -> tuple[str, str, Any]:
    """``RULE_ID.NAME=VALUE`` -> (rule id, name, value); VALUE is read as YAML (5, 2.5, true, [a, b])."""
    target, sep, raw = text.partition("=")
    rule_id, dot, name = target.strip().rpartition(".")
    if not sep or not dot or not rule_id or not name:
        raise AdminError(f"--param {text!r}: expected RULE_ID.NAME=VALUE, e.g. client.defer.no-alliance.min_session_for_intro=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return rule_id, name, value


def current(db: Database, clinic_id: str) -> dict[str, Any]:
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None:
            raise AdminError(f"no clinic {clinic_id!r}")
        return dict((clinic.settings or {}).get("rules") or {})


def updated(
    overrides: Mapping[str, Any],
    ruleset: RuleSet,
    *,
    disable: Iterable[str] = (),
    enable: Iterable[str] = (),
    params: Iterable[tuple[str, str, Any]] = (),
) -> dict[str, Any]:
    """New overrides after the changes; validated against ``ruleset`` (raises ``RulesError``)."""
    disabled = list(overrides.get("disabled") or [])
    known = {r.id for r in ruleset.rules}
    for rule_id in enable:
        if rule_id not in known and rule_id not in disabled:
            raise AdminError(f"cannot enable unknown rule {rule_id!r}")
        disabled = [d for d in disabled if d != rule_id]
    for rule_id in disable:
        if rule_id not in disabled:
            disabled.append(rule_id)
    tuned: dict[str, dict[str, Any]] = {rid: dict(values) for rid, values in (overrides.get("params") or {}).items()}
    for rule_id, name, value in params:
        tuned.setdefault(rule_id, {})[name] = value
    new: dict[str, Any] = {}
    if disabled:
        new["disabled"] = sorted(disabled)
    if tuned:
        new["params"] = tuned
    ruleset.with_overrides(new)
    return new


def store(db: Database, clinic_id: str, overrides: Mapping[str, Any]) -> None:
    """Save a clinic's overrides (a new settings dict, so SQLAlchemy sees the change)."""
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None:
            raise AdminError(f"no clinic {clinic_id!r}")
        settings = {k: v for k, v in (clinic.settings or {}).items() if k != "rules"}
        if overrides:
            settings["rules"] = dict(overrides)
        clinic.settings = settings
