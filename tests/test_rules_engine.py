"""Loading, validating and compiling rules; overrides; the shape of decisions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from plugin.rules import RuleSet, RulesError
from plugin.rules.facts import FACT_PATHS, default_facts, missing_facts
from tests.rules_factories import default_rules, note

RULE = """\
rules:
  - id: {id}
    version: 1
    priority: 100
    group: selfcare
    events: [session_note.signed]
    conditions:
      - name: the day is busy
        expression: {expression}
    decision: nudge
    audience: therapist
    timing: next_gap
    message: messages.overfull_day
    practice: soothing_touch_breaths
    params:
      busy: 5
    source:
      tip: 5
      label: Practise it yourself (Winters, GoodTherapy 2018)
      url: https://www.goodtherapy.org/
"""


def write(tmp_path: Path, name: str = "rules.yaml", id: str = "test.busy",
          expression: str = "therapist.sessions_today >= params.busy") -> Path:
    path = tmp_path / name
    path.write_text(RULE.format(id=id, expression=expression), encoding="utf-8")
    return path


def test_default_ruleset_loads_highest_priority_first() -> None:
    ids = [r.id for r in default_rules()]
    assert ids == [
        "safety.risk-language", "safety.therapist-distress", "client.hold.empathy-difficulty",
        "client.hold.care-paired-with-pain", "client.defer.no-alliance", "therapist.practice-first",
        "client.suggest.next-step", "therapist.selfcare.overfull-day", "therapist.selfcare.difficult-session",
        "therapist.selfcare.stress-message", "therapist.modeling.pre-session",
    ]


def test_default_ruleset_checks_clean() -> None:
    assert RuleSet.check() == []


def test_valid_file_loads_and_evaluates(tmp_path: Path) -> None:
    rules = RuleSet.load(write(tmp_path))
    assert [d.rule_id for d in rules.evaluate(note(therapist={"sessions_today": 5}))] == ["test.busy"]


def test_syntax_error_names_the_rule_field_and_position(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as err:
        RuleSet.load(write(tmp_path, expression="therapist.sessions_today >= ("))
    assert err.value.rule_id == "test.busy"
    assert err.value.field == "conditions[0].expression"
    assert err.value.position == (9, 50)
    assert "rules.yaml:9:50" in str(err.value)


def test_unknown_fact_name_is_a_load_error_at_its_position(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as err:
        RuleSet.load(write(tmp_path, expression="therapist.sessions_todays >= 6"))
    assert "unknown fact `therapist.sessions_todays`" in err.value.message
    assert err.value.position == (9, 21)


def test_fact_names_inside_string_literals_are_not_checked(tmp_path: Path) -> None:
    RuleSet.load(write(tmp_path, expression="'\"client.nonsense\" in therapist.signals'"))


def test_comprehension_variables_are_not_fact_names(tmp_path: Path) -> None:
    RuleSet.load(write(tmp_path, expression='therapist.signals.exists(s, s == "stress")'))


def test_unknown_parameter_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="unknown parameter `params.bussy`"):
        RuleSet.load(write(tmp_path, expression="therapist.sessions_today >= params.bussy"))


def test_unknown_root_name_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="unknown name `sessions_today`"):
        RuleSet.load(write(tmp_path, expression="sessions_today >= 6"))


def test_non_boolean_condition_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="must be true or false"):
        RuleSet.load(write(tmp_path, expression="therapist.sessions_today + 1"))


def test_type_error_over_default_facts_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="does not evaluate"):
        RuleSet.load(write(tmp_path, expression='therapist.sessions_today > "six"'))


def test_duplicate_id_across_files_is_a_load_error(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml")
    second = write(tmp_path, "b.yaml")
    with pytest.raises(RulesError, match="duplicate rule id") as err:
        RuleSet.load(first, second)
    assert err.value.rule_id == "test.busy"
    assert err.value.problem.origin == str(second)


def test_unknown_event_type_is_a_load_error(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("[session_note.signed]", "[session.signed]"))
    with pytest.raises(RulesError, match="unknown event type 'session.signed'"):
        RuleSet.load(path)


def test_unknown_decision_kind_is_a_load_error(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("decision: nudge", "decision: poke"))
    with pytest.raises(RulesError) as err:
        RuleSet.load(path)
    assert (err.value.field, err.value.position) == ("decision", (10, 15))


def test_missing_required_key_is_a_load_error(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("    timing: next_gap\n", ""))
    with pytest.raises(RulesError, match="missing required key `timing`"):
        RuleSet.load(path)


def test_check_returns_every_problem_across_files(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("audience: therapist", "audience: everyone").replace("version: 1", "version: 0"))
    other = write(tmp_path, "b.yaml", id="test.other", expression="client.nope")
    problems = RuleSet.check(path, other)
    assert [(p.field, p.origin) for p in problems] == [
        ("version", str(path)), ("audience", str(path)), ("conditions[0].expression", str(other)),
    ]


def test_invalid_yaml_is_reported_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - id: [unclosed\n")
    problems = RuleSet.check(path)
    assert len(problems) == 1 and problems[0].line is not None


def test_from_documents_records_where_each_rule_came_from() -> None:
    import yaml
    doc = yaml.safe_load(RULE.format(id="pack.busy", expression="therapist.sessions_today >= params.busy"))
    rules = RuleSet.from_documents([doc], origin="pack:example")
    assert rules.rule("pack.busy").origin == "pack:example"


def test_extended_adds_a_rule_pack_and_keeps_ids_unique() -> None:
    text = RULE.format(id="pack.busy", expression="therapist.sessions_today >= params.busy")
    rules = default_rules().extended([text], origin="pack:example")
    decisions = [d for d in rules.evaluate(note(therapist={"sessions_today": 5})) if d.rule_id == "pack.busy"]
    assert decisions[0].origin == "pack:example"
    with pytest.raises(RulesError, match="duplicate"):
        rules.extended([text], origin="pack:again")


def test_override_changes_a_threshold() -> None:
    rules = default_rules().with_overrides({"params": {"therapist.selfcare.overfull-day": {"sessions_today": 4}}})
    assert "therapist.selfcare.overfull-day" in [d.rule_id for d in rules.evaluate(note(therapist={"sessions_today": 4}))]
    assert default_rules().rule("therapist.selfcare.overfull-day").params["sessions_today"] == 6


def test_override_disables_a_rule() -> None:
    rules = default_rules().with_overrides({"disabled": ["therapist.selfcare.overfull-day"]})
    assert rules.evaluate(note(therapist={"sessions_today": 9})) == []


def test_disabling_the_suggestion_also_silences_its_holds() -> None:
    rules = default_rules().with_overrides({"disabled": ["client.suggest.next-step"]})
    assert rules.evaluate(note("shame", "empathy_difficulty")) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"disabled": ["no.such-rule"]}, "unknown rule"),
        ({"disabled": ["safety.risk-language"]}, "safety rules cannot be disabled"),
        ({"params": {"no.such-rule": {"x": 1}}}, "unknown rule"),
        ({"params": {"therapist.selfcare.overfull-day": {"sessions": 4}}}, "unknown parameter"),
        ({"params": {"therapist.selfcare.overfull-day": {"sessions_today": "4"}}}, "must be an integer"),
        ({"params": {"therapist.selfcare.overfull-day": {"sessions_today": True}}}, "must be an integer"),
        ({"enabled": []}, "unknown override keys"),
    ],
)
def test_invalid_override_is_an_error(overrides: dict, message: str) -> None:
    with pytest.raises(RulesError, match=message):
        default_rules().with_overrides(overrides)


def test_missing_facts_raise_a_rules_error() -> None:
    facts = note("shame")
    del facts["client"]["alliance"]
    with pytest.raises(RulesError, match="alliance"):
        default_rules().evaluate(facts)


def test_unruled_event_type_decides_nothing() -> None:
    facts = default_facts()
    facts["event"]["type"] = "therapist.upserted"
    assert default_rules().evaluate(facts) == []


def test_default_facts_are_complete() -> None:
    assert missing_facts(default_facts()) == []
    assert "client.ladder_step" in FACT_PATHS


def test_every_decision_carries_rule_version_source_and_reasons() -> None:
    for decision in default_rules().evaluate(note("shame", therapist={"sessions_today": 8})):
        assert decision.rule_version >= 1
        assert decision.source and decision.source_url.startswith("https://")
        assert decision.reasons and decision.conditions
        assert decision.why_key == f"why.{decision.rule_id}"


def test_block_scalar_expression_error_points_into_the_block(tmp_path: Path) -> None:
    path = write(tmp_path)
    text = path.read_text().replace(
        "expression: therapist.sessions_today >= params.busy",
        "expression: |\n          therapist.sessions_today >= 1 &&\n          therapist.sesions_today >= 2",
    )
    path.write_text(textwrap.dedent(text))
    with pytest.raises(RulesError) as err:
        RuleSet.load(path)
    assert err.value.position == (11, 11)
