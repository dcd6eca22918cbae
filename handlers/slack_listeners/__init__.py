"""Bolt listeners, grouped by kind. Each is thin: find the therapist, call ``plugin/``, answer."""

from __future__ import annotations

from slack_bolt import App

from plugin.runtime import Runtime


def register(app: App, rt: Runtime) -> None:
    from handlers.slack_listeners import actions, commands, events

    events.register(app, rt)
    actions.register(app, rt)
    commands.register(app, rt)
