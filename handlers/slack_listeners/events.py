"""Events API: ``message.im``, ``app_home_opened``, ``user_change``. Bolt acknowledges events itself."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.slack_listeners.common import log, retry_num, team_of, who
from plugin import home, metrics, slack_sendtime, therapist_messages
from plugin.delivery.slack_views import line
from plugin.runtime import Runtime
from plugin.store.db import utcnow


def register(app: App, rt: Runtime) -> None:
    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], client: WebClient, request: Any) -> None:
        # Only a person's own new message in their DM with Tend: no bots, edits, deletions or other subtypes.
        if event.get("channel_type") != "im" or event.get("subtype") or event.get("bot_id") or not event.get("user"):
            return
        text = event.get("text")
        if not isinstance(text, str):
            return
        found = who(rt, event["user"], team_of(body))
        if found is None:
            if retry_num(request) == 0:
                _say(client, event.get("channel"), line("slack.commands.not_linked"))
            return
        handled = therapist_messages.handle_message(
            rt,
            clinic_id=found.clinic_id,
            therapist_ehr_id=found.ehr_id,
            event_id=str(body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}"),
            text=text,
            thread_ts=event.get("thread_ts") or event.get("ts"),
            occurred_at=_at(body.get("event_time")),
        )
        metrics.EVENTS.labels(source="slack", outcome="duplicate" if handled.duplicate else "accepted").inc()
        if handled.reply is not None:  # the text could not be read: the neutral line, in its thread
            _say(client, event.get("channel"), {**handled.reply, "thread_ts": event.get("thread_ts") or event.get("ts")})

    @app.event("app_home_opened")
    def on_home_opened(body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        found = who(rt, event.get("user"), team_of(body))
        if found is None:
            return
        view = home.view_for(rt.db, found.therapist_id, utcnow(), rt.settings.daily_cap)
        if view is None:
            return
        try:
            client.views_publish(user_id=event["user"], view=view)
        except SlackApiError as err:
            log.warning("views.publish failed: %s", err.response.get("error"))

    @app.event("user_change")
    def on_user_change(event: dict[str, Any]) -> None:
        user = event.get("user") or {}
        if isinstance(user, dict) and user.get("id") and not user.get("is_bot"):
            slack_sendtime.store_timezone(rt, user["id"], user.get("tz"))


def _at(epoch: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(epoch), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _say(client: WebClient, channel: Any, payload: dict[str, Any]) -> None:
    if not channel:
        return
    try:
        client.chat_postMessage(channel=channel, **payload)
    except SlackApiError as err:
        log.warning("chat.postMessage failed: %s", err.response.get("error"))
