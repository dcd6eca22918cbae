"""``tend rules check|list|explain``, ``tend replay`` and ``tend clinics rules``.

Exit codes: 0 success; 1 a problem found (a rule error, a bad replay line) or a
one-line error (unknown clinic, invalid override, broken rule pack).
``tend replay`` exits 0 when every line was read and 1 when any line was bad
(bad lines are reported on stderr with their line number and skipped).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from handlers.cli_support import one_line_errors
from plugin import config
from plugin.rules import RuleSet


def _rules_path(given: str | None) -> Path:
    return Path(given or os.environ.get("TEND_RULES") or config.DEFAULT_RULES)


def _value(value: Any) -> str:
    return json.dumps(value, default=str)


# --- tend rules ------------------------------------------------------------------------------


@click.group("rules")
def rules() -> None:
    """Check, list and explain the clinical rules."""


@rules.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def rules_check(file: str | None) -> None:
    """Validate a ruleset (default: TEND_RULES or manifests/rules.yaml): schema, CEL, fact names."""
    path = _rules_path(file)
    problems = RuleSet.check(path)
    if problems:
        for p in problems:
            click.echo(str(p))
        sys.exit(1)
    click.echo(f"OK: {len(RuleSet.load(path))} rules")


@rules.command("list")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False), help="Ruleset file (default: TEND_RULES or manifests/rules.yaml).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per rule per line.")
@one_line_errors
def rules_list(rules_file: str | None, as_json: bool) -> None:
    """Every loaded rule, rule packs included: id, version, priority, decision and where it came from."""
    from plugin.rules.packs import load_ruleset, origins

    ruleset, packs = load_ruleset(_rules_path(rules_file))
    where = origins(ruleset, packs)
    rows = [(r.id, r.version, r.priority, r.kind, where[r.id]) for r in ruleset.rules]
    if as_json:
        for rid, version, priority, kind, origin in rows:
            click.echo(json.dumps({"rule_id": rid, "version": version, "priority": priority, "decision": kind, "origin": origin}))
        return
    width = max(len(r[0]) for r in rows)
    click.echo(f"{'rule':<{width}}  ver  prio  decision  origin")
    for rid, version, priority, kind, origin in rows:
        click.echo(f"{rid:<{width}}  {version:>3}  {priority:>4}  {kind:<8}  {origin}")
    click.echo(f"{len(rows)} rules" + (f" ({len(packs)} rule packs)" if packs else ""))


def _lines_of(path: str) -> list[str]:
    """A single JSON body (even pretty-printed), a JSON list of bodies, or JSON Lines."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except ValueError:
        return text.splitlines()
    if isinstance(whole, list):
        return [json.dumps(item) for item in whole]
    return [json.dumps(whole)]


def _print_facts(facts: dict[str, Any]) -> None:
    for section in ("event", "client", "therapist"):
        click.echo(f"  {section}:")
        for key, value in facts.get(section, {}).items():
            click.echo(f"    {key} = {_value(value)}")


@rules.command("explain")
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False), help="Ruleset file (default: TEND_RULES or manifests/rules.yaml).")
@click.option("--all-rules", is_flag=True, help="Also list rules that do not listen to the event's type.")
@one_line_errors
def rules_explain(event_file: str, rules_file: str | None, all_rules: bool) -> None:
    """Trace the decisions for one webhook body (or each line of a JSONL log); sends nothing.

    Prints the facts the rules saw, every rule considered with each of its
    sub-conditions (held or not, and the values seen), then the decisions with
    their timing reason. Earlier lines of a log set the scene (therapist,
    appointments) for later ones, exactly as in `tend replay`.
    """
    from plugin.replay import replay

    result = replay(_lines_of(event_file), rules_path=_rules_path(rules_file), explain=True)
    for bad in result.bad_lines:
        click.echo(str(bad), err=True)
    by_event: dict[int, list[Any]] = {}
    for d in result.decisions:
        by_event.setdefault(d.event_index, []).append(d)
    for trace in result.traces:
        click.echo(f"event {trace.event_index}: {trace.event_type} at {trace.facts['event']['time']}")
        click.echo("facts:")
        _print_facts(dict(trace.facts))
        click.echo("rules considered (highest priority first):")
        quiet = []
        for rule in trace.rules:
            if not rule.listens and not all_rules:
                quiet.append(rule.rule_id)
                continue
            state = "HOLDS" if rule.held else ("not for this event" if not rule.listens else "no")
            click.echo(f"  [{state}] {rule.rule_id} v{rule.version} ({rule.group}, {rule.decision})")
            for cond in rule.conditions:
                mark = {True: "yes", False: "no ", None: " - "}[cond.held]
                seen = ", ".join(f"{k}={_value(v)}" for k, v in cond.values.items())
                click.echo(f"      {mark}  {cond.name}  [{seen}]" + (f"  error: {cond.error}" if cond.error else ""))
        if quiet:
            click.echo(f"  (not listening to {trace.event_type}: {', '.join(quiet)})")
        click.echo("decisions:")
        decisions = by_event.get(trace.event_index, [])
        if not decisions:
            click.echo("  none")
        for d in decisions:
            step = f" step {d.ladder_step}" if d.ladder_step is not None else ""
            click.echo(f"  {d.decision} by {d.rule_id} v{d.rule_version}{step}: {d.status}"
                       + (f" at {d.deliver_at.isoformat()}" if d.deliver_at else ""))
            for reason in d.reasons:
                click.echo(f"      {reason}")
        click.echo("")
    click.echo("nothing was sent (dry run)")
    if result.bad_lines:
        sys.exit(1)


# --- tend replay -----------------------------------------------------------------------------


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _table(decisions: Iterable[Any]) -> None:
    rows = [
        (str(d.event_index), d.event_type, d.rule_id, d.decision, "" if d.ladder_step is None else str(d.ladder_step),
         d.status, _when(d.deliver_at), d.timing_reason)
        for d in decisions
    ]
    header = ("#", "event", "rule", "decision", "step", "status", "deliver at (UTC)", "timing")
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header) - 1)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[-1])
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


@click.command("replay")
@click.argument("events_file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per decision per line.")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False), help="Ruleset file (default: TEND_RULES or manifests/rules.yaml).")
@one_line_errors
def replay_command(events_file: str, as_json: bool, rules_file: str | None) -> None:
    """Dry-run a past event log (one webhook body per line, in time order): what Tend would have done, when.

    Runs each line through the production path on a fresh in-memory store with
    a simulated clock (each event's occurred_at); nothing is sent. Statuses are
    as of the end of the log (scheduled, expired, skipped, logged, cancelled).
    Bad lines are reported on stderr and skipped; exit status 1 if any.
    """
    from plugin.replay import replay

    if events_file == "-":
        lines: Iterable[str] = sys.stdin.read().splitlines()
    else:
        lines = Path(events_file).read_text(encoding="utf-8").splitlines()
    result = replay(lines, rules_path=_rules_path(rules_file))
    for bad in result.bad_lines:
        click.echo(str(bad), err=True)
    if as_json:
        for d in result.decisions:
            click.echo(json.dumps(d.to_json()))
    else:
        if result.decisions:
            _table(result.decisions)
        click.echo(f"{result.events_read} events read, {len(result.decisions)} decisions, "
                   f"{len(result.bad_lines)} bad lines; nothing was sent (dry run). # is the event's 0-based line.")
    if result.bad_lines:
        sys.exit(1)


# --- tend clinics rules ----------------------------------------------------------------------


@click.command("rules")
@click.argument("clinic_id")
@click.option("--disable", multiple=True, metavar="RULE_ID", help="Stop a rule for this clinic (not safety rules).")
@click.option("--enable", multiple=True, metavar="RULE_ID", help="Undo a --disable.")
@click.option("--param", "params", multiple=True, metavar="RULE_ID.NAME=VALUE", help="Tune a rule's parameter.")
@click.option("--show", is_flag=True, help="Print the clinic's overrides (the default when nothing changes).")
@one_line_errors
def clinics_rules(clinic_id: str, disable: tuple[str, ...], enable: tuple[str, ...], params: tuple[str, ...], show: bool) -> None:
    """A clinic's rule overrides: disable rules and tune parameters, validated before they are stored."""
    from plugin import clinic_rules
    from plugin.runtime import Runtime

    rt = Runtime.build(config.load())
    try:
        overrides = clinic_rules.current(rt.db, clinic_id)
        changing = bool(disable or enable or params)
        if changing:
            overrides = clinic_rules.updated(
                overrides, rt.rules, disable=disable, enable=enable, params=[clinic_rules.parse_param(p) for p in params]
            )
            clinic_rules.store(rt.db, clinic_id, overrides)
            click.echo(f"saved rule overrides for {clinic_id}")
        if show or not changing:
            effective = rt.rules.with_overrides(overrides)
            click.echo(f"disabled: {', '.join(overrides.get('disabled', [])) or 'none'}")
            for rid, values in sorted((overrides.get("params") or {}).items()):
                for name, value in sorted(values.items()):
                    click.echo(f"param:    {rid}.{name} = {_value(value)} (default {_value(rt.rules.rule(rid).params[name])})")
            click.echo(f"{len(effective)} of {len(rt.rules)} rules active for {clinic_id}")
    finally:
        rt.db.dispose()
