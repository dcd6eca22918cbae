"""``POST /slack/events``: one Bolt app for events, buttons and ``/tend`` (DESIGN §3.5).

Bolt verifies Slack's signature (``TEND_SLACK_SIGNING_SECRET``) and answers
``url_verification``; listeners live in ``handlers/slack_listeners/`` grouped by
kind and hand over to ``plugin/`` at once. Every listener acknowledges first
(events are acknowledged by Bolt itself), so Slack gets its answer within
3 seconds and the work carries on in Bolt's listener threads.

HTTP mode is mounted in the Flask app. With ``TEND_SLACK_APP_TOKEN`` set,
``python -m handlers.slack`` runs the same app over Socket Mode instead (``tend
dev`` starts it), for development without a public URL.
"""

from __future__ import annotations

import logging
import sys

from flask import Blueprint, Response, current_app, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from handlers.problems import problem
from plugin.delivery.slack import SDK_LOGGER
from plugin.failures import describe
from plugin.runtime import Runtime

log = logging.getLogger(__name__)
EXTENSION = "tend_slack"
#: Loggers that would print request or response bodies (a therapist's DM) below INFO.
QUIET_LOGGERS = ("slack_bolt", "slack_sdk", "tend.slack.bolt")


def on_listener_error(error: Exception) -> None:
    """Bolt's error handler for listeners and middleware.

    Bolt's default logs ``f"... (error: {error})"`` with the traceback, and an
    exception's message can hold what the listener was working on (a database
    error's parameters: the signals of a distress DM). Only the type and where
    it was raised are logged; the request goes unanswered or gets Bolt's 500.
    """
    log.error("Slack listener failed: %s", describe(error))


def build_bolt_app(rt: Runtime) -> App:
    """The Bolt app; its WebClient talks to ``TEND_SLACK_API_URL`` (the fake Slack in tests)."""
    from handlers.slack_listeners import register

    settings = rt.settings
    client = WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        logger=SDK_LOGGER,  # INFO at most: the SDK's DEBUG lines print request and response bodies
        # Listener calls (chat.update, views.publish, postEphemeral) run after the ack: waiting out
        # a short rate limit is fine there. Deliveries use their own client without retries.
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1), RateLimitErrorRetryHandler(max_retry_count=2)],
    )
    # Bolt's and the SDK's DEBUG lines print request bodies (message text); Bolt copies its base
    # logger's level to every logger it makes, the SDK's own loggers inherit from "slack_sdk".
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    bolt_logger = logging.getLogger("tend.slack.bolt")
    app = App(
        signing_secret=settings.slack_signing_secret or "",  # Socket Mode requests are not signed
        client=client,
        # Start-up must not depend on Slack answering; a bad token shows on the first request.
        token_verification_enabled=False,
        logger=bolt_logger,
        name="tend",
    )
    app.error(on_listener_error)
    register(app, rt)
    return app


def missing_setting(rt: Runtime) -> str | None:
    if not rt.settings.slack_signing_secret:
        return "TEND_SLACK_SIGNING_SECRET"
    if not rt.settings.slack_bot_token:
        return "TEND_SLACK_BOT_TOKEN"
    return None


bp = Blueprint("slack", __name__)


@bp.post("/slack/events")
def slack_events() -> Response:
    handler: SlackRequestHandler | None = current_app.extensions.get(EXTENSION)
    if handler is None:
        rt: Runtime = current_app.extensions["tend"]
        setting = missing_setting(rt) or "TEND_SLACK_SIGNING_SECRET"
        return problem(503, "Slack is not configured", f"Set {setting} to receive Slack events here.", slug="slack-not-configured", setting=setting)
    return handler.handle(request)


def init_app(flask_app, rt: Runtime) -> None:  # type: ignore[no-untyped-def]
    """Register ``/slack/events``; the Bolt app only when Slack is configured."""
    if missing_setting(rt) is None:
        flask_app.extensions[EXTENSION] = SlackRequestHandler(build_bolt_app(rt))
    flask_app.register_blueprint(bp)


def run_socket_mode() -> int:
    """Socket Mode (``TEND_SLACK_APP_TOKEN``): the same listeners over a websocket, no public URL."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from plugin import config
    from plugin.runtime import bind

    settings = config.load()
    if not settings.slack_app_token:
        print("TEND_SLACK_APP_TOKEN is not set (an app-level token starting with xapp-)", file=sys.stderr)
        return 1
    if not settings.slack_bot_token:
        print("TEND_SLACK_BOT_TOKEN is not set", file=sys.stderr)
        return 1
    rt = Runtime.build(settings)
    bind(rt)
    SocketModeHandler(build_bolt_app(rt), settings.slack_app_token).start()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(run_socket_mode())
