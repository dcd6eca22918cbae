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


# --- review fixes: sessions, locks, unreadable text, base URL, token variable --------------


@pytest.fixture
def open_sessions(rt, monkeypatch):  # type: ignore[no-untyped-def]
    """How many of the runtime's sessions are open right now (``now``)."""
    from contextlib import contextmanager

    depth = {"now": 0}
    original = rt.db.session

    @contextmanager
    def tracked():  # type: ignore[no-untyped-def]
        depth["now"] += 1
        try:
            with original() as session:
                yield session
        finally:
            depth["now"] -= 1

    monkeypatch.setattr(rt.db, "session", tracked)
    return depth


def test_a_recorded_event_is_evaluated_after_the_workers_session_closes(client, clinic, rt, open_sessions, monkeypatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(fetch.jobs, "evaluate", lambda event_id: seen.append(open_sessions["now"]) or [])
    post(client, clinic, load("r4-note-full-resource.json"))
    assert only_event(rt).status == "recorded"
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "evaluated"
    assert seen == [0]


def test_no_session_is_opened_inside_another_while_fetching(client, clinic, rt, fhir_server, open_sessions, monkeypatch) -> None:
    deepest = {"depth": 0}
    original = rt.db.session

    def watching():  # type: ignore[no-untyped-def]
        deepest["depth"] = max(deepest["depth"], open_sessions["now"] + 1)
        return original()

    monkeypatch.setattr(rt.db, "session", watching)
    monkeypatch.setattr(fetch.jobs, "evaluate", lambda event_id: [])
    post(client, clinic, load("r4-note-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "evaluated"
    assert deepest["depth"] == 1


def test_a_fetched_note_is_read_for_signals_outside_any_transaction(client, clinic, rt, fhir_server, open_sessions, monkeypatch) -> None:
    seen: list[int] = []
    real = fetch.read_event
    monkeypatch.setattr(fetch, "read_event", lambda **kw: seen.append(open_sessions["now"]) or real(**kw))
    post(client, clinic, load("r4-note-id-only.json"))
    fetch.fetch_and_evaluate(only_event(rt).id)
    assert seen == [0] and only_event(rt).data["signals"] == ["self_criticism"]


def test_an_attachment_is_fetched_and_read_outside_any_transaction(client, clinic, rt, fhir_server, open_sessions, monkeypatch) -> None:
    fhir_server.add({"resourceType": "Binary", "id": "bin-1", "contentType": "text/plain",
                     "data": base64.b64encode(b"She was very self-critical about the exam.").decode()})
    body = load("r4-note-full-resource.json")
    resource_of(body)["content"][0]["attachment"] = {"contentType": "text/plain", "url": "Binary/bin-1"}
    post(client, clinic, body)
    seen: list[tuple[str, int]] = []
    real_attachment, real_signals = fetch.FhirReader.attachment, fetch.signals_of
    monkeypatch.setattr(fetch.FhirReader, "attachment", lambda self, url: seen.append(("http", open_sessions["now"])) or real_attachment(self, url))
    monkeypatch.setattr(fetch, "signals_of", lambda t, d: seen.append(("signals", open_sessions["now"])) or real_signals(t, d))
    fetch.fetch_and_evaluate(only_event(rt).id)
    assert seen == [("http", 0), ("signals", 0)]


def test_a_row_completed_while_fetching_is_not_overwritten(client, clinic, rt, fhir_server, monkeypatch) -> None:
    real = fetch.read_event

    def meanwhile(**kw):  # type: ignore[no-untyped-def]
        with rt.db.session() as session:  # another worker finished the row while this one read the text
            session.scalars(select(Event)).one().status = "failed"
        return real(**kw)

    monkeypatch.setattr(fetch, "read_event", meanwhile)
    monkeypatch.setattr(fetch.jobs, "evaluate", lambda event_id: [])
    post(client, clinic, load("r4-note-id-only.json"))
    fetch.fetch_and_evaluate(only_event(rt).id)
    assert (only_event(rt).status, only_event(rt).type) == ("failed", "fhir.pending")


def _extraction_fails(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from plugin import signals

    def broken(text: str):  # type: ignore[no-untyped-def]
        raise signals.ExtractionError("client signal extraction failed (input withheld)")

    monkeypatch.setattr(signals, "extract_client", broken)


def test_a_fetched_note_that_cannot_be_read_is_recorded_without_signals_and_flagged(client, clinic, rt, fhir_server, monkeypatch) -> None:
    _extraction_fails(monkeypatch)
    monkeypatch.setattr(fetch.jobs, "evaluate", lambda event_id: [])
    post(client, clinic, load("r4-note-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "evaluated"
    event = only_event(rt)
    assert (event.status, event.data["signals"], event.data["signals_unread"]) == ("recorded", [], True)


def test_an_attachment_that_cannot_be_read_is_recorded_without_its_signals_and_flagged(client, clinic, rt, fhir_server, monkeypatch) -> None:
    fhir_server.add({"resourceType": "Binary", "id": "bin-1", "contentType": "text/plain",
                     "data": base64.b64encode(b"She was very self-critical about the exam.").decode()})
    body = load("r4-note-full-resource.json")
    resource_of(body)["content"][0]["attachment"] = {"contentType": "text/plain", "url": "Binary/bin-1"}
    post(client, clinic, body)
    _extraction_fails(monkeypatch)
    monkeypatch.setattr(fetch.jobs, "evaluate", lambda event_id: [])
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "evaluated"
    event = only_event(rt)
    assert (event.status, event.data["signals"], event.data["signals_unread"]) == ("recorded", [], True)


@pytest.mark.parametrize(
    "url",
    [
        "https://ehr.example/fhir/R4/../../admin/export",
        "https://ehr.example/fhir/R4/%2e%2e/%2E%2E/admin/export",
        "https://ehr.example/fhir/R4/%252e%252e/%252e%252e/admin/export",
        "Binary/..%2f..%2fadmin",
        "Binary/..%5c..%5cadmin",
        "../R4-other/Binary/1",
        "https://ehr.example/fhir/R4-other/Binary/1",
        "https://ehr.example@elsewhere.example/fhir/R4/Binary/1",
        "http://ehr.example/fhir/R4/Binary/1",
    ],
)
def test_a_url_escaping_the_base_path_is_not_within_the_base(url: str) -> None:
    assert fetch.FhirReader("https://ehr.example/fhir/R4", "token").within_base(url) is None


def test_a_url_under_the_base_path_is_within_the_base() -> None:
    reader = fetch.FhirReader("https://ehr.example/fhir/R4", "token")
    assert reader.within_base("Binary/b-1") == "https://ehr.example/fhir/R4/Binary/b-1"


def test_a_notified_id_that_is_not_a_fhir_id_is_not_fetched(client, clinic, rt, fhir_server) -> None:
    body = json.loads(json.dumps(load("r4-note-id-only.json")).replace("DocumentReference/note-5521", "DocumentReference/.."))
    post(client, clinic, body)
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "failed"
    assert fhir_server.requests == []


def test_an_ignored_fetched_resource_keeps_no_value_in_the_error(client, clinic, rt, fhir_server) -> None:
    fetched = load("server-documentreference-r4.json")
    fetched["docStatus"] = "preliminary"
    fhir_server.add(fetched)
    post(client, clinic, load("r4-note-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "ignored"
    assert only_event(rt).error == "DocumentReference docStatus is not final or amended"


def test_a_tend_setting_stored_as_the_token_variable_is_never_sent(client, clinic, rt, fhir_server, monkeypatch) -> None:
    monkeypatch.setenv("TEND_SECRET_KEY", "tend-own-secret")
    with rt.db.session() as session:
        session.get(FhirEndpoint, clinic.clinic_id).token_env = "TEND_SECRET_KEY"
    post(client, clinic, load("r4-note-id-only.json"))
    assert fetch.fetch_and_evaluate(only_event(rt).id) == "failed"
    assert fhir_server.requests == []
