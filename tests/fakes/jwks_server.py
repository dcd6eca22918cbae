"""A JWKS endpoint on loopback (stdlib HTTP), as an EHR publishes its CDS Hooks keys."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.loopback import LoopbackServer


class JwksServer(LoopbackServer):
    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        super().__init__()

    @property
    def url(self) -> str:
        return f"{self.origin}/.well-known/jwks.json"

    def _handler(self):  # type: ignore[no-untyped-def]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Quiet: tests read what was requested from the fake instead."""

            def do_GET(self) -> None:  # noqa: N802
                fake.hits += 1
                body = json.dumps({"keys": fake.keys}).encode()
                self.send_response(200 if self.path.endswith("jwks.json") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
