"""Who a Slack request is from: a Slack user (and workspace) -> one therapist in one clinic.

Decision: a therapist is found by ``Therapist.slack_user_id`` (set by the EHR's
``therapist.upserted``). Slack user ids are unique per workspace and in practice
across Slack, so in a deployment that serves one workspace this is enough. A
clinic may additionally be bound to its workspace (``tend clinics slack CLINIC
--team-id T...``, kept in ``Clinic.settings["slack_team_id"]``): a bound clinic
answers only requests from that workspace. When the same Slack user id appears
in more than one clinic and the workspace does not single one out, nobody is
resolved: Tend never guesses across clinics.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.store.db import Database
from plugin.store.models import Clinic, Therapist

log = logging.getLogger(__name__)

TEAM_SETTING = "slack_team_id"
_TEAM_ID = re.compile(r"^[TE][A-Z0-9]{2,20}$")


class SlackLinkError(ValueError):
    """A bad ``tend clinics slack`` request; one line."""


def therapist_for_slack(session: Session, user_id: str | None, team_id: str | None) -> Therapist | None:
    """The one therapist this Slack user is, or None (unknown, or ambiguous across clinics)."""
    if not user_id:
        return None
    rows = list(
        session.execute(
            select(Therapist, Clinic.settings).join(Clinic, Clinic.id == Therapist.clinic_id).where(Therapist.slack_user_id == user_id)
        )
    )
    candidates = []
    bound = []
    for therapist, settings in rows:
        team = (settings or {}).get(TEAM_SETTING)
        if team is None:
            candidates.append(therapist)
        elif team_id is not None and team == team_id:
            bound.append(therapist)
    chosen = bound or candidates
    if len(chosen) == 1:
        return chosen[0]
    if len(chosen) > 1:
        log.warning("a Slack user is linked to %d therapists in different clinics; bind clinics to workspaces", len(chosen))
    return None


def link_clinic_team(db: Database, clinic_id: str, team_id: str | None) -> str:
    """Bind a clinic to a Slack workspace (None unbinds); returns a one-line confirmation."""
    if team_id is not None and not _TEAM_ID.match(team_id):
        raise SlackLinkError(f"{team_id!r} is not a Slack team id (it looks like T0123ABCD)")
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None:
            raise SlackLinkError(f"no clinic {clinic_id!r}")
        settings = dict(clinic.settings or {})
        if team_id is None:
            settings.pop(TEAM_SETTING, None)
        else:
            for other in session.scalars(select(Clinic).where(Clinic.id != clinic_id)):
                if (other.settings or {}).get(TEAM_SETTING) == team_id:
                    raise SlackLinkError(f"workspace {team_id} is already bound to clinic {other.id!r}")
            settings[TEAM_SETTING] = team_id
        clinic.settings = settings
    if team_id is None:
        return f"clinic {clinic_id} answers Slack users from any workspace"
    return f"clinic {clinic_id} answers only Slack workspace {team_id}"
