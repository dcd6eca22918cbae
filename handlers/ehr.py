"""``POST /webhooks/<clinic_id>/ehr``: the signed EHR webhook (DESIGN §3.2).

Thin on purpose: authenticate, validate, hand the text-free event to intake,
enqueue, answer. The note or message text is read once, inside
``plugin.events.from_wire``, and is gone when the request ends.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, jsonify, request
from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from handlers.common import is_json, runtime
from handlers.problems import problem
from plugin import admin, intake, metrics
from plugin.events import from_wire
from schemas.ehr import MAX_WEBHOOK_ID, load_event

log = logging.getLogger(__name__)
bp = Blueprint("ehr", __name__)
SOURCE = "ehr"


def verified(secrets: list[str], body: bytes, headers: dict[str, str]) -> bool:
    """Standard Webhooks verification against any of the clinic's live secrets."""
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            return True
        except (WebhookVerificationError, ValueError, KeyError, IndexError):
            continue  # malformed headers raise ValueError (bad base64, no comma) or IndexError
    return False


def rejected(status: int, title: str, detail: str | None = None, **extra: object) -> Response:
    metrics.EVENTS.labels(source=SOURCE, outcome="rejected").inc()
    return problem(status, title, detail, **extra)


@bp.post("/webhooks/<clinic_id>/ehr")
def receive(clinic_id: str) -> Response | tuple[Response, int]:
    rt = runtime()
    try:
        secrets = admin.webhook_secrets(rt.db, rt.box, clinic_id)
    except (SQLAlchemyError, ValueError) as err:  # ValueError: a secret sealed under another TEND_SECRET_KEY
        log.error("could not read the clinic's webhook secret: %s", type(err).__name__)
        return rejected(503, "Not ready", "The clinic's webhook secret could not be read; retry later.", headers={"Retry-After": "30"})
    if secrets is None:
        return rejected(404, "Unknown clinic", f"No clinic {clinic_id!r} is configured here.")
    if not is_json(request.mimetype):
        return rejected(415, "Unsupported media type", "Send the event as application/json.")
    body = request.get_data(cache=False)
    if not verified(secrets, body, dict(request.headers)):
        return rejected(
            401,
            "Bad signature",
            "The webhook-id, webhook-timestamp and webhook-signature headers did not verify "
            "with this clinic's secret, or the timestamp is more than 5 minutes off.",
        )
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return rejected(400, "Invalid JSON", "The body is not valid JSON.")
    try:
        event_type, data, occurred_at = load_event(payload)
    except ValidationError as err:
        return rejected(400, "Invalid event", "Some fields are missing or malformed.", errors=err.messages)
    webhook_id = request.headers["webhook-id"]
    if len(webhook_id) > MAX_WEBHOOK_ID:
        return rejected(400, "Invalid event", f"webhook-id is longer than {MAX_WEBHOOK_ID} characters.")
    if data is None:
        metrics.EVENTS.labels(source=SOURCE, outcome="ignored").inc()
        return jsonify(status="ignored", type=event_type), 200
    event = from_wire(
        clinic_id=clinic_id, source=SOURCE, dedupe_key=webhook_id, event_type=event_type, occurred_at=occurred_at, data=data
    )
    del payload, data, body  # the text goes no further than this request
    try:
        accepted = intake.accept(rt.db, event, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
    except SQLAlchemyError as err:
        log.error("could not record an event: %s", type(err).__name__)
        return rejected(503, "Not recorded", "The event could not be stored; retry later.", headers={"Retry-After": "5"})
    if accepted.duplicate:
        metrics.EVENTS.labels(source=SOURCE, outcome="duplicate").inc()
        return jsonify(event_id=accepted.event_id, status="duplicate"), 200
    metrics.EVENTS.labels(source=SOURCE, outcome="accepted").inc()
    rt.queue.evaluate(accepted.event_id)
    return jsonify(event_id=accepted.event_id, status="accepted"), 202
