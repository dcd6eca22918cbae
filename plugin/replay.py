"""Replay a past event log through the production path, sending nothing.

``tend replay EVENTS.jsonl`` and ``tend rules explain EVENT.json`` both come
here. Each line is one webhook body (DESIGN §3.2: ``{"type", "occurred_at",
"data"}``), in time order. A line goes exactly where a webhook goes:
``schemas.ehr.load_event`` -> ``plugin.events.from_wire`` (text -> signals,
text dropped) -> ``plugin.intake.accept`` -> ``plugin.jobs.evaluate(event_id,
now=occurred_at)``, on a fresh in-memory SQLite store with a throwaway clinic,
a simulated clock (each event's ``occurred_at``) and a ``DryRunQueue``: no
Redis, no worker, no Slack.

Besides the §3.2 types, a replay log may carry ``therapist.message`` lines
(``data``: ``therapist_id``, optional ``message_id`` and ``text``): a
therapist's direct message to the bot, read with
``plugin.signals.extract_therapist`` as the Slack edge does.

Statuses are each decision's status *at the end of the replay*, so a client
suggestion scheduled by one line and cancelled with its appointment by a later
line reads ``cancelled``. Reported statuses: ``scheduled`` (would be sent at
``deliver_at``), ``expired`` (no moment left, e.g. no gap today), ``skipped``
(cap, pause, no upcoming session: see the timing reason), ``logged`` (holds,
defers and other log-only decisions), ``cancelled`` (its session was
cancelled). Internal statuses that a replay cannot normally reach map as:
``sending``/``delivered`` -> ``scheduled``, ``failed`` -> ``skipped``.

Bad lines (not JSON, not a valid event, or an event the pipeline refused) are
reported with their 1-based line number and skipped; the rest still run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cel
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import admin, intake, jobs, runtime
from plugin.apply import apply_event, therapist_for
from plugin.context import build_facts, ledger_for
from plugin.events import InboundEvent, from_wire
from plugin.rules import RuleSet
from plugin.rules.expressions import compile_expression, inline_params
from plugin.rules.model import Rule
from plugin.signals import extract_therapist
from plugin.store.models import Event, Suggestion, Therapist
from schemas.ehr import EnvelopeSchema, load_event

SOURCE = "replay"
CLINIC_ID = "replay"
THERAPIST_MESSAGE = "therapist.message"
#: Types ``jobs.evaluate`` applies to the store without running the rules.
NOT_EVALUATED = frozenset({"therapist.upserted", "therapist.practice_logged"})
STATUSES = ("scheduled", "expired", "skipped", "logged", "cancelled")
_STATUS_MAP = {"sending": "scheduled", "delivered": "scheduled", "failed": "skipped"}
#: The fields of one ``--json`` line, in order.
JSON_FIELDS = (
    "event_index", "event_type", "rule_id", "rule_version", "decision", "therapist_id", "ladder_step",
    "practice_id", "analogy_id", "deliver_at", "expires_at", "status", "reasons",
)


class _TherapistMessageSchema(Schema):
    """Replay-only: a therapist's DM to the bot, as the Slack edge records it."""

    therapist_id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    message_id = fields.String(validate=validate.Length(min=1, max=200))
    text = fields.String(validate=validate.Length(max=200_000))


@dataclass(frozen=True, slots=True)
class ReplayDecision:
    event_index: int
    event_type: str
    rule_id: str
    rule_version: int
    decision: str
    therapist_id: str | None
    ladder_step: int | None
    practice_id: str | None
    analogy_id: str | None
    deliver_at: datetime | None
    expires_at: datetime | None
    status: str
    reasons: tuple[str, ...]
    # beyond the JSON line: for tests and the explain view
    framing_id: str | None = None
    message_key: str | None = None
    audience: str = ""
    timing_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """Exactly the documented fields, datetimes as ISO 8601 with offset."""
        out: dict[str, Any] = {}
        for name in JSON_FIELDS:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int       # 1-based
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConditionTrace:
    name: str
    expression: str
    held: bool | None          # None: could not be evaluated (reported in ``error``)
    values: Mapping[str, Any]
    error: str = ""


@dataclass(frozen=True, slots=True)
class RuleTrace:
    rule_id: str
    version: int
    group: str
    decision: str
    listens: bool              # the rule lists this event type
    conditions: tuple[ConditionTrace, ...]

    @property
    def held(self) -> bool:
        return self.listens and all(c.held for c in self.conditions)


@dataclass(frozen=True, slots=True)
class EventTrace:
    event_index: int
    event_type: str
    facts: Mapping[str, Any]
    rules: tuple[RuleTrace, ...]


@dataclass
class ReplayResult:
    decisions: list[ReplayDecision] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    events_read: int = 0
    ignored: list[int] = field(default_factory=list)   # 0-based indexes of types Tend ignores
    traces: list[EventTrace] = field(default_factory=list)
    queue: Any = None                                  # the DryRunQueue, for inspection

    @property
    def ok(self) -> bool:
        return not self.bad_lines


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, Mapping):
        out: list[str] = []
        for key, value in messages.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_flatten(value, name))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" if prefix else m for m in messages]
    if isinstance(messages, list):
        return [s for m in messages for s in _flatten(m, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def _inbound(body: Any, index: int) -> InboundEvent | None:
    """The domain event of one line; None for a type Tend ignores. Raises ValidationError."""
    dedupe_key = f"line-{index + 1}"
    if isinstance(body, dict) and body.get("type") == THERAPIST_MESSAGE:
        envelope = EnvelopeSchema().load(body)
        try:
            data = _TherapistMessageSchema().load(envelope["data"])
        except ValidationError as err:
            raise ValidationError({"data": err.messages}) from None
        found = extract_therapist(data.get("text") or "")
        return InboundEvent(
            clinic_id=CLINIC_ID, source=SOURCE, dedupe_key=dedupe_key, type=THERAPIST_MESSAGE,
            occurred_at=envelope["occurred_at"], therapist_ehr_id=data["therapist_id"], client_ehr_id=None,
            fields={k: v for k, v in data.items() if k != "text"}, therapist_signals=found.current,
        )
    event_type, data, occurred_at = load_event(body)
    if data is None:
        return None
    return from_wire(
        clinic_id=CLINIC_ID, source=SOURCE, dedupe_key=dedupe_key, event_type=event_type, occurred_at=occurred_at, data=data
    )


# --- explanation ------------------------------------------------------------------------


class _Tracer:
    """Evaluates each rule's sub-conditions one by one over the facts (explain only)."""

    def __init__(self) -> None:
        self._programs: dict[tuple[str, int, str], cel.Program] = {}

    def _program(self, rule: Rule, index: int) -> cel.Program:
        cond = rule.conditions[index]
        key = (rule.id, index, json.dumps(rule.params, sort_keys=True, default=str))
        if key not in self._programs:
            self._programs[key] = compile_expression(inline_params(cond.expression, dict(rule.params)))
        return self._programs[key]

    def trace(self, ruleset: RuleSet, event_type: str, facts: Mapping[str, Any]) -> tuple[RuleTrace, ...]:
        out = []
        for rule in ruleset.rules:
            listens = event_type in rule.events
            conditions = []
            for index, cond in enumerate(rule.conditions):
                values: dict[str, Any] = {}
                for path, parts in cond.fact_paths:
                    node: Any = facts
                    for part in parts:
                        node = node[part]
                    values[path] = node
                for name in cond.params:
                    values[f"params.{name}"] = rule.params[name]
                held: bool | None = None
                error = ""
                if listens:
                    try:
                        held = bool(self._program(rule, index).execute(dict(facts)))
                    except Exception as exc:  # shown in the trace, never raised
                        error = f"{type(exc).__name__}: {exc}"
                conditions.append(ConditionTrace(cond.name, cond.expression, held, values, error))
            out.append(RuleTrace(rule.id, rule.version, rule.group, rule.kind, listens, tuple(conditions)))
        return tuple(out)


def _facts_for(rt: runtime.Runtime, event_id: int, now: datetime) -> tuple[str, dict[str, Any]] | None:
    """The facts ``jobs.evaluate`` will see for this event, computed in a rolled-back session."""
    with Session(rt.db.engine) as session:
        try:
            event = session.get(Event, event_id)
            if event is None or event.therapist_ehr_id is None or event.type in NOT_EVALUATED:
                return None
            apply_event(session, event)
            therapist = therapist_for(session, event.clinic_id, event.therapist_ehr_id)
            session.flush()
            facts = build_facts(session, event, therapist, now, ledger_for(session, therapist, now))
            return event.type, json.loads(json.dumps(facts, default=str))
        finally:
            session.rollback()


# --- the replay --------------------------------------------------------------------------


def _status(internal: str) -> str:
    return _STATUS_MAP.get(internal, internal)


def _collect(rt: runtime.Runtime, index_of: Mapping[int, int]) -> list[ReplayDecision]:
    with rt.db.session() as session:
        rows = session.execute(
            select(Suggestion, Event.type, Therapist.ehr_id)
            .join(Event, Event.id == Suggestion.event_id)
            .join(Therapist, Therapist.id == Suggestion.therapist_id)
            .order_by(Suggestion.id)
        ).all()
        out = []
        for row, event_type, therapist_ehr_id in rows:
            reasons = list((row.explanation or {}).get("reasons", []))
            if row.timing_reason:
                reasons.append(f"timing: {row.timing_reason}")
            out.append(ReplayDecision(
                event_index=index_of[row.event_id], event_type=event_type, rule_id=row.rule_id,
                rule_version=row.rule_version, decision=row.kind, therapist_id=therapist_ehr_id,
                ladder_step=row.ladder_step, practice_id=row.practice_id, analogy_id=row.analogy_id,
                deliver_at=row.deliver_at, expires_at=row.expires_at, status=_status(row.status),
                reasons=tuple(reasons), framing_id=row.framing_id, message_key=row.message_key,
                audience=row.audience, timing_reason=row.timing_reason,
            ))
    out.sort(key=lambda d: d.event_index)  # stable: keeps each event's priority order
    return out


def replay(
    lines: Iterable[str],
    *,
    rules: RuleSet | None = None,
    rules_path: str | Path | None = None,
    clinic_rules: Mapping[str, Any] | None = None,
    daily_cap: int = 3,
    explain: bool = False,
) -> ReplayResult:
    """Run the lines (webhook bodies, in time order) and return every decision.

    ``rules``/``rules_path`` choose the ruleset (default: the runtime's, packs
    included); ``clinic_rules`` are per-clinic overrides for the throwaway clinic
    (as ``tend clinics rules`` stores them); ``explain`` adds a trace per event.
    """
    rt = runtime.Runtime.for_replay(rules, rules_path=rules_path, daily_cap=daily_cap)
    rt.rules  # load the ruleset and rule packs now: a broken one stops the replay in one line
    result = ReplayResult(queue=rt.queue)
    admin.create_clinic(rt.db, rt.box, "Replay", CLINIC_ID)
    if clinic_rules:
        rt.rules.with_overrides(clinic_rules)  # validate before storing, as the CLI does
        from plugin.store.models import Clinic

        with rt.db.session() as session:
            clinic = session.get(Clinic, CLINIC_ID)
            assert clinic is not None
            clinic.settings = {**(clinic.settings or {}), "rules": dict(clinic_rules)}
    tracer = _Tracer() if explain else None
    index_of: dict[int, int] = {}
    previous = runtime._current
    runtime.bind(rt)
    try:
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                body = json.loads(line)
            except ValueError as err:
                result.bad_lines.append(BadLine(index + 1, f"not valid JSON: {getattr(err, 'msg', err)} (column {getattr(err, 'colno', '?')})"))
                continue
            try:
                event = _inbound(body, index)
            except ValidationError as err:
                result.bad_lines.append(BadLine(index + 1, "invalid event: " + "; ".join(_flatten(err.messages))))
                continue
            result.events_read += 1
            if event is None:
                result.ignored.append(index)
                continue
            try:
                accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
                index_of[accepted.event_id] = index
                if tracer is not None:
                    found = _facts_for(rt, accepted.event_id, event.occurred_at)
                    if found is not None:
                        event_type, facts = found
                        ruleset = rt.rules_for(CLINIC_ID)
                        result.traces.append(EventTrace(index, event_type, facts, tracer.trace(ruleset, event_type, facts)))
                jobs.evaluate(accepted.event_id, now=event.occurred_at)
            except Exception as err:  # one line's failure is reported, the replay goes on
                result.events_read -= 1
                result.bad_lines.append(BadLine(index + 1, f"could not be evaluated: {type(err).__name__}: {str(err)[:200]}"))
        result.decisions = _collect(rt, index_of)
    finally:
        runtime._current = previous
        rt.db.dispose()
    return result


def replay_file(path: str | Path, **kwargs: Any) -> ReplayResult:
    with open(path, encoding="utf-8") as fh:
        return replay(fh, **kwargs)
