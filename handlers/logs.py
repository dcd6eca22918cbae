"""Logging with a request id on every line, as text or JSON (``TEND_LOG_FORMAT``).

Log lines carry ids, counts and outcomes only; no handler logs a body.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextvars import ContextVar

from flask import Flask, Response, g, request

request_id: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            entry["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
        return json.dumps(entry)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Install one handler on the root logger; idempotent across app factories."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_tend", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler._tend = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("werkzeug", "rq.worker", "rq.scheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def install(app: Flask) -> None:
    """Give each request an id (or keep the caller's ``X-Request-Id``) and echo it back."""

    @app.before_request
    def _assign() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if 0 < len(incoming) <= 64 and incoming.isascii() else uuid.uuid4().hex
        request_id.set(g.request_id)

    @app.after_request
    def _echo(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "-")
        return response
