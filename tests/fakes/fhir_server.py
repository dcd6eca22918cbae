"""A small FHIR server on loopback for id-only fetches (stdlib HTTP, real sockets).

Serves ``resources`` (``"DocumentReference/note-1" -> JSON``) under ``/fhir``
and ``texts`` (path -> (content type, body)) for attachment urls; checks the
bearer token; can fail the next N requests with a status, or hang past a
client's timeout, to exercise retries. Every request is recorded.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer


class FakeFhirServer(LoopbackServer):
    def __init__(self, token: str = "fhir-server-token") -> None:
        self.token = token
        self.resources: dict[str, dict[str, Any]] = {}
        self.texts: dict[str, tuple[str, bytes]] = {}
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # statuses for the next requests
        self.delay_next: list[float] = []
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.origin}/fhir"

    def add(self, resource: dict[str, Any]) -> None:
        self.resources[f"{resource['resourceType']}/{resource['id']}"] = resource

    def _handler(self):  # type: ignore[no-untyped-def]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Quiet: tests read what was requested from the fake instead."""

            def _send(self, status: int, body: bytes, content_type: str = "application/fhir+json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                fake.requests.append({"path": path, "authorization": self.headers.get("Authorization"), "accept": self.headers.get("Accept")})
                if fake.delay_next:
                    time.sleep(fake.delay_next.pop(0))
                if fake.fail_next:
                    status = fake.fail_next.pop(0)
                    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]}
                    return self._send(status, json.dumps(body).encode())
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._send(401, b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}')
                if path in fake.texts:
                    content_type, body = fake.texts[path]
                    return self._send(200, body, content_type)
                key = path.removeprefix("/fhir/")
                if key in fake.resources:
                    return self._send(200, json.dumps(fake.resources[key]).encode())
                return self._send(404, b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}')

        return Handler
