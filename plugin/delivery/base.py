"""What a delivery channel promises the deliver job."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Sent:
    channel: str
    ts: str


class DeliveryError(Exception):
    """A send that did not happen. ``kind`` tells the job what to do next."""

    def __init__(self, kind: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind  # rate_limited | transient | permanent
        self.reason = reason
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    def send(self, user_id: str | None, payload: Mapping[str, Any]) -> Sent:
        """Post a message built by ``plugin.delivery.blocks``; raise DeliveryError."""

    def find_sent(self, user_id: str | None, suggestion_id: int, since: datetime) -> Sent | None:
        """A message already posted for this suggestion (after a crash), if any."""
