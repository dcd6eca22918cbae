"""FHIR subscription notifications (DESIGN §3.3): R4 backport, R4B and R5 bundles."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import func, select

from plugin.store.models import Event, FhirSubscription
from tests.fhir_helpers import load, post, renumber, resource_of

FULL = {
    "R4 note": ("r4-note-full-resource.json", "session_note.signed"),
    "R4 appointment": ("r4-appointment-full-resource.json", "appointment.booked"),
    "R4 message": ("r4-communication-full-resource.json", "client_message.received"),
    "R4B note": ("r4b-note-full-resource.json", "session_note.signed"),
    "R4B message": ("r4b-communication-full-resource.json", "client_message.received"),
    "R5 note": ("r5-note-full-resource.json", "session_note.signed"),
    "R5 appointment": ("r5-appointment-full-resource.json", "appointment.booked"),
    "R5 message": ("r5-communication-full-resource.json", "client_message.received"),
}


def events(rt) -> list[Event]:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return list(session.scalars(select(Event).order_by(Event.id)))


def subscription(rt) -> FhirSubscription:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return session.scalars(select(FhirSubscription)).one()


@pytest.mark.parametrize("name", ["r4-handshake.json", "r4b-handshake.json"])
def test_a_handshake_is_answered_200_and_recorded(client, clinic, rt, name) -> None:
    response = post(client, clinic, load(name))
    assert response.status_code == 200
    assert response.json["type"] == "handshake"
    row = subscription(rt)
    assert row.subscription == "Subscription/tend-notes" and row.handshake_at is not None and row.status == "requested"
    assert events(rt) == []


@pytest.mark.parametrize("name", ["r4-heartbeat.json", "r5-heartbeat.json"])
def test_a_heartbeat_is_answered_200_and_recorded(client, clinic, rt, name) -> None:
    response = post(client, clinic, load(name))
    assert response.status_code == 200
    assert subscription(rt).last_type == "heartbeat"


@pytest.mark.parametrize("case", sorted(FULL))
def test_a_full_resource_notification_becomes_the_tend_event(client, clinic, rt, case) -> None:
    name, event_type = FULL[case]
    response = post(client, clinic, load(name))
    assert response.status_code == 202, response.json
    assert response.json["events"][0]["status"] == "accepted"
    [event] = events(rt)
    assert (event.source, event.type, event.dedupe_key) == ("fhir", event_type, "Subscription/tend-notes#1")
    assert event.therapist_ehr_id == "prac-77" and event.client_id is not None
    assert f"evaluate-{event.id}" in rt.queue.rq.job_ids


@pytest.mark.parametrize("name", ["r4-note-full-resource.json", "r4b-note-full-resource.json", "r5-note-full-resource.json"])
def test_the_note_text_becomes_signals(client, clinic, rt, name) -> None:
    post(client, clinic, load(name))
    [event] = events(rt)
    assert event.data["signals"] == ["self_criticism"]
    assert event.data["note_id"] == "note-5521" and event.data["session_start"] == "2026-03-09T14:00:00+00:00"


def test_a_patient_message_becomes_signals(client, clinic, rt) -> None:
    post(client, clinic, load("r5-communication-full-resource.json"))
    [event] = events(rt)
    assert "low_self_worth" in event.data["signals"] or "self_criticism" in event.data["signals"]


def test_the_same_event_number_again_is_a_duplicate(client, clinic, rt) -> None:
    body = load("r4-note-full-resource.json")
    first = post(client, clinic, body)
    second = post(client, clinic, body)
    assert second.status_code == 200
    assert second.json["events"][0] == {"event_number": 1, "status": "duplicate", "event_id": first.json["events"][0]["event_id"]}
    assert len(events(rt)) == 1


def test_an_amended_note_is_a_new_event(client, clinic, rt) -> None:
    post(client, clinic, load("r4-note-full-resource.json"))
    amended = renumber(load("r4-note-full-resource.json"), [2], since=2)
    resource_of(amended)["docStatus"] = "amended"
    assert post(client, clinic, amended).status_code == 202
    assert [e.dedupe_key for e in events(rt)] == ["Subscription/tend-notes#1", "Subscription/tend-notes#2"]


@pytest.mark.parametrize(
    "change",
    [
        {"docStatus": "preliminary"},
        {"type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}]}},
        {"author": [{"reference": "Organization/riverside"}]},
    ],
    ids=["preliminary", "not-a-progress-note", "no-practitioner"],
)
def test_a_note_tend_does_not_read_is_acknowledged_and_not_recorded(client, clinic, rt, change) -> None:
    body = load("r4-note-full-resource.json")
    resource_of(body).update(change)
    response = post(client, clinic, body)
    assert response.status_code == 200
    assert response.json["events"][0]["status"] == "ignored"
    assert events(rt) == []


@pytest.mark.parametrize(("status", "event_type"), [("cancelled", "appointment.cancelled"), ("noshow", "appointment.cancelled"), ("fulfilled", "appointment.updated")])
def test_appointment_statuses_map_to_tend_events(client, clinic, rt, status, event_type) -> None:
    body = load("r4-appointment-full-resource.json")
    resource_of(body)["status"] = status
    post(client, clinic, body)
    assert events(rt)[0].type == event_type


def test_a_proposed_appointment_is_ignored(client, clinic, rt) -> None:
    body = load("r4-appointment-full-resource.json")
    resource_of(body)["status"] = "proposed"
    assert post(client, clinic, body).json["events"][0]["status"] == "ignored"


def test_a_message_sent_by_the_practice_is_ignored(client, clinic, rt) -> None:
    body = load("r4-communication-full-resource.json")
    resource_of(body)["sender"] = {"reference": "Practitioner/prac-77"}
    resource_of(body)["recipient"] = [{"reference": "Patient/pat-1042"}]
    assert post(client, clinic, body).json["events"][0]["status"] == "ignored"


def test_a_psythpn_note_is_never_read(client, clinic, rt, monkeypatch) -> None:
    from plugin import signals

    read: list[str] = []
    monkeypatch.setattr(signals, "extract_client", lambda text: read.append(text) or signals.Signals())
    body = load("r4-note-full-resource.json")
    resource_of(body)["meta"]["security"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSYTHPN"}]
    assert post(client, clinic, body).status_code == 202
    assert read == []
    [event] = events(rt)
    assert event.data["signals"] == [] and event.data["sensitivity"] == ["PSYTHPN"]


def test_a_psythpn_security_label_is_honoured_too(client, clinic, rt) -> None:
    body = load("r4-note-full-resource.json")
    resource_of(body)["securityLabel"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSYTHPN"}]}]
    post(client, clinic, body)
    assert events(rt)[0].data["signals"] == []


@pytest.mark.parametrize("token", [None, "tfhir_wrong", ""], ids=["missing", "wrong", "empty"])
def test_a_missing_or_wrong_token_is_401(client, clinic, rt, token) -> None:
    response = post(client, clinic, load("r4-note-full-resource.json"), token=token)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert events(rt) == []


def test_another_clinics_token_is_401(client, clinic, rt) -> None:
    from plugin import admin

    other = admin.create_clinic(rt.db, rt.box, "Other Clinic", "other")
    response = post(client, clinic, load("r4-note-full-resource.json"), token=other.fhir_token)
    assert response.status_code == 401


def test_an_unknown_clinic_is_404(client, clinic) -> None:
    response = client.post("/webhooks/nowhere/fhir", json=load("r4-handshake.json"), headers={"Authorization": f"Bearer {clinic.fhir_token}"})
    assert response.status_code == 404


def test_a_bundle_that_is_not_fhir_is_400_without_echoing_values(client, clinic, rt) -> None:
    canary = "canary-7d1e-never-echo"
    body = load("r4-note-full-resource.json")
    resource_of(body)["content"][0]["attachment"]["data"] = base64.b64encode(canary.encode()).decode()
    resource_of(body)["context"] = [canary]
    response = post(client, clinic, body)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert canary not in json.dumps(response.json)
    assert any("context" in line for line in response.json["errors"])


def test_a_bundle_without_a_status_entry_is_400(client, clinic) -> None:
    body = load("r4-note-full-resource.json")
    body["entry"] = body["entry"][1:]
    assert post(client, clinic, body).status_code == 400


def test_a_plain_json_body_is_415_when_not_json(client, clinic) -> None:
    response = client.post(
        f"/webhooks/{clinic.clinic_id}/fhir", data="x", headers={"Authorization": f"Bearer {clinic.fhir_token}", "Content-Type": "text/plain"}
    )
    assert response.status_code == 415


def test_two_events_in_one_notification_are_two_tend_events(client, clinic, rt) -> None:
    note = load("r4-note-full-resource.json")
    appointment = load("r4-appointment-full-resource.json")
    status = note["entry"][0]["resource"]["parameter"]
    second = json.loads(json.dumps([p for p in appointment["entry"][0]["resource"]["parameter"] if p["name"] == "notification-event"][0]))
    second["part"][0]["valueString"] = "2"
    status.append(second)
    next(p for p in status if p["name"] == "events-since-subscription-start")["valueString"] = "2"
    note["entry"].append(appointment["entry"][1])
    response = post(client, clinic, note)
    assert [e["status"] for e in response.json["events"]] == ["accepted", "accepted"]
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2


def test_fhir_notes_are_numbered_from_the_clients_earlier_notes(client, clinic, rt) -> None:
    from plugin import jobs

    first = post(client, clinic, load("r4-note-full-resource.json"))
    jobs.evaluate(first.json["events"][0]["event_id"])
    later = renumber(load("r4-note-full-resource.json"), [2], since=2)
    resource_of(later)["id"] = "note-5522"
    post(client, clinic, later)
    assert [e.data["session_number"] for e in events(rt)] == [1, 2]


def test_the_subscription_manifest_is_a_valid_r4b_backport_subscription() -> None:
    from pathlib import Path

    from fhir.resources.R4B.subscription import Subscription

    raw = json.loads((Path(__file__).parents[1] / "manifests" / "fhir-subscription.json").read_text())
    subscription = Subscription.model_validate(raw)
    assert subscription.channel.header == ["Authorization: Bearer {{TEND_FHIR_TOKEN}}"]
    assert raw["channel"]["_payload"]["extension"][0]["valueCode"] == "full-resource"


# --- review fixes ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["r4-note-full-resource.json", "r5-note-full-resource.json"])
def test_an_entry_of_an_unknown_resource_type_is_400_without_echoing_it(client, clinic, rt, name) -> None:
    body = load(name)
    resource_of(body)["resourceType"] = "CanaryType7f3e"
    response = post(client, clinic, body)
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "CanaryType7f3e" not in json.dumps(response.json)
    assert events(rt) == []


def test_an_unknown_element_name_is_not_echoed_only_its_position(client, clinic, rt) -> None:
    body = load("r4-note-full-resource.json")
    resource_of(body)["canary_3b9c_element"] = "x"
    response = post(client, clinic, body)
    assert response.status_code == 400
    assert "canary_3b9c_element" not in json.dumps(response.json)
    assert "entry.1.resource.<unknown element>: Extra inputs are not permitted" in response.json["errors"]


def test_a_note_whose_text_cannot_be_read_is_recorded_without_text_signals_and_flagged(client, clinic, rt, monkeypatch) -> None:
    from plugin import signals

    def broken(text: str):  # type: ignore[no-untyped-def]
        raise signals.ExtractionError("client signal extraction failed (input withheld)")

    monkeypatch.setattr(signals, "extract_client", broken)
    response = post(client, clinic, load("r4-note-full-resource.json"))
    assert response.status_code == 202
    [event] = events(rt)
    assert (event.data["signals"], event.data["signals_unread"]) == ([], True)


def test_an_ignored_status_is_named_without_its_value(client, clinic, rt) -> None:
    body = load("r4-communication-full-resource.json")
    resource_of(body)["status"] = "canary-status-4e1d"
    outcome = post(client, clinic, body).json["events"][0]
    assert outcome == {"event_number": 1, "status": "ignored", "reason": "Communication status is not completed"}


def test_a_subscription_reference_longer_than_250_characters_is_400(client, clinic, rt) -> None:
    body = renumber(load("r4-note-full-resource.json"), subscription="Subscription/" + "s" * 240)
    response = post(client, clinic, body)
    assert response.status_code == 400
    assert "subscription" in response.json["errors"]
    assert events(rt) == []


def test_an_event_number_beyond_integer64_is_400(client, clinic, rt) -> None:
    response = post(client, clinic, renumber(load("r4-note-full-resource.json"), [2**63], since=1))
    assert response.status_code == 400
    assert events(rt) == []
