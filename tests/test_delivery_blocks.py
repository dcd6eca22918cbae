"""Slack payloads: one builder, catalogue wording only, and a guard that refuses PHI.

The catalogue is a fixture (Slack chrome from copy.yaml plus a couple of
realistic practices) so these tests do not depend on copy.yaml's progress.
"""

from __future__ import annotations

import copy as copy_module
import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient

from plugin.delivery import copy
from plugin.delivery.blocks import (
    ACTION_PREFIX,
    CLIENT_BUTTONS,
    THERAPIST_BUTTONS,
    Anchor,
    Audience,
    Feedback,
    Kind,
    Outgoing,
    build,
    ephemeral,
    recorded,
)
from plugin.delivery.phi_guard import PhiLeak, check_payload
from tests.fakes.slack_api import DEFAULT_TOKEN, FakeSlack

SLACK_SECTIONS = ("buttons", "headers", "anchors", "recorded", "chrome")
SOURCE = "Tip 5: practise it yourself (Winters, GoodTherapy 2018)"

FIXTURE_COPY: dict[str, Any] = {
    "practices": {
        "self-compassion-break": {
            "title": "Self-compassion break",
            "body": (
                "Notice: this is a moment of difficulty. Difficulty is part of every life, yours included. "
                "Put a hand on your heart and say: may I be kind to myself."
            ),
            "duration_minutes": 2,
        },
        "supportive-touch": {
            "title": "Supportive touch",
            "body": (
                "Invite your client to rest a hand on their heart or belly. "
                "Ask how it feels to receive that gesture, and let them choose whether to keep it."
            ),
            "duration_minutes": 3,
        },
    },
    "why": {
        "client.suggest.next-step": "Self-criticism came up, and the relationship is ready for a small step.",
        "therapist": {"selfcare": {"overfull-day": "A full day of sessions: a short pause helps the next one."}},
    },
    "analogies": {"good-friend": "What would you say to a good friend in the same place?"},
    "framings": {"clear-mirror": {"text": "Kindness can become a clear mirror, slowly."}},
    "leads": {
        "next-step": "A small step you could offer, if it fits the session.",
        "stats": "You took {count} breaks in the last 14 days.",
    },
}


def _catalogue() -> dict[str, Any]:
    merged = copy_module.deepcopy(FIXTURE_COPY)
    real = yaml.safe_load(copy.CATALOGUE_PATH.read_text(encoding="utf-8"))
    merged.update({section: real[section] for section in SLACK_SECTIONS})
    return merged


CATALOGUE = _catalogue()
CATALOGUE_TEXT = json.dumps(CATALOGUE, ensure_ascii=False).casefold()


@pytest.fixture(autouse=True)
def fixture_catalogue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy, "catalogue", lambda: CATALOGUE)


def suggestion(**overrides: Any) -> Outgoing:
    fields: dict[str, Any] = dict(
        suggestion_id=4711,
        kind=Kind.SUGGEST,
        audience=Audience.CLIENT,
        message_key="leads.next-step",
        practice_id="supportive-touch",
        why_key="client.suggest.next-step",
        source_label=SOURCE,
        anchor=Anchor.before_session(30),
        analogy_id="good-friend",
    )
    fields.update(overrides)
    return Outgoing(**fields)


def nudge(**overrides: Any) -> Outgoing:
    fields: dict[str, Any] = dict(
        suggestion_id=4712,
        kind=Kind.NUDGE,
        audience=Audience.THERAPIST,
        message_key="practices.self-compassion-break",
        practice_id="self-compassion-break",
        why_key="therapist.selfcare.overfull-day",
        source_label=SOURCE,
        anchor=Anchor("next_gap"),
    )
    fields.update(overrides)
    return Outgoing(**fields)


def brk(**overrides: Any) -> Outgoing:
    return nudge(kind=Kind.BREAK, anchor=Anchor("now"), why_key=None, source_label=None, **overrides)


def suppress() -> Outgoing:
    return Outgoing(4713, Kind.SUPPRESS, Audience.CLIENT, "chrome.safety.risk_language")


def distress(**overrides: Any) -> Outgoing:
    return Outgoing(4714, Kind.DISTRESS, Audience.THERAPIST, "chrome.safety.therapist_distress", **overrides)


EVERY_KIND = {"suggest": suggestion, "nudge": nudge, "break": brk, "suppress": suppress, "distress": distress}


def _blocks_of(payload: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in payload["blocks"] if b["type"] == kind]


def _buttons(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in _blocks_of(payload, "actions") for e in b["elements"]]


def _all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


def _payload_strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, child in node.items():
            yield str(key)
            yield from _payload_strings(child)
    elif isinstance(node, list):
        for child in node:
            yield from _payload_strings(child)
    elif not isinstance(node, bool):
        yield str(node)


# ------------------------------------------------------------------ the builder


@pytest.mark.parametrize("make", EVERY_KIND.values(), ids=EVERY_KIND.keys())
def test_every_kind_builds_and_passes_the_guard(make: Any) -> None:
    payload = build(make())
    check_payload(payload)
    assert set(payload) == {"text", "blocks", "metadata"}


@pytest.mark.parametrize("make", EVERY_KIND.values(), ids=EVERY_KIND.keys())
def test_metadata_carries_only_the_suggestion_id(make: Any) -> None:
    out = make()
    assert build(out)["metadata"] == {"event_type": "tend_suggestion", "event_payload": {"suggestion_id": out.suggestion_id}}


def test_client_suggestion_offers_every_button_including_the_client_ones() -> None:
    labels = [b["text"]["text"] for b in _buttons(build(suggestion()))]
    assert labels == [
        "Done", "Helpful", "Not helpful", "Not now", "Snooze 1 hour", "Snooze rest of day",
        "Used in session", "Client found it hard",
    ]


@pytest.mark.parametrize("make", [nudge, brk], ids=["nudge", "break"])
def test_therapist_messages_have_no_client_buttons(make: Any) -> None:
    action_ids = [b["action_id"] for b in _buttons(build(make()))]
    assert action_ids == [ACTION_PREFIX + f for f in THERAPIST_BUTTONS]


@pytest.mark.parametrize("make", [suppress, distress], ids=["suppress", "distress"])
def test_safety_messages_have_no_buttons(make: Any) -> None:
    assert _blocks_of(build(make()), "actions") == []


@pytest.mark.parametrize("make", [suppress, distress], ids=["suppress", "distress"])
def test_safety_messages_have_no_header(make: Any) -> None:
    assert _blocks_of(build(make()), "header") == []


def test_each_action_id_names_its_feedback() -> None:
    action_ids = [b["action_id"] for b in _buttons(build(suggestion()))]
    assert action_ids == [f"tend_feedback:{f}" for f in CLIENT_BUTTONS]


def test_each_button_value_is_just_the_suggestion_id() -> None:
    assert {b["value"] for b in _buttons(build(suggestion(suggestion_id=98765)))} == {"98765"}


def test_buttons_can_be_narrowed_keeping_display_order() -> None:
    out = nudge(buttons=frozenset({Feedback.SNOOZE_1H, Feedback.DONE}))
    assert [b["text"]["text"] for b in _buttons(build(out))] == ["Done", "Snooze 1 hour"]


def test_client_buttons_are_refused_on_a_therapist_message() -> None:
    with pytest.raises(ValueError, match="not for therapist"):
        nudge(buttons=frozenset({Feedback.USED_IN_SESSION}))


def test_safety_message_refuses_buttons() -> None:
    with pytest.raises(ValueError, match="no buttons"):
        Outgoing(1, Kind.SUPPRESS, Audience.CLIENT, "chrome.safety.risk_language", buttons=frozenset({Feedback.DONE}))


def test_safety_message_refuses_any_other_wording() -> None:
    with pytest.raises(ValueError, match="chrome.safety.risk_language"):
        Outgoing(1, Kind.SUPPRESS, Audience.CLIENT, "leads.next-step")


def test_practice_message_needs_a_practice() -> None:
    with pytest.raises(ValueError, match="practice_id"):
        suggestion(practice_id=None)


def test_suggestion_id_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="suggestion_id"):
        suggestion(suggestion_id="4711")


def test_header_names_the_practice() -> None:
    (header,) = _blocks_of(build(nudge()), "header")
    assert header["text"]["text"] == "A minute for you: Self-compassion break"


def test_body_holds_the_lead_the_practice_and_the_analogy() -> None:
    body = _blocks_of(build(suggestion()), "section")[0]["text"]["text"]
    assert body.split("\n\n") == [
        FIXTURE_COPY["leads"]["next-step"],
        FIXTURE_COPY["practices"]["supportive-touch"]["body"],
        FIXTURE_COPY["analogies"]["good-friend"],
    ]


def test_body_reads_a_framing_kept_as_a_mapping() -> None:
    body = _blocks_of(build(suggestion(framing_id="clear-mirror")), "section")[0]["text"]["text"]
    assert body.endswith("Kindness can become a clear mirror, slowly.")


def test_context_line_says_why_and_names_the_source() -> None:
    lines = [e["text"] for e in _blocks_of(build(suggestion()), "context")[-1]["elements"]]
    assert lines == [
        "Why you got this: Self-criticism came up, and the relationship is ready for a small step.",
        f"Source: {SOURCE}",
    ]


def test_why_line_is_found_under_a_nested_rule_id() -> None:
    assert "A full day of sessions" in _all_text(build(nudge()))


def test_missing_why_line_is_a_programming_error() -> None:
    with pytest.raises(copy.MissingCopy):
        build(suggestion(why_key="client.unknown-rule"))


@pytest.mark.parametrize(
    ("minutes", "said"),
    [(1, "1 minute"), (30, "30 minutes"), (60, "1 hour"), (90, "1 h 30 min"), (120, "2 hours")],
)
def test_anchor_says_the_minutes_until_the_session(minutes: int, said: str) -> None:
    timing = _blocks_of(build(suggestion(anchor=Anchor.before_session(minutes))), "context")[0]
    assert timing["elements"][0]["text"] == f"Before your next session, in {said}."


def test_anchor_refuses_minutes_it_does_not_take() -> None:
    with pytest.raises(ValueError):
        Anchor("now", 5)


def test_fallback_text_carries_header_anchor_and_body() -> None:
    text = build(suggestion())["text"]
    assert text.splitlines()[:2] == [
        "For your next session: Supportive touch",
        "Before your next session, in 30 minutes.",
    ]
    assert FIXTURE_COPY["practices"]["supportive-touch"]["body"] in text


def test_safety_fallback_text_is_the_safety_line() -> None:
    assert build(suppress())["text"] == CATALOGUE["chrome"]["safety"]["risk_language"]


def test_distress_message_carries_the_988_line_and_the_clinic_line() -> None:
    payload = build(distress(assistance_line="+1 (555) 010-2000"))
    assert "988" in payload["text"]
    assert payload["text"].endswith("Your clinic's assistance line: +1 (555) 010-2000")


def test_mrkdwn_text_escapes_slack_control_characters() -> None:
    (section,) = _blocks_of(build(distress()), "section")
    assert "Suicide &amp; Crisis Lifeline" in section["text"]["text"]


def test_assistance_line_must_be_a_phone_number() -> None:
    with pytest.raises(ValueError, match="phone number"):
        distress(assistance_line="call Jane Doe")


def test_recorded_replaces_the_actions_with_a_thank_you() -> None:
    payload = recorded(suggestion(), Feedback.HELPFUL)
    assert _blocks_of(payload, "actions") == []
    assert payload["blocks"][-1]["elements"][0]["text"] == "Recorded: Helpful — thank you"


def test_recorded_keeps_the_content_and_the_metadata() -> None:
    posted, updated = build(suggestion()), recorded(suggestion(), "helpful")
    assert updated["blocks"][:-1] == posted["blocks"][:-1]
    assert (updated["text"], updated["metadata"]) == (posted["text"], posted["metadata"])


def test_recorded_refuses_feedback_the_message_did_not_offer() -> None:
    with pytest.raises(ValueError, match="not a button"):
        recorded(nudge(), Feedback.USED_IN_SESSION)


def test_every_button_has_a_label_and_a_confirmation() -> None:
    for feedback in Feedback:
        assert copy.text(f"buttons.{feedback}") and copy.text(f"recorded.{feedback}")


def test_ephemeral_is_one_guarded_sentence() -> None:
    payload = ephemeral("leads.stats", count=4)
    assert payload["text"] == "You took 4 breaks in the last 14 days."
    assert payload["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": payload["text"]}}]


def test_ephemeral_refuses_a_phi_parameter() -> None:
    with pytest.raises(PhiLeak):
        ephemeral("leads.stats", count="jane@example.org")


def test_every_kind_is_accepted_by_slack() -> None:
    with FakeSlack() as fake:
        client = WebClient(token=DEFAULT_TOKEN, base_url=fake.base_url, retry_handlers=[])
        for make in EVERY_KIND.values():
            client.chat_postMessage(channel="U0THERA01", **build(make()))
        ts = fake.posted[0]["ts"]
        client.chat_update(channel=fake.dm_channel("U0THERA01"), ts=ts, **recorded(suggestion(), "done"))
        assert len(fake.messages_for("U0THERA01")) == len(EVERY_KIND)


# -------------------------------------------------------------------- the guard


def _with(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``payload`` with ``value`` written at a simple path, as a buggy caller might."""
    leaked = copy_module.deepcopy(payload)
    if path == "text":
        leaked["text"] += " " + value
    elif path == "body":
        section = _blocks_of(leaked, "section")[0]
        section["text"]["text"] += " " + value
    elif path == "button":
        _blocks_of(leaked, "actions")[0]["elements"][0]["value"] = value
    elif path == "metadata":
        leaked["metadata"]["event_payload"]["note"] = value
    elif path == "metadata_key":
        leaked["metadata"]["event_payload"][value] = 1
    else:
        raise AssertionError(path)
    return leaked


def test_guard_catches_an_event_identifier_in_the_text() -> None:
    with pytest.raises(PhiLeak, match=r"payload field payload\.text carries a value from the event"):
        check_payload(_with(build(suggestion()), "text", "pt-00017"), forbidden=["pt-00017"])


def test_guard_catches_an_event_identifier_in_a_button_value() -> None:
    with pytest.raises(PhiLeak, match=r"elements\[0\]\.value"):
        check_payload(_with(build(suggestion()), "button", "pt-00017"), forbidden=["PT-00017"])


def test_guard_catches_event_text_in_the_metadata() -> None:
    with pytest.raises(PhiLeak, match=r"event_payload"):
        check_payload(_with(build(suggestion()), "metadata", "Jane Doe"), forbidden=["jane  doe"])


def test_guard_checks_unknown_keys_without_naming_them() -> None:
    with pytest.raises(PhiLeak) as leak:
        check_payload(_with(build(suggestion()), "metadata_key", "Jane Doe"), forbidden=["Jane Doe"])
    assert "Jane" not in str(leak.value)


def test_guard_never_echoes_the_offending_value() -> None:
    with pytest.raises(PhiLeak) as leak:
        check_payload(_with(build(suggestion()), "body", "jane.doe@example.org"))
    assert "jane" not in str(leak.value) and "example" not in str(leak.value)


def test_guard_catches_an_email_address() -> None:
    with pytest.raises(PhiLeak, match="email"):
        check_payload(_with(build(nudge()), "body", "write to jane.doe@example.org"))


@pytest.mark.parametrize("phone", ["(555) 867-5309", "555-867-5309", "+44 20 7946 0958"])
def test_guard_catches_a_phone_number(phone: str) -> None:
    with pytest.raises(PhiLeak, match="phone"):
        check_payload(_with(build(nudge()), "body", f"call {phone}"))


@pytest.mark.parametrize("date", ["1984-03-12", "03/12/1984", "12.03.84", "March 12, 1984", "12 Mar 1984", "DOB"])
def test_guard_catches_a_date_of_birth(date: str) -> None:
    with pytest.raises(PhiLeak, match="date"):
        check_payload(_with(build(nudge()), "text", date))


@pytest.mark.parametrize("record", ["MRN", "mrn 4471", "Medical record 12", "123-45-6789"])
def test_guard_catches_a_record_number(record: str) -> None:
    with pytest.raises(PhiLeak, match="record number"):
        check_payload(_with(build(nudge()), "text", record))


def test_guard_catches_a_long_digit_run() -> None:
    with pytest.raises(PhiLeak, match="digit run"):
        check_payload(_with(build(nudge()), "button", "00418832"))


def test_guard_lets_our_own_suggestion_id_through() -> None:
    check_payload(build(nudge(suggestion_id=1234567890)))


@pytest.mark.parametrize("code", ["F32.1", "F43.10", "Z91"])
def test_guard_catches_an_icd10_code(code: str) -> None:
    with pytest.raises(PhiLeak, match="ICD-10"):
        check_payload(_with(build(nudge()), "body", code))


@pytest.mark.parametrize("word", ["depression", "PTSD", "bipolar", "generalized anxiety disorder"])
def test_guard_catches_a_diagnosis_word(word: str) -> None:
    with pytest.raises(PhiLeak, match="diagnosis"):
        check_payload(_with(build(nudge()), "body", f"history of {word}"))


@pytest.mark.parametrize("word", ["suicide", "suicidal", "self-harm", "self harm", "overdose"])
def test_guard_catches_a_risk_word_outside_the_safety_copy(word: str) -> None:
    with pytest.raises(PhiLeak, match="risk word"):
        check_payload(_with(build(nudge()), "body", word))


def test_guard_allows_risk_words_only_inside_the_safety_copy() -> None:
    payload = build(distress())
    assert "suicide" in payload["text"]
    with pytest.raises(PhiLeak, match="risk word"):
        check_payload(_with(payload, "text", "suicide"))


def test_event_words_that_are_also_catalogue_wording_are_not_leaks() -> None:
    build(nudge(), forbidden=["May", "Hope", "heart", "30"])


def test_short_forbidden_values_match_whole_words_only() -> None:
    payload = _with(build(nudge()), "metadata", "always")
    check_payload(payload, forbidden=["Al"])
    with pytest.raises(PhiLeak):
        check_payload(_with(build(nudge()), "metadata", "Al"), forbidden=["Al"])


def test_guard_catches_event_text_in_its_mrkdwn_escaped_form() -> None:
    with pytest.raises(PhiLeak, match="a value from the event"):
        build(suggestion(source_label="Tip 4 R&D <ward>"), forbidden=["R&D <ward>"])


def test_our_minutes_do_not_vouch_for_a_longer_number() -> None:
    with pytest.raises(PhiLeak, match="a value from the event"):
        build(suggestion(anchor=Anchor.before_session(30), source_label="Tip 4 3030"), forbidden=["3030"])


def test_builder_refuses_event_content_in_the_source_label() -> None:
    with pytest.raises(PhiLeak, match="a value from the event"):
        build(suggestion(source_label="Tip 1, for Jane Doe"), forbidden=["Jane Doe"])


def test_slack_chrome_copy_names_no_risk_outside_the_safety_keys() -> None:
    real = yaml.safe_load(copy.CATALOGUE_PATH.read_text(encoding="utf-8"))
    chrome = copy_module.deepcopy({section: real[section] for section in SLACK_SECTIONS})
    del chrome["chrome"]["safety"]
    check_payload({"text": json.dumps(chrome)})


# ------------------------------------------------------------------- properties

BIRTH_DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))
NAMES = st.sampled_from(["Jane Doe", "Mohammed Al-Rashid", "Siobhán O'Neill", "Nguyễn Văn An", "Zoë Kowalczyk"])
MRNS = st.integers(min_value=100_000, max_value=10**12).map(lambda n: f"MRN{n}") | st.from_regex(
    r"\A[0-9]{6,12}\Z"
)
DIAGNOSES = st.sampled_from(["major depression", "PTSD", "bipolar II", "anxiety disorder", "F32.1", "F41.1"])
RANDOM_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=4, max_size=40)
ADVERSARIAL = NAMES | MRNS | DIAGNOSES | RANDOM_TEXT | BIRTH_DATES.map(lambda d: d.isoformat())
OUTGOING = st.sampled_from(list(EVERY_KIND.values()))
SUGGESTION_IDS = st.integers(min_value=1, max_value=2**53)
PLACES = st.sampled_from(["text", "body", "button", "metadata"])


_FIELDS = [f for f in Outgoing.__dataclass_fields__ if not f.startswith("_")]
_STRUCTURE_TEXT = " ".join(
    ["tend_suggestion", "tend_actions", "tend_feedback", "plain_text", "mrkdwn", "primary", "header", "section",
     "context", "actions", "button", "event_type", "event_payload", "suggestion_id", "action_id", "block_id",
     "elements", "emoji", "style", "value", "text", "blocks", "metadata", "type", "true"]
    + [str(f) for f in Feedback]
)


def _normal(value: str) -> str:
    return " ".join(value.split()).casefold()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(make=OUTGOING, suggestion_id=SUGGESTION_IDS, event=st.lists(ADVERSARIAL, min_size=1, max_size=6))
def test_event_content_never_shapes_or_blocks_a_built_payload(make: Any, suggestion_id: int, event: list[str]) -> None:
    out = make()
    out = Outgoing(**{**{f: getattr(out, f) for f in _FIELDS}, "suggestion_id": suggestion_id})
    assume(all(_normal(v) not in _normal(SOURCE) for v in event))
    plain = build(out)
    assert build(out, forbidden=event) == plain
    ours = CATALOGUE_TEXT + _normal(_STRUCTURE_TEXT) + str(suggestion_id)
    for value in event:
        for shown in _payload_strings(plain):
            assert _normal(value) not in _normal(shown) or _normal(value) in ours


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(make=st.sampled_from([suggestion, nudge]), value=ADVERSARIAL, place=PLACES)
def test_injected_event_content_is_refused(make: Any, value: str, place: str) -> None:
    assume(len(_normal(value)) >= 4 and re.search(r"\w", value))
    assume(_normal(value) not in _normal(_all_text(build(make()))))
    with pytest.raises(PhiLeak):
        check_payload(_with(build(make()), place, value), forbidden=[value])


@settings(max_examples=100)
@given(value=NAMES | MRNS | RANDOM_TEXT)
def test_event_content_in_the_source_label_is_refused(value: str) -> None:
    assume(len(_normal(value)) >= 4 and re.search(r"\w", value))
    assume(_normal(value) not in CATALOGUE_TEXT and _normal(value) not in _normal(_STRUCTURE_TEXT))
    with pytest.raises(PhiLeak):
        build(suggestion(source_label=f"Tip 4 {value}"), forbidden=[value])


@settings(max_examples=200)
@given(value=MRNS | DIAGNOSES | st.emails() | BIRTH_DATES.map(lambda d: d.strftime("%m/%d/%Y")), place=PLACES)
def test_phi_shaped_content_is_refused_without_being_told(value: str, place: str) -> None:
    with pytest.raises(PhiLeak):
        check_payload(_with(build(suggestion()), place, value))
