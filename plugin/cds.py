"""CDS Hooks 2.0: the service registry, cards from the rules engine, and feedback.

A hook call is evaluated synchronously (no queue): the client in context is
found by its pseudonym (``pseudonyms.client_key`` of the FHIR patient id), the
facts are built from the store as ``jobs.evaluate`` would for the client's most
recent note or message, and each client-facing decision becomes a card. Every
card is logged as a ``Suggestion`` (status ``delivered``, delivery attempt
``cds``) under an ``Event`` of source ``cds`` for the hook instance, so that
feedback lands in the suggestion log like a Slack button press and the
supervisor's review sees it. Inside the EHR the card sits in the client's
chart, so it may name the practice and the ladder step.

``python -m plugin.cds`` writes ``manifests/cds-services.json`` from the registry.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plugin import metrics
from plugin.apply import therapist_for
from plugin.context import client_facts, ledger_for, therapist_facts
from plugin.delivery import copy
from plugin.fhir.notification import reference_id
from plugin.pseudonyms import client_key
from plugin.rules import Decision, is_safety_rule
from plugin.rules.facts import default_facts
from plugin.runtime import Runtime
from plugin.store.db import utcnow
from plugin.store.models import CdsCard, Client, DeliveryAttempt, Event, Feedback, Suggestion

SOURCE = "cds"
MANIFEST = Path(__file__).resolve().parent.parent / "manifests" / "cds-services.json"
OVERRIDE_SYSTEM = "https://tend.example/cds/override-reason"
OVERRIDE_CODES = ("not-now", "not-helpful", "already-practising")
SUMMARY_MAX = 140
#: Events whose signals a card is based on: the client's latest note or message.
BASIS_TYPES = ("session_note.signed", "client_message.received")


@dataclass(frozen=True, slots=True)
class Service:
    id: str
    hook: str
    usage: str


#: The registry: one entry per hook (CDS Hooks gives each service exactly one hook).
#: ``tend-self-compassion`` also accepts the other two hooks, for EHRs that register one URL.
SERVICES: tuple[Service, ...] = (
    Service("tend-self-compassion", "encounter-start", "Call when a therapy session with the client starts."),
    Service("tend-self-compassion-discharge", "encounter-discharge", "Call when the session ends."),
    Service("tend-self-compassion-booking", "appointment-book", "Call when a session with the client is booked."),
)
PRIMARY = SERVICES[0].id
HOOKS_BY_SERVICE = {s.id: ({s.hook} if s.id != PRIMARY else {x.hook for x in SERVICES}) for s in SERVICES}


def discovery() -> dict[str, Any]:
    """The ``GET /cds-services`` document, generated from the registry."""
    return {
        "services": [
            {
                "hook": service.hook,
                "title": copy.text("cds.service.title"),
                "description": copy.text("cds.service.description"),
                "id": service.id,
                "usageRequirements": service.usage
                + " Tend reads its own store (no prefetch); register the service's JWT issuer with `tend clinics cds`.",
            }
            for service in SERVICES
        ]
    }


def write_manifest(path: Path = MANIFEST) -> None:
    path.write_text(json.dumps(discovery(), indent=2) + "\n", encoding="utf-8")


# --- cards ----------------------------------------------------------------------


def override_reasons() -> list[dict[str, str]]:
    return [{"code": code, "system": OVERRIDE_SYSTEM, "display": copy.text(f"cds.override_reasons.{code}")} for code in OVERRIDE_CODES]


def _practice(practice_id: str | None) -> Mapping[str, Any] | None:
    if not practice_id:
        return None
    entry = copy.entry(f"practices.{practice_id}")
    return entry if isinstance(entry, Mapping) else None


def card_for(decision: Decision, card_uuid: str) -> dict[str, Any]:
    """A CDS Hooks card for one decision, all text from the copy catalogue."""
    practice = _practice(decision.practice_id)
    lines: list[str] = []
    if decision.kind == "suggest" and decision.ladder_step:
        title = practice["title"] if practice else ""
        summary = copy.text("cds.summary.suggest", step=decision.ladder_step, title=title)
        lines.append(copy.text("cds.detail.suggest_lead"))
    else:
        summary = copy.text("cds.summary.practice_first")
        lines.append(copy.text("cds.detail.practice_first_lead"))
    if practice:
        lines.append(f"**{practice['title']}** ({practice.get('duration_minutes', 2)} min): {practice['body']}")
    if decision.kind == "suggest" and decision.ladder_step:
        lines.append(copy.text("cds.detail.ladder", step=decision.ladder_step))
    for label, section, key in (("cds.detail.analogy", "analogies", decision.analogy_id), ("cds.detail.framing", "framings", decision.framing_id)):
        if key:
            entry = copy.entry(f"{section}.{key}")
            lines.append(f"{copy.text(label)} *{entry['title']}*: {entry['body']}")
    if decision.why_key:
        try:
            lines.append(f"**{copy.text('cds.detail.why')}** {copy.text(decision.why_key)}")
        except copy.MissingCopy:
            pass
    lines.append(f"{copy.text('cds.detail.source')} [{decision.source}]({decision.source_url})")
    return {
        "uuid": card_uuid,
        "summary": summary[:SUMMARY_MAX],
        "detail": "\n\n".join(lines),
        "indicator": "info",
        "source": {"label": decision.source[:200] or "Tend", "url": decision.source_url},
        "overrideReasons": override_reasons(),
    }


def _card_decisions(decisions: list[Decision]) -> list[Decision]:
    """Client-facing suggestions and the practice-first nudge; nothing at all after a safety decision."""
    if any(is_safety_rule(d.rule_id) for d in decisions):
        return []
    return [
        d for d in decisions
        if d.message_key and ((d.kind == "suggest" and d.audience == "client") or (d.kind == "nudge" and d.waiting_rule_id))
    ]


def _client(session: Session, rt: Runtime, clinic_id: str, patient_id: str) -> Client | None:
    key = client_key(rt.settings.pseudonym_key, clinic_id, patient_id)
    return session.scalar(select(Client).where(Client.clinic_id == clinic_id, Client.key_hash == key))


def _other_client_key(instance: str, client_id: int) -> str:
    return f"{instance}#{client_id}"


def _instance_event(session: Session, clinic_id: str, instance: str, client_id: int) -> int | None:
    """The event logged for this hook instance about this client, if any."""
    return session.scalar(
        select(Event.id)
        .where(
            Event.clinic_id == clinic_id, Event.source == SOURCE, Event.client_id == client_id,
            Event.dedupe_key.in_([instance, _other_client_key(instance, client_id)]),
        )
        .order_by(Event.id)
        .limit(1)
    )


def _stored_cards(session: Session, event_id: int) -> list[dict[str, Any]]:
    cards = []
    rows = session.execute(
        select(CdsCard.card_uuid, Suggestion).join(Suggestion, Suggestion.id == CdsCard.suggestion_id).where(Suggestion.event_id == event_id).order_by(Suggestion.id)
    )
    for card_uuid, row in rows:
        explanation = row.explanation or {}
        decision = Decision(
            rule_id=row.rule_id, rule_version=row.rule_version, kind=row.kind, audience=row.audience, timing="now",
            message_key=row.message_key, practice_id=row.practice_id, ladder_step=row.ladder_step, analogy_id=row.analogy_id,
            framing_id=row.framing_id, conditions=(), reasons=tuple(explanation.get("reasons", [])), source=explanation.get("source", ""),
            source_url=explanation.get("source_url", ""), why_key=explanation.get("why_key", ""),
        )
        cards.append(card_for(decision, card_uuid))
    return cards


def cards(rt: Runtime, clinic_id: str, request: Mapping[str, Any], now: datetime | None = None) -> list[dict[str, Any]]:
    """Evaluate the rules for the client in context and log every card returned."""
    now = now or utcnow()
    hook, instance, context = request["hook"], request["hookInstance"], request["context"]
    therapist_ehr_id = reference_id(context["userId"], "Practitioner")
    patient_id = reference_id(context["patientId"], "Patient") or context["patientId"]
    if therapist_ehr_id is None:
        return []  # a PractitionerRole or another kind of user: no therapist to attribute the card to
    rules = rt.rules_for(clinic_id)  # before our session: it opens its own (SQLite takes the write lock at BEGIN)
    with rt.db.session() as session:
        client = _client(session, rt, clinic_id, patient_id)
        if client is None:
            return []
        existing = _instance_event(session, clinic_id, instance, client.id)
        if existing is not None:
            return _stored_cards(session, existing)
        # A hook instance is one call about one patient; if it comes again about another, that patient's cards are
        # evaluated afresh and logged under their own key, never the first patient's cards returned.
        taken = session.scalar(select(Event.id).where(Event.clinic_id == clinic_id, Event.source == SOURCE, Event.dedupe_key == instance))
        dedupe_key = instance if taken is None else _other_client_key(instance, client.id)
        basis = session.scalar(
            select(Event)
            .where(Event.client_id == client.id, Event.clinic_id == clinic_id, Event.type.in_(BASIS_TYPES), Event.status == "evaluated")
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(1)
        )
        if basis is None:
            return []
        therapist = therapist_for(session, clinic_id, therapist_ehr_id)
        ledger = ledger_for(session, therapist, now)
        facts = default_facts()
        facts["event"] = {"type": basis.type, "time": now.isoformat()}
        facts["therapist"] = therapist_facts(session, therapist, now, list(basis.data.get("therapist_signals", [])), ledger)
        facts["client"] = client_facts(session, client, basis, therapist, now)
        chosen = _card_decisions(rules.evaluate(facts))
        event = Event(
            clinic_id=clinic_id, source=SOURCE, dedupe_key=dedupe_key, type=f"cds.{hook}", occurred_at=now, received_at=now,
            therapist_ehr_id=therapist_ehr_id, client_id=client.id, data={"hook": hook, "basis_event_id": basis.id},
            status="evaluated", evaluated_at=now,
        )
        try:
            with session.begin_nested():
                session.add(event)
                session.flush()
        except IntegrityError:
            # The same call arrived twice at once and the other one logged it first: answer with its cards.
            found = _instance_event(session, clinic_id, instance, client.id)
            return _stored_cards(session, found) if found is not None else []
        out = []
        for decision in chosen:
            row = Suggestion(
                clinic_id=clinic_id, event_id=event.id, therapist_id=therapist.id, client_id=client.id, rule_id=decision.rule_id,
                rule_version=decision.rule_version, kind=decision.kind, audience=decision.audience, message_key=decision.message_key,
                practice_id=decision.practice_id, ladder_step=decision.ladder_step, analogy_id=decision.analogy_id,
                framing_id=decision.framing_id, status="delivered", deliver_at=None, expires_at=None,
                timing_reason=f"shown in the EHR ({hook})", delivered_at=now, created_at=now,
                explanation={
                    "conditions": [[name, value] for name, value in decision.conditions],
                    "reasons": list(decision.reasons), "source": decision.source, "source_url": decision.source_url,
                    "timing": "now", "why_key": decision.why_key, "channel": SOURCE, "facts": facts,
                },
            )
            session.add(row)
            session.flush()
            card_uuid = str(uuid.uuid4())
            session.add(CdsCard(clinic_id=clinic_id, card_uuid=card_uuid, suggestion_id=row.id, hook_instance=instance, created_at=now))
            session.add(DeliveryAttempt(suggestion_id=row.id, at=now, outcome="delivered", detail=SOURCE))
            metrics.DECISIONS.labels(rule=decision.rule_id, kind=decision.kind).inc()
            metrics.DELIVERIES.labels(outcome="delivered").inc()
            out.append(card_for(decision, card_uuid))
        return out


# --- feedback -------------------------------------------------------------------


def feedback_value(item: Mapping[str, Any]) -> str:
    """``accepted``, or the override reason as a feedback value (``not_now``, ...), else ``overridden``."""
    if item["outcome"] == "accepted":
        return "accepted"
    reason = ((item.get("overrideReason") or {}).get("reason") or {})
    if reason.get("code") in OVERRIDE_CODES and reason.get("system", OVERRIDE_SYSTEM) == OVERRIDE_SYSTEM:
        return reason["code"].replace("-", "_")
    return "overridden"


def record_feedback(rt: Runtime, clinic_id: str, items: list[Mapping[str, Any]], now: datetime | None = None) -> dict[str, int]:
    """Feedback rows for this clinic's cards; a repeat of the same answer is recorded once."""
    now = now or utcnow()
    counts = {"recorded": 0, "duplicate": 0, "unknown_card": 0}
    for item in items:
        value = feedback_value(item)
        with rt.db.session() as session:
            suggestion_id = session.scalar(
                select(CdsCard.suggestion_id).where(CdsCard.card_uuid == item["card"], CdsCard.clinic_id == clinic_id)
            )
            if suggestion_id is None:
                counts["unknown_card"] += 1
                continue
            seen = session.scalar(select(Feedback.id).where(Feedback.suggestion_id == suggestion_id, Feedback.feedback == value))
            if seen is not None:
                counts["duplicate"] += 1
                continue
            try:
                with session.begin_nested():
                    session.add(Feedback(clinic_id=clinic_id, suggestion_id=suggestion_id, feedback=value, source=SOURCE, created_at=now))
                counts["recorded"] += 1
            except IntegrityError:
                counts["duplicate"] += 1
    return counts


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else MANIFEST
    write_manifest(target)
    print(f"wrote {target}")
