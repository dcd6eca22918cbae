"""Wire formats of the review API (``/api/v1``): query arguments in, pages, explanations and stats out.

Imports nothing from ``plugin`` or ``handlers``. Every string argument is bounded
and free of control characters, every number ranged, so that no query string can
reach the database as something it rejects (a 5xx).
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate

KINDS = ("suggest", "nudge", "hold", "defer", "suppress")
MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_ID = 2**63 - 1

_PRINTABLE = validate.Regexp(r"^[^\x00-\x1f\x7f]+$", error="must be printable text")
_SLUG = validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$", error="must be a lower-case word (letters, digits, _)")
_CURSOR = validate.Regexp(r"^[A-Za-z0-9_-]{1,400}$", error="must be a cursor from a previous page")


def _text(description: str, **kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=200), _PRINTABLE], metadata={"description": description}, **kwargs)


class _UTC:
    """Post-load: datetimes in UTC; a date whose UTC conversion overflows is refused."""

    @post_load
    def _to_utc(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        for name in ("start", "end"):
            if data.get(name) is not None:
                try:
                    data[name] = data[name].astimezone(timezone.utc)
                except (OverflowError, ValueError):
                    raise ValidationError("is out of range", field_name="from" if name == "start" else "to") from None
        return data


def _when(name: str, description: str) -> fields.AwareDateTime:
    return fields.AwareDateTime(
        format="iso", default_timezone=timezone.utc, data_key=name, metadata={"description": description}
    )


class SuggestionFilters(_UTC, Schema):
    class Meta:
        unknown = RAISE

    therapist = _text("The therapist's EHR id")
    rule = _text("A rule id, e.g. client.suggest.next-step")
    decision = fields.String(validate=validate.OneOf(KINDS), metadata={"description": "The decision (kind)"})
    status = fields.String(validate=_SLUG, metadata={"description": "Delivery status, e.g. delivered, scheduled, expired"})
    feedback = fields.String(validate=_SLUG, metadata={"description": "A feedback value (helpful, not_helpful, used_in_session, ...), or none for no feedback"})
    start = _when("from", "Created at or after (ISO 8601; UTC when no offset)")
    end = _when("to", "Created before (ISO 8601; UTC when no offset)")


class SuggestionListArgs(SuggestionFilters):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT), metadata={"description": "Page size"})
    cursor = fields.String(validate=_CURSOR, metadata={"description": "next_cursor of the previous page"})


class StatsArgs(_UTC, Schema):
    class Meta:
        unknown = RAISE

    therapist = _text("The therapist's EHR id")
    rule = _text("A rule id")
    start = _when("from", "Created at or after; default: the Monday eleven weeks before the current week (UTC)")
    end = _when("to", "Created before")


class PageArgs(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(validate=_CURSOR)


class LogForm(Schema):
    """The filters of the log page: dates (the end date inclusive) rather than datetimes."""

    class Meta:
        unknown = EXCLUDE

    therapist = fields.String(validate=[validate.Length(max=200), validate.Regexp(r"^[^\x00-\x1f\x7f]*$")])
    rule = fields.String(validate=[validate.Length(max=200), validate.Regexp(r"^[^\x00-\x1f\x7f]*$")])
    decision = fields.String(validate=validate.OneOf(("", *KINDS)))
    status = fields.String(validate=validate.Regexp(r"^([a-z][a-z0-9_]{0,39})?$"))
    feedback = fields.String(validate=validate.Regexp(r"^([a-z][a-z0-9_]{0,39})?$"))
    start = fields.Date(data_key="from")
    end = fields.Date(data_key="to")
    cursor = fields.String(validate=_CURSOR)


# --- responses ------------------------------------------------------------------------


class Problem(Schema):
    """RFC 9457 problem details (``application/problem+json``)."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(metadata={"description": "Field errors of a 422, by location and field"})


class SuggestionItem(Schema):
    id = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    therapist = fields.String(required=True, metadata={"description": "The therapist's EHR id"})
    therapist_name = fields.String(required=True)
    client = fields.String(required=True, allow_none=True, metadata={"description": "The client's random code (never an identifier)"})
    rule = fields.String(required=True)
    rule_version = fields.Integer(required=True)
    decision = fields.String(required=True, metadata={"description": "suggest | nudge | hold | defer | suppress"})
    audience = fields.String(required=True)
    status = fields.String(required=True)
    timing_reason = fields.String(required=True)
    deliver_at = fields.DateTime(required=True, allow_none=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)
    feedback = fields.List(fields.String(), required=True)


class SuggestionPage(Schema):
    items = fields.List(fields.Nested(SuggestionItem), required=True)
    next_cursor = fields.String(required=True, allow_none=True, metadata={"description": "Pass as cursor for the next (older) page; null on the last"})
    limit = fields.Integer(required=True)


class Condition(Schema):
    name = fields.String(required=True)
    values = fields.Dict(required=True, metadata={"description": "The fact paths and parameters the condition read, with their values"})


class Fact(Schema):
    name = fields.String(required=True)
    value = fields.Raw(required=True, allow_none=True)


class Attempt(Schema):
    at = fields.DateTime(required=True)
    outcome = fields.String(required=True)
    detail = fields.String(required=True)


class FeedbackEntry(Schema):
    feedback = fields.String(required=True)
    source = fields.String(required=True)
    at = fields.DateTime(required=True)


class SuggestionDetail(SuggestionItem):
    message_key = fields.String(required=True, allow_none=True)
    practice_id = fields.String(required=True, allow_none=True)
    ladder_step = fields.Integer(required=True, allow_none=True)
    analogy_id = fields.String(required=True, allow_none=True)
    framing_id = fields.String(required=True, allow_none=True)
    expires_at = fields.DateTime(required=True, allow_none=True)
    timing = fields.String(required=True, metadata={"description": "The timing the rule asked for"})
    conditions = fields.List(fields.Nested(Condition), required=True)
    reasons = fields.List(fields.String(), required=True)
    source = fields.String(required=True)
    source_url = fields.String(required=True)
    facts = fields.List(fields.Nested(Fact), required=True)
    failure_reason = fields.String(required=True, allow_none=True)
    attempts = fields.List(fields.Nested(Attempt), required=True)
    feedback_detail = fields.List(fields.Nested(FeedbackEntry), required=True)


class StatsRow(Schema):
    week = fields.String(required=True, metadata={"description": "ISO week, e.g. 2026-W10 (UTC)"})
    week_start = fields.Date(required=True)
    rule = fields.String(required=True)
    therapist = fields.String(required=True)
    suggested = fields.Integer(required=True)
    delivered = fields.Integer(required=True)
    helpful = fields.Integer(required=True)
    not_helpful = fields.Integer(required=True)
    used_in_session = fields.Integer(required=True)
    held = fields.Integer(required=True)
    deferred = fields.Integer(required=True)
    suppressed = fields.Integer(required=True)
    median_seconds_to_feedback = fields.Float(required=True, allow_none=True)


class Stats(Schema):
    start = fields.DateTime(required=True, data_key="from")
    end = fields.DateTime(required=True, allow_none=True, data_key="to")
    rows = fields.List(fields.Nested(StatsRow), required=True)


class AccessEntry(Schema):
    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    user = fields.String(required=True, metadata={"description": "The reader's email"})
    role = fields.String(required=True)
    what = fields.String(required=True)
    params = fields.Dict(required=True)


class AccessLogPage(Schema):
    items = fields.List(fields.Nested(AccessEntry), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    limit = fields.Integer(required=True)
