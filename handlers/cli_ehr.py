"""``tend clinics fhir`` and ``tend clinics cds``: wiring a clinic's EHR (issue 5).

Registered on the ``clinics`` group by an import at the end of ``handlers/cli.py``.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import click
from sqlalchemy import delete, select

from handlers.cli import clinics, one_line_errors, runtime
from plugin import admin
from plugin.fhir import gaps
from plugin.store.db import utcnow
from plugin.store.models import CdsClient, Clinic, FhirEndpoint, FhirSubscription

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")


def _url(value: str, what: str, *, allow_http_local: bool = True) -> str:
    parsed = urlparse(value)
    local = parsed.hostname in ("127.0.0.1", "localhost", "::1")
    if parsed.scheme != "https" and not (allow_http_local and parsed.scheme == "http" and local):
        raise admin.AdminError(f"{what} must be an https URL (http only for localhost), got {value!r}")
    if not parsed.netloc:
        raise admin.AdminError(f"{what} has no host: {value!r}")
    return value.rstrip("/") if what == "--base-url" else value


def _clinic_exists(session, clinic_id: str) -> None:  # type: ignore[no-untyped-def]
    if session.get(Clinic, clinic_id) is None:
        raise admin.AdminError(f"no clinic {clinic_id!r}")


@clinics.command("fhir")
@click.argument("clinic_id")
@click.option("--base-url", help="The clinic's FHIR base URL; id-only notifications are fetched from it.")
@click.option("--token-env", help="Environment variable holding the bearer token for that server (read by the worker; never stored).")
@click.option("--clear-gaps", is_flag=True, help="Forget missing event numbers once the EHR has re-sent or you have reconciled them.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@one_line_errors
def clinics_fhir(clinic_id: str, base_url: str | None, token_env: str | None, clear_gaps: bool, as_json: bool) -> None:
    """Where id-only FHIR resources are fetched from; shows subscriptions and gaps."""
    if token_env is not None and not _ENV_NAME.match(token_env):
        raise admin.AdminError(f"--token-env must be an environment variable name like EHR_FHIR_TOKEN, got {token_env!r}")
    rt = runtime()
    with rt.db.session() as session:
        _clinic_exists(session, clinic_id)
        endpoint = session.get(FhirEndpoint, clinic_id)
        if base_url is not None:
            base_url = _url(base_url, "--base-url")
            if endpoint is None:
                endpoint = FhirEndpoint(clinic_id=clinic_id, base_url=base_url, token_env=token_env, updated_at=utcnow())
                session.add(endpoint)
            else:
                endpoint.base_url, endpoint.token_env, endpoint.updated_at = base_url, token_env, utcnow()
        elif token_env is not None:
            raise admin.AdminError("--token-env needs --base-url")
        subscriptions = list(session.scalars(select(FhirSubscription).where(FhirSubscription.clinic_id == clinic_id)))
        if clear_gaps:
            for row in subscriptions:
                row.missing, row.missing_since = [], None
        state = {
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
    if as_json:
        click.echo(json.dumps(state))
        return
    click.echo(f"FHIR notifications: {rt.settings.public_url}{state['webhook_path']} (Authorization: Bearer <the clinic's FHIR token>)")
    click.echo(f"id-only fetches:    {state['base_url'] or 'not configured (--base-url)'}"
               + (f", token from ${state['token_env']}" if state["token_env"] else ", no token"))
    for sub in state["subscriptions"]:
        click.echo(f"  {sub['subscription']}: {sub['status'] or '?'}, last {sub['last_type']}, event {sub['highest_event_number']}, "
                   f"{sub['missing_events']} missing")


@clinics.command("cds")
@click.argument("clinic_id")
@click.option("--issuer", required=True, help="The EHR's JWT iss, exactly as it signs it.")
@click.option("--jwks-url", help="Where that issuer publishes its JWKS (required unless --remove).")
@click.option("--remove", is_flag=True, help="Take this issuer off the clinic's allow-list.")
@one_line_errors
def clinics_cds(clinic_id: str, issuer: str, jwks_url: str | None, remove: bool) -> None:
    """Allow-list a CDS Hooks client (an EHR's JWT issuer and JWKS) for a clinic."""
    rt = runtime()
    with rt.db.session() as session:
        _clinic_exists(session, clinic_id)
        existing = session.scalar(select(CdsClient).where(CdsClient.issuer == issuer))
        if remove:
            if existing is None or existing.clinic_id != clinic_id:
                raise admin.AdminError(f"{issuer!r} is not allow-listed for {clinic_id}")
            session.execute(delete(CdsClient).where(CdsClient.id == existing.id))
            click.echo(f"removed CDS Hooks issuer {issuer} from {clinic_id}")
            return
        if not jwks_url:
            raise admin.AdminError("--jwks-url is required to add an issuer")
        jwks_url = _url(jwks_url, "--jwks-url")
        if existing is not None and existing.clinic_id != clinic_id:
            raise admin.AdminError(f"{issuer!r} is already allow-listed for clinic {existing.clinic_id}; an issuer maps to one clinic")
        if existing is None:
            session.add(CdsClient(clinic_id=clinic_id, issuer=issuer, jwks_url=jwks_url, created_at=utcnow()))
        else:
            existing.jwks_url = jwks_url
    click.echo(f"CDS Hooks issuer {issuer} allowed for {clinic_id}; keys from {jwks_url}")
    click.echo(f"Discovery: {rt.settings.public_url}/cds-services")
