"""Who a Slack request is from: one therapist in one clinic, never a guess across clinics."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from plugin import admin
from plugin.slack_people import link_clinic_team, therapist_for_slack
from plugin.store.db import utcnow
from plugin.store.models import Clinic, Therapist


def add_therapist(rt, clinic_id: str, ehr_id: str, slack_user_id: str) -> None:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        session.add(Therapist(clinic_id=clinic_id, ehr_id=ehr_id, slack_user_id=slack_user_id, timezone="UTC", working_hours={}, created_at=utcnow()))


def resolve(rt, user: str, team: str | None) -> str | None:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        found = therapist_for_slack(session, user, team)
        return found.clinic_id if found else None


def test_a_slack_user_in_one_clinic_is_found(rt) -> None:  # type: ignore[no-untyped-def]
    admin.create_clinic(rt.db, rt.box, "North", "north")
    add_therapist(rt, "north", "T-1", "U0AAA")
    assert resolve(rt, "U0AAA", "T0ANY") == "north"


def test_the_same_slack_user_in_two_unbound_clinics_is_nobody(rt) -> None:  # type: ignore[no-untyped-def]
    for clinic in ("north", "south"):
        admin.create_clinic(rt.db, rt.box, clinic, clinic)
        add_therapist(rt, clinic, "T-1", "U0AAA")
    assert resolve(rt, "U0AAA", "T0NORTH") is None


def test_a_clinic_bound_to_a_workspace_answers_only_that_workspace(rt) -> None:  # type: ignore[no-untyped-def]
    for clinic in ("north", "south"):
        admin.create_clinic(rt.db, rt.box, clinic, clinic)
        add_therapist(rt, clinic, "T-1", "U0AAA")
    link_clinic_team(rt.db, "north", "T0NORTH")
    link_clinic_team(rt.db, "south", "T0SOUTH")
    assert resolve(rt, "U0AAA", "T0NORTH") == "north"
    assert resolve(rt, "U0AAA", "T0SOUTH") == "south"
    assert resolve(rt, "U0AAA", "T0OTHER") is None


def test_tend_clinics_slack_binds_a_workspace(rt, env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from handlers.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    admin.create_clinic(rt.db, rt.box, "North", "north")
    result = CliRunner().invoke(main, ["clinics", "slack", "north", "--team-id", "T0NORTH"])
    assert result.exit_code == 0, result.output
    with rt.db.session() as session:
        assert session.scalars(select(Clinic)).one().settings["slack_team_id"] == "T0NORTH"
    bad = CliRunner().invoke(main, ["clinics", "slack", "north", "--team-id", "not-a-team"])
    assert bad.exit_code == 1
    assert "not a Slack team id" in bad.output
