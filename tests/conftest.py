"""Shared fixtures: real Redis, real SQLite and PostgreSQL, the fake Slack server.

Redis and PostgreSQL are the machine's own on 127.0.0.1 (``.ci/run`` starts
them when they are down). Each test gets a fresh SQLite file or a fresh
PostgreSQL schema, and Redis database 15 flushed.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from redis import Redis
from redis.exceptions import RedisError
from standardwebhooks import Webhook

from plugin import admin, config
from plugin.runtime import Runtime, bind
from plugin.store.migrate import upgrade
from tests.fakes.slack_api import FakeSlack

REDIS_URL = os.environ.get("TEND_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
PG_ADMIN_URL = os.environ.get("TEND_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_KEYS = {"TEND_SECRET_KEY": "test-secret-key-0123456789abcdef", "TEND_PSEUDONYM_KEY": "test-pseudonym-key-0123456789ab"}


def _pg_answers() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return None
    except psycopg.Error as err:
        return f"PostgreSQL at 127.0.0.1:5432/test does not answer ({type(err).__name__})"


PG_SKIP_REASON = _pg_answers()


@pytest.fixture(scope="session")
def redis_server() -> Redis:
    redis = Redis.from_url(REDIS_URL)
    try:
        redis.ping()
    except RedisError:
        pytest.fail(f"Redis at {REDIS_URL} does not answer: run .ci/run, which starts it")
    return redis


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite always, PostgreSQL whenever it answers."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tend.sqlite3'}"
        return
    if PG_SKIP_REASON:
        pytest.skip(PG_SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    base = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tend.sqlite3'}"


def make_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    return {
        **TEST_KEYS,
        "TEND_INSTANCE_PATH": str(tmp_path / "instance"),
        "TEND_DATABASE_URL": database_url,
        "TEND_REDIS_URL": REDIS_URL,
        "TEND_QUEUE": f"tend-test-{os.getpid()}",  # apart from any other test run on this Redis
        **extra,
    }


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    """Environment for one test on SQLite; tests may add settings before ``rt``."""
    return make_env(tmp_path, sqlite_url)


def running(env: dict[str, str], redis: Redis) -> Iterator[Runtime]:
    """A migrated, bound runtime on a flushed Redis; for fixtures to yield from."""
    redis.flushdb()
    runtime = Runtime.build(config.load(env))
    upgrade(runtime.db)
    bind(runtime)
    yield runtime
    runtime.db.dispose()


@pytest.fixture
def rt(env: dict[str, str], redis_server: Redis) -> Iterator[Runtime]:
    yield from running(env, redis_server)


@pytest.fixture
def rt_any_db(tmp_path: Path, database_url: str, redis_server: Redis) -> Iterator[Runtime]:
    """A runtime on each database backend in turn."""
    yield from running(make_env(tmp_path, database_url), redis_server)


@pytest.fixture
def clinic(rt: Runtime) -> admin.NewClinic:
    return admin.create_clinic(rt.db, rt.box, "Riverside Counselling", "riverside")


@pytest.fixture
def app(rt: Runtime):  # type: ignore[no-untyped-def]
    from handlers.app import create_app

    flask_app = create_app(runtime=rt)
    flask_app.testing = True
    return flask_app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


# --- signed webhooks ------------------------------------------------------------


def signed_headers(secret: str, body: bytes, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(timezone.utc)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def event_body(event_type: str, data: dict[str, Any], occurred_at: datetime | None = None) -> bytes:
    occurred_at = occurred_at or datetime.now(timezone.utc)
    return json.dumps({"type": event_type, "occurred_at": occurred_at.isoformat(), "data": data}).encode()


@pytest.fixture
def post_event(client, clinic):  # type: ignore[no-untyped-def]
    """Sign and POST one event to the clinic's EHR webhook with the test client."""

    def post(event_type: str, data: dict[str, Any], *, msg_id: str | None = None, occurred_at: datetime | None = None):  # type: ignore[no-untyped-def]
        body = event_body(event_type, data, occurred_at)
        return client.post(clinic.webhook_path, data=body, headers=signed_headers(clinic.webhook_secret, body, msg_id))

    return post


# --- a clinic day ---------------------------------------------------------------

NOON_ZONES = [f"Etc/GMT{sign}{h}" for h in range(12, 0, -1) for sign in ("+",)] + ["Etc/GMT"] + [f"Etc/GMT-{h}" for h in range(1, 15)]


def zone_near_noon(now: datetime) -> str:
    """An IANA zone where it is closest to 12:00 now, so a test's day has room either side."""
    from zoneinfo import ZoneInfo

    return min(NOON_ZONES, key=lambda z: abs(now.astimezone(ZoneInfo(z)).hour * 60 + now.astimezone(ZoneInfo(z)).minute - 12 * 60))


ALL_WEEK = {day: ["00:00", "23:59"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def therapist_data(tz: str, **extra: Any) -> dict[str, Any]:
    return {
        "therapist_id": "T-100",
        "slack_user_id": "U0THERAPIST",
        "display_name": "Dr. Rowan",
        "timezone": tz,
        "working_hours": ALL_WEEK,
        "self_compassion_practice": "regular",
        **extra,
    }


def full_morning(now: datetime, count: int = 7) -> list[dict[str, Any]]:
    """``count`` sessions ending 20 minutes before now, the last three back to back."""
    appointments = []
    end = now - timedelta(minutes=20)
    for i in range(count):
        start = end - timedelta(minutes=50)
        appointments.append(
            {
                "appointment_id": f"A-{i}",
                "therapist_id": "T-100",
                "client_id": f"P-{i}",
                "start": start.isoformat(),
                "end": end.isoformat(),
                "status": "booked",
            }
        )
        end = start - (timedelta(minutes=0) if i < 2 else timedelta(minutes=15))
    return appointments


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
