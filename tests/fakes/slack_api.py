"""A fake of Slack's Web API, served over real HTTP on loopback.

End-to-end tests run real ``tend web`` / ``tend worker`` subprocesses that
reach Slack through ``slack_sdk.WebClient(base_url=...)``; an in-process mock
could not see those calls, so this fake speaks HTTP and records what arrived.
It follows Slack's wire shapes closely enough (``ok``/``error`` bodies, 429 with
``Retry-After``, ``metadata`` round-trips through ``conversations.history``)
that code which works here should work against Slack, and it refuses the
mistakes Slack refuses (wrong token, unknown message, malformed blocks) so
those are caught in tests rather than in production.

Standard library only, so any test (or a developer at a shell) can host it::

    python -m tests.fakes.slack_api --port 0     # first line: the base_url
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

T = TypeVar("T")

DEFAULT_TOKEN = "xoxb-test"
BOT_USER_ID = "U0TENDBOT"
BOT_ID = "B0TENDBOT"
TEAM_ID = "T0TEND"

# Fields that slack_sdk sends as JSON strings when a method is form-encoded.
_JSON_FIELDS = ("blocks", "attachments", "metadata", "view")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_MAX_BLOCKS = 50
_MAX_ACTIONS = 25
_MAX_BUTTON_TEXT = 75
_MAX_HEADER_TEXT = 150
_MAX_SECTION_TEXT = 3000


@dataclass(frozen=True)
class Call:
    """One request as it arrived, kept so tests can assert on what Tend sent."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float
    status: int
    response: dict[str, Any]

    @property
    def token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer ") :]
        token = self.params.get("token")
        return str(token) if token is not None else None

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))


@dataclass
class _Fault:
    remaining: int
    status: int
    error: str
    retry_after: int | None
    method: str | None


@dataclass
class _User:
    user_id: str
    tz: str = "America/New_York"
    real_name: str = "Test Therapist"
    dnd: dict[str, Any] = field(default_factory=dict)


class SlackApiFailure(Exception):
    """Raised inside a handler to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class FakeSlack:
    """Slack's Web API for tests: real HTTP on a free loopback port, state in memory.

    Thread-safe: the server answers on its own threads while the test thread
    reads ``calls`` and messages, so every read returns a snapshot copy.
    """

    def __init__(self, *, token: str = DEFAULT_TOKEN, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token = token
        self._host = host
        self._port = port
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._clear()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer((self._host, self._port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-slack", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/"

    # ------------------------------------------------------------ configuration

    def set_user(
        self,
        user_id: str,
        *,
        tz: str | None = None,
        real_name: str | None = None,
        dnd: Mapping[str, Any] | None = None,
    ) -> None:
        """Make a user known to ``users.info``/``dnd.info``; ``dnd`` overrides ``dnd.info`` fields."""
        if tz is not None:
            ZoneInfo(tz)  # fail in the test that configured it, not in a request thread
        with self._lock:
            user = self._users.setdefault(user_id, _User(user_id))
            if tz is not None:
                user.tz = tz
            if real_name is not None:
                user.real_name = real_name
            if dnd is not None:
                user.dnd.update(dnd)

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int = 1,
        method: str | None = None,
    ) -> None:
        """Fail the next ``n`` matching calls without touching state.

        ``status=429`` (the default without ``error``) is Slack's rate limit,
        ``status=5xx`` a server fault, ``error=...`` alone a 200 ``ok: false``.
        """
        if status is None:
            status = 200 if error is not None else 429
        if error is None:
            error = "ratelimited" if status == 429 else "internal_error"
        with self._lock:
            self._faults.append(
                _Fault(n, status, error, retry_after if status == 429 else None, method)
            )

    def hold_answers(self, method: str, seconds: float) -> None:
        """Apply ``method`` at once but answer only after ``seconds``.

        Lets a test kill the caller between Slack's side effect and the
        caller's own record of it (a crash between post and commit).
        """
        with self._lock:
            self._holds[method] = seconds

    def reset(self) -> None:
        """Forget everything recorded and configured, so one server can serve many tests."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._calls: list[Call] = []
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._users: dict[str, _User] = {}
        self._faults: list[_Fault] = []
        self._holds: dict[str, float] = {}
        self._last_ts_us = 0

    # ---------------------------------------------------------------- reading

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @staticmethod
    def dm_channel(user_id: str) -> str:
        """The DM channel id of a user: stable, so tests can predict it."""
        return "D" + user_id

    def messages_for(self, user_id: str) -> list[dict[str, Any]]:
        """Messages currently in the user's DM, oldest first, as last updated."""
        with self._lock:
            return copy.deepcopy(self._messages.get(self.dm_channel(user_id), []))

    @property
    def posted(self) -> list[dict[str, Any]]:
        """Every message currently in any channel, oldest first."""
        with self._lock:
            every = [m for msgs in self._messages.values() for m in msgs]
            return copy.deepcopy(sorted(every, key=lambda m: m["ts"]))

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            view = self._views.get(user_id)
            return copy.deepcopy(view) if view is not None else None

    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
        """Poll until ``predicate()`` is truthy and return it; other processes post asynchronously."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() >= deadline:
                seen = ", ".join(f"{c.method}:{c.status}" for c in self.calls[-10:]) or "none"
                raise TimeoutError(f"condition not met within {timeout}s; last calls: {seen}")
            time.sleep(interval)

    # --------------------------------------------------------------- serving

    def handle(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one API call: (HTTP status, extra headers, JSON body)."""
        with self._lock:
            status, extra, body = self._answer(method, params, headers)
            self._calls.append(Call(method, params, headers, time.time(), status, copy.deepcopy(body)))
            return status, extra, body

    def _answer(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        fault = self._take_fault(method)
        if fault is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return fault.status, extra, {"ok": False, "error": fault.error}
        handler = _METHODS.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        try:
            self._authenticate(params, headers)
            return 200, {}, {"ok": True, **handler(self, params)}
        except SlackApiFailure as failure:
            return 200, {}, {"ok": False, "error": failure.error}

    def _take_fault(self, method: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method in (None, method):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _authenticate(self, params: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        auth = headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else params.get("token")
        if not token:
            raise SlackApiFailure("not_authed")
        if token != self.token:
            raise SlackApiFailure("invalid_auth")

    def _next_ts(self) -> str:
        """Slack timestamps are wall-clock based and unique per channel; keep both properties."""
        micros = max(int(time.time() * 1_000_000), self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve_channel(self, channel: Any) -> str:
        channel = str(channel or "")
        if _USER_ID.match(channel):
            channel = self.dm_channel(channel)
        if channel not in self._messages:
            raise SlackApiFailure("channel_not_found")
        return channel

    def _known_user(self, user_id: Any) -> _User:
        user = self._users.get(str(user_id or ""))
        if user is None:
            raise SlackApiFailure("user_not_found")
        return user

    def _find(self, channel: str, ts: Any) -> dict[str, Any]:
        for message in self._messages.get(channel, []):
            if message["ts"] == str(ts):
                return message
        raise SlackApiFailure("message_not_found")

    # ---------------------------------------------------------------- methods

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": "https://tend-test.slack.com/",
            "team": "Tend Test",
            "user": "tend",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = [u.strip() for u in str(params.get("users") or "").split(",") if u.strip()]
        if not users:
            raise SlackApiFailure("users_list_not_supplied")
        if len(users) > 1:
            raise SlackApiFailure("not_implemented")  # Tend only ever opens one-to-one DMs
        if not _USER_ID.match(users[0]):
            raise SlackApiFailure("user_not_found")
        channel = self.dm_channel(users[0])
        self._messages.setdefault(channel, [])
        return {"channel": {"id": channel, "is_im": True, "user": users[0]}}

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if _USER_ID.match(channel):  # Slack opens the DM itself when given a user id
            self._messages.setdefault(self.dm_channel(channel), [])
        channel = self._resolve_channel(channel)
        text, blocks, metadata = _content(params, require=True)
        message = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": self._next_ts(),
            "channel": channel,
            "text": text,
            "blocks": blocks,
        }
        if metadata is not None:
            message["metadata"] = metadata
        if params.get("thread_ts"):  # a reply: listed by conversations.replies, not by history
            message["thread_ts"] = str(params["thread_ts"])
        self._messages[channel].append(message)
        return {"channel": channel, "ts": message["ts"], "message": _public(message, metadata=True)}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        message = self._find(channel, params.get("ts"))
        text, blocks, metadata = _content(params, require=False)
        if "text" in params:
            message["text"] = text
        if "blocks" in params:
            message["blocks"] = blocks
        if metadata is not None:
            message["metadata"] = metadata
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": _public(message, metadata=True),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        if not params.get("user"):
            raise SlackApiFailure("user_not_in_channel")
        text, blocks, _ = _content(params, require=True)
        ts = self._next_ts()
        self._ephemerals.append(
            {"channel": channel, "user": str(params["user"]), "text": text, "blocks": blocks, "ts": ts}
        )
        return {"message_ts": ts}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        inclusive = _truthy(params.get("inclusive"))
        oldest = float(params.get("oldest") or 0)
        latest = float(params["latest"]) if params.get("latest") else float("inf")
        limit = max(1, min(int(params.get("limit") or 100), 999))
        start = int(params.get("cursor") or 0)

        def within(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        matching = [
            m
            for m in reversed(self._messages[channel])
            if within(float(m["ts"])) and m.get("thread_ts", m["ts"]) == m["ts"]  # Slack leaves thread replies out
        ]
        page = matching[start : start + limit]
        more = start + limit < len(matching)
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {
            "messages": [_public(m, metadata=with_metadata) for m in page],
            "has_more": more,
            "pin_count": 0,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        ts = str(params.get("ts") or "")
        thread = [m for m in self._messages[channel] if m["ts"] == ts or m.get("thread_ts") == ts]
        if not thread:
            raise SlackApiFailure("thread_not_found")
        with_metadata = _truthy(params.get("include_all_metadata"))
        return {"messages": [_public(m, metadata=with_metadata) for m in thread], "has_more": False}

    def add_user_message(self, user_id: str, text: str, *, thread_ts: str | None = None) -> str:
        """A message the user wrote in their DM with the bot (so replies have a thread to join); returns its ts."""
        with self._lock:
            channel = self.dm_channel(user_id)
            message = {"type": "message", "user": user_id, "ts": self._next_ts(), "text": text}
            if thread_ts:
                message["thread_ts"] = thread_ts
            self._messages.setdefault(channel, []).append(message)
            return message["ts"]

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._known_user(params.get("user"))
        zone = ZoneInfo(user.tz)
        offset = datetime.now(timezone.utc).astimezone(zone).utcoffset()
        return {
            "user": {
                "id": user.user_id,
                "team_id": TEAM_ID,
                "name": user.user_id.lower(),
                "real_name": user.real_name,
                "deleted": False,
                "is_bot": False,
                "tz": user.tz,
                "tz_label": datetime.now(zone).tzname(),
                "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
                "profile": {"real_name": user.real_name, "display_name": user.real_name},
            }
        }

    def _dnd_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._known_user(params.get("user"))
        answer: dict[str, Any] = {
            "dnd_enabled": False,
            "next_dnd_start_ts": 1,
            "next_dnd_end_ts": 1,
            "snooze_enabled": False,
        }
        answer.update(user.dnd)
        if answer.get("snooze_enabled"):
            end = int(answer.setdefault("snooze_endtime", int(time.time()) + 3600))
            answer.setdefault("snooze_remaining", max(0, end - int(time.time())))
        return answer

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = str(params.get("user_id") or "")
        if not _USER_ID.match(user_id):
            raise SlackApiFailure("user_not_found")
        view = params.get("view")
        if not isinstance(view, dict) or view.get("type") != "home":
            raise SlackApiFailure("invalid_arguments")
        _check_blocks(view.get("blocks", []))
        stored = {**copy.deepcopy(view), "id": "V" + user_id, "team_id": TEAM_ID}
        self._views[user_id] = stored
        return {"view": copy.deepcopy(stored)}


_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": FakeSlack._auth_test,
    "conversations.open": FakeSlack._conversations_open,
    "chat.postMessage": FakeSlack._chat_post_message,
    "chat.update": FakeSlack._chat_update,
    "chat.postEphemeral": FakeSlack._chat_post_ephemeral,
    "conversations.history": FakeSlack._conversations_history,
    "conversations.replies": FakeSlack._conversations_replies,
    "users.info": FakeSlack._users_info,
    "dnd.info": FakeSlack._dnd_info,
    "views.publish": FakeSlack._views_publish,
}


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _public(message: Mapping[str, Any], *, metadata: bool) -> dict[str, Any]:
    """A stored message as Slack returns it: metadata only when asked for."""
    shown = {k: copy.deepcopy(v) for k, v in message.items() if k not in ("channel", "metadata")}
    if metadata and "metadata" in message:
        shown["metadata"] = copy.deepcopy(message["metadata"])
    return shown


def _content(params: Mapping[str, Any], *, require: bool) -> tuple[str, list[Any], dict[str, Any] | None]:
    text = str(params.get("text") or "")
    blocks = params.get("blocks") or []
    if not isinstance(blocks, list):
        raise SlackApiFailure("invalid_blocks_format")
    _check_blocks(blocks)
    if require and not text and not blocks:
        raise SlackApiFailure("no_text")
    metadata = params.get("metadata")
    if metadata is not None:
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            raise SlackApiFailure("invalid_metadata_format")
    return text, copy.deepcopy(blocks), copy.deepcopy(metadata)


def _check_blocks(blocks: Any) -> None:
    """The Block Kit limits Slack enforces, so a payload Slack would refuse fails in tests too."""
    if not isinstance(blocks, list) or len(blocks) > _MAX_BLOCKS:
        raise SlackApiFailure("invalid_blocks")
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise SlackApiFailure("invalid_blocks")
        kind = block["type"]
        if kind == "header":
            text = block.get("text") or {}
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= _MAX_HEADER_TEXT:
                raise SlackApiFailure("invalid_blocks")
        elif kind == "section":
            text = block.get("text")
            if text is not None and len(text.get("text", "")) > _MAX_SECTION_TEXT:
                raise SlackApiFailure("invalid_blocks")
        elif kind == "actions":
            _check_actions(block.get("elements"))


def _check_actions(elements: Any) -> None:
    if not isinstance(elements, list) or not 0 < len(elements) <= _MAX_ACTIONS:
        raise SlackApiFailure("invalid_blocks")
    seen: set[str] = set()
    for element in elements:
        action_id = element.get("action_id", "") if isinstance(element, dict) else None
        if action_id is None or action_id in seen or len(action_id) > 255:
            raise SlackApiFailure("invalid_blocks")
        seen.add(action_id)
        if element.get("type") == "button":
            label = element.get("text") or {}
            if label.get("type") != "plain_text" or not 0 < len(label.get("text", "")) <= _MAX_BUTTON_TEXT:
                raise SlackApiFailure("invalid_blocks")
            if len(str(element.get("value", ""))) > 2000:
                raise SlackApiFailure("invalid_blocks")


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        parsed = json.loads(raw.decode("utf-8"))
        if not isinstance(parsed, dict):
            raise ValueError("JSON body is not an object")
        return parsed
    if content_type.startswith("application/x-www-form-urlencoded"):
        return _decode_form_fields(dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)))
    raise ValueError(f"unsupported content type {content_type!r}")


def _decode_form_fields(params: dict[str, Any]) -> dict[str, Any]:
    for name in _JSON_FIELDS:
        value = params.get(name)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            params[name] = json.loads(value)
    return params


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self._serve()

        def do_GET(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            if not url.path.startswith("/api/"):
                self._send(404, {}, {"ok": False, "error": "unknown_method"})
                return
            method = url.path[len("/api/") :]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                params = _decode_form_fields(dict(parse_qsl(url.query, keep_blank_values=True)))
                params.update(_parse_body(self.headers.get("Content-Type", ""), raw))
            except (ValueError, UnicodeDecodeError):
                self._send(200, {}, {"ok": False, "error": "invalid_form_data"})
                return
            headers = {k: v for k, v in self.headers.items()}
            answer = fake.handle(method, params, headers)
            hold = fake._holds.get(method)
            if hold:
                time.sleep(hold)
            self._send(*answer)

        def _send(self, status: int, extra: Mapping[str, str], body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Slack Web API until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with FakeSlack(token=args.token, host=args.host, port=args.port) as fake:
        print(fake.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
