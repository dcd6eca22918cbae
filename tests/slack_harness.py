"""Shared by tests/test_slack_*.py: Tend served over real HTTP, Slack requests signed as Slack signs them.

``tend_slack`` starts the Flask app with ``werkzeug.serving.make_server`` on a
free port in a thread, wired to the fake Slack Web API; ``SlackClient`` posts
events (JSON), ``block_actions`` (form-encoded ``payload``) and slash commands
(form), each signed with ``v0=`` HMAC-SHA256 over ``v0:<timestamp>:<body>``
exactly as ``slack_sdk.signature.SignatureVerifier`` checks it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest
from redis import Redis
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select
from werkzeug.serving import make_server

from plugin import admin, config, intake, jobs
from plugin.events import from_wire
from plugin.runtime import Runtime, bind
from plugin.store.migrate import upgrade
from plugin.store.models import Suggestion
from schemas.ehr import load_event
from tests.conftest import ALL_WEEK, full_morning, make_env, zone_near_noon
from tests.fakes.slack_api import TEAM_ID, FakeSlack

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
USER = "U0THERAPIST"
OTHER_USER = "U0OTHERONE"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class SlackClient:
    """Slack's side of the wire: signed requests to ``/slack/events``."""

    def __init__(self, base: str, secret: str = SIGNING_SECRET) -> None:
        self.url = base + "/slack/events"
        self.verifier = SignatureVerifier(secret)

    def post(self, body: bytes, content_type: str, *, headers: dict[str, str] | None = None, signed: bool = True, timestamp: int | None = None) -> Response:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        sent = {"Content-Type": content_type}
        if signed:
            sent["X-Slack-Request-Timestamp"] = ts
            sent["X-Slack-Signature"] = self.verifier.generate_signature(timestamp=ts, body=body)
        sent.update(headers or {})
        request = urllib.request.Request(self.url, data=body, headers=sent, method="POST")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                result = Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as err:
            result = Response(err.code, dict(err.headers), err.read())
        result.headers["X-Test-Elapsed"] = f"{time.monotonic() - started:.3f}"
        return result

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry: int | None = None, team: str = TEAM_ID) -> Response:
        body = {
            "token": "legacy-unused",
            "team_id": team,
            "api_app_id": "A0TEND",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
        }
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} if retry else None
        return self.post(json.dumps(body).encode(), "application/json", headers=headers)

    def dm(self, text: str, *, user: str = USER, ts: str | None = None, event_id: str | None = None, retry: int | None = None, **extra: Any) -> Response:
        event = {
            "type": "message",
            "channel": FakeSlack.dm_channel(user),
            "channel_type": "im",
            "user": user,
            "text": text,
            "ts": ts or f"{time.time():.6f}",
            "event_ts": ts or f"{time.time():.6f}",
            **extra,
        }
        return self.event(event, event_id=event_id, retry=retry)

    def action(self, feedback: str, suggestion_id: int | str, *, user: str = USER, channel: str | None = None, message_ts: str = "1.000001") -> Response:
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "tend-test"},
            "user": {"id": user, "team_id": TEAM_ID},
            "api_app_id": "A0TEND",
            "token": "legacy-unused",
            "trigger_id": "1.2.3",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel or FakeSlack.dm_channel(user), "is_ephemeral": False},
            "channel": {"id": channel or FakeSlack.dm_channel(user), "name": "directmessage"},
            "message": {"type": "message", "ts": message_ts, "text": "", "blocks": []},
            "response_url": "https://hooks.slack.invalid/actions/1",
            "actions": [
                {
                    "type": "button",
                    "action_id": f"tend_feedback:{feedback}",
                    "block_id": "tend_actions",
                    "value": str(suggestion_id),
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(body, "application/x-www-form-urlencoded")

    def command(self, text: str, *, user: str = USER) -> Response:
        form = {
            "token": "legacy-unused",
            "team_id": TEAM_ID,
            "team_domain": "tend-test",
            "channel_id": FakeSlack.dm_channel(user),
            "channel_name": "directmessage",
            "user_id": user,
            "user_name": "therapist",
            "command": "/tend",
            "text": text,
            "api_app_id": "A0TEND",
            "response_url": "https://hooks.slack.invalid/commands/1",
            "trigger_id": "1.2.3",
        }
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded")


@dataclass
class TendSlack:
    rt: Runtime
    fake: FakeSlack
    slack: SlackClient
    clinic_id: str
    base_url: str
    tz: str
    env: dict[str, str]
    counter: int = 0

    def ehr(self, event_type: str, data: dict[str, Any], now: datetime | None = None) -> int:
        """Record and evaluate one EHR event the way the webhook and the worker would."""
        now = now or datetime.now(timezone.utc)
        self.counter += 1
        _, loaded, occurred = load_event({"type": event_type, "occurred_at": now.isoformat(), "data": data})
        event = from_wire(clinic_id=self.clinic_id, source="ehr", dedupe_key=f"k{self.counter}-{uuid.uuid4().hex[:6]}", event_type=event_type, occurred_at=occurred, data=loaded)
        accepted = intake.accept(self.rt.db, event, pseudonym_key=self.rt.settings.pseudonym_key, box=self.rt.box)
        jobs.evaluate(accepted.event_id, now=now)
        return accepted.event_id

    def suggestions(self) -> list[Suggestion]:
        with self.rt.db.session() as session:
            return list(session.scalars(select(Suggestion).order_by(Suggestion.id)))

    def delivered_nudge(self) -> Suggestion:
        """An overfull morning -> one self-care nudge, delivered as a DM."""
        now = datetime.now(timezone.utc)
        for appointment in full_morning(now):
            self.ehr("appointment.booked", appointment, now)
        self.ehr("session_note.signed", note(now), now)
        nudge = next(s for s in self.suggestions() if s.rule_id == "therapist.selfcare.overfull-day" and s.status == "scheduled")
        assert jobs.deliver(nudge.id) == "delivered"
        return next(s for s in self.suggestions() if s.id == nudge.id)

    def delivered_client_suggestion(self) -> Suggestion:
        now = datetime.now(timezone.utc)
        start = now + timedelta(minutes=20)
        self.ehr("appointment.booked", {"appointment_id": "A-9", "therapist_id": "T-100", "client_id": "P-9", "start": start.isoformat(), "end": (start + timedelta(minutes=50)).isoformat()}, now)
        self.ehr("session_note.signed", note(now, note_id="N-9", client_id="P-9", tags=["self_criticism"]), now)
        found = next(s for s in self.suggestions() if s.rule_id == "client.suggest.next-step")
        assert jobs.deliver(found.id) == "delivered", found.timing_reason
        return next(s for s in self.suggestions() if s.id == found.id)


def note(now: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "note_id": "N-1",
        "therapist_id": "T-100",
        "client_id": "P-0",
        "session_start": (now - timedelta(minutes=70)).isoformat(),
        "session_number": 5,
        "alliance": "established",
        "phase": "working",
        **extra,
    }


def therapist(tz: str, **extra: Any) -> dict[str, Any]:
    return {
        "therapist_id": "T-100",
        "slack_user_id": USER,
        "display_name": "Dr. Rowan",
        "timezone": tz,
        "working_hours": ALL_WEEK,
        "self_compassion_practice": "regular",
        **extra,
    }


def start_server(app: Any) -> tuple[Any, threading.Thread, str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="tend-web", daemon=True)
    thread.start()
    return server, thread, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
def tend_slack(tmp_path, sqlite_url, redis_server: Redis) -> Iterator[TendSlack]:  # type: ignore[no-untyped-def]
    from handlers.app import create_app

    redis_server.flushdb()
    with FakeSlack() as fake:
        env = make_env(
            tmp_path,
            sqlite_url,
            TEND_SLACK_BOT_TOKEN="xoxb-test",
            TEND_SLACK_SIGNING_SECRET=SIGNING_SECRET,
            TEND_SLACK_API_URL=fake.base_url,
            TEND_SENDING_LEASE_SECONDS="1",
        )
        rt = Runtime.build(config.load(env))
        upgrade(rt.db)
        bind(rt)
        clinic = admin.create_clinic(rt.db, rt.box, "Riverside Counselling", "riverside")
        app = create_app(runtime=rt)
        server, thread, base = start_server(app)
        tz = zone_near_noon(datetime.now(timezone.utc))
        harness = TendSlack(rt=rt, fake=fake, slack=SlackClient(base), clinic_id=clinic.clinic_id, base_url=base, tz=tz, env=env)
        harness.ehr("therapist.upserted", therapist(tz))
        try:
            yield harness
        finally:
            server.shutdown()
            thread.join(timeout=5)
            rt.db.dispose()
