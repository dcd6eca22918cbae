"""Small helpers every HTTP edge shares."""

from __future__ import annotations

from flask import current_app, request

from plugin.runtime import Runtime


def runtime() -> Runtime:
    """The process's runtime, bound to the app by ``create_app()``."""
    return current_app.extensions["tend"]


def is_json(mimetype: str) -> bool:
    """``application/json`` or any ``application/*+json`` (FHIR sends ``application/fhir+json``)."""
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
