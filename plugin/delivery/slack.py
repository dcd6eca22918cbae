"""Slack delivery through ``slack_sdk.WebClient``.

Retries are the deliver job's business (it re-enqueues after ``Retry-After``,
backs off on 5xx), so the client runs with no retry handlers of its own and
every failure is turned into a ``DeliveryError`` of a known kind.

The SDK logs whole request and response bodies at DEBUG (a ``conversations.history``
answer holds the therapist's own DMs), so every ``WebClient`` Tend makes logs
through ``SDK_LOGGER``, which never goes below INFO.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from plugin.delivery.base import DeliveryError, Sent

TRANSIENT_ERRORS = frozenset({"ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"})
METADATA_EVENT = "tend_suggestion"
HISTORY_LIMIT = 50
RETRY_AFTER_DEFAULT = 1.0  # seconds, when Slack's 429 has no usable Retry-After
RETRY_AFTER_MAX = 15 * 60.0

SDK_LOGGER = logging.getLogger("tend.slack.sdk")
SDK_LOGGER.setLevel(logging.INFO)  # DEBUG would print request and response bodies


def retry_after_seconds(headers: Mapping[str, Any] | None, now: datetime | None = None) -> float:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Missing or unreadable: ``RETRY_AFTER_DEFAULT``; never below 0 nor above ``RETRY_AFTER_MAX``.
    """
    raw = next((v for k, v in (headers or {}).items() if str(k).lower() == "retry-after"), None)
    if isinstance(raw, list | tuple):
        raw = raw[0] if raw else None
    value = str(raw).strip() if raw is not None else ""
    if not value:
        return RETRY_AFTER_DEFAULT
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return RETRY_AFTER_DEFAULT
        if when.tzinfo is None:  # an HTTP-date is GMT by definition
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
        return min(max(seconds, 0.0), RETRY_AFTER_MAX)
    if not math.isfinite(seconds) or seconds < 0:
        return RETRY_AFTER_DEFAULT
    return min(seconds, RETRY_AFTER_MAX)


def find_tend_message(messages: Iterable[Mapping[str, Any]], suggestion_id: int) -> Mapping[str, Any] | None:
    """The message Tend posted for ``suggestion_id``, recognised by its metadata (Slack's own field)."""
    for message in messages:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == METADATA_EVENT and str(payload.get("suggestion_id")) == str(suggestion_id):
            return message
    return None


class SlackChannel:
    name = "slack"

    def __init__(self, token: str, base_url: str, timeout: int = 10) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=[], logger=SDK_LOGGER)
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
                raise DeliveryError("rate_limited", f"{method}: rate limited", retry_after_seconds(err.response.headers)) from None
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
        found = find_tend_message(response.get("messages", ()), suggestion_id)
        return Sent(channel=channel, ts=found["ts"]) if found is not None else None
