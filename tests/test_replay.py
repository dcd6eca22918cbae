"""`tend replay` (and the dry-run queue under it), through click's CliRunner."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from handlers.cli import main
from plugin.queue import DryRunQueue
from plugin.replay import JSON_FIELDS, replay
from plugin.runtime import Runtime

VIGNETTES = Path(__file__).parent / "vignettes"
SUGGEST = VIGNETTES / "self_critical_session_5_suggests_step_1_with_analogy.jsonl"


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def with_lines(tmp_path: Path, source: Path, extra: dict[int, str]) -> Path:
    """``source`` with lines inserted before the given 0-based positions."""
    lines = source.read_text().splitlines()
    for at in sorted(extra, reverse=True):
        lines.insert(at, extra[at])
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_json_prints_one_object_per_decision_with_exactly_the_documented_fields() -> None:
    result = run("replay", str(SUGGEST), "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1 and list(rows[0]) == list(JSON_FIELDS)


def test_json_values_of_a_suggestion() -> None:
    row = json.loads(run("replay", str(SUGGEST), "--json").stdout)
    assert row["event_index"] == 2 and row["therapist_id"] == "T-1"
    assert (row["decision"], row["ladder_step"], row["analogy_id"], row["status"]) == ("suggest", 1, "friend", "scheduled")
    assert row["deliver_at"] == "2026-03-17T17:30:00+00:00" and row["expires_at"] == "2026-03-17T18:00:00+00:00"
    assert row["reasons"][-1].startswith("timing: ")


def test_json_shows_the_final_status_of_a_cancelled_preparation() -> None:
    result = run("replay", str(VIGNETTES / "cancelled_appointment_cancels_its_prep_suggestion.jsonl"), "--json")
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["cancelled"]


def test_json_log_only_decisions_have_no_times() -> None:
    row = json.loads(run("replay", str(VIGNETTES / "self_critical_session_2_defers.jsonl"), "--json").stdout)
    assert (row["status"], row["deliver_at"], row["expires_at"], row["analogy_id"]) == ("logged", None, None, None)


def test_the_table_is_the_default() -> None:
    result = run("replay", str(SUGGEST))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].split()[:4] == ["#", "event", "rule", "decision"]
    assert "client.suggest.next-step" in result.stdout and "3 events read, 1 decisions, 0 bad lines" in result.stdout


def test_a_line_that_is_not_json_is_reported_with_its_number_and_skipped(tmp_path: Path) -> None:
    result = run("replay", str(with_lines(tmp_path, SUGGEST, {1: "{oops"})), "--json")
    assert result.exit_code == 1
    assert result.stderr.startswith("line 2: not valid JSON")
    assert json.loads(result.stdout)["event_index"] == 3


def test_an_invalid_event_names_the_field(tmp_path: Path) -> None:
    bad = json.dumps({"type": "appointment.booked", "occurred_at": "2026-03-16T07:00:00-04:00", "data": {"appointment_id": "A-9"}})
    result = run("replay", str(with_lines(tmp_path, SUGGEST, {0: bad})), "--json")
    assert result.exit_code == 1 and "line 1: invalid event:" in result.stderr and "data.therapist_id" in result.stderr


def test_bad_lines_never_print_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('[1, 2]\n"text"\n{"type": "nope", "occurred_at": "x", "data": 1}\n')
    result = run("replay", str(path))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == ["line 1", "line 2", "line 3"]


def test_exit_status_is_0_when_every_line_was_read() -> None:
    assert run("replay", str(SUGGEST), "--json").exit_code == 0


def test_blank_lines_are_not_bad_and_keep_the_numbering(tmp_path: Path) -> None:
    result = run("replay", str(with_lines(tmp_path, SUGGEST, {0: ""})), "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["event_index"] == 3


def test_replay_uses_another_ruleset_with_rules(tmp_path: Path) -> None:
    from plugin.rules import DEFAULT_RULES_PATH

    rules = tmp_path / "rules.yaml"
    rules.write_text(DEFAULT_RULES_PATH.read_text().replace("min_session_for_intro: 4", "min_session_for_intro: 6"))
    path = VIGNETTES / "self_critical_session_5_suggests_step_1_with_analogy.jsonl"
    text = path.read_text().replace('"alliance": "established"', '"alliance": "forming"')
    events = tmp_path / "events.jsonl"
    events.write_text(text)
    row = json.loads(run("replay", str(events), "--json", "--rules", str(rules)).stdout)
    assert row["rule_id"] == "client.defer.no-alliance"


def test_replay_sends_nothing_it_records_deliveries_in_the_dry_run_queue() -> None:
    result = replay(SUGGEST.read_text().splitlines())
    assert isinstance(result.queue, DryRunQueue)
    (when, suggestion_id, attempt), = result.queue.deliveries
    assert when == datetime(2026, 3, 17, 17, 30, tzinfo=timezone.utc) and attempt == 0


def test_the_replay_runtime_has_no_redis_and_an_in_memory_store() -> None:
    rt = Runtime.for_replay()
    assert rt.redis is None and rt.db.url == "sqlite://" and isinstance(rt.queue, DryRunQueue)


def test_replay_leaves_the_bound_runtime_alone(rt) -> None:  # type: ignore[no-untyped-def]
    from plugin import runtime

    replay(SUGGEST.read_text().splitlines())
    assert runtime.current() is rt


def test_a_clinic_override_applies_during_a_replay() -> None:
    result = replay((VIGNETTES / "self_critical_session_2_defers.jsonl").read_text().splitlines(),
                    clinic_rules={"disabled": ["client.defer.no-alliance"]})
    assert [d.rule_id for d in result.decisions] == ["client.suggest.next-step"]


def test_dry_run_queue_has_the_job_queue_methods() -> None:
    from plugin.queue import JobQueue

    public = {name for name in vars(JobQueue) if not name.startswith("_")}
    assert public <= set(dir(DryRunQueue))


# --- tend demo ------------------------------------------------------------------------


@pytest.fixture
def live_server(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def test_demo_gets_202_for_every_event(rt, env, live_server) -> None:  # type: ignore[no-untyped-def]
    from handlers.devserver import ensure_demo_clinic

    ensure_demo_clinic(rt)
    result = run("demo", "--url", live_server, env=env)
    assert result.exit_code == 0, result.output
    statuses = [line.split()[0] for line in result.stdout.splitlines() if line[:3].isdigit()]
    assert len(statuses) >= 25 and set(statuses) == {"202"}
    assert "Watch the `tend dev` console" in result.stdout


def test_demo_without_tend_dev_says_to_start_it(tmp_path: Path) -> None:
    result = run("demo", "--instance", str(tmp_path))
    assert result.exit_code == 1 and "start `tend dev` first" in result.stderr
