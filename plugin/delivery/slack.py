"""Slack delivery through ``slack_sdk.WebClient``.

Retries are the deliver job's business (it re-enqueues after ``Retry-After``,
backs off on 5xx), so the client runs with no retry handlers of its own and
every failure is turned into a ``DeliveryError`` of a known kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from plugin.delivery.base import DeliveryError, Sent

TRANSIENT_ERRORS = frozenset({"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"})
METADATA_EVENT = "tend_suggestion"
HISTORY_LIMIT = 50


class SlackChannel:
    name = "slack"

    def __init__(self, token: str, base_url: str, timeout: int = 10) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[])
        self._dm_channels: dict[str, str] = {}

    def _call(self, method: str, **kwargs: Any) -> Any:
        # The SDK's typed method knows how each API method wants its arguments
        # (JSON for writes such as chat.postMessage, form fields for reads such as history).
        try:
            return getattr(self.client, method.replace(".", "_"))(**kwargs)
        except SlackApiError as err:
            status = err.response.status_code
            error = (err.response.data or {}).get("error", "") if isinstance(err.response.data, dict) else ""
            if status == 429:
                retry_after = float(err.response.headers.get("Retry-After", err.response.headers.get("retry-after", 1)))
                raise DeliveryError("rate_limited", f"{method}: rate limited", retry_after) from None
            if status >= 500:
                raise DeliveryError("transient", f"{method}: Slack answered HTTP {status}") from None
            # Slack's ok:false errors are permanent unless Slack says it was its own trouble.
            kind = "transient" if error in TRANSIENT_ERRORS else "permanent"
            raise DeliveryError(kind, f"{method}: {error or 'error'}") from None
        except (URLError, OSError, TimeoutError) as err:
            raise DeliveryError("transient", f"{method}: {type(err).__name__}") from None

    def _dm(self, user_id: str | None) -> str:
        if not user_id:
            raise DeliveryError("permanent", "the therapist has no Slack user id")
        if user_id not in self._dm_channels:
            response = self._call("conversations.open", users=user_id)
            self._dm_channels[user_id] = response["channel"]["id"]
        return self._dm_channels[user_id]

    def send(self, user_id: str | None, payload: Mapping[str, Any]) -> Sent:
        channel = self._dm(user_id)
        response = self._call("chat.postMessage", channel=channel, **payload)
        return Sent(channel=response["channel"], ts=response["ts"])

    def find_sent(self, user_id: str | None, suggestion_id: int, since: datetime) -> Sent | None:
        channel = self._dm(user_id)
        response = self._call(
            "conversations.history",
            channel=channel,
            oldest=f"{since.timestamp() - 60:.6f}",
            limit=HISTORY_LIMIT,
            include_all_metadata=True,
        )
        for message in response.get("messages", ()):
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == METADATA_EVENT and str(payload.get("suggestion_id")) == str(suggestion_id):
                return Sent(channel=channel, ts=message["ts"])
        return None
