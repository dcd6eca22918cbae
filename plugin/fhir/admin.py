"""Wiring a clinic's EHR: the FHIR endpoint, the FHIR token check, CDS Hooks issuers.

The reads and writes behind ``tend clinics fhir`` / ``tend clinics cds`` and
the FHIR webhook's token lookup, so that ``handlers/cli_ehr.py`` and
``handlers/fhir.py`` stay thin. Problems a user can fix raise
``plugin.admin.AdminError`` (one line).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from plugin.admin import AdminError
from plugin.fhir import gaps
from plugin.store.db import Database, utcnow
from plugin.store.models import CdsClient, Clinic, FhirEndpoint, FhirSubscription

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")
#: Tend's own settings live in TEND_* variables; of those, only TEND_FHIR_TOKEN_* may name a FHIR token.
RESERVED_PREFIX = "TEND_"
TOKEN_PREFIX = "TEND_FHIR_TOKEN_"


def token_env_problem(name: str) -> str | None:
    """Why ``name`` may not hold a FHIR bearer token (None if it may): never send Tend's own secrets."""
    if not _ENV_NAME.match(name):
        return f"--token-env must be an environment variable name like EHR_FHIR_TOKEN, got {name[:100]!r}"
    if name.startswith(RESERVED_PREFIX) and not name.startswith(TOKEN_PREFIX):
        return f"--token-env may not name a Tend setting ({RESERVED_PREFIX}*); use a name like EHR_FHIR_TOKEN or {TOKEN_PREFIX}CLINIC"
    return None


def check_url(value: str, what: str, *, allow_http_local: bool = True) -> str:
    parsed = urlparse(value)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if parsed.scheme != "https" and not (allow_http_local and parsed.scheme == "http" and local):
        raise AdminError(f"{what} must be an https URL (http only for localhost), got {value!r}")
    if not parsed.netloc:
        raise AdminError(f"{what} has no host: {value!r}")
    return value


def _clinic_exists(session: Session, clinic_id: str) -> None:
    if session.get(Clinic, clinic_id) is None:
        raise AdminError(f"no clinic {clinic_id!r}")


def fhir_token_hash(db: Database, clinic_id: str) -> tuple[bool, str | None]:
    """(the clinic exists, the hash of its FHIR notification token)."""
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        return (clinic is not None, clinic.fhir_token_hash if clinic else None)


def configure_fhir(
    db: Database, clinic_id: str, *, base_url: str | None = None, token_env: str | None = None, clear_gaps: bool = False
) -> dict[str, Any]:
    """Set the clinic's FHIR base URL (and token variable), optionally clear gaps; returns the clinic's FHIR state."""
    if token_env is not None:
        problem = token_env_problem(token_env)
        if problem:
            raise AdminError(problem)
        if base_url is None:
            raise AdminError("--token-env needs --base-url")
    if base_url is not None:
        base_url = check_url(base_url, "--base-url").rstrip("/")
    with db.session() as session:
        _clinic_exists(session, clinic_id)
        endpoint = session.get(FhirEndpoint, clinic_id)
        if base_url is not None:
            if endpoint is None:
                endpoint = FhirEndpoint(clinic_id=clinic_id, base_url=base_url, token_env=token_env, updated_at=utcnow())
                session.add(endpoint)
            else:
                endpoint.base_url, endpoint.token_env, endpoint.updated_at = base_url, token_env, utcnow()
        subscriptions = list(session.scalars(select(FhirSubscription).where(FhirSubscription.clinic_id == clinic_id)))
        if clear_gaps:
            for row in subscriptions:
                row.missing, row.missing_since = [], None
        return {
            "clinic_id": clinic_id,
            "webhook_path": f"/webhooks/{clinic_id}/fhir",
            "base_url": endpoint.base_url if endpoint else None,
            "token_env": endpoint.token_env if endpoint else None,
            "subscriptions": [
                {
                    "subscription": row.subscription, "status": row.status, "last_type": row.last_type,
                    "highest_event_number": row.highest_event_number, "missing_events": gaps.count(row.missing or []),
                    "last_seen_at": row.last_seen_at.isoformat(),
                }
                for row in subscriptions
            ],
        }


def allow_cds_issuer(db: Database, clinic_id: str, issuer: str, jwks_url: str | None) -> str:
    """Allow-list (or update) a CDS Hooks client's JWT issuer for one clinic; returns the JWKS URL."""
    with db.session() as session:
        _clinic_exists(session, clinic_id)
        if not jwks_url:
            raise AdminError("--jwks-url is required to add an issuer")
        jwks_url = check_url(jwks_url, "--jwks-url")
        existing = session.scalar(select(CdsClient).where(CdsClient.issuer == issuer))
        if existing is not None and existing.clinic_id != clinic_id:
            raise AdminError(f"{issuer!r} is already allow-listed for clinic {existing.clinic_id}; an issuer maps to one clinic")
        if existing is None:
            session.add(CdsClient(clinic_id=clinic_id, issuer=issuer, jwks_url=jwks_url, created_at=utcnow()))
        else:
            existing.jwks_url = jwks_url
    return jwks_url


def remove_cds_issuer(db: Database, clinic_id: str, issuer: str) -> None:
    with db.session() as session:
        _clinic_exists(session, clinic_id)
        existing = session.scalar(select(CdsClient).where(CdsClient.issuer == issuer))
        if existing is None or existing.clinic_id != clinic_id:
            raise AdminError(f"{issuer!r} is not allow-listed for {clinic_id}")
        session.execute(delete(CdsClient).where(CdsClient.id == existing.id))
