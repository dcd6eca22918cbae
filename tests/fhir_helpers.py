"""Helpers shared by the FHIR test files: fixtures on disk, renumbering, posting."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "fhir"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def renumber(bundle: dict[str, Any], numbers: list[int] | None = None, since: int | None = None, subscription: str | None = None) -> dict[str, Any]:
    """A copy with other event numbers (one per existing event, in order) and count."""
    bundle = copy.deepcopy(bundle)
    status = bundle["entry"][0]["resource"]
    if status["resourceType"] == "Parameters":
        events = [p for p in status["parameter"] if p["name"] == "notification-event"]
        for event, number in zip(events, numbers or []):
            for part in event["part"]:
                if part["name"] == "event-number":
                    part["valueString"] = str(number)
        for p in status["parameter"]:
            if p["name"] == "events-since-subscription-start" and since is not None:
                p["valueString"] = str(since)
            if p["name"] == "subscription" and subscription:
                p["valueReference"]["reference"] = subscription
    else:
        for event, number in zip(status.get("notificationEvent", []), numbers or []):
            event["eventNumber"] = str(number)
        if since is not None:
            status["eventsSinceSubscriptionStart"] = str(since)
        if subscription:
            status["subscription"]["reference"] = subscription
    return bundle


def resource_of(bundle: dict[str, Any]) -> dict[str, Any]:
    return bundle["entry"][1]["resource"]


def post(client, clinic, body: dict[str, Any], token: str | None = "<clinic>"):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/fhir+json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {clinic.fhir_token if token == '<clinic>' else token}"
    return client.post(f"/webhooks/{clinic.clinic_id}/fhir", data=json.dumps(body), headers=headers)
