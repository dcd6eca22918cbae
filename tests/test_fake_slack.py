"""The fake Slack Web API, driven through a real slack_sdk WebClient.

If these pass, code that talks to Slack through slack_sdk can be tested
against the fake without knowing it is a fake.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_api import DEFAULT_TOKEN, FakeSlack

THERAPIST = "U0THERA01"
METADATA = {"event_type": "tend_suggestion", "event_payload": {"suggestion_id": 42}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeSlack) -> FakeSlack:
    server.reset()
    server.set_user(THERAPIST, tz="Europe/London", real_name="Test Therapist")
    return server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=DEFAULT_TOKEN, base_url=fake.base_url, retry_handlers=[])


def _open_dm(client: WebClient, user: str = THERAPIST) -> str:
    return client.conversations_open(users=user)["channel"]["id"]


def test_base_url_is_a_loopback_api_root(fake: FakeSlack) -> None:
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/api/")


def test_auth_test_names_the_bot(client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["ok"] is True
    assert answer["user_id"] and answer["bot_id"]


def test_conversations_open_gives_the_same_dm_channel_each_time(client: WebClient) -> None:
    first = _open_dm(client)
    assert first.startswith("D")
    assert _open_dm(client) == first


def test_post_message_returns_increasing_unique_ts(client: WebClient) -> None:
    channel = _open_dm(client)
    stamps = [client.chat_postMessage(channel=channel, text=f"m{i}")["ts"] for i in range(5)]
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == 5
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)


def test_post_message_is_recorded_in_the_users_dm(client: WebClient, fake: FakeSlack) -> None:
    channel = _open_dm(client)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}]
    answer = client.chat_postMessage(channel=channel, text="hello", blocks=blocks, metadata=METADATA)
    assert answer["channel"] == channel
    assert answer["message"]["metadata"] == METADATA
    (message,) = fake.messages_for(THERAPIST)
    assert message["blocks"] == blocks
    assert message["metadata"] == METADATA
    assert fake.posted == [message]


def test_post_message_to_a_user_id_lands_in_their_dm(client: WebClient, fake: FakeSlack) -> None:
    client.chat_postMessage(channel=THERAPIST, text="hi")
    assert [m["text"] for m in fake.messages_for(THERAPIST)] == ["hi"]


def test_post_message_records_the_call_with_its_json_body_and_token(client: WebClient, fake: FakeSlack) -> None:
    channel = _open_dm(client)
    client.chat_postMessage(channel=channel, text="hello", metadata=METADATA)
    (call,) = fake.calls_to("chat.postMessage")
    assert call.params["metadata"] == METADATA
    assert call.token == DEFAULT_TOKEN
    assert call.ok


def test_form_encoded_calls_are_parsed(client: WebClient, fake: FakeSlack) -> None:
    client.conversations_open(users=THERAPIST)
    (call,) = fake.calls_to("conversations.open")
    assert call.params["users"] == THERAPIST
    assert call.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_post_message_without_text_or_blocks_is_refused(client: WebClient) -> None:
    channel = _open_dm(client)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=channel)
    assert err.value.response["error"] == "no_text"


def test_post_message_with_a_malformed_button_is_refused(client: WebClient) -> None:
    channel = _open_dm(client)
    button = {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 80}}
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=channel, text="t", blocks=[{"type": "actions", "elements": [button]}])
    assert err.value.response["error"] == "invalid_blocks"


def test_update_replaces_the_stored_message(client: WebClient, fake: FakeSlack) -> None:
    channel = _open_dm(client)
    ts = client.chat_postMessage(channel=channel, text="before", metadata=METADATA)["ts"]
    answer = client.chat_update(channel=channel, ts=ts, text="after", blocks=[])
    assert answer["ts"] == ts
    (message,) = fake.messages_for(THERAPIST)
    assert message["text"] == "after"
    assert message["metadata"] == METADATA


def test_update_of_an_unknown_message_is_message_not_found(client: WebClient) -> None:
    channel = _open_dm(client)
    with pytest.raises(SlackApiError) as err:
        client.chat_update(channel=channel, ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"


def test_history_returns_newest_first_with_metadata_when_asked(client: WebClient) -> None:
    channel = _open_dm(client)
    client.chat_postMessage(channel=channel, text="old", metadata=METADATA)
    client.chat_postMessage(channel=channel, text="new")
    answer = client.conversations_history(channel=channel, include_all_metadata=True)
    assert [m["text"] for m in answer["messages"]] == ["new", "old"]
    assert answer["messages"][1]["metadata"] == METADATA


def test_history_leaves_metadata_out_unless_asked(client: WebClient) -> None:
    channel = _open_dm(client)
    client.chat_postMessage(channel=channel, text="old", metadata=METADATA)
    (message,) = client.conversations_history(channel=channel)["messages"]
    assert "metadata" not in message


def test_history_honours_oldest_and_limit(client: WebClient) -> None:
    channel = _open_dm(client)
    first = client.chat_postMessage(channel=channel, text="1")["ts"]
    for text in ("2", "3", "4"):
        client.chat_postMessage(channel=channel, text=text)
    answer = client.conversations_history(channel=channel, oldest=first, limit=2)
    assert [m["text"] for m in answer["messages"]] == ["4", "3"]
    assert answer["has_more"] is True


def test_users_info_reports_the_configured_time_zone(client: WebClient) -> None:
    user = client.users_info(user=THERAPIST)["user"]
    assert user["tz"] == "Europe/London"
    assert user["tz_offset"] in (0, 3600)
    assert user["real_name"] == "Test Therapist"


def test_users_info_of_an_unknown_user_is_user_not_found(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"


def test_dnd_info_defaults_to_off(client: WebClient) -> None:
    answer = client.dnd_info(user=THERAPIST)
    assert answer["dnd_enabled"] is False
    assert answer["snooze_enabled"] is False


def test_dnd_info_reports_the_configured_snooze(client: WebClient, fake: FakeSlack) -> None:
    end = int(time.time()) + 1800
    fake.set_user(THERAPIST, dnd={"snooze_enabled": True, "snooze_endtime": end})
    answer = client.dnd_info(user=THERAPIST)
    assert answer["snooze_enabled"] is True
    assert answer["snooze_endtime"] == end


def test_views_publish_keeps_the_last_home_view(client: WebClient, fake: FakeSlack) -> None:
    for label in ("first", "second"):
        view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": label}}]}
        client.views_publish(user_id=THERAPIST, view=view)
    home = fake.home_view(THERAPIST)
    assert home is not None and home["blocks"][0]["text"]["text"] == "second"


def test_post_ephemeral_is_kept_out_of_the_channel_history(client: WebClient, fake: FakeSlack) -> None:
    channel = _open_dm(client)
    assert client.chat_postEphemeral(channel=channel, user=THERAPIST, text="only you")["message_ts"]
    assert fake.messages_for(THERAPIST) == []
    assert [e["text"] for e in fake.ephemerals] == ["only you"]


def test_unknown_method_is_unknown_method(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        client.api_call("tend.nothing")
    assert err.value.response["error"] == "unknown_method"


def test_a_wrong_token_is_invalid_auth(fake: FakeSlack) -> None:
    stranger = WebClient(token="xoxb-wrong", base_url=fake.base_url, retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        stranger.auth_test()
    assert err.value.response["error"] == "invalid_auth"


def test_rate_limit_is_a_429_with_retry_after(client: WebClient, fake: FakeSlack) -> None:
    fake.fail_next(1, status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.auth_test()
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    assert client.auth_test()["ok"] is True


def test_server_error_is_a_500(client: WebClient, fake: FakeSlack) -> None:
    fake.fail_next(1, status=500)
    with pytest.raises(SlackApiError) as err:
        client.auth_test()
    assert err.value.response.status_code == 500


def test_injected_error_is_an_ok_false_200(client: WebClient, fake: FakeSlack) -> None:
    fake.fail_next(1, error="user_not_found")
    with pytest.raises(SlackApiError) as err:
        client.auth_test()
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "user_not_found"


def test_fault_restricted_to_a_method_spares_other_methods(client: WebClient, fake: FakeSlack) -> None:
    fake.fail_next(1, status=500, method="chat.postMessage")
    channel = _open_dm(client)
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel=channel, text="x")
    assert client.chat_postMessage(channel=channel, text="x")["ok"] is True


def test_a_failed_call_changes_nothing(client: WebClient, fake: FakeSlack) -> None:
    channel = _open_dm(client)
    fake.fail_next(2, status=429)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel=channel, text="x")
    assert fake.messages_for(THERAPIST) == []
    assert len(fake.calls_to("chat.postMessage")) == 2


def test_wait_for_returns_once_another_thread_posts(client: WebClient, fake: FakeSlack) -> None:
    channel = _open_dm(client)
    threading.Timer(0.1, lambda: client.chat_postMessage(channel=channel, text="later")).start()
    messages = fake.wait_for(lambda: fake.messages_for(THERAPIST), timeout=3)
    assert messages[0]["text"] == "later"


def test_wait_for_times_out_naming_recent_calls(fake: FakeSlack) -> None:
    with pytest.raises(TimeoutError, match="condition not met"):
        fake.wait_for(lambda: False, timeout=0.05)


def test_reset_forgets_calls_and_messages(client: WebClient, fake: FakeSlack) -> None:
    client.chat_postMessage(channel=THERAPIST, text="x")
    fake.reset()
    assert fake.calls == [] and fake.posted == []


def test_concurrent_posts_all_get_distinct_ts(client: WebClient, fake: FakeSlack) -> None:
    channel = _open_dm(client)
    stamps: list[str] = []
    lock = threading.Lock()

    def post() -> None:
        ts = WebClient(token=DEFAULT_TOKEN, base_url=fake.base_url).chat_postMessage(channel=channel, text="x")["ts"]
        with lock:
            stamps.append(ts)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(stamps)) == 20
    assert len(fake.messages_for(THERAPIST)) == 20


def test_runs_standalone_and_prints_its_base_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.slack_api", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert WebClient(token=DEFAULT_TOKEN, base_url=base_url).auth_test()["ok"] is True
    finally:
        process.terminate()
        process.wait(timeout=5)
