"""manifests/slack-app.yaml: a manifest v1 Slack imports as is, matching what the app listens for."""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = yaml.safe_load((Path(__file__).resolve().parent.parent / "manifests" / "slack-app.yaml").read_text())
URL = "https://YOUR-HOST/slack/events"


def test_it_is_a_version_1_manifest() -> None:
    assert MANIFEST["_metadata"] == {"major_version": 1, "minor_version": 1}
    assert len(MANIFEST["display_information"]["description"]) <= 140
    assert set(MANIFEST) <= {"_metadata", "display_information", "features", "oauth_config", "settings"}


def test_it_asks_for_exactly_the_bot_scopes_tend_uses() -> None:
    assert MANIFEST["oauth_config"]["scopes"]["bot"] == ["chat:write", "im:write", "im:history", "users:read", "dnd:read", "commands"]


def test_events_buttons_and_the_command_share_one_url() -> None:
    settings = MANIFEST["settings"]
    assert settings["event_subscriptions"]["request_url"] == URL
    assert sorted(settings["event_subscriptions"]["bot_events"]) == ["app_home_opened", "message.im", "user_change"]
    assert settings["interactivity"] == {"is_enabled": True, "request_url": URL}
    (command,) = MANIFEST["features"]["slash_commands"]
    assert (command["command"], command["url"]) == ("/tend", URL)
    assert len(command["description"]) <= 100


def test_the_home_and_messages_tabs_are_on() -> None:
    home = MANIFEST["features"]["app_home"]
    assert home["home_tab_enabled"] and home["messages_tab_enabled"] and not home["messages_tab_read_only_enabled"]
