"""What Slack knows at send time: the therapist's time zone and do-not-disturb; DM threads.

Called from ``plugin.jobs`` (``_claim`` and ``deliver``), and only does anything
when delivery goes to Slack.

- Time zone: Slack's profile zone (``users.info``) is the one the therapist
  lives by, so it is copied onto ``Therapist.timezone`` and cached with
  ``slack_tz_fetched_at`` for ``TZ_TTL``; a ``user_change`` event refreshes it
  at once. A failed lookup keeps the cached or EHR zone.
- Do not disturb (``dnd.info``): when it is on now, a delivery defers to its
  end if that is still before the delivery's expiry, and is otherwise skipped
  with the reason. Safety messages and replies to the therapist's own message
  (timing ``now``) are not held: DND only silences notifications, and the
  therapist is in the conversation. A failed lookup sends anyway (Slack itself
  keeps a notification quiet during DND, so failing open costs nothing).
- Both lookups run *before* the claim's transaction, so no Slack round trip
  ever holds a database lock.
- Replies to a therapist's DM go into that message's thread; the thread's ts
  (an opaque Slack id, no content) is kept in the event's data. Recovery after
  a crash looks in the thread as well, since ``conversations.history`` does
  not list thread replies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from slack_sdk.errors import SlackApiError

from plugin import runtime, timing
from plugin.delivery.base import DeliveryError, Sent
from plugin.delivery.slack import SlackChannel, find_tend_message, retry_after_seconds
from plugin.rules import is_safety_rule
from plugin.store.db import utcnow
from plugin.store.models import Event, Suggestion, Therapist

log = logging.getLogger(__name__)

TZ_TTL = timedelta(hours=24)
THREAD_FIELD = "slack_thread_ts"
MESSAGE_EVENT = "therapist.message"
_LOOKUP_ERRORS = (SlackApiError, OSError, TimeoutError, ValueError, KeyError)


@dataclass(frozen=True, slots=True)
class Presence:
    dnd_until: datetime | None  # DND is on now and ends then


def _slack(rt: runtime.Runtime) -> SlackChannel | None:
    if rt.settings.delivery_channel != "slack":
        return None
    channel = rt.channel
    return channel if isinstance(channel, SlackChannel) else None


def _is_message_reply(row: Suggestion) -> bool:
    return ((row.explanation or {}).get("facts") or {}).get("event", {}).get("type") == MESSAGE_EVENT


def before_claim(rt: runtime.Runtime, suggestion_id: int, now: datetime) -> Presence | None:
    """Refresh the therapist's zone and read DND, outside any transaction; None when not relevant."""
    slack = _slack(rt)
    if slack is None:
        return None
    with rt.db.session() as session:
        row = session.get(Suggestion, suggestion_id)
        if row is None or row.status != "scheduled":
            return None
        therapist = session.get(Therapist, row.therapist_id)
        if therapist is None or not therapist.slack_user_id:
            return None
        user_id, fetched_at = therapist.slack_user_id, therapist.slack_tz_fetched_at
        holdable = not is_safety_rule(row.rule_id) and (row.explanation or {}).get("timing") != "now"
    if fetched_at is None or now - fetched_at >= TZ_TTL:
        refresh_timezone(rt, slack, user_id, now)
    return Presence(dnd_until=_dnd_until(slack, user_id, now)) if holdable else None


def refresh_timezone(rt: runtime.Runtime, slack: SlackChannel, user_id: str, now: datetime) -> str | None:
    try:
        user = slack.client.users_info(user=user_id)["user"]
    except _LOOKUP_ERRORS as err:
        log.info("users.info failed (%s); keeping the cached time zone", type(err).__name__)
        return None
    tz = user.get("tz") if isinstance(user, Mapping) else None
    return store_timezone(rt, user_id, tz, now)


def store_timezone(rt: runtime.Runtime, user_id: str, tz: Any, now: datetime | None = None) -> str | None:
    """Copy a Slack profile zone onto every therapist row with this Slack user id."""
    if not isinstance(tz, str) or not tz:
        return None
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    now = now or utcnow()
    with rt.db.session() as session:
        for therapist in session.query(Therapist).filter(Therapist.slack_user_id == user_id):
            therapist.timezone = tz
            therapist.slack_tz_fetched_at = now
    return tz


def _dnd_until(slack: SlackChannel, user_id: str, now: datetime) -> datetime | None:
    try:
        info = slack.client.dnd_info(user=user_id).data
    except _LOOKUP_ERRORS as err:
        log.info("dnd.info failed (%s); sending without a DND check", type(err).__name__)
        return None
    return dnd_end(info if isinstance(info, Mapping) else {}, now)


def dnd_end(info: Mapping[str, Any], now: datetime) -> datetime | None:
    """When the DND that is on at ``now`` ends (schedule or snooze), None when it is off."""
    stamp = now.timestamp()
    ends = []
    if info.get("dnd_enabled"):
        start, end = float(info.get("next_dnd_start_ts") or 0), float(info.get("next_dnd_end_ts") or 0)
        if start <= stamp < end:
            ends.append(end)
    if info.get("snooze_enabled"):
        end = float(info.get("snooze_endtime") or 0)
        if end > stamp:
            ends.append(end)
    return datetime.fromtimestamp(max(ends), timezone.utc) if ends else None


def respect_dnd(slot: timing.Slot, presence: Presence | None, expires_at: datetime | None, tz: str, now: datetime) -> timing.Slot:
    """A slot that would send now while DND is on: defer to DND's end, or skip past the expiry."""
    if presence is None or presence.dnd_until is None or slot.status != "scheduled":
        return slot
    due = slot.deliver_at or now
    if presence.dnd_until <= due:
        return slot
    end = presence.dnd_until
    local = end.astimezone(ZoneInfo(tz)).strftime("%H:%M")
    expiry = slot.expires_at or expires_at
    if expiry is not None and end >= expiry:
        return timing.Slot("skipped", None, expiry, f"Slack do-not-disturb until {local} {tz}, past the time this was for", slot.appointment_id)
    return timing.Slot("scheduled", end, expiry, f"deferred: Slack do-not-disturb until {local} {tz}", slot.appointment_id)


# --- DM threads -------------------------------------------------------------------


def thread_of(rt: runtime.Runtime, row: Suggestion) -> str | None:
    if not _is_message_reply(row):
        return None
    with rt.db.session() as session:
        event = session.get(Event, row.event_id)
        ts = (event.data or {}).get(THREAD_FIELD) if event is not None else None
    return ts if isinstance(ts, str) and ts else None


def threaded(rt: runtime.Runtime, row: Suggestion, payload: dict[str, Any]) -> dict[str, Any]:
    """The payload, in the thread of the therapist's message it answers (guarded payload + Slack's own id)."""
    ts = thread_of(rt, row) if _slack(rt) is not None else None
    return {**payload, "thread_ts": ts} if ts else payload


def find_sent(rt: runtime.Runtime, user_id: str | None, row: Suggestion) -> Sent | None:
    """``channel.find_sent``, and for a DM reply also the thread it went to."""
    channel = rt.channel
    found = channel.find_sent(user_id, row.id, row.created_at)
    slack = _slack(rt)
    ts = thread_of(rt, row) if slack is not None and found is None else None
    if slack is None or ts is None:
        return found
    dm = slack._dm(user_id)
    try:  # form-encoded: Slack's read methods do not take JSON bodies
        response = slack.client.conversations_replies(channel=dm, ts=ts, include_all_metadata=True, limit=200)
    except SlackApiError as err:
        status = err.response.status_code
        if status == 200:  # ok: false (thread_not_found, ...): nothing was posted in that thread
            return None
        retry_after = retry_after_seconds(err.response.headers) if status == 429 else None
        raise DeliveryError("rate_limited" if status == 429 else "transient", f"conversations.replies: HTTP {status}", retry_after) from None
    except (OSError, TimeoutError) as err:
        raise DeliveryError("transient", f"conversations.replies: {type(err).__name__}") from None
    message = find_tend_message(response.get("messages", ()), row.id)
    return Sent(channel=dm, ts=message["ts"]) if message is not None else None
