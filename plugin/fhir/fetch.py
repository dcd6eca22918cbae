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
import json
import logging
import os
import posixpath
import random
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ForbiddenError, OperationOutcome, ResourceNotFound
from sqlalchemy import select

from plugin import intake, jobs, metrics, runtime
from plugin.events import signals_of
from plugin.fhir.admin import token_env_problem
from plugin.fhir.mapping import Ignored, as_text, map_resource, readable
from plugin.fhir.notification import NotificationError, relative, validate_resource
from plugin.fhir.receive import PENDING_TYPE, SOURCE, UNREAD, enqueue_fetch, read_event, with_session_number
from plugin.signals import ExtractionError, Signals
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
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


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
        if not _FHIR_ID.match(ident) or ident in (".", ".."):
            raise Permanent("the notified resource id is not a FHIR id")

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
        """``url`` made absolute if it lies under the base URL (the token goes nowhere else), else None.

        Compared after decoding: same scheme and host, no ``..`` segment (``%2e%2e``
        included), no backslash, and the normalised path under the base path.
        """
        absolute = urljoin(self.base + "/", url)
        base, target = urlsplit(self.base + "/"), urlsplit(absolute)
        if (target.scheme.lower(), target.netloc.lower()) != (base.scheme.lower(), base.netloc.lower()):
            return None
        path = target.path
        for _ in range(3):  # %252e%252e decodes to %2e%2e, then to ..
            decoded = unquote(path)
            if decoded == path:
                break
            path = decoded
        if "%" in path or "\\" in path or ".." in path.split("/"):
            return None
        base_path = posixpath.normpath(unquote(base.path)).rstrip("/") + "/"
        if not (posixpath.normpath(path) + "/").startswith(base_path) or posixpath.normpath(path) + "/" == base_path:
            return None
        return absolute

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
                    binary = json.loads(body)
                    data = base64.b64decode(binary.get("data", ""))
                except (ValueError, binascii.Error, AttributeError):
                    raise Permanent("attachment is not a readable Binary resource") from None
                if binary.get("resourceType") != "Binary" or not readable(binary.get("contentType")):
                    raise Permanent("attachment is not a text Binary")
                return as_text(data.decode("utf-8", errors="replace"), binary.get("contentType"))[:MAX_TEXT_CHARS]
            if not readable(content_type or None):
                raise Permanent("attachment content type is not text")
            return as_text(body.decode("utf-8", errors="replace"), content_type)[:MAX_TEXT_CHARS]

        return self._retrying(once)


def _reader_for(endpoint: FhirEndpoint | None) -> FhirReader:
    if endpoint is None:
        raise Permanent("no FHIR base URL configured for this clinic (tend clinics fhir CLINIC --base-url URL)")
    token = None
    if endpoint.token_env:
        if token_env_problem(endpoint.token_env):
            # Checked by `tend clinics fhir` too; a row written before that check must not send Tend's own secrets.
            raise Permanent("the clinic's token variable is not allowed (a TEND_ setting); set it again with tend clinics fhir --token-env")
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


@dataclass(frozen=True, slots=True)
class _Pending:
    """What the worker needs of a ``fetching`` row, read before any fetch (no transaction is held while fetching)."""

    event_id: int
    clinic_id: str
    type: str
    dedupe_key: str
    occurred_at: datetime
    fhir: dict[str, Any]


def _locked_fetching(session, event_id: int) -> Event | None:  # type: ignore[no-untyped-def]
    """The row, locked, if it is still waiting for this fetch (another worker may have completed it meanwhile)."""
    row = session.scalar(select(Event).where(Event.id == event_id).with_for_update())
    return row if row is not None and row.status == "fetching" else None


def _complete_id_only(pending: _Pending, reader: FhirReader) -> str | None:
    rt = runtime.current()
    reference = relative(pending.fhir.get("reference"))
    if reference is None:
        raise Permanent("the notification named no resource")
    resource = reader.read(reference)
    try:
        validate_resource(resource, pending.fhir.get("models", "R4B"))
    except NotificationError as err:
        raise Permanent(f"fetched resource is not valid FHIR ({'; '.join(map(str, err.errors))[:200]})") from None
    if f"{resource.get('resourceType')}/{resource.get('id')}" != reference:
        raise Permanent("the server returned a different resource than the one notified")
    mapped = map_resource(resource)
    del resource
    if isinstance(mapped, Ignored):
        return mapped.reason
    data = with_session_number(rt, pending.clinic_id, mapped.event_type, mapped.data)
    if mapped.attachment_url:
        data["text"] = reader.attachment(mapped.attachment_url)
    # Read the text for signals before taking the row lock: extraction can be slow and must not block writers.
    event = read_event(
        clinic_id=pending.clinic_id, dedupe_key=pending.dedupe_key, event_type=mapped.event_type, occurred_at=pending.occurred_at, data=data
    )
    data.pop("text", None)
    mapped.data.pop("text", None)
    with rt.db.session() as session:
        row = _locked_fetching(session, pending.event_id)
        if row is None:
            return None
        row.type = event.type
        row.therapist_ehr_id = event.therapist_ehr_id
        if event.client_ehr_id is not None:
            row.client_id = intake.client_id_for(session, row.clinic_id, event.client_ehr_id, pseudonym_key=rt.settings.pseudonym_key, box=rt.box)
        row.data = event.storable()
        row.status = "recorded"
    return None


def _complete_attachment(pending: _Pending, reader: FhirReader) -> None:
    rt = runtime.current()
    text = reader.attachment(pending.fhir["attachment_url"])
    unread = False
    try:
        found = signals_of(pending.type, {"text": text})
    except ExtractionError:
        log.warning("FHIR event %s: signal extraction failed; recorded without the attachment's signals", pending.event_id)
        found, unread = Signals(), True
    del text
    with rt.db.session() as session:
        row = _locked_fetching(session, pending.event_id)
        if row is None:
            return
        data = {k: v for k, v in row.data.items() if k != "fhir"}
        merged = Signals(frozenset(data.get("signals", [])), frozenset(data.get("historical_signals", []))).merged(found)
        data["signals"], data["historical_signals"] = sorted(merged.current), sorted(merged.historical)
        if unread:
            data[UNREAD] = True
        row.data = data
        row.status = "recorded"


def _start(event_id: int) -> tuple[str, _Pending | None, FhirEndpoint | None]:
    """The row's status; for a ``fetching`` row, its attempt counted, what to fetch and where from."""
    with runtime.current().db.session() as session:
        row = session.get(Event, event_id)
        if row is None:
            return "missing", None, None
        if row.status != "fetching":
            return row.status, None, None
        fhir = dict((row.data or {}).get("fhir") or {})
        fhir["attempts"] = int(fhir.get("attempts", 0)) + 1
        row.data = {**row.data, "fhir": fhir}
        endpoint = session.get(FhirEndpoint, row.clinic_id)
        if endpoint is not None:
            session.expunge(endpoint)
        return "fetching", _Pending(event_id, row.clinic_id, row.type, row.dedupe_key, row.occurred_at, fhir), endpoint


def fetch_and_evaluate(event_id: int) -> str:
    """Complete a ``fetching`` FHIR event from the clinic's server, then evaluate it.

    No transaction is open while the worker fetches, reads text or evaluates:
    ``jobs.evaluate`` opens its own session (on SQLite, BEGIN IMMEDIATE would
    wait for ours), and the row lock is taken only to write the result.
    """
    status, pending, endpoint = _start(event_id)
    if status == "missing":
        return "missing"
    if status == "recorded":
        jobs.evaluate(event_id)
        return "evaluated"
    if status != "fetching" or pending is None:
        return "noop"
    try:
        reader = _reader_for(endpoint)
        if pending.type != PENDING_TYPE and pending.fhir.get("attachment_url"):
            _complete_attachment(pending, reader)
        else:
            ignored = _complete_id_only(pending, reader)
            if ignored:
                return _finish(event_id, "ignored", ignored)
    except Permanent as err:
        return _finish(event_id, "failed", f"FHIR fetch failed: {err}")
    except Transient as err:
        metrics.FHIR_FETCHES.labels(outcome="retry").inc()
        if pending.fhir["attempts"] >= MAX_JOB_ATTEMPTS:
            return _finish(event_id, "failed", f"FHIR fetch failed after {pending.fhir['attempts']} attempts: {err}")
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
