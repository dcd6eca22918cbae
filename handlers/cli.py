"""The ``tend`` command line. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import os
import sys

import click

from handlers.cli_ehr import clinics_cds, clinics_fhir
from handlers.cli_rules import clinics_rules, replay_command, rules
from handlers.cli_slack import clinics_slack
from handlers.cli_support import one_line_errors, runtime
from handlers.demo import demo
from plugin import admin, config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tend")
def main() -> None:
    """Tend: well-timed, explainable self-compassion suggestions for therapists."""


# --- running ------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@one_line_errors
def dev(host: str, port: int) -> None:
    """Run everything locally: web, worker with scheduler, Redis if needed (SQLite)."""
    from handlers.devserver import run_dev

    sys.exit(run_dev(host, port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--dev", "dev_server", is_flag=True, help="Flask's development server instead of gunicorn")
@one_line_errors
def web(host: str, port: int, workers: int, dev_server: bool) -> None:
    """Serve the HTTP edge (gunicorn; the dev server with --dev)."""
    from handlers.app import create_app

    settings = config.load(production=not dev_server)
    if dev_server:
        create_app(settings).run(host=host, port=port, threaded=True, use_reloader=False)
        return
    from handlers.gunicorn_app import serve

    serve(host, port, workers)


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queue is empty, then exit.")
@one_line_errors
def worker(burst: bool) -> None:
    """Run an rq worker with the scheduler and the sweeper."""
    from handlers.worker import run_worker

    run_worker(runtime(production=not os.environ.get("TEND_DEV")), burst=burst)


# --- database -----------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@one_line_errors
def db_upgrade() -> None:
    """Apply Alembic migrations (SQLite or PostgreSQL)."""
    from plugin.store.migrate import upgrade

    rt = runtime()
    upgrade(rt.db)
    click.echo(f"database is up to date ({rt.db.engine.url.get_backend_name()})")


# --- clinics and users --------------------------------------------------------


@main.group()
def clinics() -> None:
    """Clinics and their webhook secrets."""


@clinics.command("add")
@click.argument("name")
@click.option("--id", "clinic_id", help="Choose the clinic id (default: derived from NAME).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@one_line_errors
def clinics_add(name: str, clinic_id: str | None, as_json: bool) -> None:
    """Create a clinic; prints its webhook path and secret once."""
    rt = runtime()
    created = admin.create_clinic(rt.db, rt.box, name, clinic_id)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "clinic_id": created.clinic_id,
                    "webhook_path": created.webhook_path,
                    "webhook_secret": created.webhook_secret,
                    "fhir_token": created.fhir_token,
                }
            )
        )
        return
    click.echo(f"clinic:          {created.clinic_id} ({created.name})")
    click.echo(f"EHR webhook:     {rt.settings.public_url}{created.webhook_path}")
    click.echo(f"webhook secret:  {created.webhook_secret}")
    click.echo(f"FHIR token:      {created.fhir_token}")
    click.echo("Store the secret and token now: Tend keeps them only encrypted or hashed and will not show them again.")


@clinics.command("rotate-secret")
@click.argument("clinic_id")
@click.option("--overlap-hours", default=24, show_default=True, type=int)
@one_line_errors
def clinics_rotate(clinic_id: str, overlap_hours: int) -> None:
    """New webhook secret; the old one keeps working during the overlap."""
    rt = runtime()
    click.echo(admin.rotate_webhook_secret(rt.db, rt.box, clinic_id, overlap_hours))


@clinics.command("assistance-line")
@click.argument("clinic_id")
@click.argument("line", required=False)
@click.option("--clear", is_flag=True, help="Use the deployment's TEND_ASSISTANCE_LINE again.")
@one_line_errors
def clinics_assistance_line(clinic_id: str, line: str | None, clear: bool) -> None:
    """The clinic's assistance phone line, named in distress messages beside 988."""
    if not clear and line is None:
        raise click.UsageError("give a LINE or --clear")
    rt = runtime()
    admin.set_assistance_line(rt.db, clinic_id, None if clear else line)
    click.echo(f"{clinic_id}: assistance line {'cleared' if clear else 'set'}")


@main.group()
def users() -> None:
    """People who read the suggestion log."""


@users.command("add")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(admin.ROLES))
@click.option("--clinic", "clinic_id", required=True)
@click.option("--therapist-id", help="Their id in the EHR (supervisors and therapists).")
@click.option("--json", "as_json", is_flag=True)
@one_line_errors
def users_add(email: str, role: str, clinic_id: str, therapist_id: str | None, as_json: bool) -> None:
    """Add a user; prints a one-time API token."""
    rt = runtime()
    created = admin.add_user(rt.db, email, role, clinic_id, therapist_id)
    if as_json:
        click.echo(json.dumps({"user_id": created.user_id, "token": created.token}))
    else:
        click.echo(f"user {created.user_id} ({role}); API token, shown once: {created.token}")


# Commands that live in their own modules.
main.add_command(rules)
main.add_command(replay_command)
main.add_command(demo)
clinics.add_command(clinics_rules)
clinics.add_command(clinics_slack)
clinics.add_command(clinics_fhir)
clinics.add_command(clinics_cds)

if __name__ == "__main__":
    main()
