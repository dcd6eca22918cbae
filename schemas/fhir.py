"""The normalised status of a FHIR subscription notification (DESIGN §3.3).

``fhir.resources`` validates the FHIR resources themselves (R4B models for R4
backport and R4B bundles, R5 models for R5); this schema checks what Tend
reads from the status entry once R4 ``Parameters`` and R4B/R5
``SubscriptionStatus`` have been brought to one shape: event numbers and the
event count are FHIR ``integer64`` values sent as strings.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

NOTIFICATION_TYPES = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")
SUBSCRIPTION_STATUSES = ("requested", "active", "error", "off", "entered-in-error")
#: Resource types Tend maps to §3.2 events.
MAPPED_RESOURCES = ("DocumentReference", "Appointment", "Communication")
MAX_SUBSCRIPTION_CHARS = 250
MAX_INTEGER64 = 2**63 - 1


class Integer64(fields.Integer):
    """An integer64 as FHIR JSON sends it: a string of digits (an int is accepted too)."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(value, str) and not value.strip().isdigit():
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class NotificationEventSchema(Schema):
    event_number = Integer64(required=True, strict=False, validate=validate.Range(min=0, max=MAX_INTEGER64))
    timestamp = fields.AwareDateTime(format="iso", allow_none=True, load_default=None)
    focus = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=1000))


class NotificationStatusSchema(Schema):
    # The dedupe key "<subscription>#<event number>" must fit Event.dedupe_key (300): 250 + "#" + 19 digits.
    subscription = fields.String(required=True, validate=validate.Length(min=1, max=MAX_SUBSCRIPTION_CHARS))
    topic = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=500))
    status = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(SUBSCRIPTION_STATUSES))
    type = fields.String(required=True, validate=validate.OneOf(NOTIFICATION_TYPES))
    events_since_start = Integer64(strict=False, allow_none=True, load_default=None, validate=validate.Range(min=0, max=MAX_INTEGER64))
    events = fields.List(fields.Nested(NotificationEventSchema), load_default=list, validate=validate.Length(max=1000))
