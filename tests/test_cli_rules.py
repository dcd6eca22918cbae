"""`tend rules check|list|explain` and `tend clinics rules`, through click's CliRunner."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handlers.cli import main
from plugin import admin, intake, jobs
from plugin.events import from_wire
from plugin.rules import DEFAULT_RULES_PATH
from plugin.store.models import Clinic, Suggestion
from schemas.ehr import load_event
from tests.test_rule_packs import install  # noqa: F401  (fixture)

VIGNETTES = Path(__file__).parent / "vignettes"
RULE_TEXT = DEFAULT_RULES_PATH.read_text()


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def broken_rules(tmp_path: Path, old: str, new: str) -> Path:
    assert old in RULE_TEXT
    path = tmp_path / "rules.yaml"
    path.write_text(RULE_TEXT.replace(old, new, 1))
    return path


# --- rules check --------------------------------------------------------------------


def test_check_passes_the_default_ruleset() -> None:
    result = run("rules", "check")
    assert result.exit_code == 0 and result.stdout.strip() == "OK: 11 rules"


def test_check_reads_TEND_RULES_when_no_file_is_given(tmp_path: Path) -> None:
    path = broken_rules(tmp_path, "priority: 700", "priority: high")
    result = run("rules", "check", env={"TEND_RULES": str(path)})
    assert result.exit_code == 1 and str(path) in result.stdout


def test_check_names_file_line_column_rule_and_field_of_a_cel_error(tmp_path: Path) -> None:
    path = broken_rules(tmp_path, "therapist.sessions_today >= params.sessions_today ||", "therapist.sessions_today >= >= ||")
    result = run("rules", "check", str(path))
    assert result.exit_code == 1
    line = result.stdout.strip().splitlines()[0]
    assert line.startswith(f"{path}:")
    file_line, column = line[len(str(path)) + 1:].split(":")[:2]
    assert int(file_line) == RULE_TEXT.splitlines().index(next(x for x in RULE_TEXT.splitlines() if "therapist.sessions_today >= params" in x)) + 1
    assert int(column) > 1
    assert ": rule therapist.selfcare.overfull-day: conditions[0].expression: CEL syntax error" in line


def test_check_names_an_unknown_fact(tmp_path: Path) -> None:
    path = broken_rules(tmp_path, "client.alliance != \"established\"", "client.aliance != \"established\"")
    result = run("rules", "check", str(path))
    assert result.exit_code == 1
    assert "rule client.defer.no-alliance: conditions[0].expression: unknown fact `client.aliance`" in result.stdout


def test_check_lists_every_problem_not_only_the_first(tmp_path: Path) -> None:
    path = broken_rules(tmp_path, "priority: 700", "priority: high")
    path.write_text(path.read_text().replace("timing: pre_session", "timing: whenever", 1))
    result = run("rules", "check", str(path))
    assert result.exit_code == 1 and len(result.stdout.strip().splitlines()) == 2


def test_check_of_a_missing_file_fails_in_one_line(tmp_path: Path) -> None:
    result = run("rules", "check", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 1 and "cannot read rules file" in result.stdout


# --- rules list ---------------------------------------------------------------------


def test_list_shows_every_rule_with_version_priority_decision_and_origin() -> None:
    result = run("rules", "list", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 11
    assert rows[0] == {"rule_id": "safety.risk-language", "version": 1, "priority": 1000, "decision": "suppress", "origin": str(DEFAULT_RULES_PATH)}


def test_list_shows_where_a_pack_rule_came_from(install) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    install({"example": "tend_rulepack_example:pack"})
    result = run("rules", "list")
    line = next(x for x in result.stdout.splitlines() if x.startswith("example.selfcare.heavy-booking"))
    assert "pack example (tend-rulepack-example)" in line and "nudge" in line
    assert "12 rules (1 rule packs)" in result.stdout


def test_list_refuses_a_broken_pack_in_one_line(install) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    install({"broken": "tend_rulepack_example:broken_cel"})
    result = run("rules", "list")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: rule pack 'broken' refused:") and len(result.stderr.strip().splitlines()) == 1


# --- rules explain ------------------------------------------------------------------


def test_explain_shows_the_facts_the_rules_saw() -> None:
    result = run("rules", "explain", str(VIGNETTES / "self_critical_session_2_defers.jsonl"))
    assert 'signals = ["self_criticism"]' in result.stdout and "session_number = 2" in result.stdout


def test_explain_shows_each_sub_condition_and_the_values_seen() -> None:
    out = run("rules", "explain", str(VIGNETTES / "self_critical_session_2_defers.jsonl")).stdout
    assert "[HOLDS] client.defer.no-alliance v1 (client, defer)" in out
    assert 'yes  the alliance is not established yet  [client.alliance="forming"]' in out
    assert "params.min_session_for_intro=4" in out


def test_explain_shows_the_decision_and_its_timing_reason_and_sends_nothing() -> None:
    out = run("rules", "explain", str(VIGNETTES / "no_upcoming_session_is_skipped.jsonl")).stdout
    assert "suggest by client.suggest.next-step v1 step 1: skipped" in out
    assert "timing: no upcoming session with this client" in out
    assert out.strip().endswith("nothing was sent (dry run)")


def test_explain_takes_a_single_pretty_printed_body(tmp_path: Path) -> None:
    body = {"type": "session_note.signed", "occurred_at": "2026-03-16T11:00:00-04:00",
            "data": {"note_id": "N-1", "therapist_id": "T-1", "client_id": "P-1", "session_start": "2026-03-16T10:00:00-04:00",
                     "session_number": 5, "alliance": "established", "phase": "working", "text": "Client denies shame."}}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(body, indent=2))
    result = run("rules", "explain", str(path))
    assert result.exit_code == 0 and "event 0: session_note.signed" in result.stdout and "decisions:\n  none" in result.stdout


def test_explain_reports_a_bad_body_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text('{"type": "session_note.signed", "occurred_at": "2026-03-16T11:00:00", "data": {}}')
    result = run("rules", "explain", str(path))
    assert result.exit_code == 1 and result.stderr.startswith("line 1: invalid event: occurred_at")


# --- clinics rules ------------------------------------------------------------------

NOW = datetime(2026, 3, 16, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def two_clinics(rt, env):  # type: ignore[no-untyped-def]
    for cid in ("riverside", "hillside"):
        admin.create_clinic(rt.db, rt.box, cid.title(), cid)
    return rt


def overrides_of(rt, clinic_id: str) -> dict:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return (session.get(Clinic, clinic_id).settings or {}).get("rules", {})


def post(rt, clinic_id: str, n: int, event_type: str, data: dict) -> None:  # type: ignore[no-untyped-def]
    _, loaded, occurred = load_event({"type": event_type, "occurred_at": NOW.isoformat(), "data": data})
    event = from_wire(clinic_id=clinic_id, source="ehr", dedupe_key=f"{clinic_id}-{n}", event_type=event_type, occurred_at=occurred, data=loaded)
    accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
    jobs.evaluate(accepted.event_id, now=NOW)


def rules_decided(rt, clinic_id: str) -> set[str]:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return set(session.scalars(select(Suggestion.rule_id).where(Suggestion.clinic_id == clinic_id)))


def test_disable_stores_the_override(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    result = run("clinics", "rules", "riverside", "--disable", "client.defer.no-alliance", env=env)
    assert result.exit_code == 0, result.output
    assert overrides_of(two_clinics, "riverside") == {"disabled": ["client.defer.no-alliance"]}
    assert overrides_of(two_clinics, "hillside") == {}


def test_a_disabled_rule_no_longer_decides_for_that_clinic_only(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    run("clinics", "rules", "riverside", "--disable", "client.defer.no-alliance", env=env)
    note = {"note_id": "N-1", "therapist_id": "T-1", "client_id": "P-1", "session_start": (NOW - timedelta(hours=1)).isoformat(),
            "session_number": 2, "alliance": "forming", "phase": "assessment", "tags": ["self_criticism"]}
    for n, clinic_id in enumerate(("riverside", "hillside")):
        post(two_clinics, clinic_id, n, "therapist.upserted", {"therapist_id": "T-1", "timezone": "UTC", "self_compassion_practice": "regular"})
        post(two_clinics, clinic_id, n + 10, "session_note.signed", note)
    assert rules_decided(two_clinics, "hillside") == {"client.defer.no-alliance"}
    assert rules_decided(two_clinics, "riverside") == {"client.suggest.next-step"}


def test_enable_undoes_a_disable(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    run("clinics", "rules", "riverside", "--disable", "client.defer.no-alliance", env=env)
    run("clinics", "rules", "riverside", "--enable", "client.defer.no-alliance", env=env)
    assert overrides_of(two_clinics, "riverside") == {}


def test_param_is_stored_with_its_type(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    result = run("clinics", "rules", "riverside", "--param", "therapist.selfcare.overfull-day.sessions_today=5", "--show", env=env)
    assert overrides_of(two_clinics, "riverside") == {"params": {"therapist.selfcare.overfull-day": {"sessions_today": 5}}}
    assert "therapist.selfcare.overfull-day.sessions_today = 5 (default 6)" in result.stdout


def test_a_param_of_the_wrong_type_is_refused_and_nothing_stored(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    result = run("clinics", "rules", "riverside", "--param", "therapist.selfcare.overfull-day.sessions_today=many", env=env)
    assert result.exit_code == 1 and "sessions_today must be an integer" in result.stderr
    assert overrides_of(two_clinics, "riverside") == {}


def test_a_safety_rule_cannot_be_disabled(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    result = run("clinics", "rules", "riverside", "--disable", "safety.risk-language", env=env)
    assert result.exit_code == 1 and "safety rules cannot be disabled" in result.stderr


def test_an_unknown_clinic_is_one_line(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    result = run("clinics", "rules", "nowhere", "--show", env=env)
    assert result.exit_code == 1 and result.stderr.strip() == "Error: no clinic 'nowhere'"


def test_show_counts_the_active_rules(two_clinics, env) -> None:  # type: ignore[no-untyped-def]
    run("clinics", "rules", "riverside", "--disable", "therapist.modeling.pre-session", env=env)
    result = run("clinics", "rules", "riverside", env=env)
    assert "disabled: therapist.modeling.pre-session" in result.stdout and "10 of 11 rules active for riverside" in result.stdout


@pytest.mark.parametrize(
    ("field", "value"),
    [("decision", ["nudge"]), ("audience", {"a": 1}), ("timing", ["now"]), ("events", [["session_note.signed"]]), ("group", ["client"])],
)
def test_check_names_a_field_of_the_wrong_shape_instead_of_crashing(tmp_path, field, value) -> None:
    import yaml

    rules = yaml.safe_load(DEFAULT_RULES_PATH.read_text())
    rules["rules"][0][field] = value
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert field in result.output
