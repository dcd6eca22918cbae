"""CDS Hooks 2.0 (DESIGN §3.4): discovery, JWT checks, cards from the rules, feedback."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from sqlalchemy import select

from plugin import cds, jobs
from plugin.store.models import CdsCard, DeliveryAttempt, Event, Feedback, Suggestion
from tests.cds_helpers import ISSUER, SERVICE, call, ehr, ehr_keys, hook_body  # noqa: F401
from tests.conftest import therapist_data

NOTE = {
    "note_id": "N-1", "therapist_id": "T-100", "client_id": "P-77", "session_start": "2026-03-09T14:00:00+00:00",
    "session_number": 5, "alliance": "established", "phase": "working", "tags": ["self_criticism"],
}


@pytest.fixture
def charted(post_event, rt):  # type: ignore[no-untyped-def]
    """A therapist with a regular practice and a client whose last note shows self-criticism."""
    now = datetime.now(timezone.utc)
    ids = [
        post_event("therapist.upserted", therapist_data("UTC"), occurred_at=now - timedelta(hours=2)).json["event_id"],
        post_event("session_note.signed", NOTE, occurred_at=now - timedelta(hours=1)).json["event_id"],
    ]
    for event_id in ids:
        jobs.evaluate(event_id)


def check_card(card: dict) -> None:
    """The CDS Hooks 2.0 rules for a card."""
    assert set(card) >= {"uuid", "summary", "indicator", "source"}
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) <= 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"] and card["source"]["url"].startswith("https://")
    assert str(uuid.UUID(card["uuid"])) == card["uuid"]
    for reason in card["overrideReasons"]:
        assert set(reason) == {"code", "system", "display"}

    def no_nulls(value) -> None:  # type: ignore[no-untyped-def]
        assert value is not None
        if isinstance(value, dict):
            [no_nulls(v) for v in value.values()]
        if isinstance(value, list):
            [no_nulls(v) for v in value]

    no_nulls(card)


# --- discovery ----------------------------------------------------------------


def test_discovery_lists_a_service_per_hook(client) -> None:
    services = client.get("/cds-services").json["services"]
    assert {s["hook"] for s in services} == {"encounter-start", "encounter-discharge", "appointment-book"}
    assert all({"hook", "id", "description"} <= set(s) for s in services)
    assert services[0]["id"] == "tend-self-compassion"


def test_the_manifest_matches_discovery(client) -> None:
    assert json.loads(cds.MANIFEST.read_text()) == client.get("/cds-services").json


# --- authentication -----------------------------------------------------------


def test_a_signed_call_is_answered_with_cards(client, ehr, charted) -> None:
    response = call(client, ehr, hook_body())
    assert response.status_code == 200, response.json
    assert len(response.json["cards"]) == 1


def test_an_es384_token_verifies(client, ehr, charted) -> None:
    assert call(client, ehr, hook_body(), token=ehr.token(alg="ES384")).status_code == 200


def _refused(client, ehr, token: str | None) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = client.post(SERVICE, json=hook_body(), headers=headers)
    assert response.status_code == 401, response.json
    assert response.mimetype == "application/problem+json"


def test_no_token_is_401(client, ehr) -> None:
    _refused(client, ehr, None)


def test_a_token_for_another_endpoint_is_401(client, ehr) -> None:
    _refused(client, ehr, ehr.token(aud="https://elsewhere.example/cds-services/tend-self-compassion"))


def test_an_unknown_issuer_is_401(client, ehr) -> None:
    _refused(client, ehr, ehr.token(iss="https://unknown-ehr.example"))


def test_an_expired_token_is_401(client, ehr) -> None:
    past = int(time.time()) - 3600
    _refused(client, ehr, ehr.token(iat=past - 300, exp=past))


def test_a_replayed_jti_is_401(client, ehr, charted) -> None:
    token = ehr.token()
    assert call(client, ehr, hook_body(), token=token).status_code == 200
    _refused(client, ehr, token)


def test_alg_none_is_401(client, ehr) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": ehr.public_url + SERVICE, "exp": now + 300, "iat": now, "jti": "j1"}
    _refused(client, ehr, jwt.encode(claims, None, algorithm="none"))


def test_hs256_is_401(client, ehr) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": ehr.public_url + SERVICE, "exp": now + 300, "iat": now, "jti": "j2"}
    _refused(client, ehr, jwt.encode(claims, "a-shared-secret-of-32-bytes-long!!", algorithm="HS256"))


def test_rs256_is_401(client, ehr) -> None:
    _refused(client, ehr, ehr.token(alg="RS256", headers={"kid": "rsa-1"}))


def test_a_jku_off_the_allow_list_is_401(client, ehr) -> None:
    _refused(client, ehr, ehr.token(headers={"jku": "https://attacker.example/jwks.json"}))


def test_a_token_signed_by_another_key_is_401(client, ehr) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": ehr.public_url + SERVICE, "exp": now + 300, "iat": now, "jti": "j3"}
    _refused(client, ehr, jwt.encode(claims, other, algorithm="RS384", headers={"kid": "rsa-1"}))


def test_a_token_without_jti_is_401(client, ehr) -> None:
    _refused(client, ehr, ehr.token(jti=None))


def test_a_token_living_for_hours_is_401(client, ehr) -> None:
    now = int(time.time())
    _refused(client, ehr, ehr.token(iat=now, exp=now + 6 * 3600))


def test_the_jwks_is_cached_between_calls(client, ehr, charted) -> None:
    for _ in range(3):
        assert call(client, ehr, hook_body()).status_code == 200
    assert ehr.jwks.hits == 1


def test_discovery_with_a_bad_token_is_401(client, ehr) -> None:
    response = client.get("/cds-services", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401


# --- cards --------------------------------------------------------------------


@pytest.mark.parametrize("hook", ["encounter-start", "encounter-discharge", "appointment-book"])
def test_each_hook_gets_valid_cards(client, ehr, charted, hook) -> None:
    response = call(client, ehr, hook_body(hook))
    assert response.status_code == 200
    [card] = response.json["cards"]
    check_card(card)
    assert card["indicator"] == "info"
    assert card["summary"].startswith("Self-compassion, step 1 of 4")
    assert {r["code"] for r in card["overrideReasons"]} == {"not-now", "not-helpful", "already-practising"}
    assert "goodtherapy.org" in card["source"]["url"]


def test_each_hook_has_its_own_service_url_too(client, ehr, charted) -> None:
    path = "/cds-services/tend-self-compassion-booking"
    assert call(client, ehr, hook_body("appointment-book"), path=path).status_code == 200
    assert call(client, ehr, hook_body("encounter-start"), path=path).status_code == 400


def test_a_card_is_logged_as_a_delivered_suggestion(client, ehr, charted, rt) -> None:
    [card] = call(client, ehr, hook_body()).json["cards"]
    with rt.db.session() as session:
        row = session.scalar(select(Suggestion).join(CdsCard, CdsCard.suggestion_id == Suggestion.id).where(CdsCard.card_uuid == card["uuid"]))
        assert (row.status, row.rule_id, row.deliver_at) == ("delivered", "client.suggest.next-step", None)
        assert row.explanation["channel"] == "cds"
        attempt = session.scalar(select(DeliveryAttempt).where(DeliveryAttempt.suggestion_id == row.id))
        assert (attempt.outcome, attempt.detail) == ("delivered", "cds")
        event = session.get(Event, row.event_id)
        assert (event.source, event.type, event.status) == ("cds", "cds.encounter-start", "evaluated")


def test_the_same_hook_instance_returns_the_same_cards(client, ehr, charted, rt) -> None:
    body = hook_body(instance="5b0e3e3e-0a3f-4d3c-9d3e-2f1c0c7a0001")
    first = call(client, ehr, body).json["cards"]
    second = call(client, ehr, body).json["cards"]
    assert first == second
    with rt.db.session() as session:
        assert len(list(session.scalars(select(CdsCard)))) == 1


def test_an_unknown_client_gets_no_cards(client, ehr, charted) -> None:
    assert call(client, ehr, hook_body(patient="P-unknown")).json == {"cards": []}


def test_a_practitioner_role_user_gets_no_cards(client, ehr, charted) -> None:
    assert call(client, ehr, hook_body(user="PractitionerRole/pr-1")).json == {"cards": []}


def test_a_therapist_without_a_practice_gets_the_practice_first_card(client, ehr, post_event, rt) -> None:
    now = datetime.now(timezone.utc)
    ids = [
        post_event("therapist.upserted", therapist_data("UTC", self_compassion_practice="none"), occurred_at=now - timedelta(hours=2)).json["event_id"],
        post_event("session_note.signed", NOTE, occurred_at=now - timedelta(hours=1)).json["event_id"],
    ]
    for event_id in ids:
        jobs.evaluate(event_id)
    [card] = call(client, ehr, hook_body()).json["cards"]
    check_card(card)
    assert card["summary"].startswith("Before offering self-compassion")


def test_risk_language_gives_no_cards(client, ehr, post_event, rt) -> None:
    now = datetime.now(timezone.utc)
    jobs.evaluate(post_event("therapist.upserted", therapist_data("UTC"), occurred_at=now - timedelta(hours=2)).json["event_id"])
    risky = {**NOTE, "tags": ["self_criticism", "risk_language"]}
    jobs.evaluate(post_event("session_note.signed", risky, occurred_at=now - timedelta(hours=1)).json["event_id"])
    assert call(client, ehr, hook_body()).json == {"cards": []}


def test_another_clinics_client_is_not_visible(client, ehr, charted, rt) -> None:
    from plugin import admin
    from plugin.store.db import utcnow
    from plugin.store.models import CdsClient

    admin.create_clinic(rt.db, rt.box, "Other", "other")
    with rt.db.session() as session:
        session.add(CdsClient(clinic_id="other", issuer="https://other-ehr.example", jwks_url=ehr.jwks.url, created_at=utcnow()))
    token = ehr.token(iss="https://other-ehr.example")
    assert call(client, ehr, hook_body(), token=token).json == {"cards": []}


def test_a_malformed_hook_request_is_400(client, ehr) -> None:
    response = call(client, ehr, {"hook": "encounter-start", "context": {}})
    assert response.status_code == 400
    assert "hookInstance" in response.json["errors"]


def test_an_unknown_service_is_404(client, ehr) -> None:
    assert client.post("/cds-services/nope", json=hook_body()).status_code == 404


# --- feedback -----------------------------------------------------------------


def _feedback(client, ehr, card_uuid: str, outcome: str = "overridden", code: str | None = "not-now"):  # type: ignore[no-untyped-def]
    item = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": "2026-03-09T15:00:00Z"}
    if code:
        item["overrideReason"] = {"reason": {"code": code, "system": cds.OVERRIDE_SYSTEM}, "userComment": "private words"}
    path = SERVICE + "/feedback"
    return client.post(path, json={"feedback": [item]}, headers={"Authorization": f"Bearer {ehr.token(path)}"})


def feedback_rows(rt) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return [(f.feedback, f.source) for f in session.scalars(select(Feedback))]


def test_an_override_lands_in_the_feedback_table(client, ehr, charted, rt) -> None:
    [card] = call(client, ehr, hook_body()).json["cards"]
    response = _feedback(client, ehr, card["uuid"])
    assert response.status_code == 200
    assert feedback_rows(rt) == [("not_now", "cds")]


def test_an_acceptance_lands_in_the_feedback_table(client, ehr, charted, rt) -> None:
    [card] = call(client, ehr, hook_body()).json["cards"]
    _feedback(client, ehr, card["uuid"], outcome="accepted", code=None)
    assert feedback_rows(rt) == [("accepted", "cds")]


def test_repeated_feedback_is_recorded_once(client, ehr, charted, rt) -> None:
    [card] = call(client, ehr, hook_body()).json["cards"]
    _feedback(client, ehr, card["uuid"], code="already-practising")
    second = _feedback(client, ehr, card["uuid"], code="already-practising")
    assert second.json["duplicate"] == 1
    assert feedback_rows(rt) == [("already_practising", "cds")]


def test_the_user_comment_is_never_stored(client, ehr, charted, rt) -> None:
    [card] = call(client, ehr, hook_body()).json["cards"]
    _feedback(client, ehr, card["uuid"])
    with rt.db.engine.connect() as connection:
        from sqlalchemy import text

        dumped = str(list(connection.execute(text("SELECT * FROM feedback"))))
    assert "private words" not in dumped


def test_feedback_without_a_token_is_401(client, ehr) -> None:
    assert client.post(SERVICE + "/feedback", json={"feedback": []}).status_code == 401


def test_feedback_for_an_unknown_card_changes_nothing(client, ehr, charted, rt) -> None:
    assert _feedback(client, ehr, str(uuid.uuid4())).json["unknown_card"] == 1
    assert feedback_rows(rt) == []


def test_a_hook_instance_reused_for_another_patient_is_evaluated_for_that_patient(client, ehr, charted, post_event, rt) -> None:
    other_note = {**NOTE, "note_id": "N-2", "client_id": "P-88"}
    jobs.evaluate(post_event("session_note.signed", other_note, occurred_at=datetime.now(timezone.utc) - timedelta(minutes=30)).json["event_id"])
    instance = "5b0e3e3e-0a3f-4d3c-9d3e-2f1c0c7a0002"
    [first] = call(client, ehr, hook_body(patient="P-77", instance=instance)).json["cards"]
    [second] = call(client, ehr, hook_body(patient="P-88", instance=instance)).json["cards"]
    assert first["uuid"] != second["uuid"]
    with rt.db.session() as session:
        clients = {
            card.card_uuid: session.get(Suggestion, card.suggestion_id).client_id for card in session.scalars(select(CdsCard))
        }
    assert len(clients) == 2 and clients[first["uuid"]] != clients[second["uuid"]]


def test_a_hook_instance_reused_for_an_unknown_patient_returns_no_stored_cards(client, ehr, charted) -> None:
    instance = "5b0e3e3e-0a3f-4d3c-9d3e-2f1c0c7a0003"
    assert len(call(client, ehr, hook_body(patient="P-77", instance=instance)).json["cards"]) == 1
    assert call(client, ehr, hook_body(patient="P-unknown", instance=instance)).json == {"cards": []}


def test_a_repeated_call_for_the_second_patient_returns_their_stored_cards(client, ehr, charted, post_event, rt) -> None:
    other_note = {**NOTE, "note_id": "N-2", "client_id": "P-88"}
    jobs.evaluate(post_event("session_note.signed", other_note, occurred_at=datetime.now(timezone.utc) - timedelta(minutes=30)).json["event_id"])
    instance = "5b0e3e3e-0a3f-4d3c-9d3e-2f1c0c7a0004"
    call(client, ehr, hook_body(patient="P-77", instance=instance))
    second = call(client, ehr, hook_body(patient="P-88", instance=instance)).json["cards"]
    assert call(client, ehr, hook_body(patient="P-88", instance=instance)).json["cards"] == second
    with rt.db.session() as session:
        assert len(list(session.scalars(select(CdsCard)))) == 2
