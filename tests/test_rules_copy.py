"""The copy the rules put in front of therapists exists and stays PHI-free and gentle."""

from __future__ import annotations

import re
import string

from plugin.delivery import copy
from tests.rules_factories import default_rules

OWNED = ("practices", "analogies", "framings", "why", "messages")
ALLOWED_PLACEHOLDERS = {"when", "assistance_line"}


def _sentences(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _sentences(v)]
    if isinstance(node, list):
        return [s for v in node for s in _sentences(v)]
    return []


def test_every_copy_key_the_ruleset_references_exists() -> None:
    for key in sorted(default_rules().copy_keys()):
        copy.entry(key)


def test_every_rule_has_a_why_line() -> None:
    for rule in default_rules():
        assert isinstance(copy.entry(rule.why_key), str)


def test_messages_have_a_header_and_a_lead() -> None:
    for rule in default_rules():
        if rule.message:
            assert set(copy.entry(rule.message)) >= {"header", "lead"}


def test_practices_have_a_title_short_body_duration_and_source() -> None:
    keys = {k for k in default_rules().copy_keys() if k.startswith("practices.")}
    for key in keys:
        practice = copy.entry(key)
        assert practice["title"] and practice["source"]
        assert 1 <= practice["duration_minutes"] <= 5
        assert 2 <= len(re.findall(r"[.!?][\"\u201d]?(?:\s|$)", practice["body"])) <= 3


def test_only_tend_produced_placeholders_are_used() -> None:
    for section in OWNED:
        for sentence in _sentences(copy.entry(section)):
            names = {f for _, f, _, _ in string.Formatter().parse(sentence) if f}
            assert names <= ALLOWED_PLACEHOLDERS, sentence


def test_no_diagnosis_or_risk_words_reach_the_therapist() -> None:
    """The 988 line's own name is the one exception: it is for the therapist's own distress."""
    banned = ("suicid", "self-harm", "diagnos", "depress", "ptsd", "patient", "client's name", "should have")
    for section in OWNED:
        for sentence in _sentences(copy.entry(section)):
            sentence = sentence.replace("988 (Suicide & Crisis Lifeline)", "988")
            assert not any(word in sentence.lower() for word in banned), sentence
