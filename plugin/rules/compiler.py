"""Turn a structurally valid draft into a compiled Rule, or say precisely why not.

All CEL work happens here, once per load (or per override), so evaluation
only executes programs that are known to compile, name real facts and return
booleans over default facts.
"""

from __future__ import annotations

from typing import Any

from .documents import position_in
from .errors import RuleProblem
from .expressions import CompileError, compile_expression, inline_params, offset_to_line_column, references
from .facts import FACT_PATHS, FACT_ROOTS, default_facts
from .model import Condition, Rule, Source
from .schema import Draft, problem

_DRY_RUN_FACTS = default_facts()


def _expression_problem(draft: Draft, index: int, message: str, line: int, column: int) -> RuleProblem:
    key = draft.key + ("conditions", index, "expression")
    file_line, file_column = position_in(draft.doc.mark(key), line, column)
    return RuleProblem(
        message=f"{message} (at {line}:{column} of the expression)",
        rule_id=draft.fields["id"], field=f"conditions[{index}].expression",
        origin=draft.doc.origin, line=file_line, column=file_column,
    )


def _check_names(draft: Draft, index: int, source: str, params: dict[str, Any]) -> tuple[list[RuleProblem], list[str], list[str]]:
    refs, bound = references(source)
    problems: list[RuleProblem] = []
    facts: list[str] = []
    used_params: list[str] = []
    for ref in refs:
        parts = ref.path.split(".")
        root = parts[0]
        line, column = offset_to_line_column(source, ref.offset)
        if root in bound:
            continue
        if root == "params":
            if len(parts) != 2 or parts[1] not in params:
                known = ", ".join(sorted(params)) or "none"
                problems.append(_expression_problem(draft, index, f"unknown parameter `{ref.path}` (this rule's params: {known})", line, column))
            elif parts[1] not in used_params:
                used_params.append(parts[1])
        elif root in FACT_ROOTS:
            if ref.path not in FACT_PATHS:
                problems.append(_expression_problem(draft, index, f"unknown fact `{ref.path}`", line, column))
            elif ref.path not in facts:
                facts.append(ref.path)
        else:
            problems.append(_expression_problem(
                draft, index, f"unknown name `{root}` (facts start with {', '.join(FACT_ROOTS)}; thresholds with params.)",
                line, column))
    return problems, facts, used_params


def compile_draft(draft: Draft, params: dict[str, Any] | None = None) -> tuple[Rule | None, list[RuleProblem]]:
    """Compile ``draft`` with ``params`` (the rule's own, or a clinic's overrides merged in)."""
    f = draft.fields
    params = dict(f["params"] if params is None else params)
    problems: list[RuleProblem] = []
    conditions: list[Condition] = []
    compiled_sources: list[str] = []
    for index, cond in enumerate(f["conditions"]):
        source = cond["expression"]
        found, fact_paths, used_params = _check_names(draft, index, source, params)
        if found:
            problems.extend(found)
            continue
        try:
            compile_expression(source)
        except CompileError as exc:
            problems.append(_expression_problem(draft, index, f"CEL syntax error: {exc.message}", exc.line, exc.column))
            continue
        inlined = inline_params(source, params)
        try:
            program = compile_expression(inlined)
            result = program.execute(_DRY_RUN_FACTS)
        except CompileError as exc:
            problems.append(_expression_problem(draft, index, f"CEL error after inlining params: {exc.message}", 1, 1))
            continue
        except Exception as exc:  # evaluation over default facts: a type error the rule would hit in production
            problems.append(_expression_problem(draft, index, f"does not evaluate over default facts: {exc}", 1, 1))
            continue
        if not isinstance(result, bool):
            problems.append(_expression_problem(draft, index, f"must be true or false, got {type(result).__name__}", 1, 1))
            continue
        compiled_sources.append(inlined)
        conditions.append(Condition(
            name=cond["name"], expression=source,
            fact_paths=tuple((p, tuple(p.split("."))) for p in fact_paths),
            params=tuple(used_params),
        ))
    if problems:
        return None, problems
    combined = compile_expression(" && ".join(f"({s})" for s in compiled_sources))
    tip = f["source"].get("tip")
    tips = () if tip is None else ((tip,) if isinstance(tip, int) else tuple(tip))
    rule = Rule(
        id=f["id"], version=f["version"], priority=f["priority"], group=f["group"],
        events=frozenset(f["events"]), conditions=tuple(conditions), kind=f["decision"],
        audience=f["audience"], timing=f["timing"], message=f["message"], practice=f.get("practice"),
        params=params, source=Source(label=f["source"]["label"], url=f["source"]["url"], tips=tips),
        origin=draft.doc.origin, order=draft.order, preempts=f.get("preempts"),
        suppresses=tuple(f.get("suppresses", ())), effects=tuple(f.get("effects", ())),
        description=f.get("description", ""), program=combined,
    )
    return rule, []


def param_problem(draft: Draft, name: str, message: str) -> RuleProblem:
    """A problem with one parameter, pointing at it in the file when it is there."""
    return problem(draft.doc, draft.key + ("params", name), message, draft.fields["id"], f"params.{name}")

