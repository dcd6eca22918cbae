"""Event numbers: gaps are logged, counted in /metrics and reported by /readyz; late events close them."""

from __future__ import annotations

import json
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import select, update

from plugin.fhir import gaps
from plugin.store.db import utcnow
from plugin.store.models import FhirSubscription
from tests.fhir_helpers import load, post, renumber


def note(number: int, since: int | None = None):  # type: ignore[no-untyped-def]
    return renumber(load("r4-note-full-resource.json"), [number], since=since if since is not None else number)


def row(rt) -> FhirSubscription:  # type: ignore[no-untyped-def]
    with rt.db.session() as session:
        return session.scalars(select(FhirSubscription)).one()


def opened() -> float:
    return REGISTRY.get_sample_value("tend_fhir_gap_events_total", {"state": "opened"}) or 0.0


def test_a_jump_opens_a_gap_of_the_numbers_skipped() -> None:
    seen = gaps.event_received(3, [], 6)
    assert (seen.highest, seen.missing, seen.opened) == (6, [[4, 5]], 2)


def test_a_late_event_closes_its_hole() -> None:
    seen = gaps.event_received(6, [[4, 5]], 5)
    assert (seen.missing, seen.closed, seen.duplicate) == ([[4, 4]], 1, False)


def test_an_old_number_not_missing_is_a_duplicate() -> None:
    assert gaps.event_received(6, [], 2).duplicate


def test_a_count_beyond_the_highest_event_is_missing_events() -> None:
    seen = gaps.total_reported(2, [], 4)
    assert (seen.missing, seen.opened) == ([[3, 4]], 2)


def test_in_order_events_after_a_handshake_leave_no_gap(client, clinic, rt) -> None:
    post(client, clinic, load("r4-handshake.json"))
    for number in (1, 2, 3):
        post(client, clinic, note(number))
    assert row(rt).missing == [] and row(rt).highest_event_number == 3


def test_a_gap_is_recorded_logged_and_counted(client, clinic, rt, caplog) -> None:
    before = opened()
    post(client, clinic, load("r4-handshake.json"))
    post(client, clinic, note(1))
    response = post(client, clinic, note(4))
    assert response.json["missing_events"] == 2
    assert row(rt).missing == [[2, 3]]
    assert opened() - before == 2
    assert any("2 event(s) missing" in r.getMessage() for r in caplog.records)
    metrics_text = client.get("/metrics").get_data(as_text=True)
    assert 'tend_fhir_gap_events_total{state="opened"}' in metrics_text


def test_reordered_events_close_the_gap(client, clinic, rt) -> None:
    post(client, clinic, load("r4-handshake.json"))
    post(client, clinic, note(2))
    assert row(rt).missing == [[1, 1]]
    post(client, clinic, note(1, since=2))
    assert row(rt).missing == [] and row(rt).missing_since is None


def test_a_heartbeat_reveals_events_never_delivered(client, clinic, rt) -> None:
    post(client, clinic, load("r4b-handshake.json"))
    post(client, clinic, renumber(load("r5-heartbeat.json"), since=3))
    assert row(rt).missing == [[1, 3]]


def test_readyz_reports_a_gap_older_than_the_grace(client, clinic, rt) -> None:
    post(client, clinic, load("r4-handshake.json"))
    post(client, clinic, note(3))
    checks = client.get("/readyz").json.get("checks", {})
    assert checks["fhir_gaps"] == "ok"  # young enough to be a late delivery
    with rt.db.session() as session:
        session.execute(update(FhirSubscription).values(missing_since=utcnow() - timedelta(minutes=10)))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["fhir_gaps"] == "FHIR events missing on 1 subscription(s)"


def test_readyz_names_no_clinic_or_subscription_and_the_log_does(client, clinic, rt, caplog) -> None:
    post(client, clinic, load("r4-handshake.json"))
    post(client, clinic, note(3))
    with rt.db.session() as session:
        session.execute(update(FhirSubscription).values(missing_since=utcnow() - timedelta(minutes=10)))
    answer = json.dumps(client.get("/readyz").json)
    assert "tend-notes" not in answer and clinic.clinic_id not in answer
    assert "Subscription/tend-notes" in caplog.text and clinic.clinic_id in caplog.text


def test_first_sight_without_a_handshake_starts_counting_there(client, clinic, rt) -> None:
    post(client, clinic, note(41))
    assert row(rt).missing == [] and row(rt).highest_event_number == 41


def test_subscriptions_are_tracked_per_clinic(client, clinic, rt) -> None:
    from plugin import admin

    other = admin.create_clinic(rt.db, rt.box, "Other", "other")
    post(client, clinic, note(1))
    post(client, other, note(1))
    with rt.db.session() as session:
        assert sorted(r.clinic_id for r in session.scalars(select(FhirSubscription))) == ["other", "riverside"]
