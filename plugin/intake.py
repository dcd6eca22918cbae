"""Accepting an event: record it durably, exactly once, before anything else.

"Accepted" means committed with its dedupe key unique per clinic and source; a
second delivery of the same key finds the first row and is answered as a
duplicate. Enqueueing happens after the commit and may fail: the sweeper picks
up recorded events that were never evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plugin.events import InboundEvent
from plugin.pseudonyms import client_key, new_client_code
from plugin.secrets_box import SecretBox
from plugin.store.db import Database, utcnow
from plugin.store.models import Client, Event


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: int
    duplicate: bool


def _existing(session: Session, event: InboundEvent) -> int | None:
    return session.scalar(
        select(Event.id).where(
            Event.clinic_id == event.clinic_id, Event.source == event.source, Event.dedupe_key == event.dedupe_key
        )
    )


def client_id_for(session: Session, clinic_id: str, ehr_client_id: str, *, pseudonym_key: str, box: SecretBox) -> int:
    """The internal id of a client, created with a fresh random code on first sight."""
    key = client_key(pseudonym_key, clinic_id, ehr_client_id)
    found = session.scalar(select(Client.id).where(Client.clinic_id == clinic_id, Client.key_hash == key))
    if found is not None:
        return found
    for _ in range(5):  # a code collision is astronomically rare; retry rather than fail
        try:
            with session.begin_nested():
                row = Client(
                    clinic_id=clinic_id, key_hash=key, code=new_client_code(), ehr_id_enc=box.seal(ehr_client_id), created_at=utcnow()
                )
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError:
            found = session.scalar(select(Client.id).where(Client.clinic_id == clinic_id, Client.key_hash == key))
            if found is not None:
                return found
    raise RuntimeError("could not allocate a client code")


def accept(db: Database, event: InboundEvent, *, pseudonym_key: str, box: SecretBox, status: str = "recorded") -> Accepted:
    """Record ``event`` unless its dedupe key was seen; never records it twice.

    ``status`` is ``recorded`` (ready to evaluate) unless the caller has work
    to do first, such as fetching an id-only FHIR resource. The insert comes
    first and the unique key decides: a duplicate costs a rolled-back insert,
    a new event (the common case) no extra query.
    """
    try:
        with db.session() as session:
            client_id = None
            if event.client_ehr_id is not None:
                client_id = client_id_for(session, event.clinic_id, event.client_ehr_id, pseudonym_key=pseudonym_key, box=box)
            row = Event(
                clinic_id=event.clinic_id,
                source=event.source,
                dedupe_key=event.dedupe_key,
                type=event.type,
                occurred_at=event.occurred_at,
                received_at=utcnow(),
                therapist_ehr_id=event.therapist_ehr_id,
                client_id=client_id,
                data=event.storable(),
                status=status,
            )
            session.add(row)
            session.flush()
            return Accepted(row.id, duplicate=False)
    except IntegrityError:
        # The same key was recorded before (a retry), or by a concurrent request just now.
        with db.session() as session:
            existing = _existing(session, event)
        if existing is None:
            raise
        return Accepted(existing, duplicate=True)
