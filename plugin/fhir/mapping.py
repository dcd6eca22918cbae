"""From a validated FHIR resource to Tend's §3.2 event (type and data).

| FHIR | Tend |
|---|---|
| DocumentReference, status current, docStatus final/amended, LOINC progress or mental-health note type | ``session_note.signed`` |
| Appointment booked / arrived, checked-in, fulfilled / cancelled, noshow, entered-in-error | ``appointment.booked`` / ``.updated`` / ``.cancelled`` |
| Communication completed, sent by a Patient to a Practitioner | ``client_message.received`` |

The therapist is the first ``Practitioner`` reference (DocumentReference.author,
Appointment.participant.actor, Communication.recipient) and the client the
``Patient`` reference (subject, participant.actor, sender); Tend keeps their
logical ids. The result is checked with the §3.2 marshmallow schema. Text is
read from a base64 attachment (or ``contentString``); an attachment given only
by ``url`` is left for the worker to fetch. A resource labelled ``PSYTHPN``
(meta.security or securityLabel) has no text read or fetched at all.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from plugin.events import DO_NOT_READ
from plugin.fhir.notification import reference_id
from schemas.ehr import EVENT_SCHEMAS, MAX_TEXT_CHARS

LOINC = "http://loinc.org"
#: Progress-note and mental-health note types (C-CDA ProgressNoteDocumentTypeCode,
#: US Behavioral Health Profiles mental-health note types).
NOTE_TYPES = frozenset(
    {
        "11506-3",  # Progress note
        "34904-3",  # Mental health Progress note
        "28627-8",  # Psychiatry Progress note
        "11510-5",  # Psychology Progress note
        "28656-7",  # Social work Progress note
        "34131-3",  # Outpatient Progress note
    }
)
SIGNED_DOC_STATUSES = frozenset({"final", "amended", "corrected", "appended"})  # the last two: R5's kinds of amended
APPOINTMENT_EVENTS = {
    "booked": ("appointment.booked", "booked"),
    "arrived": ("appointment.updated", "arrived"),
    "checked-in": ("appointment.updated", "arrived"),
    "fulfilled": ("appointment.updated", "fulfilled"),
    "cancelled": ("appointment.cancelled", "cancelled"),
    "noshow": ("appointment.cancelled", "noshow"),
    "entered-in-error": ("appointment.cancelled", "cancelled"),
}
READABLE_TYPES = ("text/plain", "text/markdown", "text/html", "text/xhtml", "application/xhtml+xml")
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class Mapped:
    event_type: str
    data: dict[str, Any] = field(repr=False)  # validated §3.2 data; may hold "text" (read once, never stored)
    attachment_url: str | None = None  # text still to be fetched by the worker


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str  # names fields only, never values from the resource (it reaches the HTTP answer, Event.error and logs)


def sensitive(resource: Mapping[str, Any]) -> bool:
    """Labelled psychotherapy notes (PSYTHPN) in meta.security or securityLabel."""
    labels = list((resource.get("meta") or {}).get("security", []))
    for concept in resource.get("securityLabel", []) or []:
        labels.extend(concept.get("coding", []))
    return any(label.get("code") in DO_NOT_READ for label in labels)


def _refs(items: Iterable[Mapping[str, Any] | None]) -> list[str]:
    return [item.get("reference", "") for item in items if item]


def _first(refs: Iterable[str], resource_type: str) -> str | None:
    for ref in refs:
        found = reference_id(ref, resource_type)
        if found:
            return found
    return None


def _decode(attachment: Mapping[str, Any]) -> str | None:
    try:
        raw = base64.b64decode(attachment["data"], validate=False)
    except (binascii.Error, ValueError):
        return None
    return as_text(raw.decode("utf-8", errors="replace"), attachment.get("contentType"))


def as_text(value: str, content_type: str | None) -> str:
    if content_type and ("html" in content_type or "xml" in content_type):
        value = html.unescape(_TAGS.sub(" ", value))
    return value


def readable(content_type: str | None) -> bool:
    return content_type is None or content_type.split(";")[0].strip().lower() in READABLE_TYPES


def _attachments_text(attachments: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(text decoded from inline data, url of the first readable attachment without data)."""
    texts, url = [], None
    for attachment in attachments:
        if not readable(attachment.get("contentType")):
            continue
        if attachment.get("data"):
            decoded = _decode(attachment)
            if decoded:
                texts.append(decoded)
        elif attachment.get("url") and url is None:
            url = attachment["url"]
    text = "\n".join(texts)[:MAX_TEXT_CHARS] if texts else None
    return text, url


def _checked(event_type: str, data: dict[str, Any], attachment_url: str | None = None) -> Mapped | Ignored:
    try:
        loaded = EVENT_SCHEMAS[event_type]().load(data)
    except ValidationError as err:
        return Ignored(f"cannot map to {event_type}: {', '.join(sorted(err.messages))} missing or invalid")
    return Mapped(event_type, loaded, attachment_url)


def document_reference(resource: Mapping[str, Any]) -> Mapped | Ignored:
    if resource.get("status") not in (None, "current"):
        return Ignored("DocumentReference status is not current")
    if resource.get("docStatus") not in SIGNED_DOC_STATUSES:
        return Ignored("DocumentReference docStatus is not final or amended")
    codes = {c.get("code") for c in (resource.get("type") or {}).get("coding", []) if c.get("system") == LOINC}
    if not codes & NOTE_TYPES:
        return Ignored("DocumentReference type is not a LOINC progress or mental-health note")
    therapist = _first(_refs(resource.get("author", [])), "Practitioner")
    client = reference_id((resource.get("subject") or {}).get("reference"), "Patient")
    if therapist is None or client is None:
        return Ignored("DocumentReference needs a Practitioner author and a Patient subject")
    context = resource.get("context")
    period = (context.get("period") if isinstance(context, dict) else None) or resource.get("period") or {}
    data: dict[str, Any] = {
        "note_id": resource.get("id"),
        "therapist_id": therapist,
        "client_id": client,
        "session_start": period.get("start") or resource.get("date"),
    }
    if period.get("end"):
        data["session_end"] = period["end"]
    url = None
    if sensitive(resource):
        data["sensitivity"] = ["PSYTHPN"]
    else:
        text, url = _attachments_text(c.get("attachment") or {} for c in resource.get("content", []))
        if text:
            data["text"] = text
            url = None
    return _checked("session_note.signed", data, url)


def appointment(resource: Mapping[str, Any]) -> Mapped | Ignored:
    mapped = APPOINTMENT_EVENTS.get(resource.get("status", ""))
    if mapped is None:
        return Ignored("Appointment status is not booked, under way, done or cancelled")
    event_type, status = mapped
    actors = _refs(p.get("actor") for p in resource.get("participant", []))
    subjects = _refs([resource.get("subject")])
    therapist, client = _first(actors, "Practitioner"), _first([*subjects, *actors], "Patient")
    if therapist is None or client is None:
        return Ignored("Appointment needs a Practitioner and a Patient participant")
    data = {
        "appointment_id": resource.get("id"),
        "therapist_id": therapist,
        "client_id": client,
        "start": resource.get("start"),
        "end": resource.get("end"),
        "status": status,
    }
    return _checked(event_type, data)


def communication(resource: Mapping[str, Any]) -> Mapped | Ignored:
    if resource.get("status") != "completed":
        return Ignored("Communication status is not completed")
    client = reference_id((resource.get("sender") or {}).get("reference"), "Patient")
    if client is None:
        return Ignored("Communication is not from a Patient (sent by the practice?)")
    therapist = _first(_refs(resource.get("recipient", [])), "Practitioner")
    if therapist is None:
        return Ignored("Communication needs a Practitioner recipient")
    data: dict[str, Any] = {
        "message_id": resource.get("id"),
        "therapist_id": therapist,
        "client_id": client,
        "sent_at": resource.get("sent") or resource.get("received"),
    }
    url = None
    if not sensitive(resource):
        strings = [p["contentString"] for p in resource.get("payload", []) if p.get("contentString")]
        text, url = _attachments_text(p["contentAttachment"] for p in resource.get("payload", []) if p.get("contentAttachment"))
        joined = "\n".join([*strings, *([text] if text else [])])
        if joined:
            data["text"] = joined[:MAX_TEXT_CHARS]
            url = None
    return _checked("client_message.received", data, url)


MAPPERS = {"DocumentReference": document_reference, "Appointment": appointment, "Communication": communication}


def map_resource(resource: Mapping[str, Any]) -> Mapped | Ignored:
    mapper = MAPPERS.get(resource.get("resourceType", ""))
    if mapper is None:
        return Ignored("resourceType is not one Tend reads")
    if not resource.get("id"):
        return Ignored("resource has no id")
    return mapper(resource)
