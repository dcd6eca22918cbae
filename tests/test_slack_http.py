"""/slack/events over real HTTP: Bolt verifies Slack's signature; unconfigured deployments say what is missing."""

from __future__ import annotations

import json
import time

from tests.slack_harness import SlackClient, TendSlack, tend_slack  # noqa: F401


def test_a_request_without_a_signature_is_refused(tend_slack: TendSlack) -> None:
    answer = tend_slack.slack.post(b'{"type": "url_verification", "challenge": "x"}', "application/json", signed=False)
    assert answer.status == 401


def test_a_request_signed_with_another_secret_is_refused(tend_slack: TendSlack) -> None:
    forged = SlackClient(tend_slack.base_url, secret="not-the-signing-secret")
    assert forged.command("help").status == 401


def test_a_stale_timestamp_is_refused(tend_slack: TendSlack) -> None:
    body = b'{"type": "url_verification", "challenge": "x"}'
    assert tend_slack.slack.post(body, "application/json", timestamp=int(time.time()) - 3600).status == 401


def test_url_verification_echoes_the_challenge(tend_slack: TendSlack) -> None:
    body = json.dumps({"type": "url_verification", "token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}).encode()
    answer = tend_slack.slack.post(body, "application/json")
    assert answer.status == 200
    assert b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in answer.body


def test_without_a_signing_secret_slack_events_is_a_503_naming_the_setting(client) -> None:  # type: ignore[no-untyped-def]
    answer = client.post("/slack/events", data=b"{}", content_type="application/json")
    assert answer.status_code == 503
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["setting"] == "TEND_SLACK_SIGNING_SECRET"
    assert "TEND_SLACK_SIGNING_SECRET" in answer.get_json()["detail"]
