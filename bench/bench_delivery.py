"""Event to Slack post for immediate decisions, 50 events/s for 60 s, 2 workers (DESIGN §7).

Target: p95 <= 1.5 s from the HTTP send of a signed event to the fake Slack
recording the ``chat.postMessage`` that carries its suggestion; 0 lost (an
accepted event with no post after a 30 s drain), 0 duplicated (two posts for
one suggestion id).

Real processes, as production runs them: one ``tend web`` (gunicorn, 2 worker
processes) and two ``tend worker`` (rq with the scheduler and the sweeper),
against the fake Slack Web API served from this process, SQLite in a temporary
directory (``--pg``: PostgreSQL at 127.0.0.1:5432/test in a fresh schema) and
Redis database 12 (flushed before and after).

The load is portal messages with risk language (``client_message.received``):
``safety.risk-language`` decides a safety line with timing ``now`` and no cap, so
every accepted event should produce exactly one DM at once. Twenty therapists
around their local noon share the load.

Baselines in the same run: the fake Slack's own round trip (direct
``chat.postMessage`` calls through slack_sdk) and an rq no-op job's
enqueue -> finished latency on the same two workers. The floor of Tend's path
is one Slack call and two queue hops (evaluate, then deliver).

Run by hand: ``python bench/bench_delivery.py`` (``--quick`` for 10 s,
``--duration``/``--rate`` to change the load, ``--pg`` for PostgreSQL).
Exits 0 after printing PASS or MISS; non-zero only when the bench itself fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.slack_api import FakeSlack  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
QUEUE = "bench-delivery"
KEYS = {"TEND_SECRET_KEY": "bench-secret-key-0123456789abcdef", "TEND_PSEUDONYM_KEY": "bench-pseudonym-key-0123456789ab"}
ALL_WEEK = {day: ["00:00", "23:59"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
NOON_ZONES = [f"Etc/GMT+{h}" for h in range(12, 0, -1)] + ["Etc/GMT"] + [f"Etc/GMT-{h}" for h in range(1, 15)]
RISK_TEXT = (
    "Thank you for last week. Work has been hard again and I keep going over every mistake. "
    "Some nights I honestly feel I would be better off dead. I will try to come on Thursday."
)
TARGET_P95_S = 1.5
MAX_RATE = 500
MAX_DURATION_S = 600
DRAIN_S = 30.0


# --- shared with bench_memory.py ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def zone_near_noon(now: datetime) -> str:
    """The fixed-offset zone where it is closest to 12:00 now (as tests/conftest.py does)."""

    def minutes(zone: str) -> int:
        local = now.astimezone(ZoneInfo(zone))
        return abs(local.hour * 60 + local.minute - 12 * 60)

    return min(NOON_ZONES, key=minutes)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what} not met within {timeout:.0f} s")


@dataclass
class Database:
    """Where the spawned processes keep their store; SQLite in ``workdir`` or a fresh PostgreSQL schema."""

    url: str
    schema: str | None = None

    @classmethod
    def create(cls, workdir: Path, postgres: bool) -> Database:
        if not postgres:
            return cls(f"sqlite:///{workdir / 'tend.sqlite3'}")
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        base = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        return cls(f"{base}?options=-csearch_path%3D{schema}", schema)

    def drop(self) -> None:
        if self.schema is None:
            return
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def reader(self):  # type: ignore[no-untyped-def]
        """A plain engine for the bench's own reads (no BEGIN IMMEDIATE: it must not take SQLite's write lock)."""
        from sqlalchemy import create_engine

        return create_engine(self.url)


@dataclass
class Tend:
    """Tend's processes, each in its own process group, always stopped by ``stop()``."""

    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "handlers.cli", *args], env=self.env, cwd=ROOT, capture_output=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"tend {' '.join(args)} failed: {result.stderr.decode(errors='replace').strip()}")
        return result.stdout.decode()

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def start_web(self, workers: int) -> subprocess.Popen[bytes]:
        process = self.spawn("web", "web", "--port", str(self.port), "--workers", str(workers))
        wait_until(lambda: self.healthy() or self._died("web"), timeout=60, what="tend web answering /healthz")
        self._died("web")
        return process

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        return self.spawn(name, "worker")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _died(self, name: str) -> bool:
        process = self.processes[name]
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
        return False

    def check_alive(self) -> None:
        for name in self.processes:
            self._died(name)

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_problems(self) -> dict[str, int]:
        """Lines that look like errors, per process log."""
        counts = {}
        for name in self.processes:
            path = self.workdir / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            counts[name] = sum(1 for line in text.splitlines() if "Traceback" in line or " ERROR " in line or "WARNING" in line)
        return counts

    def stop(self) -> None:
        """SIGTERM every process group, then SIGKILL whatever is left (rq's scheduler is a child)."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session: the group id is the child's pid
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def tend_running(args: argparse.Namespace, slack: FakeSlack, **extra_env: str) -> Iterator[tuple[Tend, Database]]:
    """A migrated store, a clinic, Redis db 12 flushed; every process and the schema removed afterwards."""
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    with tempfile.TemporaryDirectory(prefix="tend-bench-") as tmp:
        workdir = Path(tmp)
        database = Database.create(workdir, args.pg)
        env = {
            **os.environ,
            **KEYS,
            "TEND_INSTANCE_PATH": str(workdir / "instance"),
            "TEND_DATABASE_URL": database.url,
            "TEND_REDIS_URL": REDIS_URL,
            "TEND_QUEUE": QUEUE,
            "TEND_SLACK_BOT_TOKEN": slack.token,
            "TEND_SLACK_API_URL": slack.base_url,
            "TEND_LOG_FORMAT": "text",
            "TEND_DAILY_CAP": "100000",
            "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus"),
            **extra_env,
        }
        env.pop("TEND_DEV", None)
        (workdir / "prometheus").mkdir()
        tend = Tend(env=env, workdir=workdir)
        try:
            yield tend, database
        finally:
            tend.stop()
            try:
                database.drop()
            finally:
                redis.flushdb()


def install_sigterm() -> None:
    """SIGTERM (as from `timeout` or a CI runner) unwinds like Ctrl-C, so every `finally` runs."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


class Sender:
    """Signs and POSTs events to the clinic's webhook over loopback."""

    def __init__(self, port: int, clinic: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}{clinic['webhook_path']}"
        self.hook = Webhook(clinic["webhook_secret"])

    def send(self, event_type: str, data: dict[str, Any], msg_id: str) -> int:
        now = datetime.now(timezone.utc)
        body = json.dumps({"type": event_type, "occurred_at": now.isoformat(), "data": data})
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.hook.sign(msg_id, now, body),
            "content-type": "application/json",
        }
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return 0


def therapist_event(i: int, zone: str) -> dict[str, Any]:
    return {
        "therapist_id": f"T-{i}",
        "slack_user_id": slack_user(i),
        "display_name": f"Dr. Bench {i}",
        "timezone": zone,
        "working_hours": ALL_WEEK,
        "self_compassion_practice": "regular",
    }


def slack_user(i: int) -> str:
    return f"U0BENCH{i:04d}"


def drained(reader, queue_name: str = QUEUE) -> bool:  # type: ignore[no-untyped-def]
    """No event left unevaluated and no job queued or running."""
    from rq import Queue
    from sqlalchemy import text

    with reader.connect() as conn:
        pending = conn.execute(text("SELECT count(*) FROM events WHERE status = 'recorded'")).scalar_one()
    queue = Queue(queue_name, connection=Redis.from_url(REDIS_URL))
    return pending == 0 and queue.count == 0 and queue.started_job_registry.count == 0


def descendants(pid: int) -> list[int]:
    """The process and all its descendants (from /proc/*/stat; Linux)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        parents[int(fields[1])].append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process tree (live processes only)."""
    total = 0
    for each in descendants(pid):
        try:
            text = Path(f"/proc/{each}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds every process on this machine has used (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_now(tend: Tend) -> dict[str, float]:
    usage = {name: cpu_seconds(process.pid) for name, process in tend.processes.items()}
    own = os.times()
    usage["bench (load + fake Slack)"] = own.user + own.system
    usage["everything else on the machine (db, Redis, others' work)"] = machine_busy_seconds() - sum(usage.values())
    return usage


# --- this bench ------------------------------------------------------------------------------


@dataclass
class Sent:
    index: int
    msg_id: str
    scheduled: float  # when the open-loop schedule wanted it sent (wall clock)
    at: float = 0.0  # when it was sent
    answered: float = 0.0
    status: int = 0


def drive(sender: Sender, therapists: int, rate: float, duration: float, prefix: str, offset: int = 0) -> list[Sent]:
    """A steady open-loop load: event i is due at start + i/rate, whatever the answers do."""
    total = int(rate * duration)
    sent = [Sent(i, f"{prefix}_{offset + i}", 0.0) for i in range(total)]

    def one(item: Sent) -> None:
        data = {
            "message_id": f"M-{prefix}-{offset + item.index}",
            "therapist_id": f"T-{item.index % therapists}",
            "client_id": f"P-{(offset + item.index) % 400}",
            "sent_at": datetime.now(timezone.utc).isoformat(),
            "text": RISK_TEXT,
        }
        item.at = time.time()
        item.status = sender.send("client_message.received", data, item.msg_id)
        item.answered = time.time()

    start = time.time() + 0.2
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="load") as pool:
        for item in sent:
            item.scheduled = start + item.index / rate
            delay = item.scheduled - time.time()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one, item)
    return sent


def slack_round_trip(slack: FakeSlack, n: int) -> list[float]:
    """Baseline: the fake Slack's own chat.postMessage round trip through slack_sdk."""
    from slack_sdk import WebClient

    client = WebClient(token=slack.token, base_url=slack.base_url, timeout=10, retry_handlers=[])
    client.conversations_open(users="U0BASELINE")
    timings = []
    for i in range(n):
        t0 = time.perf_counter()
        client.chat_postMessage(
            channel="DU0BASELINE",
            text="baseline",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "baseline"}}],
            metadata={"event_type": "baseline", "event_payload": {"i": i}},
        )
        timings.append(time.perf_counter() - t0)
    return timings


def rq_noop(n: int, rate: float) -> list[float]:
    """Baseline: enqueue -> finished of a no-op rq job on the same (idle) Tend workers."""
    from rq import Queue
    from rq.job import Job

    redis = Redis.from_url(REDIS_URL)
    queue = Queue(QUEUE, connection=redis)
    ids = []
    for i in range(n):
        ids.append(queue.enqueue("time.sleep", 0, job_id=f"bench-noop-{i}", result_ttl=600).id)
        time.sleep(1 / rate)

    def finished() -> list[Job] | None:
        jobs = Job.fetch_many(ids, connection=redis)
        if all(job is not None and job.get_status() in ("finished", "failed") for job in jobs):
            return jobs  # type: ignore[return-value]
        return None

    jobs = wait_until(finished, timeout=60, what="rq no-op jobs finished")
    failed = [job.id for job in jobs if job.get_status() == "failed"]
    if failed:
        raise RuntimeError(f"rq no-op jobs failed on the Tend workers: {failed[:3]}")
    return [(job.ended_at - job.enqueued_at).total_seconds() for job in jobs if job.ended_at and job.enqueued_at]


def job_times(since: float) -> dict[str, tuple[list[float], list[float]]]:
    """Per job function: (queue wait, run time) of the jobs rq finished that were enqueued after ``since``."""
    from rq import Queue
    from rq.job import Job

    redis = Redis.from_url(REDIS_URL)
    ids = Queue(QUEUE, connection=redis).finished_job_registry.get_job_ids()
    found: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for start in range(0, len(ids), 500):
        for job in Job.fetch_many(ids[start : start + 500], connection=redis):
            if job is None or not (job.enqueued_at and job.started_at and job.ended_at):
                continue
            if _aware(job.enqueued_at).timestamp() < since:  # type: ignore[union-attr]
                continue
            waits, runs = found[job.func_name.rsplit(".", 1)[-1]]
            waits.append((job.started_at - job.enqueued_at).total_seconds())
            runs.append((job.ended_at - job.started_at).total_seconds())
    return dict(found)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def store_rows(reader) -> tuple[dict[str, dict[str, Any]], dict[int, str]]:  # type: ignore[no-untyped-def]
    """Per webhook id: the event's times and its suggestions; and suggestion id -> webhook id."""
    from sqlalchemy import text

    events: dict[str, dict[str, Any]] = {}
    owner: dict[int, str] = {}
    with reader.connect() as conn:
        for key, event_id, received, evaluated, status in conn.execute(
            text("SELECT dedupe_key, id, received_at, evaluated_at, status FROM events")
        ):
            events[key] = {"id": event_id, "received": _aware(received), "evaluated": _aware(evaluated), "status": status, "suggestions": []}
        by_id = {v["id"]: k for k, v in events.items()}
        for sid, event_id, rule_id, status in conn.execute(text("SELECT id, event_id, rule_id, status FROM suggestions")):
            key = by_id.get(event_id)
            if key is not None:
                events[key]["suggestions"].append((sid, rule_id, status))
                owner[sid] = key
    return events, owner


def posts_by_suggestion(slack: FakeSlack) -> dict[int, list[float]]:
    posts: dict[int, list[float]] = defaultdict(list)
    for call in slack.calls_to("chat.postMessage"):
        if not call.ok:
            continue
        metadata = call.params.get("metadata") or {}
        if metadata.get("event_type") != "tend_suggestion":
            continue
        sid = (metadata.get("event_payload") or {}).get("suggestion_id")
        if sid is not None:
            posts[int(sid)].append(call.at)
    return posts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    parser.add_argument("--quick", action="store_true", help="10 s of load")
    parser.add_argument("--therapists", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="tend worker processes (default 2)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn processes (default 2)")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL at 127.0.0.1:5432/test instead of SQLite")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the process logs here at the end")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 10.0
    if not (0 < args.rate <= MAX_RATE and 0 < args.duration <= MAX_DURATION_S and 1 <= args.therapists <= 1000):
        parser.error(f"--rate must be in (0, {MAX_RATE}], --duration in (0, {MAX_DURATION_S}], --therapists in [1, 1000]")
    install_sigterm()

    with FakeSlack() as slack, tend_running(args, slack) as (tend, database):
        try:
            return run(args, slack, tend, database)
        finally:
            if args.keep_logs:
                import shutil

                Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
                for log in tend.workdir.glob("*.log"):
                    shutil.copy(log, Path(args.keep_logs) / log.name)


def run(args: argparse.Namespace, slack: FakeSlack, tend: Tend, database: Database) -> int:
    backend = "PostgreSQL" if args.pg else "SQLite"
    tend.cli("db", "upgrade")
    clinic = json.loads(tend.cli("clinics", "add", "Bench Clinic", "--id", "bench", "--json"))
    tend.start_web(args.web_workers)
    for i in range(args.workers):
        tend.start_worker(f"worker-{i + 1}")
    reader = database.reader()
    sender = Sender(tend.port, clinic)

    zone = zone_near_noon(datetime.now(timezone.utc))
    for i in range(args.therapists):
        slack.set_user(slack_user(i), tz=zone, real_name=f"Dr. Bench {i}")
        status = sender.send("therapist.upserted", therapist_event(i, zone), f"setup_{i}")
        if status != 202:
            raise RuntimeError(f"therapist.upserted answered {status}")
    wait_until(lambda: tend.check_alive() or drained(reader), timeout=60, what="set-up events evaluated")

    # Baselines, on the same workers while they are idle.
    slack_rtt = slack_round_trip(slack, 300)
    noop = rq_noop(200, args.rate)

    # Warm-up: one event per therapist (Slack zone lookup and DM channel, caches, connections); not measured.
    warm = drive(sender, args.therapists, min(args.rate, 20.0), args.therapists / min(args.rate, 20.0), "warm")
    if any(item.status != 202 for item in warm):
        raise RuntimeError(f"warm-up events answered {Counter(item.status for item in warm)}")
    wait_until(lambda: tend.check_alive() or (drained(reader) and len(posts_by_suggestion(slack)) >= len(warm)), timeout=60, what="warm-up delivered")

    print(f"event -> Slack post, immediate decisions: {args.rate:.0f} events/s for {args.duration:.0f} s, "
          f"{args.workers} workers, gunicorn x{args.web_workers}, {backend}, {args.therapists} therapists", flush=True)
    cpu_before = cpu_now(tend)
    load_started = time.time()
    sent = drive(sender, args.therapists, args.rate, args.duration, "load", offset=len(warm))
    load_ended = time.time()
    cpu_after = cpu_now(tend)
    accepted = [item for item in sent if item.status == 202]
    expected_posts = len(warm) + len(accepted)

    drain_started = time.monotonic()
    while time.monotonic() - drain_started < DRAIN_S:
        tend.check_alive()
        if len(posts_by_suggestion(slack)) >= expected_posts and drained(reader):
            break
        time.sleep(0.25)
    drain_s = time.monotonic() - drain_started
    time.sleep(2.0)  # late duplicates, if any, arrive now

    jobs = job_times(load_started)
    events, owner = store_rows(reader)
    posts = posts_by_suggestion(slack)
    reader.dispose()
    problems = tend.log_problems()

    latencies, lost, stage_accept, stage_queue, stage_rest = [], [], [], [], []
    windows: dict[int, list[float]] = defaultdict(list)  # 10 s windows of the load, by send time
    for item in accepted:
        event = events.get(item.msg_id)
        safety = [sid for sid, rule, _ in (event or {}).get("suggestions", []) if rule == "safety.risk-language"]
        times = [at for sid in safety for at in posts.get(sid, [])]
        if not times:
            lost.append(item.msg_id)
            continue
        first = min(times)
        latencies.append(first - item.at)
        windows[int((item.at - load_started) // 10)].append(first - item.at)
        if event and event["received"] and event["evaluated"]:
            received, evaluated = event["received"].timestamp(), event["evaluated"].timestamp()
            stage_accept.append(received - item.at)
            stage_queue.append(evaluated - received)
            stage_rest.append(first - evaluated)
    duplicated = {sid: len(at) for sid, at in posts.items() if len(at) > 1}
    other_posts = sum(len(at) for sid, at in posts.items() if owner.get(sid, "").startswith("load") and
                      not any(s == sid and r == "safety.risk-language" for s, r, _ in events[owner[sid]]["suggestions"]))
    statuses = Counter(item.status for item in sent)
    lag = [item.at - item.scheduled for item in sent if item.at]
    answer = [item.answered - item.at for item in accepted]
    send_rate = len(sent) / max(1e-9, max(item.at for item in sent) - min(item.at for item in sent)) if len(sent) > 1 else 0.0

    p50, p95, worst = percentile(latencies, 0.5), percentile(latencies, 0.95), max(latencies, default=float("nan"))
    slack_p50, slack_p95 = percentile(slack_rtt, 0.5), percentile(slack_rtt, 0.95)
    noop_p50, noop_p95 = percentile(noop, 0.5), percentile(noop, 0.95)
    floor_p95 = slack_p95 + 2 * noop_p95

    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    print(f"  sent {len(sent)} in {load_ended - load_started:.1f} s ({send_rate:.1f}/s, schedule lag p95 {ms(percentile(lag, 0.95))}); "
          f"answers {dict(statuses)}; webhook answer p50 {ms(percentile(answer, 0.5))} p95 {ms(percentile(answer, 0.95))}")
    print(f"  accepted {len(accepted)}, DMs posted {sum(len(v) for k, v in posts.items() if owner.get(k, '').startswith('load'))}, "
          f"lost {len(lost)}, duplicated {len(duplicated)} (drained in {drain_s:.1f} s; other load posts {other_posts})")
    print(f"  latency send -> post: p50 {ms(p50)}  p95 {ms(p95)} (target <= {TARGET_P95_S * 1000:.0f} ms)  max {ms(worst)}")
    if stage_accept:
        print(f"    stages p50/p95: send->recorded {ms(percentile(stage_accept, .5))}/{ms(percentile(stage_accept, .95))}, "
              f"recorded->evaluate starts {ms(percentile(stage_queue, .5))}/{ms(percentile(stage_queue, .95))}, "
              f"evaluate starts->posted {ms(percentile(stage_rest, .5))}/{ms(percentile(stage_rest, .95))}")
    print("    p95 per 10 s of load: " + "  ".join(f"{10 * w}s {ms(percentile(v, .95))}" for w, v in sorted(windows.items())))
    for name, (waits, runs) in sorted(jobs.items()):
        print(f"    rq {name}: {len(runs)} jobs, queue wait p50/p95 {ms(percentile(waits, .5))}/{ms(percentile(waits, .95))}, "
              f"run p50/p95 {percentile(runs, .5) * 1000:.1f}/{percentile(runs, .95) * 1000:.1f} ms, "
              f"busy {sum(runs) / (load_ended - load_started) / args.workers:.0%} of {args.workers} workers")
    load_s = load_ended - load_started
    print("  CPU during the load (share of one core): " + ", ".join(
        f"{name} {(cpu_after[name] - cpu_before[name]) / load_s:.0%}" for name in cpu_after) + f" on {os.cpu_count()} cores")
    print(f"  baseline: fake Slack chat.postMessage round trip p50 {slack_p50 * 1000:.1f} ms p95 {slack_p95 * 1000:.1f} ms; "
          f"rq no-op enqueue->finished p50 {noop_p50 * 1000:.1f} ms p95 {noop_p95 * 1000:.1f} ms")
    print(f"  ratio: Tend p95 / floor p95 (1 Slack call + 2 queue hops = {floor_p95 * 1000:.1f} ms) = {p95 / floor_p95:.1f}x")
    if any(problems.values()):
        print(f"  log lines with Traceback/ERROR/WARNING: {problems}")
    if lost:
        print(f"  first lost: {lost[:5]}")
    ok = p95 <= TARGET_P95_S and not lost and not duplicated and len(accepted) == len(sent)
    print("  PASS" if ok else "  MISS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        sys.exit(130)
