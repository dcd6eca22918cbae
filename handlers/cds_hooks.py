"""CDS Hooks 2.0 (DESIGN §3.4): discovery, the service calls and feedback.

Every service and feedback call carries a JWT verified against the calling
EHR's allow-listed issuer and JWKS (``plugin.cds_jwt``); any failure is a 401
problem. Discovery reveals nothing about any clinic and is open, but a JWT sent
with it must verify. Cards are evaluated synchronously by ``plugin.cds``.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from handlers.problems import problem
from plugin import cds, metrics
from plugin.cds_jwt import Caller, CdsAuthError, JwksCache, verify
from plugin.runtime import Runtime
from schemas.cds import FeedbackRequestSchema, HookRequestSchema

log = logging.getLogger(__name__)
bp = Blueprint("cds_hooks", __name__)


def runtime() -> Runtime:
    return current_app.extensions["tend"]


def jwks() -> JwksCache:
    return current_app.extensions.setdefault("tend_cds_jwks", JwksCache())


def _unauthorized(detail: str) -> Response:
    response = problem(401, "Unauthorized", detail)
    response.headers["WWW-Authenticate"] = 'Bearer realm="tend-cds-hooks"'
    return response


def _caller() -> Caller | Response:
    """The verified caller, or the error response to return."""
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("Send a JWT as 'Authorization: Bearer <jwt>' (CDS Hooks 2.0).")
    rt = runtime()
    audience = rt.settings.public_url + request.path
    try:
        return verify(token.strip(), audience=audience, db=rt.db, redis=rt.redis, jwks=jwks())
    except CdsAuthError as err:
        log.info("CDS Hooks call refused: %s", err)
        return _unauthorized(str(err))
    except RedisError as err:
        log.error("CDS Hooks jti check unavailable: %s", type(err).__name__)
        return problem(503, "Unavailable", "Tend cannot check the token right now; retry later.", headers={"Retry-After": "5"})


@bp.get("/cds-services")
def discovery() -> Response:
    if request.headers.get("Authorization"):
        caller = _caller()
        if isinstance(caller, Response):
            return caller
    return jsonify(cds.discovery())


def _service(service_id: str) -> cds.Service | None:
    return next((s for s in cds.SERVICES if s.id == service_id), None)


@bp.post("/cds-services/<service_id>")
def call(service_id: str) -> Response | tuple[Response, int]:
    service = _service(service_id)
    if service is None:
        return problem(404, "Unknown service", f"No CDS service {service_id!r}; see GET /cds-services.")
    caller = _caller()
    if isinstance(caller, Response):
        metrics.CDS_CALLS.labels(hook="unknown", outcome="unauthorized").inc()
        return caller
    body = request.get_json(silent=True)
    try:
        hook_request = HookRequestSchema().load(body if isinstance(body, dict) else {})
    except ValidationError as err:
        return problem(400, "Invalid hook request", "Some fields are missing or malformed.", errors=err.messages)
    if hook_request["hook"] not in cds.HOOKS_BY_SERVICE[service.id]:
        return problem(400, "Wrong hook", f"Service {service.id} answers {', '.join(sorted(cds.HOOKS_BY_SERVICE[service.id]))}.")
    try:
        cards = cds.cards(runtime(), caller.clinic_id, hook_request)
    except SQLAlchemyError as err:
        log.error("CDS Hooks call failed: %s", type(err).__name__)
        return problem(503, "Unavailable", "Tend could not read its store; retry later.", headers={"Retry-After": "5"})
    metrics.CDS_CALLS.labels(hook=hook_request["hook"], outcome="cards" if cards else "no_cards").inc()
    return jsonify(cards=cards)


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response | tuple[Response, int]:
    if _service(service_id) is None:
        return problem(404, "Unknown service", f"No CDS service {service_id!r}; see GET /cds-services.")
    caller = _caller()
    if isinstance(caller, Response):
        return caller
    body = request.get_json(silent=True)
    try:
        items = FeedbackRequestSchema().load(body if isinstance(body, dict) else {})["feedback"]
    except ValidationError as err:
        return problem(400, "Invalid feedback", "Some fields are missing or malformed.", errors=err.messages)
    try:
        counts = cds.record_feedback(runtime(), caller.clinic_id, items)
    except SQLAlchemyError as err:
        log.error("CDS Hooks feedback failed: %s", type(err).__name__)
        return problem(503, "Unavailable", "Tend could not record the feedback; retry later.", headers={"Retry-After": "5"})
    return jsonify(counts)
