"""``tend clinics fhir`` and ``tend clinics cds``: wiring a clinic's EHR (issue 5).

Registered on the ``clinics`` group by an import at the end of ``handlers/cli.py``.
"""

from __future__ import annotations

import json

import click

from handlers.cli_support import one_line_errors, runtime
from plugin.fhir import admin as ehr_admin


@click.command("fhir")
@click.argument("clinic_id")
@click.option("--base-url", help="The clinic's FHIR base URL; id-only notifications are fetched from it.")
@click.option("--token-env", help="Environment variable holding the bearer token for that server (read by the worker; never stored).")
@click.option("--clear-gaps", is_flag=True, help="Forget missing event numbers once the EHR has re-sent or you have reconciled them.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@one_line_errors
def clinics_fhir(clinic_id: str, base_url: str | None, token_env: str | None, clear_gaps: bool, as_json: bool) -> None:
    """Where id-only FHIR resources are fetched from; shows subscriptions and gaps."""
    rt = runtime()
    state = ehr_admin.configure_fhir(rt.db, clinic_id, base_url=base_url, token_env=token_env, clear_gaps=clear_gaps)
    if as_json:
        click.echo(json.dumps(state))
        return
    click.echo(f"FHIR notifications: {rt.settings.public_url}{state['webhook_path']} (Authorization: Bearer <the clinic's FHIR token>)")
    click.echo(f"id-only fetches:    {state['base_url'] or 'not configured (--base-url)'}"
               + (f", token from ${state['token_env']}" if state["token_env"] else ", no token"))
    for sub in state["subscriptions"]:
        click.echo(f"  {sub['subscription']}: {sub['status'] or '?'}, last {sub['last_type']}, event {sub['highest_event_number']}, "
                   f"{sub['missing_events']} missing")


@click.command("cds")
@click.argument("clinic_id")
@click.option("--issuer", required=True, help="The EHR's JWT iss, exactly as it signs it.")
@click.option("--jwks-url", help="Where that issuer publishes its JWKS (required unless --remove).")
@click.option("--remove", is_flag=True, help="Take this issuer off the clinic's allow-list.")
@one_line_errors
def clinics_cds(clinic_id: str, issuer: str, jwks_url: str | None, remove: bool) -> None:
    """Allow-list a CDS Hooks client (an EHR's JWT issuer and JWKS) for a clinic."""
    rt = runtime()
    if remove:
        ehr_admin.remove_cds_issuer(rt.db, clinic_id, issuer)
        click.echo(f"removed CDS Hooks issuer {issuer} from {clinic_id}")
        return
    jwks_url = ehr_admin.allow_cds_issuer(rt.db, clinic_id, issuer, jwks_url)
    click.echo(f"CDS Hooks issuer {issuer} allowed for {clinic_id}; keys from {jwks_url}")
    click.echo(f"Discovery: {rt.settings.public_url}/cds-services")
