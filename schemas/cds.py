"""CDS Hooks 2.0 requests Tend reads: a hook call and a feedback call.

EHRs add fields of their own (``fhirServer``, ``fhirAuthorization``,
``prefetch``, extensions), so unknown keys are ignored rather than rejected;
what Tend needs is required and checked.
"""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

HOOKS = ("encounter-start", "encounter-discharge", "appointment-book")
OUTCOMES = ("accepted", "overridden")


class HookContextSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    userId = fields.String(required=True, validate=validate.Length(min=1, max=300))
    patientId = fields.String(required=True, validate=validate.Length(min=1, max=200))
    encounterId = fields.String(validate=validate.Length(max=200))
    appointments = fields.Dict()


class HookRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    hook = fields.String(required=True, validate=validate.OneOf(HOOKS))
    hookInstance = fields.String(required=True, validate=validate.Length(min=1, max=100))
    context = fields.Nested(HookContextSchema, required=True)


class CodingSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    code = fields.String(required=True, validate=validate.Length(max=100))
    system = fields.String(validate=validate.Length(max=300))


class OverrideReasonSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # userComment is free text: never read, never stored

    reason = fields.Nested(CodingSchema)


class FeedbackItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    card = fields.String(required=True, validate=validate.Length(min=1, max=100))
    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    overrideReason = fields.Nested(OverrideReasonSchema)
    outcomeTimestamp = fields.String()


class FeedbackRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    feedback = fields.List(fields.Nested(FeedbackItemSchema), required=True, validate=validate.Length(min=1, max=100))
