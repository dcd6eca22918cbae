"""The ``/tend`` slash command: answered in the ack itself, ephemeral (only the asker sees it)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from handlers.slack_listeners.common import team_of, who
from plugin import tend_command
from plugin.delivery.slack_views import line
from plugin.runtime import Runtime
from plugin.store.db import utcnow

COMMAND = "/tend"


def register(app: App, rt: Runtime) -> None:
    @app.command(COMMAND)
    def on_tend(ack: Ack, command: dict[str, Any]) -> None:
        # A quick DB write at most, then the answer as the ack: well within Slack's 3 seconds.
        found = who(rt, command.get("user_id"), team_of(command))
        if found is None:
            payload = line("slack.commands.not_linked")
        else:
            payload = tend_command.answer(rt.db, found.therapist_id, str(command.get("text") or ""), utcnow())
        ack(response_type="ephemeral", **payload)
