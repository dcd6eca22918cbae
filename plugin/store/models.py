"""Tables. Every row carries ``clinic_id`` so that tenancy is checked in SQL.

No column holds note or message text: events are stored as their validated,
text-free fields plus the signals extracted at the edge. Client identity is a
keyed hash, shown as a random code; the EHR id is kept only encrypted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite wants INTEGER PRIMARY KEY for its rowid autoincrement; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike.

    SQLite has no time zone type; storing naive UTC and re-attaching UTC on the
    way out keeps comparisons and ordering correct on both engines.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    webhook_secret_enc: Mapped[str] = mapped_column(Text)
    previous_webhook_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    fhir_token_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("clinic_id", "email"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    therapist_ehr_id: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class Therapist(Base):
    __tablename__ = "therapists"
    __table_args__ = (UniqueConstraint("clinic_id", "ehr_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), index=True)
    ehr_id: Mapped[str] = mapped_column(String(200))
    slack_user_id: Mapped[str | None] = mapped_column(String(40), index=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    working_hours: Mapped[dict[str, Any]] = mapped_column(default=dict)
    supervisor_ehr_id: Mapped[str | None] = mapped_column(String(200), index=True)
    self_compassion_practice: Mapped[str] = mapped_column(String(20), default="none")
    daily_limit: Mapped[int | None]
    paused_until: Mapped[datetime | None]
    stopped_until: Mapped[datetime | None]  # set by safety.therapist-distress: no nudges until then
    slack_tz_fetched_at: Mapped[datetime | None]  # when ``timezone`` was last read from Slack's users.info
    updated_from: Mapped[datetime | None]  # occurred_at of the event that last changed the row
    created_at: Mapped[datetime]


class Client(Base):
    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("clinic_id", "key_hash"), UniqueConstraint("clinic_id", "code"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(16))
    ehr_id_enc: Mapped[str] = mapped_column(Text)
    ladder_step: Mapped[int] = mapped_column(default=0)
    last_step_response: Mapped[str] = mapped_column(String(20), default="")
    step_session_number: Mapped[int | None]
    tolerated_any: Mapped[bool] = mapped_column(Boolean, default=False)
    analogies_offered: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime]


class Event(Base):
    """An accepted inbound event: recorded before any 2xx, evaluated by a job."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("clinic_id", "source", "dedupe_key"),
        Index("ix_events_pending", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    source: Mapped[str] = mapped_column(String(20))
    dedupe_key: Mapped[str] = mapped_column(String(300))
    type: Mapped[str] = mapped_column(String(60))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    therapist_ehr_id: Mapped[str | None] = mapped_column(String(200))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # text-free fields + signals
    status: Mapped[str] = mapped_column(String(20), default="recorded")
    evaluated_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)  # failed evaluations; "failed" after a few
    error: Mapped[str | None] = mapped_column(String(300))  # the last failure's exception type, never its message


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("clinic_id", "ehr_id"),
        Index("ix_appointments_therapist_start", "therapist_id", "start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    ehr_id: Mapped[str] = mapped_column(String(200))
    therapist_id: Mapped[int] = mapped_column(ForeignKey("therapists.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    start: Mapped[datetime]
    end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="booked")
    updated_from: Mapped[datetime | None]


class SessionNote(Base):
    """What a signed note told Tend: structured fields and signals, never text."""

    __tablename__ = "session_notes"
    __table_args__ = (
        UniqueConstraint("clinic_id", "ehr_id"),
        Index("ix_session_notes_client_start", "client_id", "session_start"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    ehr_id: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    therapist_id: Mapped[int] = mapped_column(ForeignKey("therapists.id"))
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    session_start: Mapped[datetime]
    session_number: Mapped[int | None]
    signals: Mapped[list[Any]] = mapped_column(default=list)
    historical_signals: Mapped[list[Any]] = mapped_column(default=list)


class Suggestion(Base):
    """One row per decision: the suggestion log supervisors review."""

    __tablename__ = "suggestions"
    __table_args__ = (
        UniqueConstraint("event_id", "rule_id"),
        Index("ix_suggestions_due", "status", "deliver_at"),
        Index("ix_suggestions_clinic_created", "clinic_id", "created_at", "id"),
        Index("ix_suggestions_therapist_created", "therapist_id", "created_at"),
        # 0004 (review): keyset pages on (created_at, id) within each filter of the log.
        Index("ix_suggestions_clinic_rule_created", "clinic_id", "rule_id", "created_at", "id"),
        Index("ix_suggestions_clinic_kind_created", "clinic_id", "kind", "created_at", "id"),
        Index("ix_suggestions_clinic_status_created", "clinic_id", "status", "created_at", "id"),
        Index("ix_suggestions_therapist_created_id", "therapist_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    therapist_id: Mapped[int] = mapped_column(ForeignKey("therapists.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    rule_id: Mapped[str] = mapped_column(String(100))
    rule_version: Mapped[int]
    kind: Mapped[str] = mapped_column(String(20))
    audience: Mapped[str] = mapped_column(String(20))
    message_key: Mapped[str | None] = mapped_column(String(100))
    practice_id: Mapped[str | None] = mapped_column(String(100))
    ladder_step: Mapped[int | None]
    analogy_id: Mapped[str | None] = mapped_column(String(60))
    framing_id: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(20))
    deliver_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    timing_reason: Mapped[str] = mapped_column(String(300), default="")
    explanation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    slack_channel: Mapped[str | None] = mapped_column(String(40))
    slack_ts: Mapped[str | None] = mapped_column(String(40))
    claimed_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    # 0004 (review): decided on the therapist's own message to Tend; only that therapist may read it.
    private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), index=True)
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str] = mapped_column(String(300), default="")


class Feedback(Base):
    """A therapist's (or EHR user's) answer to a suggestion; recorded once per kind."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("suggestion_id", "feedback"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), index=True)
    feedback: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class PracticeLog(Base):
    """The therapist's own practice: breaks done, via buttons, /tend break or another tool."""

    __tablename__ = "practice_log"
    __table_args__ = (Index("ix_practice_log_therapist_at", "therapist_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    therapist_id: Mapped[int] = mapped_column(ForeignKey("therapists.id"))
    practice_id: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]


class AccessLog(Base):
    """Append-only record of every read of the suggestion log (who, what, when)."""

    __tablename__ = "access_log"
    __table_args__ = (Index("ix_access_log_clinic_at", "clinic_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    what: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    at: Mapped[datetime]


# --- EHR integrations (issue 5): FHIR subscriptions and CDS Hooks ---------------


class FhirEndpoint(Base):
    """Where a clinic's id-only FHIR notifications are fetched from.

    The token is never stored: ``token_env`` names the environment variable the
    worker reads it from at fetch time.
    """

    __tablename__ = "fhir_endpoints"

    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), primary_key=True)
    base_url: Mapped[str] = mapped_column(String(1000))
    token_env: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime]


class FhirSubscription(Base):
    """What Tend has seen of one of a clinic's topic-based subscriptions.

    ``missing`` holds the event numbers not (yet) received as closed ranges
    ``[[first, last], ...]``: a notification that arrives late closes its hole.
    """

    __tablename__ = "fhir_subscriptions"
    __table_args__ = (UniqueConstraint("clinic_id", "subscription"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    subscription: Mapped[str] = mapped_column(String(300))
    topic: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="")
    last_type: Mapped[str] = mapped_column(String(30), default="")
    highest_event_number: Mapped[int] = mapped_column(BigInteger, default=0)
    missing: Mapped[list[Any]] = mapped_column(default=list)
    missing_since: Mapped[datetime | None]
    gaps_seen: Mapped[int] = mapped_column(default=0)
    handshake_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime]
    created_at: Mapped[datetime]


class CdsClient(Base):
    """A CDS Hooks client (an EHR) allowed to call Tend for a clinic, by its JWT issuer."""

    __tablename__ = "cds_clients"
    __table_args__ = (UniqueConstraint("issuer"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    jwks_url: Mapped[str] = mapped_column(String(1000))
    created_at: Mapped[datetime]


class CdsCard(Base):
    """A card returned to an EHR, tied to its suggestion-log row so feedback can find it."""

    __tablename__ = "cds_cards"
    __table_args__ = (UniqueConstraint("card_uuid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    clinic_id: Mapped[str] = mapped_column(ForeignKey("clinics.id"))
    card_uuid: Mapped[str] = mapped_column(String(36))
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("suggestions.id"), index=True)
    hook_instance: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
