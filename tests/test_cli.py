"""The `tend` command line as a user meets it."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from handlers.cli import main
from plugin.store.models import Clinic, User


def run(env: dict[str, str], *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_help_lists_every_command_with_one_line(env) -> None:
    result = run(env, "--help")
    for command in ("dev", "web", "worker", "db", "clinics", "users"):
        assert f"  {command} " in result.output


def test_db_upgrade_creates_the_schema(env) -> None:
    result = run(env, "db", "upgrade")
    assert result.exit_code == 0
    assert "up to date" in result.output


def test_clinics_add_prints_json_with_a_standard_webhooks_secret(env, rt) -> None:
    result = run(env, "clinics", "add", "Harbour Therapy", "--json")
    created = json.loads(result.output)
    assert set(created) >= {"clinic_id", "webhook_path", "webhook_secret"}
    assert created["webhook_secret"].startswith("whsec_")
    assert created["webhook_path"] == f"/webhooks/{created['clinic_id']}/ehr"


def test_clinics_add_stores_the_secret_only_encrypted(env, rt) -> None:
    created = json.loads(run(env, "clinics", "add", "Harbour Therapy", "--json").output)
    with rt.db.session() as session:
        clinic = session.get(Clinic, created["clinic_id"])
        assert created["webhook_secret"] not in clinic.webhook_secret_enc


def test_users_add_prints_a_token_stored_only_as_a_hash(env, rt, clinic) -> None:
    result = run(env, "users", "add", "sam@example.org", "--role", "admin", "--clinic", clinic.clinic_id, "--json")
    created = json.loads(result.output)
    with rt.db.session() as session:
        user = session.scalar(select(User))
    assert created["token"] not in user.token_hash
    assert user.role == "admin"


def test_a_supervisor_needs_their_ehr_id(env, rt, clinic) -> None:
    result = CliRunner().invoke(main, ["users", "add", "ali@example.org", "--role", "supervisor", "--clinic", clinic.clinic_id], env=env)
    assert result.exit_code != 0
    assert "--therapist-id" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_clinic_is_one_line_and_non_zero(env, rt) -> None:
    result = CliRunner().invoke(main, ["users", "add", "a@example.org", "--role", "admin", "--clinic", "nope"], env=env)
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == ["Error: no clinic 'nope'"]


def test_a_malformed_setting_is_named_in_one_line(env) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env={**env, "TEND_DATABASE_URL": "mysql://x"})
    assert result.exit_code != 0
    assert "TEND_DATABASE_URL" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_clinic_can_name_its_own_assistance_line(env, rt, clinic) -> None:
    result = run(env, "clinics", "assistance-line", clinic.clinic_id, "+1 555 0100")
    assert result.exit_code == 0
    assert rt.assistance_line(clinic.clinic_id) == "+1 555 0100"


def test_without_its_own_line_a_clinic_uses_the_deployments(tmp_path, redis_server) -> None:
    from plugin import admin
    from tests.conftest import make_env, running

    env = make_env(tmp_path, f"sqlite:///{tmp_path / 't.db'}", TEND_ASSISTANCE_LINE="+44 20 7946 0000")
    for rt in running(env, redis_server):
        created = admin.create_clinic(rt.db, rt.box, "Harbour", "harbour")
        assert rt.assistance_line(created.clinic_id) == "+44 20 7946 0000"


def test_an_assistance_line_must_be_a_phone_number(env, rt, clinic) -> None:
    result = CliRunner().invoke(main, ["clinics", "assistance-line", clinic.clinic_id, "call Jane"], env=env)
    assert result.exit_code != 0
    assert "phone number" in result.output
