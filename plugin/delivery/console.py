"""Console delivery: the embedded default when no Slack token is configured.

Writes each message to standard output the way a therapist would read it, so a
new user running ``tend dev`` sees nudges arrive without setting up Slack.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TextIO

from plugin.delivery.base import Sent


def _lines(payload: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for block in payload.get("blocks", ()):
        kind = block.get("type")
        if kind in ("header", "section"):
            lines.append(block["text"]["text"])
        elif kind == "context":
            lines.extend(e.get("text", "") for e in block.get("elements", ()))
        elif kind == "actions":
            labels = [e["text"]["text"] for e in block.get("elements", ()) if "text" in e]
            if labels:
                lines.append("[ " + " | ".join(labels) + " ]")
    return lines or [payload.get("text", "")]


class ConsoleChannel:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._count = 0

    def send(self, user_id: str | None, payload: Mapping[str, Any]) -> Sent:
        stream = self._stream or sys.stdout
        with self._lock:
            self._count += 1
            who = user_id or "therapist"
            print(f"\n┌─ Tend → {who}", file=stream)
            for line in _lines(payload):
                for part in line.splitlines() or [""]:
                    print(f"│ {part}", file=stream)
            print("└─", file=stream, flush=True)
            return Sent(channel="console", ts=f"console.{self._count}")

    def find_sent(self, user_id: str | None, suggestion_id: int, since: datetime) -> Sent | None:
        return None  # the console keeps no history; a recovered send prints again
