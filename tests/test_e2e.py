"""End to end: real `tend web` and `tend worker` processes, real HTTP, real Redis, the fake Slack.

A signed clinic morning goes in over HTTP; a DM comes out at the fake Slack.
The same run carries a canary in the note text that must appear nowhere after.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select

from plugin.store.db import Database
from plugin.store.models import Event, Suggestion

from tests.conftest import event_body, full_morning, make_env, signed_headers, therapist_data, wait_until, zone_near_noon
from tests.fakes.slack_api import FakeSlack

pytestmark = pytest.mark.e2e
CANARY = "quokka-canary-7d41e09b"
NOTE_TEXT = f"Client was harshly self-critical about work again. {CANARY} Practised grounding."


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Tend:
    """A running Tend: one web process, any number of workers, their logs."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "handlers.cli", *args], env=self.env, capture_output=True, check=True, timeout=60)
        return result.stdout.decode()

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def start_web(self) -> None:
        self.spawn("web", "web", "--port", str(self.port), "--workers", "1")  # gunicorn, as in production
        wait_until(lambda: self.get("/healthz") is not None, timeout=30)

    def start_worker(self, name: str = "worker") -> subprocess.Popen[bytes]:
        return self.spawn(name, "worker")

    def get(self, path: str) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def send(self, clinic: dict, event_type: str, data: dict) -> int:
        body = event_body(event_type, data)
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{clinic['webhook_path']}", data=body, headers=signed_headers(clinic["webhook_secret"], body), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.workdir.glob("*.log"))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            kill_group(process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and its children (rq's scheduler runs as a child process)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def tend(tmp_path: Path, slack: FakeSlack, redis_server: Redis) -> Iterator[Tend]:
    redis_server.flushdb()
    env = {
        **os.environ,
        **make_env(
            tmp_path,
            f"sqlite:///{tmp_path / 'tend.sqlite3'}",
            TEND_SLACK_BOT_TOKEN="xoxb-test",
            TEND_SLACK_API_URL=slack.base_url,
            TEND_QUEUE="tend-e2e",
            TEND_SENDING_LEASE_SECONDS="2",
        ),
    }
    running = Tend(env=env, workdir=tmp_path)
    running.cli("db", "upgrade")
    yield running
    running.stop()


@pytest.fixture
def clinic(tend: Tend) -> dict:
    return json.loads(tend.cli("clinics", "add", "Riverside Counselling", "--json"))


def send_overfull_morning(tend: Tend, clinic: dict, *, text: str = NOTE_TEXT) -> None:
    now = datetime.now(timezone.utc)
    assert tend.send(clinic, "therapist.upserted", therapist_data(zone_near_noon(now))) == 202
    for appointment in full_morning(now):
        assert tend.send(clinic, "appointment.booked", appointment) == 202
    note = {
        "note_id": "N-1",
        "therapist_id": "T-100",
        "client_id": "P-0",
        "session_start": full_morning(now)[0]["start"],
        "session_number": 2,
        "alliance": "forming",
        "text": text,
    }
    assert tend.send(clinic, "session_note.signed", note) == 202


def dms(slack: FakeSlack) -> list[dict]:
    return slack.messages_for("U0THERAPIST")


def test_a_signed_clinic_morning_reaches_the_therapist_as_one_dm(tend: Tend, clinic: dict, slack: FakeSlack) -> None:
    tend.start_web()
    tend.start_worker()
    send_overfull_morning(tend, clinic)
    wait_until(lambda: dms(slack), timeout=30)
    time.sleep(1.5)  # nothing more arrives
    messages = dms(slack)
    assert len(messages) == 1
    assert messages[0]["metadata"]["event_type"] == "tend_suggestion"


def test_the_note_text_appears_nowhere_after_the_run(tend: Tend, clinic: dict, slack: FakeSlack, redis_server: Redis) -> None:
    tend.start_web()
    tend.start_worker()
    send_overfull_morning(tend, clinic)
    wait_until(lambda: dms(slack), timeout=30)
    tend.stop()
    stored = b"".join(p.read_bytes() for p in tend.workdir.glob("tend.sqlite3*"))
    assert CANARY.encode() not in stored
    assert CANARY not in tend.logs()
    assert CANARY not in json.dumps([c.params for c in slack.calls])
    for key in redis_server.scan_iter(count=1000):
        assert CANARY.encode() not in key
        values = _redis_values(redis_server, key)
        assert not any(CANARY.encode() in value for value in values), key


def _redis_values(redis: Redis, key: bytes) -> list[bytes]:
    kind = redis.type(key)
    if kind == b"string":
        raw = [redis.get(key) or b""]
    elif kind == b"hash":
        raw = list(redis.hgetall(key).values())
    elif kind == b"list":
        raw = redis.lrange(key, 0, -1)
    elif kind == b"set":
        raw = list(redis.smembers(key))
    elif kind == b"zset":
        raw = [member for member, _ in redis.zrange(key, 0, -1, withscores=True)]
    else:
        raw = []
    values = []
    for value in raw:
        values.append(value)
        with contextlib.suppress(zlib.error):
            values.append(zlib.decompress(value))  # rq stores job data zlib-compressed
    return values


def test_a_worker_killed_while_delivering_leaves_exactly_one_message(tend: Tend, clinic: dict, slack: FakeSlack) -> None:
    tend.start_web()
    slack.hold_answers("chat.postMessage", 5.0)
    first = tend.start_worker("worker-1")
    send_overfull_morning(tend, clinic)
    wait_until(lambda: dms(slack), timeout=30)  # posted at Slack, not yet recorded by Tend
    kill_group(first)
    slack.hold_answers("chat.postMessage", 0)
    time.sleep(2.5)  # let the claim's lease run out
    tend.start_worker("worker-2")
    wait_until(lambda: any(c.method == "conversations.history" for c in slack.calls), timeout=30)
    time.sleep(1.5)
    assert len(dms(slack)) == 1


def test_one_webhook_sent_five_times_at_once_gives_one_event_one_suggestion_one_dm(tend: Tend, clinic: dict, slack: FakeSlack) -> None:
    import threading

    tend.start_web()
    tend.start_worker()
    now = datetime.now(timezone.utc)
    assert tend.send(clinic, "therapist.upserted", therapist_data(zone_near_noon(now))) == 202
    message = {"message_id": "M-1", "therapist_id": "T-100", "client_id": "P-0", "sent_at": now.isoformat(), "text": "I want to end my life."}
    body = event_body("client_message.received", message)
    headers = signed_headers(clinic["webhook_secret"], body, "msg_replayed_5x")
    answers: list[int] = []

    def send() -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{tend.port}{clinic['webhook_path']}", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append(response.status)

    threads = [threading.Thread(target=send) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 200, 200, 200, 202]
    wait_until(lambda: dms(slack), timeout=30)
    time.sleep(1.5)
    assert len(dms(slack)) == 1
    tend.stop()
    with Database(tend.env["TEND_DATABASE_URL"]).session() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(Event.type == "client_message.received")) == 1
        assert session.scalar(select(func.count()).select_from(Suggestion)) == 1


def test_tend_dev_runs_everything_and_ctrl_c_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TEND_INSTANCE_PATH": str(tmp_path / "instance"), "TEND_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    env.pop("TEND_DATABASE_URL", None)
    log = open(tmp_path / "dev.log", "wb")
    dev = subprocess.Popen([sys.executable, "-m", "handlers.cli", "dev", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready = lambda: _get(port, "/readyz")  # noqa: E731
        wait_until(lambda: (ready() or {}).get("status") == "ready", timeout=60)
        output = (tmp_path / "dev.log").read_text()
        assert "started a private redis-server" in output
        assert (tmp_path / "instance" / "tend.sqlite3").exists()
        assert "/webhooks/demo/ehr" in output
        os.killpg(dev.pid, signal.SIGINT)
        assert dev.wait(timeout=30) == 0
        time.sleep(0.5)
        leftovers = subprocess.run(["pgrep", "-g", str(dev.pid)], capture_output=True, text=True).stdout.split()
        assert leftovers == []
        private_url = output.split("started a private redis-server at ", 1)[1].split()[0]
        with pytest.raises(RedisError):
            Redis.from_url(private_url, socket_connect_timeout=0.5).ping()
    finally:
        kill_group(dev)


def test_tend_dev_without_redis_names_the_install_in_one_line(tmp_path: Path) -> None:
    bare_path = str(Path(sys.executable).parent)  # python, but no redis-server
    env = {**os.environ, "PATH": bare_path, "TEND_INSTANCE_PATH": str(tmp_path / "instance"), "TEND_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run([sys.executable, "-m", "handlers.cli", "dev"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install redis-server" in lines[0]


def _get(port: int, path: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        return json.loads(err.read())
    except OSError:
        return None
