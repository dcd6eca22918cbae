"""plugin.signals: clinical text -> signal names (DESIGN §4.2, docs/contracts.md "Signals")."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from plugin import signals
from plugin.signals import (
    CLIENT_SIGNALS,
    THERAPIST_SIGNALS,
    Signals,
    extract_client,
    extract_therapist,
    from_tags,
)

# The pipeline's token Matchers are empty by design (see plugin.signals); pytest resets the
# module's own filter for that spaCy warning, so it is restated here.
pytestmark = pytest.mark.filterwarnings("ignore:.*W036.*:UserWarning")

NOTE_2KB = (Path(__file__).parent / "fixtures" / "notes" / "dense_2kb.txt").read_text(encoding="utf-8")


def current(*names: str) -> Signals:
    return Signals(current=frozenset(names))


def historical(*names: str) -> Signals:
    return Signals(historical=frozenset(names))


NOTHING = Signals()


# --- client signals, one plain sentence each -------------------------------------------------

CLIENT_SENTENCES = [
    ("Client is very self-critical about her parenting.", "self_criticism"),
    ("She describes a harsh inner voice that calls her stupid.", "self_criticism"),
    ("He beats himself up over small mistakes.", "self_criticism"),
    ("She is so hard on herself after every exam.", "self_criticism"),
    ("Client shows marked perfectionism at work.", "perfectionism"),
    ("She holds herself to impossibly high standards.", "perfectionism"),
    ("He feels that anything less than perfect is unacceptable.", "perfectionism"),
    ("Client reports intense shame about the divorce.", "shame"),
    ("She felt deeply ashamed after the argument.", "shame"),
    ("Client feels worthless most days.", "low_self_worth"),
    ("She has low self-esteem and feels she is never good enough.", "low_self_worth"),
    ("He feels like a failure since losing his job.", "low_self_worth"),
    ("Client has difficulty soothing herself when upset.", "needs_self_soothing"),
    ("She does not know how to comfort herself after conflict.", "needs_self_soothing"),
    ("He can't calm himself down once he is upset.", "needs_self_soothing"),
    ("She appears uncomfortable when I'm kind to her.", "empathy_difficulty"),
    ("Client tends to push away warmth in session.", "empathy_difficulty"),
    ("She struggles to receive kindness from others.", "empathy_difficulty"),
    ("Her caregiver was loving but also cruel.", "care_paired_with_pain"),
    ("In her family, affection was often followed by humiliation.", "care_paired_with_pain"),
    ("For him, love came with pain.", "care_paired_with_pain"),
    ("Client is a survivor of childhood sexual abuse.", "abuse_history"),
    ("Her father abused her for years.", "abuse_history"),
    ("Client meets criteria for PTSD after the accident.", "trauma_history"),
    ("She describes the birth of her son as traumatic.", "trauma_history"),
]


@pytest.mark.parametrize(("sentence", "signal"), CLIENT_SENTENCES)
def test_each_client_signal_is_found_in_a_plain_sentence(sentence: str, signal: str) -> None:
    assert extract_client(sentence) == current(signal)


RISK_SENTENCES = [
    "Client reports suicidal ideation with no plan.",
    "Endorses passive SI.",
    "She has been cutting her forearms again.",
    "Client disclosed thoughts of suicide last night.",
    "He took an overdose on Friday.",
    "I don't want to be here anymore.",
    "Sometimes I want to hurt myself.",
    "I just want to kill myself.",
    "I want to end it all.",
    "Client reports recent self-harm.",
]


@pytest.mark.parametrize("sentence", RISK_SENTENCES)
def test_risk_language_is_found(sentence: str) -> None:
    assert extract_client(sentence) == current("risk_language")


# --- negation --------------------------------------------------------------------------------

def test_negated_mentions_are_dropped() -> None:
    assert extract_client("Denies shame, no self-criticism noted.") == NOTHING


@pytest.mark.parametrize("sentence", [
    "Denies shame.",
    "No evidence of perfectionism.",
    "No self-criticism noted.",
    "Client denies feeling worthless.",
    "Self-criticism not noted.",
    "She does not feel ashamed.",
])
def test_negated_phrasings_are_dropped(sentence: str) -> None:
    assert extract_client(sentence) == NOTHING


DENIED_RISK = [
    "Denies SI/HI.",
    "Denies suicidal ideation.",
    "No self-harm.",
    "SI denied.",
    "Suicidal ideation: none.",
    "Client denies SI, HI, and self-harm urges.",
    "No history of self-harm.",
]


@pytest.mark.parametrize("sentence", DENIED_RISK)
def test_denied_risk_is_not_risk(sentence: str) -> None:
    assert extract_client(sentence) == NOTHING


def test_a_denial_ends_at_a_new_claim() -> None:
    assert extract_client("Denies SI, reports intense shame.") == current("shame")


def test_words_inside_a_term_do_not_negate_it() -> None:
    assert extract_client("I don't want to be here anymore.") == current("risk_language")


# --- history ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("sentence", "signal"), [
    ("History of shame.", "shame"),
    ("She has a history of perfectionism.", "perfectionism"),
    ("History of self-harm.", "risk_language"),
    ("Past suicide attempt in 2015.", "risk_language"),
    ("Self-harm in adolescence (cutting), none since.", "risk_language"),
])
def test_historical_mentions_are_kept_and_flagged(sentence: str, signal: str) -> None:
    assert extract_client(sentence) == historical(signal)


def test_a_present_marker_ends_history() -> None:
    assert extract_client("History of self-harm in adolescence, currently cutting weekly.") \
        == current("risk_language")


def test_abuse_history_is_current_because_the_history_is_the_signal() -> None:
    assert extract_client("History of childhood sexual abuse.") == current("abuse_history")


def test_a_signal_seen_now_and_in_the_past_counts_as_current() -> None:
    assert extract_client("History of shame. Today she reports shame again.") == current("shame")


# --- other people ----------------------------------------------------------------------------

OTHER_PEOPLE = [
    "Mother is very self-critical.",
    "Her father was perfectionistic.",
    "Her sister struggles with shame.",
    "His boss is a perfectionist.",
    "Client describes her mother as very self-critical.",
]


@pytest.mark.parametrize("sentence", OTHER_PEOPLE)
def test_mentions_of_other_people_are_dropped(sentence: str) -> None:
    assert extract_client(sentence) == NOTHING


def test_the_client_named_after_another_person_is_the_client_again() -> None:
    assert extract_client("Like her mother, client is self-critical.") == current("self_criticism")


@pytest.mark.parametrize(("sentence", "signal"), [
    ("Her father abused her.", "abuse_history"),
    ("Her mother was loving but also cruel.", "care_paired_with_pain"),
])
def test_relational_signals_survive_the_other_person_in_them(sentence: str, signal: str) -> None:
    assert extract_client(sentence) == current(signal)


# --- look-alikes ------------------------------------------------------------------------------

@pytest.mark.parametrize("sentence", [
    "Completed suicide risk assessment; low risk.",
    "She is cutting back on caffeine.",
    "History of alcohol abuse, in remission.",
    "We use a trauma-informed approach.",
    "Si, gracias, nos vemos el martes.",
    "Client presents with SI joint pain after the fall.",
])
def test_look_alike_phrases_are_not_signals(sentence: str) -> None:
    assert extract_client(sentence) == NOTHING


# --- therapist ---------------------------------------------------------------------------------

@pytest.mark.parametrize("message", [
    "I'm so exhausted today.",
    "Honestly I feel overwhelmed.",
    "I think I'm burnt out.",
    "Completely drained after back to backs.",
    "im so tired",
])
def test_therapist_stress_is_found(message: str) -> None:
    assert extract_therapist(message) == current("stress")


@pytest.mark.parametrize("message", [
    "I messed up with my 3pm.",
    "It was my fault the client left.",
    "I'm a terrible therapist.",
    "I should have seen it coming.",
])
def test_therapist_self_blame_is_found(message: str) -> None:
    assert extract_therapist(message) == current("self_blame")


@pytest.mark.parametrize("message", ["Rough session just now.", "That was a hard session."])
def test_therapist_difficult_session_is_found(message: str) -> None:
    assert extract_therapist(message) == current("difficult_session")


@pytest.mark.parametrize("message", [
    "I want to die.",
    "I keep thinking of hurting myself.",
    "Some days I don't want to be here anymore.",
])
def test_therapist_risk_language_is_found(message: str) -> None:
    assert extract_therapist(message) == current("risk_language")


@pytest.mark.parametrize("message", [
    "My client said she wants to die.",
    "My client is exhausted.",
    "I have a suicidal client at 4.",
    "It was not my fault.",
    "I'm not burnt out, just busy.",
    "I should have time tomorrow.",
])
def test_therapist_messages_about_others_or_denied_are_not_signals(message: str) -> None:
    assert extract_therapist(message) == NOTHING


def test_therapist_text_yields_only_therapist_signals() -> None:
    assert extract_therapist("I feel such shame and I am exhausted.") == current("stress")


# --- whole notes and edge cases -----------------------------------------------------------------

def test_a_realistic_2kb_note_gives_the_expected_signals() -> None:
    assert len(NOTE_2KB.encode()) >= 2048
    assert extract_client(NOTE_2KB) == Signals(
        current=frozenset({"self_criticism", "perfectionism", "shame", "low_self_worth",
                           "needs_self_soothing", "empathy_difficulty",
                           "care_paired_with_pain"}),
        historical=frozenset({"risk_language"}),
    )


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_empty_text_gives_empty_signals(text: str) -> None:
    assert extract_client(text) == NOTHING
    assert extract_therapist(text) == NOTHING


def test_text_must_be_a_string() -> None:
    with pytest.raises(TypeError):
        extract_client(None)  # type: ignore[arg-type]


def test_the_skipping_never_changes_the_result() -> None:
    """The pre-filters (anchor words, already-current signals, ConText skip) change no result."""
    client_texts = [NOTE_2KB, *(sentence for sentence, _ in CLIENT_SENTENCES), *RISK_SENTENCES,
                    *DENIED_RISK, *OTHER_PEOPLE, "She cannot feel shame.",
                    "Her mother is critical and she feels ashamed; she cannot soothe herself.",
                    "Denies SI. Hx of SI, currently denies. Isn't good enough, she says."]
    therapist_texts = ["I'm exhausted and I messed up, my fault.", "It wasn't my fault.",
                       "My client is exhausted and so am I.", "Rough session, I want to die."]
    for audience, texts in (("client", client_texts), ("therapist", therapist_texts)):
        extractor = signals._extractor(audience)
        for text in texts:
            assert extractor(text) == extractor(text, exhaustive=True), text


def test_text_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        extract_client("Client Jane Roe reports shame.")
    assert "Jane" not in caplog.text


# --- structured tags ---------------------------------------------------------------------------

def test_from_tags_makes_every_tag_current() -> None:
    assert from_tags(["shame", "difficult_session"]) == current("shame", "difficult_session")


def test_from_tags_of_nothing_is_empty() -> None:
    assert from_tags([]) == NOTHING


def test_from_tags_rejects_an_unknown_tag_by_name() -> None:
    with pytest.raises(ValueError, match="sadness"):
        from_tags(["shame", "sadness"])


def test_from_tags_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        from_tags("shame")


# --- the Signals value ---------------------------------------------------------------------------

def test_names_are_current_and_historical() -> None:
    assert Signals(frozenset({"shame"}), frozenset({"perfectionism"})).names() \
        == {"shame", "perfectionism"}


def test_merged_unions_and_current_wins() -> None:
    merged = historical("shame", "perfectionism").merged(current("shame"))
    assert merged == Signals(current=frozenset({"shame"}), historical=frozenset({"perfectionism"}))


def test_signal_sets_are_the_documented_names() -> None:
    assert CLIENT_SIGNALS == {"self_criticism", "perfectionism", "shame", "low_self_worth",
                              "needs_self_soothing", "empathy_difficulty",
                              "care_paired_with_pain", "abuse_history", "trauma_history",
                              "risk_language"}
    assert THERAPIST_SIGNALS == {"stress", "self_blame", "difficult_session", "risk_language"}


# --- lexicon files -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["client.yaml", "therapist.yaml", "context.yaml"])
def test_each_lexicon_file_says_how_to_add_a_term(name: str) -> None:
    text = (signals.LEXICON_DIR / name).read_text(encoding="utf-8")
    assert text.startswith("#") and "How to add" in text
    assert yaml.safe_load(text)


def test_lexicons_ship_inside_the_package() -> None:
    assert signals.LEXICON_DIR.parent == Path(signals.__file__).parent
    assert (signals.LEXICON_DIR / "__init__.py").exists()


def test_a_malformed_lexicon_entry_is_reported_by_place(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    for name in ("client.yaml", "therapist.yaml", "context.yaml"):
        (tmp_path / name).write_text((signals.LEXICON_DIR / name).read_text())
    (tmp_path / "client.yaml").write_text(
        (tmp_path / "client.yaml").read_text()
        + "\nshame_extra_group_for_test:\n  - shame\n")
    monkeypatch.setattr(signals, "LEXICON_DIR", tmp_path)
    signals._lexicon.cache_clear()
    try:
        with pytest.raises(signals.LexiconError, match="shame_extra_group_for_test"):
            signals._lexicon("client")
    finally:
        signals._lexicon.cache_clear()


@pytest.mark.parametrize(("pattern", "complaint"), [
    ([{"LEMMA": "shame"}], "LEMMA"),
    ([{"LOWER": "Shame"}], "lower case"),
    ([{"LOWER": False}], "quoted"),        # what YAML makes of an unquoted `no`
])
def test_a_pattern_the_pipeline_cannot_match_is_rejected(pattern: list, complaint: str) -> None:
    with pytest.raises(signals.LexiconError, match=complaint):
        signals._check_pattern(pattern, "client.yaml: shame[0]")


# --- pipeline lifetime and failure ---------------------------------------------------------------

def test_the_pipeline_is_built_once_per_process() -> None:
    assert signals._extractor("client") is signals._extractor("client")


def test_a_failure_inside_extraction_carries_no_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: object, text: str, **_: object) -> Signals:
        raise RuntimeError(f"bad token in {text}")

    monkeypatch.setattr(signals._Extractor, "__call__", boom)
    with pytest.raises(signals.ExtractionError) as caught:
        extract_client("Client Jane Roe reports shame.")
    assert "Jane" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
