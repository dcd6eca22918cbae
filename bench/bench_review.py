"""Review API page latency over a large suggestion log (DESIGN §7: p95 <= 100 ms for a page of 50
from 1,000,000 suggestions, on SQLite and PostgreSQL).

Run by hand: ``python bench/bench_review.py [--n 1000000] [--backend sqlite|postgresql|both]``.
It seeds one clinic (50 therapists, 10 supervisors) with N suggestions in bulk
(sqlite3 ``executemany`` / PostgreSQL ``COPY``), then times real requests to
``GET /api/v1/suggestions`` through the Flask app in process (bearer auth, scoping,
the access-log write and JSON included) for several filter mixes and roles. The
baseline, run in the same process on the same data, is a primary-key range read of
50 rows through the same engine; the ratio says what a filtered, scoped, audited page
costs on top of the cheapest read there is. PostgreSQL: 127.0.0.1:5432 database
``test``, schema ``bench_review`` (dropped and made anew each run).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from plugin import admin, config  # noqa: E402
from plugin.runtime import Runtime  # noqa: E402
from plugin.store.migrate import upgrade  # noqa: E402
from plugin.store.models import Suggestion  # noqa: E402

TARGET_P95_MS = 100.0
REQUESTS = 200
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_SCHEMA = "bench_review"
THERAPISTS, SUPERVISORS = 50, 10
RULES = [
    "client.suggest.next-step", "therapist.selfcare.overfull-day", "therapist.selfcare.difficult-session", "client.hold.empathy-difficulty",
    "client.hold.care-paired-with-pain", "client.defer.no-alliance", "therapist.practice-first", "safety.risk-language",
    "safety.therapist-distress", "therapist.modeling.pre-session",
]
KINDS = ["suggest"] * 3 + ["nudge"] * 4 + ["hold", "defer", "suppress"]
STATUSES = ["delivered"] * 8 + ["logged"] * 5 + ["skipped"] * 3 + ["expired"] * 2 + ["scheduled", "failed"]
FEEDBACK = ["helpful"] * 5 + ["not_helpful"] * 2 + ["used_in_session", "done", "not_now"]
EXPLANATION = json.dumps({
    "conditions": [["the event concerns a client", {"client.present": True}], ["an indication is present", {"client.signals": ["self_criticism"]}]],
    "reasons": ["client.suggest.next-step (v1) held: the event concerns a client; an indication for self-compassion is present."],
    "source": "Tips 1 and 4 (Winters, GoodTherapy 2018)", "source_url": "https://www.goodtherapy.org/", "timing": "next_gap", "facts": {},
})
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _sqlite_ts(when: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text form (naive UTC), so that raw rows compare like ORM rows."""
    return when.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _rows(n: int, therapist_ids: list[int], seed: int = 7):  # type: ignore[no-untyped-def]
    """(event, suggestion, feedback-or-None) tuples: two suggestions per event, about two years of log."""
    rng = random.Random(seed)
    step = timedelta(days=730) / n
    rule = 0
    for i in range(n):
        at = START + step * i
        # The two suggestions of one event never share a rule ((event_id, rule_id) is unique).
        rule = rng.randrange(len(RULES)) if i % 2 == 0 else (rule + 1 + rng.randrange(len(RULES) - 1)) % len(RULES)
        yield i, at, therapist_ids[rng.randrange(len(therapist_ids))], RULES[rule], rng.choice(KINDS), rng.choice(STATUSES), (rng.choice(FEEDBACK) if rng.random() < 0.12 else None)


def seed(rt: Runtime, n: int) -> dict[str, str]:
    clinic = admin.create_clinic(rt.db, rt.box, "Bench Clinic", "bench")
    now = datetime.now(timezone.utc)
    with rt.db.engine.begin() as conn:
        for t in range(THERAPISTS):
            conn.execute(
                text("INSERT INTO therapists (clinic_id, ehr_id, display_name, timezone, working_hours, supervisor_ehr_id, self_compassion_practice, created_at) "
                     "VALUES ('bench', :ehr, :name, 'UTC', '{}', :sup, 'none', :now)"),
                {"ehr": f"T-{t}", "name": f"Therapist {t}", "sup": f"S-{t % SUPERVISORS}", "now": _sqlite_ts(now) if rt.settings.is_sqlite else now},
            )
        therapist_ids = [row[0] for row in conn.execute(text("SELECT id FROM therapists ORDER BY id"))]
    tokens = {
        "admin": admin.add_user(rt.db, "admin@bench.example", "admin", clinic.clinic_id).token,
        "supervisor": admin.add_user(rt.db, "sup@bench.example", "supervisor", clinic.clinic_id, "S-3").token,
        "therapist": admin.add_user(rt.db, "t7@bench.example", "therapist", clinic.clinic_id, "T-7").token,
    }
    started = time.perf_counter()
    events = n // 2
    raw = rt.db.engine.raw_connection()
    try:
        if rt.settings.is_sqlite:
            _seed_sqlite(raw, n, events, therapist_ids)
        else:
            _seed_postgres(raw, n, events, therapist_ids)
        raw.commit()
    finally:
        raw.close()
    with rt.db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    print(f"  seeded {n:,} suggestions ({events:,} events) in {time.perf_counter() - started:.1f} s")
    return tokens


def _seed_sqlite(raw: Any, n: int, events: int, therapist_ids: list[int]) -> None:
    cur = raw.cursor()
    cur.execute("BEGIN")
    cur.executemany(
        "INSERT INTO events (id, clinic_id, source, dedupe_key, type, occurred_at, received_at, data, status) VALUES (?, 'bench', 'bench', ?, 'session_note.signed', ?, ?, '{}', 'evaluated')",
        ((e + 1, f"b{e}", _sqlite_ts(START), _sqlite_ts(START)) for e in range(events)),
    )
    feedback: list[tuple[Any, ...]] = []

    def suggestions():  # type: ignore[no-untyped-def]
        for i, at, therapist, rule, kind, status, fb in _rows(n, therapist_ids):
            ts = _sqlite_ts(at)
            delivered = _sqlite_ts(at + timedelta(minutes=3)) if status == "delivered" else None
            if fb and delivered:
                feedback.append(("bench", i + 1, fb, "slack", _sqlite_ts(at + timedelta(minutes=30))))
            yield (i + 1, "bench", i // 2 + 1, therapist, rule, 1, kind, "therapist", status, ts, "next gap at 14:50 UTC", EXPLANATION, delivered, 0, ts)

    cur.executemany(
        "INSERT INTO suggestions (id, clinic_id, event_id, therapist_id, rule_id, rule_version, kind, audience, status, deliver_at, timing_reason, explanation, delivered_at, attempts, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        suggestions(),
    )
    cur.executemany("INSERT INTO feedback (clinic_id, suggestion_id, feedback, source, created_at) VALUES (?, ?, ?, ?, ?)", feedback)


def _seed_postgres(raw: Any, n: int, events: int, therapist_ids: list[int]) -> None:
    cur = raw.cursor()
    with cur.copy("COPY events (id, clinic_id, source, dedupe_key, type, occurred_at, received_at, data, status) FROM STDIN") as copy:
        for e in range(events):
            copy.write_row((e + 1, "bench", "bench", f"b{e}", "session_note.signed", START, START, "{}", "evaluated"))
    feedback: list[tuple[Any, ...]] = []
    with cur.copy(
        "COPY suggestions (id, clinic_id, event_id, therapist_id, rule_id, rule_version, kind, audience, status, deliver_at, timing_reason, explanation, delivered_at, attempts, created_at) FROM STDIN"
    ) as copy:
        for i, at, therapist, rule, kind, status, fb in _rows(n, therapist_ids):
            delivered = at + timedelta(minutes=3) if status == "delivered" else None
            if fb and delivered:
                feedback.append(("bench", i + 1, fb, "slack", at + timedelta(minutes=30)))
            copy.write_row((i + 1, "bench", i // 2 + 1, therapist, rule, 1, kind, "therapist", status, at, "next gap at 14:50 UTC", EXPLANATION, delivered, 0, at))
    with cur.copy("COPY feedback (clinic_id, suggestion_id, feedback, source, created_at) FROM STDIN") as copy:
        for row in feedback:
            copy.write_row(row)
    for table in ("events", "suggestions", "feedback"):
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _time(fn, count: int = REQUESTS) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for _ in range(5):
        fn()
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), _p(samples, 95)


def measure(rt: Runtime, tokens: dict[str, str], n: int) -> bool:
    from handlers.app import create_app

    app = create_app(runtime=rt)
    client = app.test_client()
    rng = random.Random(3)

    def baseline() -> None:
        low = rng.randrange(1, max(2, n - 50))
        with rt.db.session() as session:
            rows = session.execute(select(Suggestion.id, Suggestion.created_at, Suggestion.rule_id, Suggestion.kind, Suggestion.status).where(Suggestion.id.between(low, low + 49))).all()
        assert len(rows) == 50 or n < 100

    base_p50, base_p95 = _time(baseline)
    print(f"  baseline: primary-key range read of 50 rows   p50 {base_p50:6.2f} ms  p95 {base_p95:6.2f} ms")

    middle = (START + timedelta(days=365)).isoformat()
    deep = client.get(f"/api/v1/suggestions?limit=50&to={middle.replace('+', '%2B')}", headers={"Authorization": f"Bearer {tokens['admin']}"}).get_json()["next_cursor"]
    cases = [
        ("admin", "first page, no filter", ""),
        ("admin", "rule", "&rule=client.suggest.next-step"),
        ("admin", "decision=hold", "&decision=hold"),
        ("admin", "status=delivered", "&status=delivered"),
        ("admin", "feedback=helpful", "&feedback=helpful"),
        ("admin", "feedback=used_in_session", "&feedback=used_in_session"),
        ("admin", "therapist + rule + decision", "&therapist=T-12&rule=therapist.selfcare.overfull-day&decision=nudge"),
        ("admin", "from/to (one month, a year back)", "&from=2024-06-01T00:00:00Z&to=2024-07-01T00:00:00Z"),
        ("admin", "deep page (cursor half-way)", f"&cursor={deep}"),
        ("supervisor", "first page (5 supervisees)", ""),
        ("supervisor", "rule", "&rule=client.defer.no-alliance"),
        ("therapist", "first page", ""),
        ("therapist", "status=expired", "&status=expired"),
    ]
    ok = True
    for who, label, query in cases:
        headers = {"Authorization": f"Bearer {tokens[who]}"}
        url = f"/api/v1/suggestions?limit=50{query}"
        response = client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
        count = len(response.get_json()["items"])
        p50, p95 = _time(lambda: client.get(url, headers=headers))
        verdict = "PASS" if p95 <= TARGET_P95_MS else "MISS"
        ok &= p95 <= TARGET_P95_MS
        print(f"  {who:10s} {label:36s} {count:3d} rows  p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  x{p95 / base_p95:5.1f} baseline  {verdict}")
    return ok


def run(backend: str, n: int) -> bool:
    print(f"{backend}: {n:,} suggestions")
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            url = f"sqlite:///{tmp}/bench.sqlite3"
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')
                conn.execute(f'CREATE SCHEMA "{PG_SCHEMA}"')
            url = PG_ADMIN.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{PG_SCHEMA}"
        env = {"TEND_DATABASE_URL": url, "TEND_INSTANCE_PATH": tmp, "TEND_SECRET_KEY": "bench-secret-key-0123456789", "TEND_PSEUDONYM_KEY": "bench-pseudonym-key-0123456", "TEND_LOG_FORMAT": "text"}
        rt = Runtime.build(config.load(env))
        upgrade(rt.db)
        try:
            tokens = seed(rt, n)
            return measure(rt, tokens, n)
        finally:
            rt.db.dispose()
            if backend == "postgresql":
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    import logging

    logging.disable(logging.INFO)
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {b: run(b, args.n) for b in backends}
    print("target: p95 <= 100 ms per page of 50 —", ", ".join(f"{b} {'PASS' if ok else 'MISS'}" for b, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
