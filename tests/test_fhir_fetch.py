"""id-only notifications: recorded in the request, fetched and evaluated in the worker."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from plugin.fhir import fetch
from plugin.store.db import utcnow
from plugin.store.models import Event, FhirEndpoint
from tests.fakes.fhir_server import FakeFhirServer
from tests.fhir_helpers import load, post, resource_of

TOKEN_ENV = "TEND_FHIR_TOKEN_TEST_EHR"


@pytest.fixture
def fhir_server(rt, clinic, monkeypatch) -> Iterator[FakeFhirServer]:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(TOKEN_ENV, "fhir-server-token")
    monkeypatch.setattr(fetch, "QUICK_BACKOFF_SECONDS", 0.01)
    with FakeFhirServer() as server:
        with rt.db.session() as session:
            session.add(FhirEndpoint(clinic_id=clinic.clinic_id, base_url=server.base_url, token_env=TOKEN_ENV, updated_at=utcnow()))
        server.add(load("server-documentreference-r4.json"))
        server.add(load("server-appointment-r4.json"))
        server.add(load("server-communication-r4.json"))
        yield server


def only_event(rt) -> Event:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return session.scalars(select(Event)).one()


CASES = {
    "R4 note": ("r4-note-id-only.json", "session_note.signed"),
    "R5 note": ("r5-note-id-only.json", "session_note.signed"),
    "R4 appointment": ("r4-appointment-id-only.json", "appointment.booked"),
    "R4B appointment": ("r4b-appointment-id-only.json", "appointment.booked"),
    "R4 message": ("r4-communication-id-only.json", "client_message.received"),
    "R5 message": ("r5-communication-id-only.json", "client_message.received"),
}


def test_an_id_only_notification_is_recorded_without_fetching_in_the_request(client, clinic, rt, fhir_server) -> None:
    response = post(client, clinic, load("r4-note-id-only.json"))
    assert response.status_code == 202
    assert response.json["events"][0]["status"] == "fetching"
    assert fhir_server.requests == []
    event = only_event(rt)
    assert (event.status, event.type, event.data["fhir"]["reference"]) == ("fetching", "fhir.pending", "DocumentReference/note-5521")
    assert f"fhir-fetch-{event.id}" in rt.queue.rq.job_ids


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_worker_fetches_maps_and_evaluates(client, clinic, rt, fhir_server, case) -> None:
    name, event_type = CASES[case]
    if name.startswith("r5"):
        fhir_server.add(load("server-documentreference-r5.json"))
        fhir_server.add(load("server-communication-r5.json"))
    post(client, clinic, load(name))
    event_id = only_event(rt).id
    assert fetch.fetch_and_evaluate(event_id) == "evaluated"
    event = only_event(rt)
    assert (event.type, event.status, event.therapist_ehr_id) == (event_type, "evaluated", "prac-77")
    assert event.client_id is not None and "fhir" not in event.data
    assert fhir_server.requests[0]["authorization"] == "Bearer fhir-server-token"


def test_a_fetched_note_is_read_for_signals(client, clinic, rt, fhir_server) -> None:
    post(client, clinic, load("r4-note-id-only.json"))
    fetch.fetch_and_evaluate(only_event(rt).id)
    assert only_event(rt).data["signals"] == ["self_criticism"]


def test_a_fetched_psythpn_note_is_not_read(client, clinic, rt, fhir_server) -> None:
    labelled = load("server-documentreference-r4.json")
    labelled["meta"]["security"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSYTHPN"}]
    fhir_server.add(labelled)
    post(client, clinic, load("r4-note-id-only.json"))
    fetch.fetch_and_evaluate(only_event(rt).id)
    assert only_event(rt).data["signals"] == [] and only_event(rt).data["sensitivity"] == ["PSYTHPN"]


def test_server_errors_are_retried_quickly(client, clinic, rt, fhir_server) -> None:
    fhir_server.fail_next = [503, 503]
    post(client, clinic, load("r4-appointment-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "evaluated"
    assert len(fhir_server.requests) == 3


def test_a_server_still_failing_leaves_the_event_for_rq_to_retry(client, clinic, rt, fhir_server) -> None:
    fhir_server.fail_next = [503] * 3
    post(client, clinic, load("r4-appointment-id-only.json"))
    with pytest.raises(fetch.Transient):
        fetch.fetch_and_evaluate(only_event(rt).id)
    assert only_event(rt).status == "fetching"
    assert only_event(rt).data["fhir"]["attempts"] == 1
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "evaluated"


def test_a_timeout_is_retried(client, clinic, rt, fhir_server, monkeypatch) -> None:
    monkeypatch.setattr(fetch, "TIMEOUT_SECONDS", 0.3)
    fhir_server.delay_next = [1.0]
    post(client, clinic, load("r4-appointment-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "evaluated"


def test_a_missing_resource_fails_the_event_for_good(client, clinic, rt, fhir_server) -> None:
    fhir_server.resources.clear()
    post(client, clinic, load("r4-note-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "failed"
    assert only_event(rt).status == "failed" and "not found" in only_event(rt).error


def test_a_missing_token_variable_fails_with_its_name(client, clinic, rt, fhir_server, monkeypatch) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    post(client, clinic, load("r4-note-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "failed"
    assert TOKEN_ENV in only_event(rt).error


def test_no_base_url_fails_with_the_command_to_fix_it(client, clinic, rt) -> None:
    post(client, clinic, load("r4-note-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "failed"
    assert "tend clinics fhir" in only_event(rt).error


def test_a_note_with_an_attachment_url_is_fetched_in_the_worker(client, clinic, rt, fhir_server) -> None:
    binary = {"resourceType": "Binary", "id": "bin-1", "contentType": "text/plain",
              "data": base64.b64encode(b"She was very self-critical about the exam.").decode()}
    fhir_server.add(binary)
    body = load("r4-note-full-resource.json")
    resource_of(body)["content"][0]["attachment"] = {"contentType": "text/plain", "url": "Binary/bin-1"}
    response = post(client, clinic, body)
    assert response.json["events"][0]["status"] == "fetching"
    event = only_event(rt)
    assert event.type == "session_note.signed" and event.status == "fetching" and fhir_server.requests == []
    assert fetch.fetch_and_evaluate(event.id) == "evaluated"
    assert only_event(rt).data["signals"] == ["self_criticism"]
    assert fhir_server.requests[0]["path"] == "/fhir/Binary/bin-1"


def test_an_attachment_outside_the_base_url_is_never_fetched(client, clinic, rt, fhir_server) -> None:
    body = load("r4-note-full-resource.json")
    resource_of(body)["content"][0]["attachment"] = {"contentType": "text/plain", "url": "https://elsewhere.example/notes/1.txt"}
    post(client, clinic, body)
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "failed"
    assert fhir_server.requests == []


def test_a_psythpn_note_with_an_attachment_url_is_not_fetched(client, clinic, rt, fhir_server) -> None:
    body = load("r4-note-full-resource.json")
    resource_of(body)["meta"]["security"] = [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSYTHPN"}]
    resource_of(body)["content"][0]["attachment"] = {"contentType": "text/plain", "url": "Binary/bin-1"}
    assert post(client, clinic, body).json["events"][0]["status"] == "accepted"
    assert only_event(rt).status == "recorded"


def test_the_sweeper_re_enqueues_a_lost_fetch(client, clinic, rt, fhir_server) -> None:
    from datetime import timedelta

    post(client, clinic, load("r4-note-id-only.json"))
    rt.queue.rq.empty()
    assert fetch.sweep(now=utcnow() + timedelta(minutes=10)) == 1
    assert f"fhir-fetch-{only_event(rt).id}" in rt.queue.rq.job_ids


def _everything_stored(rt) -> str:  # type: ignore[no-untyped-def]
    dumped = []
    with rt.db.engine.connect() as connection:
        tables = [r[0] for r in connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))]
        for table in tables:
            dumped.extend(str(tuple(row)) for row in connection.execute(text(f'SELECT * FROM "{table}"')))
    for key in rt.redis.scan_iter(count=1000):
        kind = rt.redis.type(key).decode()
        value = {
            "string": lambda: rt.redis.get(key),
            "hash": lambda: rt.redis.hgetall(key),
            "list": lambda: rt.redis.lrange(key, 0, -1),
            "set": lambda: rt.redis.smembers(key),
            "zset": lambda: rt.redis.zrange(key, 0, -1),
        }.get(kind, lambda: b"")()
        dumped.append(f"{key!r} {value!r}")
    return "\n".join(dumped)


def test_a_canary_in_a_note_appears_nowhere_in_the_db_or_redis(client, clinic, rt, fhir_server) -> None:
    from plugin import jobs

    canary = "canary-5f2a-ZEBRA-private-text"
    text_with_canary = f"Client was self-critical today. {canary}"
    full = load("r4-note-full-resource.json")
    resource_of(full)["content"][0]["attachment"]["data"] = base64.b64encode(text_with_canary.encode()).decode()
    fetched = load("server-documentreference-r4.json")
    fetched["id"] = "note-9000"
    fetched["content"][0]["attachment"]["data"] = base64.b64encode(text_with_canary.encode()).decode()
    fhir_server.add(fetched)
    id_only = json.loads(json.dumps(load("r4-note-id-only.json")).replace("note-5521", "note-9000").replace('"1"', '"2"'))
    assert post(client, clinic, full).status_code == 202
    assert post(client, clinic, id_only).status_code == 202
    with rt.db.session() as session:
        events = list(session.scalars(select(Event)))
    for event in events:
        if event.status == "fetching":
            fetch.fetch_and_evaluate(event.id)
        else:
            jobs.evaluate(event.id)
    stored = _everything_stored(rt)
    assert "self_criticism" in stored  # the signals did arrive
    assert canary not in stored
    assert base64.b64encode(text_with_canary.encode()).decode() not in stored
