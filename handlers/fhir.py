"""``POST /webhooks/<clinic_id>/fhir``: FHIR subscription notifications (DESIGN §3.3).

Thin like the signed webhook: authenticate the bearer token the clinic's
Subscription carries (constant time), validate the bundle, hand it to
``plugin.fhir.receive``, answer. Full resources are read here and their text
dropped; id-only events are fetched by the worker, never in the request.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from handlers.problems import problem
from plugin import metrics
from plugin.fhir.admin import fhir_token_hash
from plugin.fhir.notification import NotificationError, read_notification
from plugin.fhir.receive import SOURCE, ready_check, receive
from plugin.runtime import Runtime
from plugin.secrets_box import same_token

log = logging.getLogger(__name__)
bp = Blueprint("fhir", __name__)


def runtime() -> Runtime:
    return current_app.extensions["tend"]


def _is_json(mimetype: str) -> bool:
    return mimetype in ("application/json", "application/fhir+json") or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def rejected(status: int, title: str, detail: str | None = None, **extra: object) -> Response:
    metrics.EVENTS.labels(source=SOURCE, outcome="rejected").inc()
    return problem(status, title, detail, **extra)


def _bearer() -> str | None:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@bp.post("/webhooks/<clinic_id>/fhir")
def notification(clinic_id: str) -> Response | tuple[Response, int]:
    rt = runtime()
    exists, stored = fhir_token_hash(rt.db, clinic_id)
    if not exists:
        return rejected(404, "Unknown clinic", f"No clinic {clinic_id!r} is configured here.")
    token = _bearer()
    if token is None or not same_token(token, stored):
        response = rejected(
            401, "Bad token", "Send the clinic's FHIR token as 'Authorization: Bearer <token>' in the Subscription's channel header."
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="tend-fhir"'
        return response
    if not _is_json(request.mimetype):
        return rejected(415, "Unsupported media type", "Send the notification as application/fhir+json.")
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, UnicodeDecodeError):
        return rejected(400, "Invalid JSON", "The body is not valid JSON.")
    try:
        note = read_notification(body)
    except NotificationError as err:
        return rejected(400, err.title, "The notification bundle could not be read.", errors=err.errors)
    del body
    try:
        receipt = receive(rt, clinic_id, note)
    except SQLAlchemyError as err:
        log.error("could not record a FHIR notification: %s", type(err).__name__)
        return rejected(503, "Not recorded", "The notification could not be stored; retry later.", headers={"Retry-After": "5"})
    answer = {
        "status": "accepted" if receipt.accepted_any else "recorded",
        "type": receipt.type,
        "subscription": receipt.subscription,
        "events": [o.as_json() for o in receipt.outcomes],
        "missing_events": receipt.missing,
    }
    return jsonify(answer), 202 if receipt.accepted_any else 200


def register(app) -> None:  # type: ignore[no-untyped-def]
    """The blueprint and the /readyz check for FHIR gaps."""
    app.register_blueprint(bp)
    rt: Runtime = app.extensions["tend"]
    app.extensions.setdefault("tend_ready_checks", {})["fhir_gaps"] = lambda: ready_check(rt)
