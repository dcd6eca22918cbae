"""Accepting an event records it once, whatever the backend and however many arrive at once."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy import func, select

from plugin import admin, intake
from plugin.events import from_wire
from plugin.store.models import Client, Event

NOTE = {"note_id": "N-1", "therapist_id": "T-1", "client_id": "P-1", "session_start": "2026-03-09T14:00:00+00:00", "tags": ["shame"]}


def inbound(clinic_id: str, key: str = "msg_1", client_id: str = "P-1"):  # type: ignore[no-untyped-def]
    return from_wire(
        clinic_id=clinic_id,
        source="ehr",
        dedupe_key=key,
        event_type="session_note.signed",
        occurred_at=datetime.now(timezone.utc),
        data={**NOTE, "client_id": client_id},
    )


def accept(rt, event):  # type: ignore[no-untyped-def]
    return intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)


def test_concurrent_deliveries_of_one_key_record_one_event(rt_any_db) -> None:
    clinic = admin.create_clinic(rt_any_db.db, rt_any_db.box, "Riverside", "riverside")
    results: list[intake.Accepted] = []
    threads = [threading.Thread(target=lambda: results.append(accept(rt_any_db, inbound(clinic.clinic_id)))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.duplicate for r in results) == [False, True, True, True, True]
    assert len({r.event_id for r in results}) == 1


def test_the_same_client_gets_one_pseudonym_across_events(rt_any_db) -> None:
    clinic = admin.create_clinic(rt_any_db.db, rt_any_db.box, "Riverside", "riverside")
    accept(rt_any_db, inbound(clinic.clinic_id, "a"))
    accept(rt_any_db, inbound(clinic.clinic_id, "b"))
    with rt_any_db.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Client)) == 1


def test_the_ehr_client_id_is_stored_only_encrypted(rt_any_db) -> None:
    clinic = admin.create_clinic(rt_any_db.db, rt_any_db.box, "Riverside", "riverside")
    accept(rt_any_db, inbound(clinic.clinic_id, client_id="PATIENT-8841"))
    with rt_any_db.db.session() as session:
        client = session.scalar(select(Client))
        assert "PATIENT-8841" not in client.ehr_id_enc + client.key_hash + client.code
        assert rt_any_db.box.open(client.ehr_id_enc) == "PATIENT-8841"


def test_the_same_key_in_another_clinic_is_another_event(rt_any_db) -> None:
    one = admin.create_clinic(rt_any_db.db, rt_any_db.box, "One", "one")
    two = admin.create_clinic(rt_any_db.db, rt_any_db.box, "Two", "two")
    assert not accept(rt_any_db, inbound(one.clinic_id)).duplicate
    assert not accept(rt_any_db, inbound(two.clinic_id)).duplicate


def test_the_stored_event_has_signals_and_no_text_or_client_id(rt_any_db) -> None:
    clinic = admin.create_clinic(rt_any_db.db, rt_any_db.box, "Riverside", "riverside")
    event = from_wire(
        clinic_id=clinic.clinic_id, source="ehr", dedupe_key="k", event_type="session_note.signed",
        occurred_at=datetime.now(timezone.utc), data={**NOTE, "text": "She was very self-critical today."},
    )
    accept(rt_any_db, event)
    with rt_any_db.db.session() as session:
        stored = session.scalar(select(Event))
    assert "text" not in stored.data and "client_id" not in stored.data
    assert set(stored.data["signals"]) >= {"shame", "self_criticism"}
