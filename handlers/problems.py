"""RFC 9457 problem details for every error the HTTP edge returns."""

from __future__ import annotations

from typing import Any

from flask import Response, json
from werkzeug.exceptions import HTTPException

PROBLEM_TYPE = "https://tend.example/problems/"


def problem(status: int, title: str, detail: str | None = None, *, slug: str | None = None, headers: dict[str, str] | None = None, **extensions: Any) -> Response:
    body: dict[str, Any] = {"type": PROBLEM_TYPE + (slug or str(status)), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extensions)
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(err: HTTPException) -> Response:
    """Werkzeug's errors (404, 405, 413, ...) as problem+json, never HTML."""
    response = problem(err.code or 500, err.name, err.description)
    for name, value in err.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response
