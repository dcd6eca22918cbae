"""``tend clinics add|fhir|cds``: wiring a clinic's EHR from the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from handlers.cli import main
from plugin.store.models import CdsClient, FhirEndpoint
from tests.fhir_helpers import load, post, renumber


@pytest.fixture
def tend(env, rt, monkeypatch):  # type: ignore[no-untyped-def]
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def run(*args: str):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run


def test_clinics_add_prints_the_fhir_token_in_json(tend) -> None:
    result = tend("clinics", "add", "Lakeside Therapy", "--id", "lakeside", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["fhir_token"].startswith("tfhir_")


def test_clinics_fhir_records_the_base_url_and_token_variable(tend, clinic, rt) -> None:
    result = tend("clinics", "fhir", clinic.clinic_id, "--base-url", "https://ehr.example.org/fhir/", "--token-env", "RIVERSIDE_FHIR_TOKEN")
    assert result.exit_code == 0, result.output
    with rt.db.session() as session:
        row = session.get(FhirEndpoint, clinic.clinic_id)
        assert (row.base_url, row.token_env) == ("https://ehr.example.org/fhir", "RIVERSIDE_FHIR_TOKEN")


def test_clinics_fhir_refuses_plain_http_to_a_remote_host(tend, clinic) -> None:
    result = tend("clinics", "fhir", clinic.clinic_id, "--base-url", "http://ehr.example.org/fhir")
    assert result.exit_code == 1 and "https" in result.output


def test_clinics_fhir_shows_and_clears_gaps(tend, clinic, client) -> None:
    post(client, clinic, load("r4-handshake.json"))
    post(client, clinic, renumber(load("r4-note-full-resource.json"), [3], since=3))
    shown = json.loads(tend("clinics", "fhir", clinic.clinic_id, "--json").output)
    assert shown["subscriptions"][0]["missing_events"] == 2
    cleared = json.loads(tend("clinics", "fhir", clinic.clinic_id, "--clear-gaps", "--json").output)
    assert cleared["subscriptions"][0]["missing_events"] == 0


def test_clinics_cds_allow_lists_and_removes_an_issuer(tend, clinic, rt) -> None:
    added = tend("clinics", "cds", clinic.clinic_id, "--issuer", "https://ehr.example.org", "--jwks-url", "https://ehr.example.org/jwks.json")
    assert added.exit_code == 0, added.output
    second = tend("clinics", "cds", clinic.clinic_id, "--issuer", "https://other.example.org", "--jwks-url", "https://other.example.org/jwks")
    assert second.exit_code == 0
    with rt.db.session() as session:
        assert len(list(session.scalars(select(CdsClient)))) == 2
    removed = tend("clinics", "cds", clinic.clinic_id, "--issuer", "https://ehr.example.org", "--remove")
    assert removed.exit_code == 0
    with rt.db.session() as session:
        assert [c.issuer for c in session.scalars(select(CdsClient))] == ["https://other.example.org"]


def test_an_issuer_belongs_to_one_clinic(tend, clinic, rt) -> None:
    from plugin import admin

    admin.create_clinic(rt.db, rt.box, "Other", "other")
    tend("clinics", "cds", clinic.clinic_id, "--issuer", "https://ehr.example.org", "--jwks-url", "https://ehr.example.org/jwks.json")
    result = tend("clinics", "cds", "other", "--issuer", "https://ehr.example.org", "--jwks-url", "https://ehr.example.org/jwks.json")
    assert result.exit_code == 1 and "already allow-listed" in result.output


def test_an_unknown_clinic_is_one_line(tend, clinic) -> None:
    result = tend("clinics", "cds", "nowhere", "--issuer", "x", "--jwks-url", "https://a.example/j")
    assert result.exit_code == 1 and "no clinic 'nowhere'" in result.output


@pytest.mark.parametrize("name", ["TEND_SECRET_KEY", "TEND_DATABASE_URL", "TEND_FHIR_TOKEN"])
def test_clinics_fhir_refuses_a_tend_setting_as_the_token_variable(tend, clinic, rt, name) -> None:
    result = tend("clinics", "fhir", clinic.clinic_id, "--base-url", "https://ehr.example.org/fhir", "--token-env", name)
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "TEND_" in result.output
    with rt.db.session() as session:
        assert session.get(FhirEndpoint, clinic.clinic_id) is None


def test_clinics_fhir_accepts_a_tend_fhir_token_variable(tend, clinic, rt) -> None:
    result = tend("clinics", "fhir", clinic.clinic_id, "--base-url", "https://ehr.example.org/fhir", "--token-env", "TEND_FHIR_TOKEN_RIVERSIDE")
    assert result.exit_code == 0, result.output
    with rt.db.session() as session:
        assert session.get(FhirEndpoint, clinic.clinic_id).token_env == "TEND_FHIR_TOKEN_RIVERSIDE"


def test_the_ehr_handlers_leave_the_store_to_plugin_functions() -> None:
    from pathlib import Path

    root = Path(__file__).parents[1] / "handlers"
    for name in ("fhir.py", "cli_ehr.py"):
        source = (root / name).read_text()
        assert "plugin.store.models" not in source and ".session()" not in source, name


def test_the_fhir_endpoint_can_be_configured_without_the_cli(rt, clinic) -> None:
    from plugin.fhir import admin as ehr_admin

    state = ehr_admin.configure_fhir(rt.db, clinic.clinic_id, base_url="https://ehr.example.org/fhir/", token_env="EHR_FHIR_TOKEN")
    assert (state["base_url"], state["token_env"], state["subscriptions"]) == ("https://ehr.example.org/fhir", "EHR_FHIR_TOKEN", [])
