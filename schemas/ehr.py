"""The signed EHR webhook's wire format (DESIGN §3.2).

One envelope, one data schema per event type, dispatched through
``EVENT_SCHEMAS``; types a clinic's EHR may send that Tend has no use for are
listed in ``IGNORED_EVENTS`` and acknowledged without being recorded. Unknown
fields are rejected with their names, and every timestamp must carry an offset.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

MAX_BODY_BYTES = 256 * 1024
MAX_WEBHOOK_ID = 250  # the dedupe key column holds 300; FHIR keys add a suffix
MAX_TEXT_CHARS = 200_000

#: The signal names a clinic may send as structured ``tags`` (DESIGN §4.2).
TAG_NAMES = (
    "self_criticism",
    "perfectionism",
    "shame",
    "low_self_worth",
    "needs_self_soothing",
    "empathy_difficulty",
    "care_paired_with_pain",
    "abuse_history",
    "trauma_history",
    "risk_language",
    "difficult_session",
    "rupture",
)
ALLIANCE = ("forming", "established", "ruptured")
PHASES = ("intake", "assessment", "working", "termination")
STEP_RESPONSES = ("tolerated", "overwhelming", "not_tried")
PRACTICE_LEVELS = ("regular", "occasional", "none")
APPOINTMENT_STATUSES = ("booked", "arrived", "fulfilled", "cancelled", "noshow", "pending")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def is_working_span(start: str, end: str) -> bool:
    """One day's working hours: ``HH:MM`` from 00:00 to 23:59 each, the start before the end.

    The one rule for working hours, whether the EHR sends them or the therapist sets them (``/tend hours``).
    """
    return bool(_HHMM.match(start) and _HHMM.match(end)) and start < end


def _id() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=200))


def _aware(required: bool = True) -> fields.AwareDateTime:
    return fields.AwareDateTime(required=required, format="iso")


class PracticeFeedbackSchema(Schema):
    step = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=4))
    response = fields.String(required=True, validate=validate.OneOf(STEP_RESPONSES))


class SessionNoteSignedSchema(Schema):
    note_id = _id()
    therapist_id = _id()
    client_id = _id()
    session_start = _aware()
    session_end = _aware(required=False)
    session_number = fields.Integer(strict=True, validate=validate.Range(min=1))
    client_age = fields.Integer(strict=True, validate=validate.Range(min=0, max=120))
    alliance = fields.String(validate=validate.OneOf(ALLIANCE))
    phase = fields.String(validate=validate.OneOf(PHASES))
    tags = fields.List(fields.String(validate=validate.OneOf(TAG_NAMES)), validate=validate.Length(max=50))
    text = fields.String(validate=validate.Length(max=MAX_TEXT_CHARS))
    practice_feedback = fields.Nested(PracticeFeedbackSchema)
    sensitivity = fields.List(fields.String(validate=validate.Length(max=40)), validate=validate.Length(max=20))

    @validates_schema
    def _end_after_start(self, data: dict[str, Any], **_: Any) -> None:
        if "session_end" in data and data["session_end"] <= data["session_start"]:
            raise ValidationError("must be after session_start", "session_end")


class AppointmentSchema(Schema):
    appointment_id = _id()
    therapist_id = _id()
    client_id = _id()
    start = _aware()
    end = _aware()
    status = fields.String(validate=validate.OneOf(APPOINTMENT_STATUSES))

    @validates_schema
    def _end_after_start(self, data: dict[str, Any], **_: Any) -> None:
        if data["end"] <= data["start"]:
            raise ValidationError("must be after start", "end")


class ClientMessageSchema(Schema):
    message_id = _id()
    therapist_id = _id()
    client_id = _id()
    sent_at = _aware()
    text = fields.String(validate=validate.Length(max=MAX_TEXT_CHARS))


class TherapistUpsertedSchema(Schema):
    therapist_id = _id()
    slack_user_id = fields.String(validate=validate.Regexp(r"^[UW][A-Z0-9]{2,30}$", error="must be a Slack user id like U024BE7LH"))
    display_name = fields.String(validate=validate.Length(min=1, max=200))
    timezone = fields.String(validate=validate.Length(min=1, max=64))
    working_hours = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)), values=fields.List(fields.String()))
    supervisor_id = fields.String(validate=validate.Length(min=1, max=200))
    self_compassion_practice = fields.String(validate=validate.OneOf(PRACTICE_LEVELS))

    @validates("timezone")
    def _known_zone(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("must be an IANA time zone such as Europe/London") from None

    @validates("working_hours")
    def _hours(self, value: dict[str, list[str]], **_: Any) -> None:
        for day, span in value.items():
            if len(span) != 2 or not is_working_span(*span):
                raise ValidationError(f"{day} must be [\"HH:MM\", \"HH:MM\"] with the start before the end")


class PracticeLoggedSchema(Schema):
    therapist_id = _id()
    practice_id = fields.String(validate=validate.Length(min=1, max=100))


#: Event type -> schema of its ``data``. The dispatch table of this format.
EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "session_note.signed": SessionNoteSignedSchema,
    "appointment.booked": AppointmentSchema,
    "appointment.updated": AppointmentSchema,
    "appointment.cancelled": AppointmentSchema,
    "client_message.received": ClientMessageSchema,
    "therapist.upserted": TherapistUpsertedSchema,
    "therapist.practice_logged": PracticeLoggedSchema,
}

#: Types an EHR commonly emits on the same subscription that carry nothing Tend uses.
IGNORED_EVENTS = frozenset(
    {
        "session_note.draft_saved",
        "session_note.unsigned",
        "appointment.reminder_sent",
        "client_message.read",
        "invoice.created",
        "invoice.paid",
        "ping",
    }
)


class EnvelopeSchema(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1, max=60))
    occurred_at = _aware()
    data = fields.Dict(required=True)


def load_event(body: Any) -> tuple[str, dict[str, Any] | None, Any]:
    """Validate a webhook body.

    Returns ``(type, data, occurred_at)``; ``data`` is None for an ignored type.
    Raises ``ValidationError`` whose ``messages`` are keyed by field path.
    """
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["the body must be a JSON object"]})
    envelope = EnvelopeSchema().load(body)
    event_type = envelope["type"]
    if event_type in IGNORED_EVENTS:
        return event_type, None, envelope["occurred_at"]
    schema = EVENT_SCHEMAS.get(event_type)
    if schema is None:
        known = ", ".join(sorted(EVENT_SCHEMAS))
        raise ValidationError({"type": [f"unknown event type {event_type!r}; expected one of: {known}"]})
    try:
        data = schema().load(envelope["data"])
    except ValidationError as err:
        raise ValidationError({"data": err.messages}) from None
    return event_type, data, envelope["occurred_at"]
