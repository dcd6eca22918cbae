"""Multi-line Slack payloads that are not suggestions: /tend answers and the App Home view.

``blocks.py`` builds the messages that carry a suggestion; this module builds
the rest from the same catalogue with the same guard. Each line is a catalogue
key (a sentence, or a list of sentences) and parameters that Tend computed or
the therapist set (numbers, clock times, zone and weekday names). Every
payload is passed through ``phi_guard.check_payload`` before it is returned,
so nothing from an event can ride along.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plugin.delivery import copy
from plugin.delivery.phi_guard import check_payload, escape_mrkdwn, fragments

_STRUCTURE = frozenset({"home", "header", "section", "context", "divider", "plain_text", "mrkdwn", "\n"})


@dataclass
class Lines:
    """Collects blocks from catalogue keys, remembering the wording it used for the guard."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    vocabulary: set[str] = field(default_factory=lambda: set(_STRUCTURE))

    def say(self, key: str, **params: int | str) -> str:
        template = copy.entry(key)
        if not isinstance(template, str):
            raise copy.MissingCopy(f"{key} is not a sentence")
        return self._render(template, params)

    def sentences(self, key: str) -> list[str]:
        found = copy.entry(key)
        if not isinstance(found, list) or not all(isinstance(s, str) for s in found):
            raise copy.MissingCopy(f"{key} is not a list of sentences")
        return [self._render(s, {}) for s in found]

    def _render(self, template: str, params: Mapping[str, int | str]) -> str:
        literal = fragments(template)
        self.vocabulary.update(literal)
        self.vocabulary.update(escape_mrkdwn(f) for f in literal)
        self.vocabulary.update(str(v) for v in params.values() if isinstance(v, int) and not isinstance(v, bool))
        return template.format(**params) if params else template

    # --- blocks ---------------------------------------------------------------
    def header(self, key: str, **params: int | str) -> Lines:
        line = self.say(key, **params)
        self.blocks.append({"type": "header", "text": {"type": "plain_text", "text": line, "emoji": True}})
        self.texts.append(line)
        return self

    def section(self, key: str, **params: int | str) -> Lines:
        return self.text(self.say(key, **params))

    def section_list(self, key: str, bullet: str = "• ") -> Lines:
        self.vocabulary.add(bullet)
        return self.text("\n".join(bullet + s for s in self.sentences(key)))

    def text(self, rendered: str) -> Lines:
        """A section from sentences already rendered by ``say``/``sentences`` on this builder."""
        self.blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": escape_mrkdwn(rendered)}})
        self.texts.append(rendered)
        return self

    def context(self, key: str, **params: int | str) -> Lines:
        line = self.say(key, **params)
        self.blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(line)}]})
        self.texts.append(line)
        return self

    def divider(self) -> Lines:
        self.blocks.append({"type": "divider"})
        return self

    # --- payloads -------------------------------------------------------------
    def message(self, *, forbidden: Iterable[str] = ()) -> dict[str, Any]:
        """``{"text", "blocks"}``: a /tend answer or a DM without a suggestion."""
        payload = {"text": "\n".join(self.texts), "blocks": list(self.blocks)}
        check_payload(payload, forbidden=forbidden, vocabulary=self.vocabulary)
        return payload

    def home_view(self, *, forbidden: Iterable[str] = ()) -> dict[str, Any]:
        """The ``view`` for ``views.publish``."""
        view = {"type": "home", "blocks": list(self.blocks)}
        check_payload(view, forbidden=forbidden, vocabulary=self.vocabulary)
        return view


def line(key: str, **params: int | str) -> dict[str, Any]:
    """One catalogue sentence as a guarded message payload."""
    return Lines().section(key, **params).message()
