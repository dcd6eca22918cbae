"""The one place that turns a decision into a Slack payload.

Every payload is made from two things only: wording from the copy catalogue
and values Tend produced (ids, minutes, rule labels). ``Outgoing`` has no field
that could hold event text, and every payload is passed through
``phi_guard.check_payload`` before it is returned, so a payload that carries
PHI cannot be built (DESIGN §5.3). Safety messages are plain on purpose: no
header, no buttons, nothing cheerful (§5.5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from plugin.delivery import copy
from plugin.delivery.phi_guard import check_payload, escape_mrkdwn, fragments

EVENT_TYPE = "tend_suggestion"
ACTION_PREFIX = "tend_feedback:"
ACTIONS_BLOCK_ID = "tend_actions"


class Kind(StrEnum):
    SUGGEST = "suggest"  # a practice to offer a client, for the therapist
    NUDGE = "nudge"  # the therapist's own care
    BREAK = "break"  # a self-compassion break on request (/tend break, a stressed DM)
    SUPPRESS = "suppress"  # risk language about a client: the neutral protocol line
    DISTRESS = "distress"  # risk language from the therapist: the crisis line

    @property
    def is_safety(self) -> bool:
        return self in (Kind.SUPPRESS, Kind.DISTRESS)


class Audience(StrEnum):
    CLIENT = "client"
    THERAPIST = "therapist"


class Feedback(StrEnum):
    DONE = "done"
    HELPFUL = "helpful"
    NOT_HELPFUL = "not_helpful"
    NOT_NOW = "not_now"
    SNOOZE_1H = "snooze_1h"
    SNOOZE_TODAY = "snooze_today"
    USED_IN_SESSION = "used_in_session"
    CLIENT_FOUND_IT_HARD = "client_found_it_hard"


THERAPIST_BUTTONS: tuple[Feedback, ...] = (
    Feedback.DONE,
    Feedback.HELPFUL,
    Feedback.NOT_HELPFUL,
    Feedback.NOT_NOW,
    Feedback.SNOOZE_1H,
    Feedback.SNOOZE_TODAY,
)
CLIENT_BUTTONS: tuple[Feedback, ...] = THERAPIST_BUTTONS + (Feedback.USED_IN_SESSION, Feedback.CLIENT_FOUND_IT_HARD)

SAFETY_MESSAGE_KEYS: Mapping[Kind, str] = {
    Kind.SUPPRESS: "chrome.safety.risk_language",
    Kind.DISTRESS: "chrome.safety.therapist_distress",
}
# Strings the builder emits as structure: Tend's own, whatever an event happens to contain.
_STRUCTURE = frozenset(
    {EVENT_TYPE, ACTIONS_BLOCK_ID, "plain_text", "mrkdwn", "primary", "header", "section", "context",
     "actions", "button", "\n", "\n\n"}
)
_ASSISTANCE_LINE = re.compile(r"^\+?[0-9][0-9 ().-]{1,30}$")


def is_assistance_line(value: str) -> bool:
    """A clinic's assistance line as configured: a phone number, nothing else."""
    return bool(_ASSISTANCE_LINE.match(value))


@dataclass(frozen=True, slots=True)
class Anchor:
    """When the message is for, said in minutes Tend computed, never a date or a name."""

    key: str  # anchors.<key>: now | next_gap | before_session | before_session_later
    minutes: int | None = None

    def __post_init__(self) -> None:
        if self.key == "before_session":
            if not isinstance(self.minutes, int) or isinstance(self.minutes, bool) or self.minutes < 1:
                raise ValueError("a before_session anchor needs whole minutes >= 1")
        elif self.minutes is not None:
            raise ValueError(f"anchor {self.key} takes no minutes")

    @classmethod
    def before_session(cls, minutes: int) -> Anchor:
        return cls("before_session", minutes)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What to send, as ids and keys only: there is deliberately nowhere to put event text."""

    suggestion_id: int
    kind: Kind
    audience: Audience
    message_key: str
    practice_id: str | None = None
    why_key: str | None = None  # the rule id; its line is why.<rule_id>
    source_label: str | None = None  # the rule's source, e.g. "Tip 5 (Winters, GoodTherapy 2018)"
    anchor: Anchor | None = None
    buttons: frozenset[Feedback] | None = None  # None: the usual set for the audience
    analogy_id: str | None = None
    framing_id: str | None = None
    assistance_line: str | None = None  # the clinic's phone line, distress messages only
    _buttons: tuple[Feedback, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "audience", Audience(self.audience))
        if not isinstance(self.suggestion_id, int) or isinstance(self.suggestion_id, bool) or self.suggestion_id < 1:
            raise ValueError("suggestion_id must be a positive int")
        if self.kind.is_safety:
            self._check_safety()
            object.__setattr__(self, "_buttons", ())
            return
        if not self.practice_id:
            raise ValueError(f"a {self.kind} message needs a practice_id")
        if self.assistance_line is not None:
            raise ValueError("only distress messages carry the assistance line")
        usual = CLIENT_BUTTONS if self.audience is Audience.CLIENT else THERAPIST_BUTTONS
        chosen = usual if self.buttons is None else frozenset(Feedback(b) for b in self.buttons)
        if not set(chosen) <= set(usual):
            raise ValueError(f"buttons {sorted(set(chosen) - set(usual))} are not for {self.audience} messages")
        object.__setattr__(self, "_buttons", tuple(b for b in usual if b in chosen))

    def _check_safety(self) -> None:
        if self.buttons:
            raise ValueError("safety messages carry no buttons")
        if self.message_key != SAFETY_MESSAGE_KEYS[self.kind]:
            raise ValueError(f"a {self.kind} message says {SAFETY_MESSAGE_KEYS[self.kind]} and nothing else")
        if self.practice_id or self.analogy_id or self.framing_id:
            raise ValueError("safety messages offer no practice")
        if self.assistance_line is not None:
            if self.kind is not Kind.DISTRESS or not is_assistance_line(self.assistance_line):
                raise ValueError("the assistance line is a phone number on a distress message")

    @property
    def effective_buttons(self) -> tuple[Feedback, ...]:
        """The buttons the message shows, in display order."""
        return self._buttons


class _Writer:
    """Renders copy and remembers the wording it used, which the guard then vouches for."""

    def __init__(self, out: Outgoing | None = None) -> None:
        self.vocabulary: set[str] = set(_STRUCTURE)
        if out is not None:
            self.vocabulary.add(str(out.suggestion_id))  # our row id, whatever digits a client record has

    def say(self, key: str, **params: int | str) -> str:
        template = copy.entry(key)
        if not isinstance(template, str):
            raise copy.MissingCopy(f"{key} is not a sentence")
        return self._keep(template, **params)

    def lookup(self, section: str, ident: str, *fields_: str) -> Any:
        """An entry by id, whether the catalogue nests dotted ids or keeps them flat."""
        node = copy.entry(section)
        if isinstance(node, Mapping) and ident in node:
            node = node[ident]
        else:
            node = copy.entry(f"{section}.{ident}")
        for name in fields_:
            if not isinstance(node, Mapping) or name not in node:
                raise copy.MissingCopy(".".join((section, ident, *fields_)))
            node = node[name]
        return node

    def sentence(self, section: str, ident: str, *fields_: str) -> str:
        node = self.lookup(section, ident, *fields_)
        if isinstance(node, Mapping):  # an analogy or framing kept as {text: ...}
            node = next((node[k] for k in ("text", "body", "line") if k in node), None)
        if not isinstance(node, str):
            raise copy.MissingCopy(".".join((section, ident, *fields_)))
        return self._keep(node)

    def _keep(self, template: str, **params: int | str) -> str:
        literal = fragments(template)
        self.vocabulary.update(literal)
        self.vocabulary.update(escape_mrkdwn(f) for f in literal)
        # Numbers Tend computed (minutes, counts) are ours even if an event holds the same digits.
        self.vocabulary.update(str(v) for v in params.values() if isinstance(v, int) and not isinstance(v, bool))
        return template.format(**params) if params else template


def build(out: Outgoing, *, forbidden: Iterable[str] = ()) -> dict[str, Any]:
    """The ``chat.postMessage`` payload (text, blocks, metadata) for ``out``; raises ``PhiLeak``."""
    writer = _Writer(out)
    text, blocks = _content(out, writer)
    if out.effective_buttons:
        blocks.append(_actions(out, writer))
    return _checked(_payload(out, text, blocks), writer, forbidden)


def recorded(out: Outgoing, feedback: Feedback | str, *, forbidden: Iterable[str] = ()) -> dict[str, Any]:
    """The ``chat.update`` payload once a button was pressed: same message, the buttons become a thank-you."""
    feedback = Feedback(feedback)
    if feedback not in out.effective_buttons:
        raise ValueError(f"{feedback} is not a button of this message")
    writer = _Writer(out)
    text, blocks = _content(out, writer)
    blocks.append(_context([writer.say(f"recorded.{feedback}")]))
    return _checked(_payload(out, text, blocks), writer, forbidden)


def ephemeral(key: str, *, forbidden: Iterable[str] = (), **params: int | str) -> dict[str, Any]:
    """A slash-command answer only its asker sees: one catalogue sentence, still guarded."""
    writer = _Writer()
    line = writer.say(key, **params)
    payload = {"text": line, "blocks": [_section(line)]}
    return _checked(payload, writer, forbidden)


def _checked(payload: dict[str, Any], writer: _Writer, forbidden: Iterable[str]) -> dict[str, Any]:
    check_payload(payload, forbidden=forbidden, vocabulary=writer.vocabulary)
    return payload


def _payload(out: Outgoing, text: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "text": text,
        "blocks": blocks,
        "metadata": {"event_type": EVENT_TYPE, "event_payload": {"suggestion_id": out.suggestion_id}},
    }


def _content(out: Outgoing, writer: _Writer) -> tuple[str, list[dict[str, Any]]]:
    """Fallback text and every block but the actions: shared by the post and its update."""
    if out.kind.is_safety:
        return _safety_content(out, writer)
    assert out.practice_id is not None  # Outgoing guarantees it for non-safety kinds
    title = writer.sentence("practices", out.practice_id, "title")
    header = writer.say(f"headers.{out.kind}", title=title)
    body = _body(out, writer)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(header)}]
    timing = [_anchor(out.anchor, writer)] if out.anchor is not None else []
    minutes = writer.lookup("practices", out.practice_id, "duration_minutes")
    if isinstance(minutes, int) and not isinstance(minutes, bool):
        timing.append(writer.say("chrome.duration", minutes=minutes))
    if timing:
        blocks.append(_context(timing))
    blocks.append(_section(body))
    why = _why_line(out, writer)
    if why:
        blocks.append(_context(why))
    return "\n".join([header, *timing[:1], body]), blocks


def _safety_content(out: Outgoing, writer: _Writer) -> tuple[str, list[dict[str, Any]]]:
    lines = [writer.say(out.message_key)]
    if out.assistance_line is not None:
        writer.vocabulary.add(out.assistance_line)  # clinic configuration, checked by Outgoing
        lines.append(writer.say("chrome.safety.assistance_line", line=out.assistance_line))
    text = "\n".join(lines)
    return text, [_section(text)]


def _body(out: Outgoing, writer: _Writer) -> str:
    assert out.practice_id is not None
    parts = []
    own = f"practices.{out.practice_id}"
    if out.message_key != own and not out.message_key.startswith(own + "."):
        parts.append(writer.say(out.message_key))
    parts.append(writer.sentence("practices", out.practice_id, "body"))
    if out.analogy_id:
        parts.append(writer.sentence("analogies", out.analogy_id))
    if out.framing_id:
        parts.append(writer.sentence("framings", out.framing_id))
    return "\n\n".join(parts)


def _why_line(out: Outgoing, writer: _Writer) -> list[str]:
    lines = []
    if out.why_key:
        lines.append(writer.say("chrome.why", why=writer.sentence("why", out.why_key)))
    if out.source_label:
        lines.append(writer.say("chrome.source", source=out.source_label))
    return lines


def _anchor(anchor: Anchor, writer: _Writer) -> str:
    if anchor.minutes is None:
        return writer.say(f"anchors.{anchor.key}")
    return writer.say(f"anchors.{anchor.key}", duration=_duration(anchor.minutes, writer))


def _duration(minutes: int, writer: _Writer) -> str:
    hours, rest = divmod(minutes, 60)
    if hours == 0:
        return writer.say("anchors.units.minute") if rest == 1 else writer.say("anchors.units.minutes", n=rest)
    if rest:
        return writer.say("anchors.units.hours_minutes", h=hours, m=rest)
    return writer.say("anchors.units.hour") if hours == 1 else writer.say("anchors.units.hours", n=hours)


def _actions(out: Outgoing, writer: _Writer) -> dict[str, Any]:
    elements = []
    for feedback in out.effective_buttons:
        action_id = f"{ACTION_PREFIX}{feedback}"
        writer.vocabulary.add(action_id)
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": _plain(writer.say(f"buttons.{feedback}")),
            "value": str(out.suggestion_id),
        }
        if feedback is Feedback.DONE:
            button["style"] = "primary"
        elements.append(button)
    return {"type": "actions", "block_id": ACTIONS_BLOCK_ID, "elements": elements}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": escape_mrkdwn(text)}}


def _context(lines: list[str]) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(line)} for line in lines]}
