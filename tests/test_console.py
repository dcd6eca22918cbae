"""Console delivery: what a new user sees under `tend dev` without Slack."""

from __future__ import annotations

import io

from plugin.delivery.console import ConsoleChannel


def test_every_printed_line_stays_inside_the_frame() -> None:
    stream = io.StringIO()
    payload = {"text": "fallback", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "first line\nsecond line"}}]}
    ConsoleChannel(stream).send("U1", payload)
    inner = stream.getvalue().strip().splitlines()[1:-1]
    assert inner == ["│ first line", "│ second line"]


def test_each_console_send_gets_its_own_reference() -> None:
    channel = ConsoleChannel(io.StringIO())
    payload = {"text": "a", "blocks": []}
    assert channel.send("U1", payload).ts != channel.send("U1", payload).ts
