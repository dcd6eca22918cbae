"""Interactivity: the feedback buttons (``tend_feedback:<feedback>``, value = suggestion id)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from handlers.slack_listeners.common import log, team_of, who
from plugin import feedback
from plugin.delivery.blocks import ACTION_PREFIX, recorded
from plugin.delivery.slack_views import line
from plugin.runtime import Runtime

ACTION = re.compile("^" + re.escape(ACTION_PREFIX) + r"[a-z0-9_]+$")


def register(app: App, rt: Runtime) -> None:
    @app.action(ACTION)
    def on_feedback(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()  # first: Slack wants its answer within 3 seconds
        user_id = (body.get("user") or {}).get("id")
        channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
        message_ts = (body.get("container") or {}).get("message_ts") or (body.get("message") or {}).get("ts")
        found = who(rt, user_id, team_of(body))
        if found is None:
            _ephemeral(client, channel, user_id, line("slack.commands.not_linked"))
            return
        value = str(action.get("value") or "")
        answer = str(action.get("action_id", ""))[len(ACTION_PREFIX) :]
        if not value.isdigit():
            _ephemeral(client, channel, user_id, line("slack.feedback.not_for_this"))
            return
        try:
            done = feedback.record(rt.db, found.therapist_id, int(value), answer, assistance_line=rt.assistance_line(found.clinic_id))
        except feedback.FeedbackRefused as refused:
            _ephemeral(client, channel, user_id, line(f"slack.feedback.{refused.reason}"))
            return
        # Update the message in place; the same update again for a repeated press changes nothing.
        target_channel = done.slack_channel or channel
        target_ts = done.slack_ts or message_ts
        if not target_channel or not target_ts:
            return
        try:
            client.chat_update(channel=target_channel, ts=target_ts, **recorded(done.outgoing, done.feedback))
        except SlackApiError as err:
            log.warning("chat.update failed: %s (the feedback is recorded)", err.response.get("error"))


def _ephemeral(client: WebClient, channel: Any, user_id: Any, payload: dict[str, Any]) -> None:
    if not channel or not user_id:
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user_id, **payload)
    except SlackApiError as err:
        log.warning("chat.postEphemeral failed: %s", err.response.get("error"))
