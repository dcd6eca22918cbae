"""The rules engine: load and compile a ruleset once, then decide per event, purely.

Resolution (DESIGN §4.4), made explicit here because it is clinical policy:

* ``safety`` rules run first; every one that holds decides, and the groups
  it ``suppresses`` produce nothing for this event (``safety.risk-language``
  silences client suggestions; ``safety.therapist-distress`` silences
  self-care nudges and asks the caller to pause them for the day).
* ``client`` rules run in priority order and the first that holds wins:
  safety > holds > defers > practice-first > suggest. A rule that
  ``preempts`` another (holds, defers, practice-first pre-empt
  ``client.suggest.next-step``) holds only when the rule it pre-empts would
  have held too, so nothing is held or deferred when no suggestion was due.
  ``therapist.practice-first`` is such a rule: when a suggestion is due and
  the therapist has neither declared a regular practice nor logged one in 14
  days, the therapist gets a nudge and *no* suggest decision is made; the
  suggestion comes on a later event once they have practised.
* ``selfcare`` rules run independently of client rules; every one that holds
  decides (the timing caps choose among nudges, and log what they skip).

Evaluation converts to CEL only the facts the event's rules read: that
conversion, not CEL itself, is the cost that matters.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cel
import yaml

from . import ladder
from .compiler import compile_draft
from .documents import Document, parse, read
from .errors import RuleProblem, RulesError
from .facts import EVENT_TYPES
from .model import Decision, Rule
from .schema import Draft, check_document, problem

DEFAULT_RULES_PATH: Final = Path(__file__).resolve().parents[2] / "manifests" / "rules.yaml"
_PACE_PARAMS: Final = ("sessions_per_step", "survivor_sessions_per_step", "teen_min_age", "teen_max_age")


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one event type needs: the facts to convert and the rules to run, pre-sorted."""

    projection: tuple[tuple[str, tuple[str, ...] | None], ...]
    safety: tuple[Rule, ...]
    client: tuple[Rule, ...]
    selfcare: tuple[Rule, ...]


def _yaml_problem(origin: str, exc: yaml.YAMLError) -> RuleProblem:
    mark = getattr(exc, "problem_mark", None)
    return RuleProblem(
        message=f"not valid YAML: {getattr(exc, 'problem', None) or exc}", origin=origin,
        line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None,
    )


def _documents_from(items: Iterable[Any], origin: str) -> tuple[list[Document], list[RuleProblem]]:
    docs: list[Document] = []
    problems: list[RuleProblem] = []
    items = list(items)
    for i, item in enumerate(items):
        name = origin if len(items) == 1 else f"{origin}[{i}]"
        if isinstance(item, Document):
            docs.append(item)
        elif isinstance(item, str):
            try:
                docs.append(parse(item, name))
            except yaml.YAMLError as exc:
                problems.append(_yaml_problem(name, exc))
        else:
            docs.append(Document(data=copy.deepcopy(item), origin=name))
    return docs, problems


def _read_paths(paths: Sequence[str | Path]) -> tuple[list[Document], list[RuleProblem]]:
    docs: list[Document] = []
    problems: list[RuleProblem] = []
    for path in paths or (DEFAULT_RULES_PATH,):
        try:
            docs.append(read(path))
        except OSError as exc:
            problems.append(RuleProblem(message=f"cannot read rules file: {exc.strerror or exc}", origin=str(path)))
        except yaml.YAMLError as exc:
            problems.append(_yaml_problem(str(path), exc))
    return docs, problems


def _compile_all(docs: Sequence[Document], first_order: int = 0,
                 existing: Mapping[str, Draft] | None = None) -> tuple[list[Rule], dict[str, Draft], list[RuleProblem]]:
    problems: list[RuleProblem] = []
    drafts: dict[str, Draft] = dict(existing or {})
    rules: list[Rule] = []
    order = first_order
    for doc in docs:
        found, doc_problems = check_document(doc, order)
        order += len(doc.data["rules"]) if isinstance(doc.data, dict) and isinstance(doc.data.get("rules"), list) else 0
        problems.extend(doc_problems)
        for draft in found:
            rid = draft.fields["id"]
            if rid in drafts:
                first = drafts[rid]
                mark = first.doc.mark(first.key + ("id",))
                at = f"{first.doc.origin}:{mark.line}" if mark else first.doc.origin
                problems.append(problem(draft.doc, draft.key + ("id",), f"duplicate rule id (first defined at {at})", rid, "id"))
                continue
            drafts[rid] = draft
            rule, compile_problems = compile_draft(draft)
            problems.extend(compile_problems)
            if rule is not None:
                rules.append(rule)
    return rules, drafts, problems


def _link_problems(rules: Sequence[Rule], drafts: Mapping[str, Draft]) -> list[RuleProblem]:
    """Cross-rule checks: a pre-empting rule must run before its target and on the same events."""
    by_id = {r.id: r for r in rules}
    problems: list[RuleProblem] = []
    for rule in rules:
        if rule.preempts is None:
            continue
        draft = drafts[rule.id]
        target = by_id.get(rule.preempts)
        where = draft.key + ("preempts",)
        if target is None:
            if rule.preempts not in drafts:
                problems.append(problem(draft.doc, where, f"pre-empts unknown rule {rule.preempts!r}", rule.id, "preempts"))
        elif target.group != "client" or target.preempts is not None:
            problems.append(problem(draft.doc, where, "may only pre-empt a client rule that pre-empts nothing itself", rule.id, "preempts"))
        elif (-rule.priority, rule.order) > (-target.priority, target.order):
            problems.append(problem(draft.doc, where, f"must have a higher priority than {target.id} to pre-empt it", rule.id, "preempts"))
        elif not rule.events <= target.events:
            problems.append(problem(draft.doc, draft.key + ("events",), f"events must be among those of {target.id}", rule.id, "events"))
    return problems


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(value)
    return value


class RuleSet:
    """An immutable, compiled ruleset; ``evaluate`` is pure and safe to share across threads."""

    __slots__ = ("_rules", "_drafts", "_plans", "_by_id", "_static")

    def __init__(self, rules: Iterable[Rule], drafts: Mapping[str, Draft]) -> None:
        self._rules: tuple[Rule, ...] = tuple(sorted(rules, key=lambda r: (-r.priority, r.order)))
        self._drafts: dict[str, Draft] = dict(drafts)
        self._by_id: dict[str, Rule] = {r.id: r for r in self._rules}
        self._plans: dict[str, _Plan] = {event: self._plan(event) for event in EVENT_TYPES}
        self._static: dict[str, _Static] = {r.id: _static(r) for r in self._rules}

    # ---- loading -------------------------------------------------------------------------

    @classmethod
    def _build(cls, docs: Sequence[Document], read_problems: Sequence[RuleProblem]) -> tuple["RuleSet | None", list[RuleProblem]]:
        rules, drafts, problems = _compile_all(docs)
        problems = list(read_problems) + problems + _link_problems(rules, drafts)
        if problems:
            return None, problems
        return cls(rules, drafts), []

    @classmethod
    def load(cls, *paths: str | Path) -> "RuleSet":
        """Load, validate and compile rule files (the default ruleset when none is given); raises on the first problem."""
        docs, read_problems = _read_paths(paths)
        ruleset, problems = cls._build(docs, read_problems)
        if problems:
            raise RulesError(problems[0])
        assert ruleset is not None
        return ruleset

    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, Any] | str], origin: str = "<documents>") -> "RuleSet":
        """Rules from parsed documents (or YAML text), e.g. an entry-point rule pack; each rule remembers ``origin``."""
        docs, read_problems = _documents_from(documents, origin)
        ruleset, problems = cls._build(docs, read_problems)
        if problems:
            raise RulesError(problems[0])
        assert ruleset is not None
        return ruleset

    @classmethod
    def check(cls, *paths: str | Path) -> list[RuleProblem]:
        """Every problem in the given files (empty when they load): what `tend rules check` prints."""
        docs, read_problems = _read_paths(paths)
        return cls._build(docs, read_problems)[1]

    def extended(self, documents: Iterable[Mapping[str, Any] | str], origin: str) -> "RuleSet":
        """This ruleset plus more rules (a rule pack); ids stay unique across both."""
        docs, problems = _documents_from(documents, origin)
        first_order = max((r.order for r in self._rules), default=-1) + 1
        rules, drafts, found = _compile_all(docs, first_order, existing=self._drafts)
        all_rules = list(self._rules) + rules
        problems += found + _link_problems(all_rules, drafts)
        if problems:
            raise RulesError(problems[0])
        return RuleSet(all_rules, drafts)

    def with_overrides(self, overrides: Mapping[str, Any]) -> "RuleSet":
        """A clinic's ruleset: ``{"disabled": [rule ids], "params": {rule_id: {name: value}}}``.

        Safety rules cannot be disabled. Parameter values keep the type of the
        default (an int may stand for a float). Pre-empting rules whose target
        is disabled never fire: with no suggestion due there is nothing to hold.
        """
        def fail(message: str, rule_id: str | None = None, field: str | None = None) -> RulesError:
            return RulesError(RuleProblem(message=message, rule_id=rule_id, field=field, origin="overrides"))

        if not isinstance(overrides, Mapping):
            raise fail("overrides must be a mapping with `disabled` and/or `params`")
        unknown = set(overrides) - {"disabled", "params"}
        if unknown:
            raise fail(f"unknown override keys: {', '.join(sorted(map(str, unknown)))}")
        disabled = overrides.get("disabled") or []
        if not isinstance(disabled, (list, tuple)) or not all(isinstance(d, str) for d in disabled):
            raise fail("disabled must be a list of rule ids", field="disabled")
        for rid in disabled:
            rule = self._by_id.get(rid)
            if rule is None:
                raise fail(f"cannot disable unknown rule {rid!r}", rid, "disabled")
            if rule.group == "safety":
                raise fail("safety rules cannot be disabled", rid, "disabled")
        params = overrides.get("params") or {}
        if not isinstance(params, Mapping):
            raise fail("params must map rule ids to {name: value}", field="params")
        replaced: dict[str, Rule] = {}
        for rid, values in params.items():
            rule = self._by_id.get(rid)
            if rule is None:
                raise fail(f"parameters for unknown rule {rid!r}", rid, "params")
            if not isinstance(values, Mapping):
                raise fail("parameters must be a mapping of name to value", rid, "params")
            merged = dict(rule.params)
            for name, value in values.items():
                if name not in rule.params:
                    known = ", ".join(sorted(rule.params)) or "none"
                    raise fail(f"unknown parameter {name!r} (this rule's params: {known})", rid, f"params.{name}")
                if not _same_type(rule.params[name], value):
                    raise fail(f"parameter {name} must be {_type_name(rule.params[name])}, got {value!r}", rid, f"params.{name}")
                merged[name] = value
            new_rule, problems = compile_draft(self._drafts[rid], merged)
            if problems:
                raise RulesError(problems[0])
            assert new_rule is not None
            replaced[rid] = new_rule
        kept = [replaced.get(r.id, r) for r in self._rules if r.id not in disabled]
        return RuleSet(kept, {rid: d for rid, d in self._drafts.items() if rid not in disabled})

    # ---- inspection ----------------------------------------------------------------------

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Rules in evaluation order (highest priority first)."""
        return self._rules

    def rule(self, rule_id: str) -> Rule:
        return self._by_id[rule_id]

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def copy_keys(self) -> set[str]:
        """Every copy-catalogue key the rules can put in front of a therapist (tests check they exist)."""
        keys: set[str] = set()
        for r in self._rules:
            keys.add(r.why_key)
            if r.message:
                keys.add(r.message)
            if r.practice:
                keys.add(f"practices.{r.practice}")
            if r.kind == "suggest":
                keys.update(f"practices.{ladder.practice_id(step)}" for step in ladder.STEPS)
                keys.update(f"analogies.{a}" for a in ladder.ANALOGIES)
                keys.update(f"framings.{f}" for f in (ladder.TEEN_FRAMING, ladder.SURVIVOR_FRAMING))
        return keys

    # ---- evaluation ----------------------------------------------------------------------

    def _plan(self, event: str) -> _Plan:
        present = set(self._by_id)
        applicable = [
            r for r in self._rules
            if event in r.events and (r.preempts is None or r.preempts in present)
        ]
        needed: dict[str, set[str] | None] = {}
        for r in applicable:
            for cond in r.conditions:
                for _, parts in cond.fact_paths:
                    root = parts[0]
                    if len(parts) == 1:
                        needed[root] = None
                    elif needed.get(root, set()) is not None:
                        needed.setdefault(root, set()).add(parts[1])  # type: ignore[union-attr]
        projection = tuple((root, None if keys is None else tuple(sorted(keys))) for root, keys in sorted(needed.items()))
        return _Plan(
            projection=projection,
            safety=tuple(r for r in applicable if r.group == "safety"),
            client=tuple(r for r in applicable if r.group == "client"),
            selfcare=tuple(r for r in applicable if r.group == "selfcare"),
        )

    def evaluate(self, facts: Mapping[str, Any]) -> list[Decision]:
        """Decisions for one event's facts, in priority order; pure (no I/O, no clock)."""
        plan = self._plans.get(facts["event"]["type"])
        if plan is None:
            return []
        ctx = cel.Context()
        try:
            for root, keys in plan.projection:
                section = facts[root]
                ctx.add_variable(root, section if keys is None else {k: section[k] for k in keys})
        except KeyError as exc:
            raise RulesError(RuleProblem(
                message=f"facts lack {exc.args[0]!r}: build them from plugin.rules.facts.default_facts()")) from None

        decisions: list[Decision] = []
        silenced: set[str] = set()
        rule: Rule | None = None
        try:
            for rule in plan.safety:
                if rule.program.execute(ctx):  # type: ignore[union-attr]
                    decisions.append(self._decide(rule, facts))
                    silenced.update(rule.suppresses)
            if plan.client and "client" not in silenced:
                held: dict[str, bool] = {}
                for rule in plan.client:
                    target = rule.preempts
                    if target is not None:
                        if target not in held:
                            held[target] = self._by_id[target].program.execute(ctx)  # type: ignore[union-attr]
                        if not held[target]:
                            continue
                        if rule.program.execute(ctx):  # type: ignore[union-attr]
                            decisions.append(self._decide(rule, facts, waiting=self._by_id[target]))
                            break
                    else:
                        ok = held.get(rule.id)
                        if ok is None:
                            ok = rule.program.execute(ctx)  # type: ignore[union-attr]
                        if ok:
                            decisions.append(self._decide(rule, facts))
                            break
            if plan.selfcare and "selfcare" not in silenced:
                for rule in plan.selfcare:
                    if rule.program.execute(ctx):  # type: ignore[union-attr]
                        decisions.append(self._decide(rule, facts))
        except RulesError:
            raise
        except Exception as exc:
            raise RulesError(RuleProblem(
                message=f"evaluation failed: {exc}", rule_id=rule.id if rule else None,
                field="conditions", origin=rule.origin if rule else None)) from None
        return decisions

    # ---- explanation ---------------------------------------------------------------------

    @staticmethod
    def _seen(rule: Rule, facts: Mapping[str, Any], prefix: str = "") -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []
        for cond in rule.conditions:
            values: dict[str, object] = {}
            for path, parts in cond.fact_paths:
                node: Any = facts
                for part in parts:
                    node = node[part]
                values[path] = _json_value(node)
            for name in cond.params:
                values[f"params.{name}"] = _json_value(rule.params[name])
            out.append((prefix + cond.name, values))
        return out

    def _decide(self, rule: Rule, facts: Mapping[str, Any], waiting: Rule | None = None) -> Decision:
        static = self._static[rule.id]
        conditions = self._seen(rule, facts)
        reasons = list(static.reasons)
        if waiting is not None:
            conditions = self._seen(waiting, facts, prefix=f"{waiting.id}: ") + conditions
            reasons.append(static.waiting_reason.format(kind=waiting.kind, target=waiting.id))
        step = analogy = framing = None
        practice = rule.practice
        if static.pace is not None:
            choice = ladder.next_step(facts["client"], static.pace)
            step, practice, analogy, framing = choice.step, choice.practice_id, choice.analogy_id, choice.framing_id
            reasons.extend(choice.reasons)
        return Decision(
            rule_id=rule.id, rule_version=rule.version, kind=rule.kind, audience=rule.audience,
            timing=rule.timing, message_key=rule.message, practice_id=practice, ladder_step=step,
            analogy_id=analogy, framing_id=framing, conditions=tuple(conditions), reasons=tuple(reasons),
            source=static.source, source_url=rule.source.url, why_key=static.why_key,
            origin=rule.origin, effects=rule.effects,
            waiting_rule_id=waiting.id if waiting is not None else None,
        )


@dataclass(frozen=True, slots=True)
class _Static:
    """The parts of a rule's decision that never change between events, built once."""

    reasons: tuple[str, ...]
    waiting_reason: str
    source: str
    why_key: str
    pace: ladder.Pace | None


def _static(rule: Rule) -> _Static:
    reasons = [f"{rule.id} (v{rule.version}) held: " + "; ".join(c.name for c in rule.conditions) + "."]
    if "client" in rule.suppresses:
        reasons.append("Every client suggestion from this event is suppressed.")
    if "selfcare" in rule.suppresses:
        reasons.append("Self-care nudges from this event are stopped.")
    if "pause_selfcare_today" in rule.effects:
        reasons.append("Self-care nudges are paused for the rest of the therapist's day.")
    verb = {"hold": "is held", "defer": "is deferred", "nudge": "waits until the therapist has practised"}.get(
        rule.kind, "waits")
    pace = None
    if rule.kind == "suggest":
        pace = ladder.Pace(**{k: rule.params[k] for k in _PACE_PARAMS if k in rule.params})
    return _Static(tuple(reasons), "A {kind} from {target} was due; it " + verb + ".", rule.source.text(), rule.why_key, pace)


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, list):
        if not isinstance(value, list):
            return False
        kinds = {type(v) for v in default}
        return all(type(v) in kinds for v in value) if kinds else all(isinstance(v, (int, float, str)) for v in value)
    return type(value) is type(default)


def _type_name(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, list):
        return "a list"
    return {int: "an integer", float: "a number", str: "text"}.get(type(default), type(default).__name__)
