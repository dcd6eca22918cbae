"""Helpers the listeners share: who is asking, and safe answers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin.runtime import Runtime
from plugin.slack_people import therapist_for_slack

log = logging.getLogger("tend.slack")


@dataclass(frozen=True, slots=True)
class Who:
    therapist_id: int
    clinic_id: str
    ehr_id: str
    timezone: str


def who(rt: Runtime, user_id: str | None, team_id: str | None) -> Who | None:
    with rt.db.session() as session:
        therapist = therapist_for_slack(session, user_id, team_id)
        if therapist is None:
            return None
        return Who(therapist.id, therapist.clinic_id, therapist.ehr_id, therapist.timezone or "UTC")


def team_of(body: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> str | None:
    team = body.get("team_id") or (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
    if not team and context is not None:
        team = context.get("team_id")
    return team or None


def retry_num(request: Any) -> int:
    """Slack's ``X-Slack-Retry-Num`` (0 for a first delivery)."""
    values = (getattr(request, "headers", None) or {}).get("x-slack-retry-num") or []
    try:
        return int(values[0]) if values else 0
    except (TypeError, ValueError):
        return 0
