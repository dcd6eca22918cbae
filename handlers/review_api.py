"""The review API (``/api/v1``): the suggestion log, one explanation, CSV, weekly stats, the access log.

flask-smorest with the marshmallow schemas of ``schemas/review.py``; the OpenAPI 3
document is served at ``/api/v1/openapi.json``. Every read is authenticated
(bearer token, or the review's session cookie), scoped by ``plugin.review.access``
and written to the access log before the answer goes out. Errors are RFC 9457
problem+json, including flask-smorest's own (422 with the field errors).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Flask, Response
from flask_smorest import Api, Blueprint, abort
from marshmallow import RAISE
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

from handlers.problems import problem
from handlers.review_auth import audit, current_user, runtime
from plugin.review import access, queries
from schemas import review as wire

PROBLEM_JSON = "application/problem+json"

blp = Blueprint(
    "review_api",
    __name__,
    url_prefix="/api/v1",
    description="The suggestion log, scoped to the caller's role; every read is audited.",
)


class ProblemApi(Api):
    """flask-smorest whose errors are problem+json, documented as such."""

    ERROR_SCHEMA = wire.Problem

    def _register_responses(self) -> None:
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        default: dict[str, Any] = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(default, self.spec, PROBLEM_JSON)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, default, lazy=True)

    def _register_error_handlers(self) -> None:
        # The app's own handler already answers problem+json everywhere; the API's
        # blueprint has ``problem_for`` (with the 422 field errors) as its own.
        pass

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return problem_for(error)


@blp.errorhandler(HTTPException)
def problem_for(error: HTTPException) -> Response:
    """flask-smorest's and webargs' errors (``abort(..., message=, errors=, headers=)``) as problem+json."""
    data = getattr(error, "data", None) or {}
    extensions: dict[str, Any] = {}
    errors = data.get("errors") or data.get("messages")
    if errors:
        extensions["errors"] = errors
    return problem(error.code or 500, error.name, data.get("message") or error.description, headers=data.get("headers"), **extensions)


def init_app(app: Flask) -> ProblemApi:
    """Mount the API on ``app`` (one line in ``create_app``)."""
    app.config.update(
        API_TITLE="Tend review API",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "security": [{"bearerAuth": []}],
            "info": {"description": "Tend's suggestion log for supervisors and clinic admins. Clients appear only by their random code."},
        },
    )
    api = ProblemApi(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "description": "A user's token from `tend users add` (tend_...)"})
    api.register_blueprint(blp)
    app.extensions["tend_review_api"] = api
    return api


def _viewer() -> Any:
    user = current_user()
    if user is None:
        abort(401, message="Send an access token as 'Authorization: Bearer tend_...'.", headers={"WWW-Authenticate": 'Bearer realm="tend"'})
    return user


def _not_found(what: str) -> NoReturn:
    abort(404, message=f"No {what} that you can see has this id.")


def _filters(args: dict[str, Any]) -> queries.Filters:
    return queries.Filters.from_mapping(args)


# --- routes -----------------------------------------------------------------------------


@blp.route("/suggestions", methods=["GET"])
@blp.arguments(wire.SuggestionListArgs, location="query", unknown=RAISE)
@blp.response(200, wire.SuggestionPage)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(404, response="NOT_FOUND", description="The therapist filter names no therapist you can see")
def list_suggestions(args: dict[str, Any]) -> dict[str, Any]:
    """The suggestion log, newest first, one page at a time (keyset cursor)."""
    user = _viewer()
    filters = _filters(args)
    audit(user, "api.suggestions.list", {**filters.as_params(), **({"cursor": args["cursor"]} if args.get("cursor") else {})})
    with runtime().db.session() as db:
        try:
            page = queries.list_suggestions(db, user, filters, limit=args["limit"], cursor=args.get("cursor"))
        except queries.NotFound:
            _not_found("therapist")
        except queries.BadCursor as err:
            abort(422, message=str(err), errors={"query": {"cursor": [str(err)]}})
    return {"items": page.items, "next_cursor": page.next_cursor, "limit": page.limit}


@blp.route("/suggestions/<int:suggestion_id>", methods=["GET"])
@blp.response(200, wire.SuggestionDetail)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(404, response="NOT_FOUND")
def get_suggestion(suggestion_id: int) -> dict[str, Any]:
    """One suggestion with its full explanation: rule and version, facts, conditions, source, timing, delivery, feedback."""
    user = _viewer()
    audit(user, "api.suggestions.get", {"id": suggestion_id})
    with runtime().db.session() as db:
        try:
            return queries.get_suggestion(db, user, suggestion_id)
        except queries.NotFound:
            _not_found("suggestion")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    text = str(value)
    # A cell that a spreadsheet would run as a formula is quoted (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(items: Iterable[dict[str, Any]], *, rows_per_chunk: int = 200) -> Iterator[str]:
    """The header and one line per item, in chunks: the same columns as the API's list items."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(queries.ITEM_FIELDS)
    count = 0
    for item in items:
        writer.writerow([_cell(item[name]) for name in queries.ITEM_FIELDS])
        count += 1
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@blp.route("/suggestions.csv", methods=["GET"])
@blp.arguments(wire.SuggestionFilters, location="query", unknown=RAISE)
@blp.doc(
    responses={
        "200": {"description": "The suggestions matching the filters, newest first, streamed", "content": {"text/csv": {"schema": {"type": "string"}}}}
    }
)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(404, response="NOT_FOUND", description="The therapist filter names no therapist you can see")
def export_csv(args: dict[str, Any]) -> Response:
    """The same rows as the list (every page), as CSV; the same filters."""
    user = _viewer()
    filters = _filters(args)
    audit(user, "api.suggestions.csv", filters.as_params())
    rt = runtime()
    with rt.db.session() as db:
        try:
            # Check the filters before streaming: once the body has started, the status is sent.
            queries.list_suggestions(db, user, filters, limit=1)
        except queries.NotFound:
            _not_found("therapist")
    body = csv_lines(queries.iter_suggestions(rt.db, user, filters))
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="tend-suggestions.csv"', "Cache-Control": "no-store"},
    )


@blp.route("/stats", methods=["GET"])
@blp.arguments(wire.StatsArgs, location="query", unknown=RAISE)
@blp.response(200, wire.Stats)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(404, response="NOT_FOUND", description="The therapist filter names no therapist you can see")
def get_stats(args: dict[str, Any]) -> dict[str, Any]:
    """Per ISO week (UTC), rule and therapist: suggested, delivered, helpful, not helpful, used in session, held, deferred, suppressed, median seconds to feedback."""
    user = _viewer()
    filters = queries.stats_range(_filters(args))
    audit(user, "api.stats", filters.as_params())
    with runtime().db.session() as db:
        try:
            rows = queries.stats(db, user, filters)
        except queries.NotFound:
            _not_found("therapist")
    return {"start": filters.start, "end": filters.end, "rows": rows}


@blp.route("/access-log", methods=["GET"])
@blp.arguments(wire.PageArgs, location="query", unknown=RAISE)
@blp.response(200, wire.AccessLogPage)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(403, response="FORBIDDEN", description="Only clinic administrators read the access log")
def get_access_log(args: dict[str, Any]) -> dict[str, Any]:
    """Who read what and when, newest first (clinic administrators only). Append-only."""
    user = _viewer()
    audit(user, "api.access_log", {k: str(v) for k, v in args.items() if k == "cursor"})
    if not access.can_read_access_log(user):
        abort(403, message="Only clinic administrators read the access log.")
    with runtime().db.session() as db:
        try:
            page = queries.access_log(db, user, limit=args["limit"], cursor=args.get("cursor"))
        except queries.BadCursor as err:
            abort(422, message=str(err), errors={"query": {"cursor": [str(err)]}})
    return {"items": page.items, "next_cursor": page.next_cursor, "limit": page.limit}


@blp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")
    return response
