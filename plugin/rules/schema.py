"""Structural checks of rule documents: keys, types, allowed values.

Everything a rule author can get wrong without touching CEL is caught here,
with the YAML position, so `tend rules check` can list all problems at once.
Expressions are checked later by the compiler, which needs a valid rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from .documents import Document, Key
from .errors import RuleProblem
from .facts import EVENT_TYPES
from .model import AUDIENCES, EFFECTS, GROUPS, KINDS, SAFETY_PREFIX, TIMINGS

_ID: Final = re.compile(r"^[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*$")
_PARAM: Final = re.compile(r"^[a-z][a-z0-9_]*$")
REQUIRED: Final = (
    "id", "version", "priority", "group", "events", "conditions",
    "decision", "audience", "timing", "message", "source",
)
OPTIONAL: Final = ("practice", "params", "preempts", "suppresses", "effects", "description")


@dataclass(slots=True)
class Draft:
    """A structurally valid rule, before its expressions are compiled."""

    fields: dict[str, Any]
    doc: Document
    key: Key          # ("rules", index) inside doc
    order: int


def problem(doc: Document, key: Key, message: str, rule_id: str | None = None, field: str | None = None) -> RuleProblem:
    """A problem located at ``key`` (or the nearest enclosing value) in ``doc``."""
    mark = doc.mark(key)
    return RuleProblem(
        message=message, rule_id=rule_id, field=field, origin=doc.origin,
        line=mark.line if mark else None, column=mark.column if mark else None,
    )


def valid_param_value(value: Any) -> bool:
    """Thresholds and lists of names; nothing a CEL literal cannot express plainly."""
    if isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(isinstance(v, (bool, int, float, str)) for v in value)
    return False


def _str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_rule(raw: Any, doc: Document, key: Key, order: int) -> tuple[Draft | None, list[RuleProblem]]:
    """Validate one rule mapping; returns a draft only when it has no structural problem."""
    problems: list[RuleProblem] = []
    if not isinstance(raw, dict):
        return None, [problem(doc, key, "a rule must be a mapping")]
    rid = raw.get("id") if isinstance(raw.get("id"), str) else None

    def bad(field: str, message: str, sub: Key = ()) -> None:
        problems.append(problem(doc, key + (field,) + sub, message, rid, field))

    for name in REQUIRED:
        if name not in raw:
            problems.append(problem(doc, key, f"missing required key `{name}`", rid, name))
    for name in raw:
        if name not in REQUIRED and name not in OPTIONAL:
            bad(str(name), f"unknown key `{name}` (allowed: {', '.join(REQUIRED + OPTIONAL)})")

    if "id" in raw and not (isinstance(raw["id"], str) and _ID.match(raw["id"])):
        bad("id", "id must be lower-case words joined by dots or dashes, e.g. client.suggest.next-step")
    if "version" in raw and not (_int(raw["version"]) and raw["version"] >= 1):
        bad("version", "version must be an integer >= 1")
    if "priority" in raw and not _int(raw["priority"]):
        bad("priority", "priority must be an integer (higher runs first)")
    if "group" in raw and not (_str(raw["group"]) and raw["group"] in GROUPS):
        bad("group", f"group must be one of {', '.join(GROUPS)}")
    if isinstance(raw.get("id"), str) and (raw.get("group") == "safety") != raw["id"].startswith(SAFETY_PREFIX):
        bad("id", f"safety rules, and only they, have ids starting with {SAFETY_PREFIX!r}")
    if "decision" in raw and not (_str(raw["decision"]) and raw["decision"] in KINDS):
        bad("decision", f"decision must be one of {', '.join(sorted(KINDS))}")
    if "audience" in raw and not (_str(raw["audience"]) and raw["audience"] in AUDIENCES):
        bad("audience", f"audience must be one of {', '.join(sorted(AUDIENCES))}")
    if "timing" in raw and not (_str(raw["timing"]) and raw["timing"] in TIMINGS):
        bad("timing", f"timing must be one of {', '.join(sorted(TIMINGS))}")
    if "message" in raw and raw["message"] is not None and not _str(raw["message"]):
        bad("message", "message must be a copy key (e.g. messages.overfull_day) or null")
    if raw.get("practice") is not None and not _str(raw.get("practice")):
        bad("practice", "practice must be a practice id or null")
    if "description" in raw and not isinstance(raw["description"], str):
        bad("description", "description must be text")

    events = raw.get("events")
    if "events" in raw:
        if not isinstance(events, list) or not events:
            bad("events", "events must be a non-empty list of event types")
        else:
            for i, event in enumerate(events):
                if not _str(event) or event not in EVENT_TYPES:
                    bad("events", f"unknown event type {event!r} (known: {', '.join(sorted(EVENT_TYPES))})", (i,))

    conditions = raw.get("conditions")
    if "conditions" in raw:
        if not isinstance(conditions, list) or not conditions:
            bad("conditions", "conditions must be a non-empty list of {name, expression}; the rule holds when all hold")
        else:
            names: set[str] = set()
            for i, cond in enumerate(conditions):
                ckey = key + ("conditions", i)
                field = f"conditions[{i}]"
                if not isinstance(cond, dict) or set(cond) != {"name", "expression"}:
                    problems.append(problem(doc, ckey, "each condition needs exactly `name` and `expression`", rid, field))
                    continue
                if not _str(cond["name"]):
                    problems.append(problem(doc, ckey + ("name",), "condition name must be plain text", rid, f"{field}.name"))
                elif cond["name"] in names:
                    problems.append(problem(doc, ckey + ("name",), f"duplicate condition name {cond['name']!r}", rid, f"{field}.name"))
                else:
                    names.add(cond["name"])
                if not _str(cond["expression"]):
                    problems.append(problem(doc, ckey + ("expression",), "expression must be a CEL expression", rid, f"{field}.expression"))

    params = raw.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        bad("params", "params must be a mapping of name to value")
    else:
        for name, value in params.items():
            if not (isinstance(name, str) and _PARAM.match(name)):
                bad("params", f"parameter name {name!r} must be lower_snake_case", (str(name),))
            elif not valid_param_value(value):
                bad("params", f"parameter {name} must be a number, boolean, string or list of them", (name,))

    source = raw.get("source")
    if "source" in raw:
        if not isinstance(source, dict):
            bad("source", "source must be a mapping with label, url and tip")
        else:
            if not _str(source.get("label")):
                bad("source", "source.label is required", ("label",))
            if not (isinstance(source.get("url"), str) and source["url"].startswith("https://")):
                bad("source", "source.url must be an https URL", ("url",))
            tip = source.get("tip")
            tips_ok = tip is None or (_int(tip) and 1 <= tip <= 5) or (
                isinstance(tip, list) and tip and all(_int(t) and 1 <= t <= 5 for t in tip)
            )
            if not tips_ok:
                bad("source", "source.tip must be null, a tip number 1-5 or a list of them", ("tip",))
            extra = set(source) - {"label", "url", "tip"}
            if extra:
                bad("source", f"unknown source keys: {', '.join(sorted(map(str, extra)))}")

    suppresses = raw.get("suppresses", [])
    if not (isinstance(suppresses, list) and all(g in GROUPS and g != "safety" for g in suppresses)):
        bad("suppresses", "suppresses must be a list of groups: client, selfcare")
    elif suppresses and raw.get("group") != "safety":
        bad("suppresses", "only safety rules may suppress other groups")
    effects = raw.get("effects", [])
    if not (isinstance(effects, list) and all(e in EFFECTS for e in effects)):
        bad("effects", f"effects must be a list of: {', '.join(sorted(EFFECTS))}")
    if raw.get("preempts") is not None:
        if not _str(raw["preempts"]):
            bad("preempts", "preempts must be the id of a client rule")
        elif raw.get("group") != "client":
            bad("preempts", "only client rules may pre-empt another client rule")
    if raw.get("decision") == "suggest" and raw.get("group") != "client":
        bad("decision", "suggest decisions belong to the client group")

    if problems:
        return None, problems
    return Draft(fields=dict(raw, params=dict(params)), doc=doc, key=key, order=order), []


def check_document(doc: Document, first_order: int) -> tuple[list[Draft], list[RuleProblem]]:
    """Validate a whole document: ``{rules: [...]}`` with optional ``version`` and ``description``."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        return [], [problem(doc, (), "a rules document is a mapping with a `rules:` list")]
    extra = set(data) - {"rules", "version", "description"}
    problems = [problem(doc, (str(k),), f"unknown top-level key `{k}`") for k in sorted(map(str, extra))]
    drafts: list[Draft] = []
    for index, raw in enumerate(data["rules"]):
        draft, found = check_rule(raw, doc, ("rules", index), first_order + index)
        problems.extend(found)
        if draft is not None:
            drafts.append(draft)
    return drafts, problems
