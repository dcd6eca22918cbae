"""Signed session-note webhook with a 2 KB note: latency and throughput (DESIGN §7).

Targets: p50 <= 5 ms and p99 <= 20 ms in process, and at least 60% of the
throughput of a bare Flask route that only enqueues an rq job, both measured
here in the same run against the same Redis. Run by hand: `python bench/bench_webhook.py`.
Needs Redis at 127.0.0.1:6379 (uses database 13, flushed).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from flask import Flask, jsonify
from redis import Redis
from rq import Queue
from standardwebhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers.app import create_app  # noqa: E402
from plugin import admin, config  # noqa: E402
from plugin.runtime import Runtime  # noqa: E402
from plugin.store.migrate import upgrade  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"
N = 2000
WARMUP = 100
NOTE_TEXT = (
    "Session focused on the client's reaction to feedback at work. She described a harsh inner voice after a "
    "minor mistake in a presentation, calling herself stupid and useless for most of the evening. We explored "
    "where the voice comes from; she noted her father was very critical of school grades. She reports difficulty "
    "sleeping before deadlines and rechecking emails many times before sending. Denies suicidal ideation, denies "
    "self-harm. No evidence of substance misuse. We practised noticing the critical voice without arguing with it "
    "and naming it as 'the critic'. She was tearful when talking about a friend who had been kind to her, and said "
    "she does not feel she deserves that kindness. Discussed the idea of treating herself as she would a good "
    "friend; she found this hard to imagine but was curious. Plan: continue tracking self-critical thoughts in a "
    "brief log, bring two examples next week, revisit sleep routine. Alliance feels solid; she arrived on time and "
    "engaged well throughout. She mentioned her sister has been supportive lately, which she appreciated. "
) * 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_tend(tmp: Path) -> tuple[list[float], float]:
    env = {
        "TEND_SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "TEND_PSEUDONYM_KEY": "bench-pseudonym-key-0123456789ab",
        "TEND_INSTANCE_PATH": str(tmp / "instance"),
        "TEND_DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "TEND_REDIS_URL": REDIS_URL,
        "TEND_QUEUE": "bench",
        "TEND_LOG_FORMAT": "text",
    }
    rt = Runtime.build(config.load(env))
    upgrade(rt.db)
    clinic = admin.create_clinic(rt.db, rt.box, "Bench", "bench")
    client = create_app(runtime=rt).test_client()
    hook = Webhook(clinic.webhook_secret)
    latencies: list[float] = []
    started = 0.0
    for i in range(WARMUP + N):
        body = json.dumps(
            {
                "type": "session_note.signed",
                "occurred_at": datetime.now(timezone.utc).isoformat(),
                "data": {
                    "note_id": f"N-{i}",
                    "therapist_id": "T-1",
                    "client_id": f"P-{i % 50}",
                    "session_start": "2026-03-09T14:00:00+00:00",
                    "session_number": 5,
                    "text": NOTE_TEXT,
                },
            }
        )
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(timezone.utc)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": hook.sign(msg_id, now, body),
            "content-type": "application/json",
        }
        if i == WARMUP:
            started = time.perf_counter()
        t0 = time.perf_counter()
        response = client.post(clinic.webhook_path, data=body, headers=headers)
        elapsed = time.perf_counter() - t0
        assert response.status_code == 202, response.get_data(as_text=True)
        if i >= WARMUP:
            latencies.append(elapsed * 1000)
    return latencies, N / (time.perf_counter() - started)


def bench_bare() -> float:
    """The baseline: a Flask route that parses JSON and enqueues an rq job, nothing else."""
    app = Flask("bare")
    queue = Queue("bench-bare", connection=Redis.from_url(REDIS_URL))

    @app.post("/bare")
    def bare():  # type: ignore[no-untyped-def]
        from flask import request

        payload = request.get_json()
        job = queue.enqueue("plugin.jobs.evaluate", len(payload["data"]["text"]))
        return jsonify(id=job.id), 202

    client = app.test_client()
    body = json.dumps({"type": "session_note.signed", "data": {"text": NOTE_TEXT}})
    for _ in range(WARMUP):
        client.post("/bare", data=body, content_type="application/json")
    started = time.perf_counter()
    for _ in range(N):
        client.post("/bare", data=body, content_type="application/json")
    return N / (time.perf_counter() - started)


def main() -> int:
    Redis.from_url(REDIS_URL).flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        latencies, tend_rate = bench_tend(Path(tmp))
    bare_rate = bench_bare()
    Redis.from_url(REDIS_URL).flushdb()
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    ratio = tend_rate / bare_rate
    print(f"signed 2 KB session note, {N} requests in process (SQLite, real Redis)")
    print(f"  latency p50 {p50:.2f} ms (target <= 5)   p99 {p99:.2f} ms (target <= 20)")
    print(f"  throughput {tend_rate:.0f}/s vs bare enqueue route {bare_rate:.0f}/s: ratio {ratio:.2f} (target >= 0.60)")
    ok = p50 <= 5 and p99 <= 20 and ratio >= 0.6
    print("  PASS" if ok else "  MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
