"""The signed EHR webhook answers exactly as DESIGN §3.2 says."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from plugin import admin
from plugin.store.models import Event
from tests.conftest import event_body, signed_headers, wait_until

NOTE = {
    "note_id": "N-1",
    "therapist_id": "T-100",
    "client_id": "P-77",
    "session_start": "2026-03-09T14:00:00+00:00",
    "session_number": 5,
    "alliance": "established",
    "phase": "working",
    "tags": ["self_criticism"],
}


def count_events(rt) -> int:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def test_a_signed_event_is_accepted_and_recorded(post_event, rt) -> None:
    response = post_event("session_note.signed", NOTE)
    assert response.status_code == 202
    assert response.json["status"] == "accepted"
    assert count_events(rt) == 1


def test_an_accepted_event_is_enqueued_for_evaluation(post_event, rt) -> None:
    response = post_event("session_note.signed", NOTE)
    job_ids = rt.queue.rq.job_ids
    assert f"evaluate-{response.json['event_id']}" in job_ids


def test_the_same_webhook_id_again_is_a_duplicate(post_event, rt) -> None:
    first = post_event("session_note.signed", NOTE, msg_id="msg_same")
    second = post_event("session_note.signed", NOTE, msg_id="msg_same")
    assert second.status_code == 200
    assert second.json == {"event_id": first.json["event_id"], "status": "duplicate"}
    assert count_events(rt) == 1


def test_five_concurrent_replays_record_one_event(app, clinic, rt) -> None:
    body = event_body("session_note.signed", NOTE)
    headers = signed_headers(clinic.webhook_secret, body, "msg_replayed")
    answers: list[int] = []

    def send() -> None:
        answers.append(app.test_client().post(clinic.webhook_path, data=body, headers=headers).status_code)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 200, 200, 200, 202]
    assert count_events(rt) == 1


def test_a_missing_signature_is_401(client, clinic) -> None:
    response = client.post(clinic.webhook_path, data=event_body("session_note.signed", NOTE), content_type="application/json")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_a_signature_with_another_secret_is_401(client, clinic) -> None:
    body = event_body("session_note.signed", NOTE)
    other = admin.new_webhook_secret()
    response = client.post(clinic.webhook_path, data=body, headers=signed_headers(other, body))
    assert response.status_code == 401


def test_a_stale_timestamp_is_401(client, clinic) -> None:
    body = event_body("session_note.signed", NOTE)
    stale = datetime.now(timezone.utc) - timedelta(minutes=6)
    response = client.post(clinic.webhook_path, data=body, headers=signed_headers(clinic.webhook_secret, body, at=stale))
    assert response.status_code == 401


def test_a_body_changed_after_signing_is_401(client, clinic) -> None:
    body = event_body("session_note.signed", NOTE)
    headers = signed_headers(clinic.webhook_secret, body)
    response = client.post(clinic.webhook_path, data=body.replace(b"P-77", b"P-78"), headers=headers)
    assert response.status_code == 401


def test_two_signatures_during_rotation_verify(client, clinic) -> None:
    body = event_body("session_note.signed", NOTE)
    old = signed_headers(admin.new_webhook_secret(), body, "msg_rot")
    new = signed_headers(clinic.webhook_secret, body, "msg_rot", at=datetime.fromtimestamp(int(old["webhook-timestamp"]), timezone.utc))
    old["webhook-signature"] = f"{old['webhook-signature']} {new['webhook-signature']}"
    assert client.post(clinic.webhook_path, data=body, headers=old).status_code == 202


def test_the_previous_secret_verifies_after_a_rotation(client, clinic, rt) -> None:
    admin.rotate_webhook_secret(rt.db, rt.box, clinic.clinic_id)
    body = event_body("session_note.signed", NOTE)
    response = client.post(clinic.webhook_path, data=body, headers=signed_headers(clinic.webhook_secret, body))
    assert response.status_code == 202


def test_an_unknown_clinic_is_404(client, clinic) -> None:
    body = event_body("session_note.signed", NOTE)
    response = client.post("/webhooks/nowhere/ehr", data=body, headers=signed_headers(clinic.webhook_secret, body))
    assert response.status_code == 404
    assert response.json["title"] == "Unknown clinic"


def test_a_body_over_256_kib_is_413(client, clinic) -> None:
    body = event_body("session_note.signed", {**NOTE, "text": "x" * (300 * 1024)})
    response = client.post(clinic.webhook_path, data=body, headers=signed_headers(clinic.webhook_secret, body))
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


def test_a_body_that_is_not_json_is_415(client, clinic) -> None:
    body = b"note_id=N-1"
    headers = {**signed_headers(clinic.webhook_secret, body), "content-type": "application/x-www-form-urlencoded"}
    assert client.post(clinic.webhook_path, data=body, headers=headers).status_code == 415


def test_invalid_json_is_400(client, clinic) -> None:
    body = b'{"type": "session_note.signed",'
    response = client.post(clinic.webhook_path, data=body, headers=signed_headers(clinic.webhook_secret, body))
    assert response.status_code == 400
    assert response.json["title"] == "Invalid JSON"


def test_missing_fields_are_named_in_the_errors(post_event) -> None:
    response = post_event("session_note.signed", {"note_id": "N-1"})
    assert response.status_code == 400
    errors = response.json["errors"]["data"]
    assert set(errors) == {"therapist_id", "client_id", "session_start"}


def test_an_unknown_field_is_rejected_by_name(post_event) -> None:
    response = post_event("session_note.signed", {**NOTE, "diagnosis": "F32.1"})
    assert response.status_code == 400
    assert "diagnosis" in response.json["errors"]["data"]


def test_a_timestamp_without_an_offset_is_rejected(post_event) -> None:
    response = post_event("session_note.signed", {**NOTE, "session_start": "2026-03-09T14:00:00"})
    assert response.status_code == 400
    assert "session_start" in response.json["errors"]["data"]


def test_an_unknown_event_type_is_400(post_event) -> None:
    response = post_event("lab_result.final", {"id": "x"})
    assert response.status_code == 400
    assert "type" in response.json["errors"]


def test_an_ignored_event_type_is_acknowledged_and_not_recorded(post_event, rt) -> None:
    response = post_event("appointment.reminder_sent", {"appointment_id": "A-1"})
    assert response.status_code == 200
    assert response.json["status"] == "ignored"
    assert count_events(rt) == 0


def test_every_event_type_is_accepted(post_event) -> None:
    start = datetime(2026, 3, 9, 15, tzinfo=timezone.utc)
    appointment = {"appointment_id": "A-1", "therapist_id": "T-100", "client_id": "P-77", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()}
    events = [
        ("session_note.signed", NOTE),
        ("appointment.booked", appointment),
        ("appointment.updated", appointment),
        ("appointment.cancelled", appointment),
        ("client_message.received", {"message_id": "M-1", "therapist_id": "T-100", "client_id": "P-77", "sent_at": start.isoformat(), "text": "hello"}),
        ("therapist.upserted", {"therapist_id": "T-100", "timezone": "Europe/London", "working_hours": {"mon": ["08:00", "18:00"]}}),
        ("therapist.practice_logged", {"therapist_id": "T-100", "practice_id": "self_compassion_break"}),
    ]
    assert [post_event(t, d).status_code for t, d in events] == [202] * len(events)


def test_redis_down_still_accepts_and_the_sweeper_enqueues_later(post_event, rt, monkeypatch) -> None:
    from redis import Redis

    from plugin import jobs

    good = rt.queue.rq.connection
    rt.queue.rq.connection = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    response = post_event("session_note.signed", NOTE)
    assert response.status_code == 202
    rt.queue.rq.connection = good
    assert rt.queue.rq.job_ids == []
    later = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert jobs.sweep(now=later)["events"] == 1
    assert f"evaluate-{response.json['event_id']}" in rt.queue.rq.job_ids


def test_an_error_response_never_echoes_the_note_text(post_event) -> None:
    canary = "canary-4f1c-ultra-private"
    response = post_event("session_note.signed", {**NOTE, "text": canary, "session_number": "five"})
    assert response.status_code == 400
    assert canary not in json.dumps(response.json)


def test_a_note_whose_text_cannot_be_read_is_still_accepted_and_flagged(post_event, rt, monkeypatch) -> None:
    from plugin import signals

    def unreadable(_text: str):  # type: ignore[no-untyped-def]
        raise signals.ExtractionError("signal extraction failed")

    monkeypatch.setattr(signals, "extract_client", unreadable)
    response = post_event("session_note.signed", {**NOTE, "text": "She was self-critical."})
    assert response.status_code == 202
    with rt.db.session() as session:
        stored = session.get(Event, response.json["event_id"])
    assert stored.data["signals_unread"] is True
    assert stored.data["signals"] == ["self_criticism"]  # the structured tags still count


def test_a_webhook_id_longer_than_250_characters_is_400(post_event) -> None:
    response = post_event("session_note.signed", NOTE, msg_id="m" * 251)
    assert response.status_code == 400
    assert "webhook-id" in response.json["detail"]


def test_an_event_that_cannot_be_stored_is_503_with_retry_after(post_event, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    from plugin import intake

    def unavailable(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(intake, "accept", unavailable)
    response = post_event("session_note.signed", NOTE)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.mimetype == "application/problem+json"


def test_a_real_redis_outage_loses_nothing(app, clinic, tmp_path) -> None:
    """Redis stops, the webhook still answers 202; Redis returns, the sweeper gets it evaluated."""
    import shutil
    import subprocess

    from redis import Redis

    from rq.worker import SimpleWorker

    from plugin import jobs
    from plugin.queue import JobQueue
    from tests.test_e2e import free_port

    port = free_port()
    command = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    rt = app.extensions["tend"]

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(lambda: _answers(port), timeout=10)
        return process

    server = start()
    private = Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    rt.queue = JobQueue(private, "outage")
    server.terminate()
    server.wait()
    body = event_body("session_note.signed", NOTE)
    response = app.test_client().post(clinic.webhook_path, data=body, headers=signed_headers(clinic.webhook_secret, body))
    assert response.status_code == 202
    server = start()
    try:
        later = datetime.now(timezone.utc) + timedelta(minutes=1)
        assert jobs.sweep(now=later)["events"] == 1
        SimpleWorker([rt.queue.rq], connection=private).work(burst=True)
        with rt.db.session() as session:
            assert session.get(Event, response.json["event_id"]).status == "evaluated"
    finally:
        server.terminate()
        server.wait()


def _answers(port: int) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        return bool(Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2).ping())
    except RedisError:
        return False
