"""``tend demo``: send a realistic, signed clinic day to a running ``tend dev``.

The day's content is data (``manifests/demo-day.yaml``); this module only turns
it into §3.2 webhook bodies with times relative to now, signs them with the
demo clinic's secret (Standard Webhooks) and posts them.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
import yaml
from standardwebhooks import Webhook

from plugin import config

DEMO_DAY = config.PROJECT_ROOT / "manifests" / "demo-day.yaml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Sent:
    event_type: str
    summary: str
    status: int
    answer: str


def _hhmm(value: str) -> time:
    return time.fromisoformat(value)


def daytime_zones(day: dict[str, Any], now: datetime) -> list[str]:
    """The preferred zones where it is daytime now (at least one: the nearest to midday)."""
    start, end = (_hhmm(v) for v in day["daytime"])
    zones = [z for z in day["zones"] if start <= now.astimezone(ZoneInfo(z)).time() <= end]
    if zones:
        return zones
    return [min(day["zones"], key=lambda z: abs(now.astimezone(ZoneInfo(z)).hour - 13))]


def events_for(day: dict[str, Any], now: datetime) -> list[tuple[str, datetime, dict[str, Any], str]]:
    """(type, occurred_at, data, one-line summary) for the whole day, in sending order."""
    zones = daytime_zones(day, now)
    hours = {d: list(day["working_hours"]) for d in DAYS}
    at = lambda minutes: now + timedelta(minutes=minutes)  # noqa: E731
    out: list[tuple[str, datetime, dict[str, Any], str]] = []
    zone_of: dict[str, str] = {}
    for i, t in enumerate(day["therapists"]):
        zone = zones[i % len(zones)]
        zone_of[t["id"]] = zone
        data = {"therapist_id": t["id"], "slack_user_id": t["slack_user_id"], "display_name": t["display_name"],
                "timezone": zone, "working_hours": hours, "self_compassion_practice": t["self_compassion_practice"]}
        out.append(("therapist.upserted", at(-480), data, f"{t['display_name']} ({zone}, practice: {t['self_compassion_practice']})"))
    for h in day.get("history", []):
        start = at(h["start"])
        data = {"note_id": h["id"], "therapist_id": h["therapist"], "client_id": h["client"],
                "session_start": start.isoformat(), "session_end": (start + timedelta(minutes=50)).isoformat(),
                **{k: h[k] for k in ("session_number", "client_age", "alliance", "phase", "tags", "text") if k in h}}
        out.append(("session_note.signed", at(h["at"]), data, f"earlier note {h['id']} for {h['client']}"))
    appointments: dict[str, dict[str, Any]] = {}
    for a in day["appointments"]:
        start = at(a["start"])
        data = {"appointment_id": a["id"], "therapist_id": a["therapist"], "client_id": a["client"],
                "start": start.isoformat(), "end": (start + timedelta(minutes=a["minutes"])).isoformat(), "status": "booked"}
        appointments[a["id"]] = data
        local = start.astimezone(ZoneInfo(zone_of[a["therapist"]])).strftime("%H:%M")
        out.append(("appointment.booked", at(-470), data, f"{a['id']} {a['therapist']} with {a['client']} at {local}"))
    timed: list[tuple[str, datetime, dict[str, Any], str]] = []
    for n in day["notes"]:
        appt = appointments[n["session"]]
        data = {"note_id": n["id"], "therapist_id": appt["therapist_id"], "client_id": appt["client_id"],
                "session_start": appt["start"], "session_end": appt["end"],
                **{k: n[k] for k in ("session_number", "client_age", "alliance", "phase", "tags", "text") if k in n}}
        timed.append(("session_note.signed", at(n["at"]), data, f"note {n['id']} for {appt['client_id']} (session {n.get('session_number', '?')})"))
    for m in day.get("messages", []):
        data = {"message_id": m["id"], "therapist_id": m["therapist"], "client_id": m["client"],
                "sent_at": at(m["at"]).isoformat(), "text": m["text"]}
        timed.append(("client_message.received", at(m["at"]), data, f"portal message {m['id']} from {m['client']}"))
    out.extend(sorted(timed, key=lambda e: e[1]))
    return out


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def send_day(base_url: str, clinic_id: str, secret: str, day: dict[str, Any], now: datetime | None = None) -> list[Sent]:
    now = now or datetime.now(timezone.utc)
    url = f"{base_url.rstrip('/')}/webhooks/{clinic_id}/ehr"
    signer = Webhook(secret)
    run = uuid.uuid4().hex[:8]
    sent = []
    for i, (event_type, occurred_at, data, summary) in enumerate(events_for(day, now)):
        body = json.dumps({"type": event_type, "occurred_at": occurred_at.isoformat(), "data": data}).encode()
        msg_id = f"msg_demo_{run}_{i:03d}"
        stamp = datetime.now(timezone.utc)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": signer.sign(msg_id, stamp, body.decode()),
        }
        status, answer = _post(url, body, headers)
        sent.append(Sent(event_type, summary, status, answer))
    return sent


def _demo_file(instance: str | None) -> Path:
    base = Path(instance or os.environ.get("TEND_INSTANCE_PATH") or config.DEFAULT_INSTANCE)
    return base / "demo-clinic.json"


@click.command("demo")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="Where `tend dev` is listening.")
@click.option("--clinic", "clinic_id", default="demo", show_default=True)
@click.option("--instance", type=click.Path(file_okay=False), help="Instance folder holding demo-clinic.json (default: TEND_INSTANCE_PATH or ./instance).")
@click.option("--day", "day_file", type=click.Path(exists=True, dir_okay=False), default=str(DEMO_DAY), show_default=False,
              help="The clinic day to send (default: manifests/demo-day.yaml).")
def demo(url: str, clinic_id: str, instance: str | None, day_file: str) -> None:
    """Send a realistic signed clinic day to a running `tend dev` and watch nudges arrive."""
    path = _demo_file(instance)
    try:
        details = json.loads(path.read_text())
    except (OSError, ValueError):
        raise click.ClickException(f"cannot read {path}: start `tend dev` first (it writes the demo clinic's secret there)") from None
    if details.get("clinic_id") != clinic_id:
        raise click.ClickException(f"{path} holds clinic {details.get('clinic_id')!r}, not {clinic_id!r}")
    day = yaml.safe_load(Path(day_file).read_text(encoding="utf-8"))
    try:
        sent = send_day(url, clinic_id, details["webhook_secret"], day)
    except urllib.error.URLError as err:
        raise click.ClickException(f"could not reach {url} ({err.reason}): is `tend dev` running?") from None
    failed = [s for s in sent if s.status not in (200, 202)]
    for s in sent:
        click.echo(f"{s.status}  {s.event_type:<24} {s.summary}")
    click.echo(f"sent {len(sent)} events to {url} for clinic {clinic_id}; {len(sent) - len(failed)} accepted")
    if failed:
        for s in failed:
            click.echo(f"refused ({s.status}): {s.event_type} {s.summary}: {s.answer[:300]}", err=True)
        raise SystemExit(1)
    click.echo("Watch the `tend dev` console: the first nudges arrive within a minute, the rest at their planned times.")
