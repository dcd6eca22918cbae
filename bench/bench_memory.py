"""Memory of the web and worker processes under a mixed load (DESIGN §7).

Target: web process <= 250 MB RSS, worker <= 250 MB RSS. Starts ``tend web``
(gunicorn with one worker process) and one ``tend worker`` (rq; its scheduler
runs as a child process) against the fake Slack, SQLite in a temporary
directory (``--pg`` for PostgreSQL) and Redis database 12 (flushed), sends
~500 mixed signed events (session notes with 2 KB of text so the signal
pipeline is loaded, appointments, portal messages), waits for the queue to
drain, then reads VmRSS (now) and VmHWM (peak) from /proc for every process
and its children. The figure judged is the peak.

Baseline in the same run: an idle ``python -c "import flask, rq"`` process.
Run by hand: ``python bench/bench_memory.py``. Linux only (/proc).
Exits 0 after printing PASS or MISS; non-zero only when the bench itself fails.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import (  # noqa: E402
    Sender,
    install_sigterm,
    slack_user,
    tend_running,
    therapist_event,
    wait_until,
    zone_near_noon,
    drained,
    _signal_group,
)
from tests.fakes.slack_api import FakeSlack  # noqa: E402

TARGET_MB = 250.0
THERAPISTS = 10
SENTENCES = [
    "Session focused on the client's reaction to feedback at work.",
    "She described a harsh inner voice after a minor mistake, calling herself stupid and useless for most of the evening.",
    "We explored where the voice comes from; her father was very critical of school grades.",
    "He reports difficulty sleeping before deadlines and rechecking emails many times before sending.",
    "Denies suicidal ideation, denies self-harm.",
    "We practised noticing the critical voice without arguing with it and naming it as the critic.",
    "She was tearful when talking about a friend who had been kind to her and said she does not deserve that kindness.",
    "Discussed treating himself as he would a good friend; he found this hard to imagine but was curious.",
    "Plan: continue tracking self-critical thoughts in a brief log and bring two examples next week.",
    "Alliance feels solid; arrived on time and engaged well throughout.",
    "She spoke about feeling ashamed of needing help and of being a burden to her family.",
    "Everything has to be perfect before he can hand it in, and nothing ever feels good enough.",
    "Reported childhood trauma in passing; we agreed to go slowly and keep the sessions grounded.",
    "When I reflected warmth back she changed the subject and said kindness makes her uncomfortable.",
    "Discussed a difficult week with a partner; there was a moment of rupture that we repaired before the end.",
    "Homework: one minute of soothing touch, hand on heart, when the critic shows up.",
]
MESSAGES = [
    "Thanks for today. I tried the exercise but it felt silly and I gave up.",
    "I made a mistake at work again and I can't stop going over it.",
    "Can we move Thursday's session? Something came up with the kids.",
    "I felt a bit lighter after our last session, thank you.",
    "Honestly some days I feel I would be better off dead.",
]


def note_text(rng: random.Random, size: int = 2048) -> str:
    parts: list[str] = []
    while sum(len(p) + 1 for p in parts) < size:
        parts.append(rng.choice(SENTENCES))
    return " ".join(parts)[: size + 200]


def mixed_events(n: int, zone: str, rng: random.Random) -> list[tuple[str, dict[str, Any], str]]:
    """``n`` events: the therapists first, then appointments, notes and portal messages interleaved."""
    now = datetime.now(timezone.utc)
    events: list[tuple[str, dict[str, Any], str]] = [
        ("therapist.upserted", therapist_event(i, zone), f"mem_t_{i}") for i in range(THERAPISTS)
    ]
    i = 0
    while len(events) < n:
        therapist, client = f"T-{i % THERAPISTS}", f"P-{i % 150}"
        kind = i % 10
        if kind < 5:
            start = now - timedelta(hours=3) + timedelta(minutes=5 * (i % 30))
            events.append(
                (
                    "session_note.signed",
                    {
                        "note_id": f"N-{i}",
                        "therapist_id": therapist,
                        "client_id": client,
                        "session_start": start.isoformat(),
                        "session_end": (start + timedelta(minutes=50)).isoformat(),
                        "session_number": 1 + i % 12,
                        "alliance": rng.choice(["forming", "established"]),
                        "text": note_text(rng),
                    },
                    f"mem_{i}",
                )
            )
        elif kind < 8:
            start = now + timedelta(minutes=30 + 60 * (i % 8))
            events.append(
                (
                    "appointment.booked",
                    {
                        "appointment_id": f"A-{i}",
                        "therapist_id": therapist,
                        "client_id": client,
                        "start": start.isoformat(),
                        "end": (start + timedelta(minutes=50)).isoformat(),
                        "status": "booked",
                    },
                    f"mem_{i}",
                )
            )
        else:
            events.append(
                (
                    "client_message.received",
                    {
                        "message_id": f"M-{i}",
                        "therapist_id": therapist,
                        "client_id": client,
                        "sent_at": now.isoformat(),
                        "text": rng.choice(MESSAGES),
                    },
                    f"mem_{i}",
                )
            )
        i += 1
    return events


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in kB (empty when it is gone)."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return values


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc/*/stat."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def tree(label: str, pid: int) -> list[tuple[str, int]]:
    """The process and its descendants, labelled."""
    rows = [(label, pid)]
    for child in children(pid):
        rows.extend(tree(f"{label} > child", child))
    return rows


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:60]
    except OSError:
        return ""


def baseline_rss() -> dict[str, int]:
    process = subprocess.Popen(
        [sys.executable, "-c", "import flask, rq, sys, time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()
        time.sleep(0.2)
        return status_kb(process.pid)
    finally:
        _signal_group(process, 9)
        process.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500, help="mixed events to send (default 500, at most 20000)")
    parser.add_argument("--pg", action="store_true", help="PostgreSQL at 127.0.0.1:5432/test instead of SQLite")
    args = parser.parse_args(argv)
    if not THERAPISTS < args.events <= 20_000:
        parser.error("--events must be in (10, 20000]")
    if not Path("/proc/self/status").exists():
        raise SystemExit("bench_memory needs Linux /proc")
    install_sigterm()
    with FakeSlack() as slack, tend_running(args, slack) as (tend, database):
        return run(args, slack, tend, database)


def run(args: argparse.Namespace, slack: FakeSlack, tend, database) -> int:  # type: ignore[no-untyped-def]
    tend.cli("db", "upgrade")
    clinic = json.loads(tend.cli("clinics", "add", "Bench Clinic", "--id", "bench", "--json"))
    web = tend.start_web(1)
    worker = tend.start_worker("worker")
    reader = database.reader()
    sender = Sender(tend.port, clinic)
    zone = zone_near_noon(datetime.now(timezone.utc))
    for i in range(THERAPISTS):
        slack.set_user(slack_user(i), tz=zone)
    time.sleep(2.0)  # the worker has imported everything and its scheduler has forked

    def snapshot() -> list[tuple[str, int, dict[str, int]]]:
        rows = tree("web (gunicorn master)", web.pid) + tree("worker", worker.pid)
        labelled = []
        for label, pid in rows:
            if label.startswith("web (gunicorn master) > child"):
                label = "web (gunicorn worker)" + label[len("web (gunicorn master) > child") :]
            elif label.startswith("worker > child"):
                label = "worker > child (rq scheduler)" + label[len("worker > child") :]
            labelled.append((label, pid, status_kb(pid)))
        return labelled

    idle = {pid: kb for _, pid, kb in snapshot()}

    events = mixed_events(args.events, zone, random.Random(7))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda e: sender.send(e[0], e[1], e[2]), events))
    if any(s != 202 for s in statuses):
        raise RuntimeError(f"unexpected webhook answers: {sorted(set(statuses))}")
    sent_s = time.monotonic() - started
    wait_until(lambda: tend.check_alive() or drained(reader), timeout=300, interval=0.5, what="queue drained")
    drained_s = time.monotonic() - started
    time.sleep(1.0)
    after = snapshot()
    reader.dispose()
    base = baseline_rss()
    posts = len(slack.calls_to("chat.postMessage"))

    mb = lambda kb: kb / 1024  # noqa: E731
    kinds: dict[str, int] = {}
    for kind, _, _ in events:
        kinds[kind] = kinds.get(kind, 0) + 1
    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"memory: gunicorn x1 + 1 tend worker, {len(events)} mixed events {kinds} ({backend})")
    print(f"  sent in {sent_s:.1f} s, drained after {drained_s:.1f} s, {posts} Slack posts")
    print(f"  {'process':38} {'pid':>7} {'idle RSS':>9} {'RSS now':>9} {'peak HWM':>9}")
    worst = {"web": 0.0, "worker": 0.0}
    for label, pid, kb in after:
        if not kb:
            continue
        before = idle.get(pid, {}).get("VmRSS", 0)
        print(f"  {label:38} {pid:>7} {mb(before):>6.0f} MB {mb(kb['VmRSS']):>6.0f} MB {mb(kb['VmHWM']):>6.0f} MB  {cmdline(pid)}")
        side = "web" if label.startswith("web") else "worker"
        worst[side] = max(worst[side], mb(kb["VmHWM"]))
    base_mb = mb(base.get("VmRSS", 0))
    print(f"  baseline: idle `python -c 'import flask, rq'` RSS {base_mb:.0f} MB")
    print(
        f"  web peak {worst['web']:.0f} MB (target <= {TARGET_MB:.0f}, {worst['web'] / base_mb:.1f}x baseline)   "
        f"worker peak {worst['worker']:.0f} MB (target <= {TARGET_MB:.0f}, {worst['worker'] / base_mb:.1f}x baseline)"
    )
    ok = worst["web"] <= TARGET_MB and worst["worker"] <= TARGET_MB
    print("  PASS" if ok else "  MISS")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        sys.exit(130)
