"""The worker side of id-only notifications: fetch, map, read, drop, evaluate.

``fetch_and_evaluate(event_id)`` is an rq job. It reads the resource named in
a ``fetching`` event from the clinic's FHIR base URL (``tend clinics fhir``)
with the ``fhirpy`` sync client, or the attachment a note points to, with a
timeout and a few quick retries; rq's ``Retry`` and the sweeper cover longer
outages. The text is reduced to signals in ``from_wire`` and dropped; the event
row is completed in place and evaluated by the ordinary ``jobs.evaluate``.

The clinic's token is read from the environment variable named by
``token_env`` at fetch time and is only ever sent to URLs under the base URL.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import random
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ForbiddenError, OperationOutcome, ResourceNotFound
from sqlalchemy import select

from plugin import intake, jobs, metrics, runtime
from plugin.events import from_wire, signals_of
from plugin.fhir.mapping import Ignored, as_text, map_resource, readable
from plugin.fhir.notification import NotificationError, relative, validate_resource
from plugin.fhir.receive import SOURCE, enqueue_fetch, with_session_number
from plugin.signals import Signals
from plugin.store.db import utcnow
from plugin.store.models import Event, FhirEndpoint
from schemas.ehr import MAX_TEXT_CHARS

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0
QUICK_TRIES = 3
QUICK_BACKOFF_SECONDS = 0.5
MAX_JOB_ATTEMPTS = 6
MAX_ATTACHMENT_BYTES = 1024 * 1024
SWEEP_AFTER = timedelta(minutes=5)


class Transient(Exception):
    """Worth retrying later: timeouts, connection errors, 429 and 5xx."""


class Permanent(Exception):
    """Retrying will not help: not found, refused, not readable, misconfigured."""


class FhirReader:
    """Reads one clinic's FHIR server: resources with fhirpy, attachments with requests."""

    def __init__(self, base_url: str, token: str | None, timeout: float = TIMEOUT_SECONDS, tries: int = QUICK_TRIES) -> None:
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.tries = tries
        self.client = SyncFHIRClient(
            self.base, authorization=f"Bearer {token}" if token else None, requests_config={"timeout": timeout}
        )

    def _retrying(self, call):  # type: ignore[no-untyped-def]
        for attempt in range(self.tries):
            try:
                return call()
            except Transient:
                if attempt == self.tries - 1:
                    raise
                time.sleep(random.uniform(0, QUICK_BACKOFF_SECONDS * 2**attempt))
        raise AssertionError("unreachable")

    def read(self, reference: str) -> dict[str, Any]:
        kind, _, ident = reference.partition("/")

        def once() -> dict[str, Any]:
            try:
                found = self.client.get(kind, ident)
            except (requests.Timeout, requests.ConnectionError) as err:
                raise Transient(type(err).__name__) from None
            except ResourceNotFound:
                raise Permanent("not found (404/410)") from None
            except (AuthorizationError, ForbiddenError):
                raise Permanent("refused by the FHIR server (401/403): check the token") from None
            except OperationOutcome as err:
                # fhirpy keeps the body in the exception; never log it. 5xx/429 are worth a retry.
                raise Transient(f"server error ({type(err).__name__})") from None
            except ValueError:
                raise Permanent("the server answered with something that is not FHIR JSON") from None
            return dict(found) if found else {}

        return self._retrying(once)

    def within_base(self, url: str) -> str | None:
        absolute = urljoin(self.base + "/", url)
        return absolute if absolute.startswith(self.base + "/") else None

    def attachment(self, url: str) -> str:
        """The text behind an attachment url (a Binary resource or a text/* document)."""
        absolute = self.within_base(url)
        if absolute is None:
            raise Permanent("attachment url is outside the clinic's FHIR base URL; not fetched")
        headers = {"Accept": "application/fhir+json, text/plain;q=0.9, text/*;q=0.8"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"

        def once() -> str:
            try:
                response = requests.get(absolute, headers=headers, timeout=self.timeout, stream=True, allow_redirects=False)
            except (requests.Timeout, requests.ConnectionError) as err:
                raise Transient(type(err).__name__) from None
            with response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise Transient(f"HTTP {response.status_code}")
                if response.status_code != 200:
                    raise Permanent(f"HTTP {response.status_code}")
                body = response.raw.read(MAX_ATTACHMENT_BYTES + 1, decode_content=True)
                if len(body) > MAX_ATTACHMENT_BYTES:
                    raise Permanent("attachment larger than 1 MiB")
                content_type = (response.headers.get("content-type") or "").split(";")[0].strip().lower()
            if content_type in ("application/fhir+json", "application/json"):
                try:
                    import json

                    binary = json.loads(body)
                    data = base64.b64decode(binary.get("data", ""))
                except (ValueError, binascii.Error, AttributeError):
                    raise Permanent("attachment is not a readable Binary resource") from None
                if binary.get("resourceType") != "Binary" or not readable(binary.get("contentType")):
                    raise Permanent("attachment is not a text Binary")
                return as_text(data.decode("utf-8", errors="replace"), binary.get("contentType"))[:MAX_TEXT_CHARS]
            if not readable(content_type or None):
                raise Permanent(f"attachment content type {content_type[:40]} is not text")
            return as_text(body.decode("utf-8", errors="replace"), content_type)[:MAX_TEXT_CHARS]

        return self._retrying(once)


def _reader_for(endpoint: FhirEndpoint | None) -> FhirReader:
    if endpoint is None:
        raise Permanent("no FHIR base URL configured for this clinic (tend clinics fhir CLINIC --base-url URL)")
    token = None
    if endpoint.token_env:
        token = os.environ.get(endpoint.token_env)
        if not token:
            raise Permanent(f"environment variable {endpoint.token_env} (the FHIR token) is not set in the worker")
    return FhirReader(endpoint.base_url, token)


def _finish(event_id: int, status: str, reason: str) -> str:
    rt = runtime.current()
    with rt.db.session() as session:
        row = session.get(Event, event_id)
        if row is not None and row.status == "fetching":
            row.status = status
            row.error = reason[:300]
            if row.type == "fhir.pending":
                row.type = "fhir.ignored" if status == "ignored" else "fhir.failed"
            row.data = {k: v for k, v in (row.data or {}).items() if k != "fhir"}
    metrics.FHIR_FETCHES.labels(outcome=status).inc()
    log.warning("FHIR event %s %s: %s", event_id, status, reason)
    return status


def _clinic_of(event_id: int) -> str:
    with runtime.current().db.session() as session:
        return session.scalar(select(Event.clinic_id).where(Event.id == event_id)) or ""


def _complete_id_only(event_id: int, pending: dict[str, Any], reader: FhirReader) -> str | None:
    rt = runtime.current()
    reference = relative(pending.get("reference"))
    if reference is None:
        raise Permanent("the notification named no resource")
    resource = reader.read(reference)
    try:
        validate_resource(resource, pending.get("models", "R4B"))
    except NotificationError as err:
        raise Permanent(f"fetched resource is not valid FHIR ({'; '.join(map(str, err.errors))[:200]})") from None
    if f"{resource.get('resourceType')}/{resource.get('id')}" != reference:
        raise Permanent("the server returned a different resource than the one notified")
    mapped = map_resource(resource)
    del resource
    if isinstance(mapped, Ignored):
        return mapped.reason
    data = with_session_number(rt, _clinic_of(event_id), mapped.event_type, mapped.data)
    if mapped.attachment_url:
        data["text"] = reader.attachment(mapped.attachment_url)
    with rt.db.session() as session:
        row = session.scalar(select(Event).where(Event.id == event_id).with_for_update())
        if row is None or row.status != "fetching":
            return None
        event = from_wire(
            clinic_id=row.clinic_id, source=SOURCE, dedupe_key=row.dedupe_key, event_type=mapped.event_type,
            occurred_at=row.occurred_at, data=data,
        )
        data.pop("text", None)
        row.type = event.type
        row.therapist_ehr_id = event.therapist_ehr_id
        if event.client_ehr_id is not None:
            row.client_id = intake.client_id_for(session, row.clinic_id, event.client_ehr_id, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
        row.data = event.storable()
        row.status = "recorded"
    return None


def _complete_attachment(event_id: int, pending: dict[str, Any], reader: FhirReader) -> None:
    rt = runtime.current()
    text = reader.attachment(pending["attachment_url"])
    with rt.db.session() as session:
        row = session.scalar(select(Event).where(Event.id == event_id).with_for_update())
        if row is None or row.status != "fetching":
            return
        found = signals_of(row.type, {"text": text})
        del text
        data = {k: v for k, v in row.data.items() if k != "fhir"}
        merged = Signals(frozenset(data.get("signals", [])), frozenset(data.get("historical_signals", []))).merged(found)
        data["signals"], data["historical_signals"] = sorted(merged.current), sorted(merged.historical)
        row.data = data
        row.status = "recorded"


def fetch_and_evaluate(event_id: int) -> str:
    """Complete a ``fetching`` FHIR event from the clinic's server, then evaluate it."""
    rt = runtime.current()
    with rt.db.session() as session:
        row = session.get(Event, event_id)
        if row is None:
            return "missing"
        if row.status == "recorded":
            jobs.evaluate(event_id)
            return "evaluated"
        if row.status != "fetching":
            return "noop"
        pending = dict((row.data or {}).get("fhir") or {})
        pending["attempts"] = int(pending.get("attempts", 0)) + 1
        row.data = {**row.data, "fhir": pending}
        endpoint = session.get(FhirEndpoint, row.clinic_id)
        if endpoint is not None:
            session.expunge(endpoint)
    try:
        reader = _reader_for(endpoint)
        if row.type != "fhir.pending" and pending.get("attachment_url"):
            _complete_attachment(event_id, pending, reader)
        else:
            ignored = _complete_id_only(event_id, pending, reader)
            if ignored:
                return _finish(event_id, "ignored", ignored)
    except Permanent as err:
        return _finish(event_id, "failed", f"FHIR fetch failed: {err}")
    except Transient as err:
        metrics.FHIR_FETCHES.labels(outcome="retry").inc()
        if pending["attempts"] >= MAX_JOB_ATTEMPTS:
            return _finish(event_id, "failed", f"FHIR fetch failed after {pending['attempts']} attempts: {err}")
        log.info("FHIR fetch for event %s will be retried: %s", event_id, err)
        raise
    metrics.FHIR_FETCHES.labels(outcome="fetched").inc()
    jobs.evaluate(event_id)
    return "evaluated"


def sweep(now: datetime | None = None) -> int:
    """Re-enqueue fetches that a lost enqueue or a crashed worker left behind."""
    rt = runtime.current()
    now = now or utcnow()
    with rt.db.session() as session:
        stale = list(
            session.scalars(
                select(Event.id).where(Event.source == SOURCE, Event.status == "fetching", Event.received_at < now - SWEEP_AFTER).limit(200)
            )
        )
    for event_id in stale:
        enqueue_fetch(rt, event_id)
    return len(stale)
