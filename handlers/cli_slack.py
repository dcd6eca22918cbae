"""``tend clinics slack CLINIC_ID --team-id T...``: bind a clinic to its Slack workspace."""

from __future__ import annotations

import click

from plugin.slack_people import SlackLinkError, link_clinic_team


@click.command("slack")
@click.argument("clinic_id")
@click.option("--team-id", help="The Slack workspace (team) id, e.g. T0123ABCD (Slack: workspace settings, or the URL of app.slack.com/client/T...).")
@click.option("--any-team", is_flag=True, help="Remove the binding: answer Slack users from any workspace.")
def clinics_slack(clinic_id: str, team_id: str | None, any_team: bool) -> None:
    """Answer Slack requests for CLINIC_ID only from one workspace."""
    from handlers.cli_support import runtime

    if bool(team_id) == any_team:
        raise click.ClickException("give exactly one of --team-id T... or --any-team")
    rt = runtime()
    try:
        click.echo(link_clinic_team(rt.db, clinic_id, None if any_team else team_id))
    except SlackLinkError as err:
        raise click.ClickException(str(err)) from None
