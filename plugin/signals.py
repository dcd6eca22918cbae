"""Clinical text -> signal names (DESIGN §4.2, contract in docs/contracts.md "Signals").

medspaCy's TargetMatcher finds lexicon terms and ConText decides, per mention, whether it is
negated ("denies shame"), historical ("history of shame") or about someone else ("mother is
self-critical"). The lexicons and our ConText modifiers are YAML in plugin/lexicons/, reviewed
like code.

Speed (DESIGN §7, >= 1,000 notes/s of 2 KB on one core): medspaCy's default pipeline manages
~20 notes/s, 90% of it in the PyRuSH sentencizer, and even tokenizing a whole note costs more
than the budget. So, with the same TargetMatcher and ConText, and the same results:
- sentences come from a regex, and only those holding an anchor word of some lexicon term (a set
  lookup per word) are tokenized, one small Doc each, skipping those that could only repeat
  signals already current;
- ConText runs only where a negation/history/other-person phrase could reach a term found (a
  PhraseMatcher of those modifiers, checked by ConText's own rules: see _DecisivePhrases), is
  handed the TargetMatcher's Spans directly (not through doc.ents), and finds each modifier's
  sentence through a token hook (the whole Doc) instead of building a window Span;
- token patterns are compiled to PhraseMatcher phrases, because spaCy's Matcher walks every
  token in Python and evaluates its {"IN": [...]} predicates there (see _compile); our token
  Matchers end up empty, and spaCy's one warning about that (W036) is filtered.
tests/test_signals.py holds the skipping to an exhaustive run; bench/bench_signals.py measures.

Privacy (DESIGN §5): text is never logged, cached or put into an exception. spaCy interns every
word it tokenizes in its vocabulary, so a pipeline is rebuilt once it has seen enough new words,
which bounds both memory and how long a fragment of a note lingers in it.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc, Span

__all__ = [
    "CLIENT_SIGNALS",
    "THERAPIST_SIGNALS",
    "ExtractionError",
    "LexiconError",
    "Signals",
    "extract_client",
    "extract_therapist",
    "from_tags",
    "warm",
]

CLIENT_SIGNALS: frozenset[str] = frozenset({
    "self_criticism", "perfectionism", "shame", "low_self_worth", "needs_self_soothing",
    "empathy_difficulty", "care_paired_with_pain", "abuse_history", "trauma_history",
    "risk_language",
})
THERAPIST_SIGNALS: frozenset[str] = frozenset({
    "stress", "self_blame", "difficult_session", "risk_language",
})
_KNOWN = CLIENT_SIGNALS | THERAPIST_SIGNALS

Audience = Literal["client", "therapist"]
_AUDIENCE_SIGNALS: Mapping[str, frozenset[str]] = {
    "client": CLIENT_SIGNALS, "therapist": THERAPIST_SIGNALS,
}

LEXICON_DIR = Path(__file__).with_name("lexicons")
_NOT_A_SIGNAL = "not_a_signal"
_EXACT = "tend_exact_text"   # TargetRule metadata: the match must have exactly this text
_CONTEXT_TARGETS = "tend_context_targets"   # Doc attribute: the spans ConText is to modify
# Our lexicons compile to phrases, leaving spaCy's token Matchers empty on purpose: with any
# pattern it walks every token in Python (~10% of the budget). It warns once about that (W036).
_EMPTY_MATCHER_WARNING = r"\[W036\] The component 'matcher' does not have any patterns"
# Mentions under these ConText categories are absent, or belong to someone else.
_DROPPING = frozenset({"NEGATED_EXISTENCE", "FAMILY", "OTHER_EXPERIENCER"})
# Modifiers that change an outcome; the others (PSEUDO, TERMINATE, HYPOTHETICAL...) only shape
# these or are ignored, so a sentence without one of these needs no ConText at all.
_DECISIVE = _DROPPING | {"HISTORICAL"}
# "History of abuse" is how a note says "abuse survivor": the history *is* the signal, so these
# stay current (the ladder and framing rules need them) instead of being flagged historical.
_HISTORY_IS_THE_SIGNAL = frozenset({"abuse_history", "trauma_history"})
# The blank pipeline sets no lemmas, POS or dependencies: a pattern using them would never match.
_PATTERN_KEYS = frozenset({"LOWER", "TEXT", "ORTH", "IS_ALPHA", "IS_PUNCT", "IS_DIGIT",
                           "IS_SPACE", "LIKE_NUM", "LENGTH", "OP"})
_WORD_KEYS = ("LOWER", "TEXT", "ORTH")
# New vocabulary strings a pipeline may intern before it is rebuilt (~2 MB of strings and lexemes).
_VOCAB_GROWTH_LIMIT = 20_000
# Above this a pattern stays a Matcher pattern rather than becoming phrases (build time, memory).
_MAX_PHRASES_PER_PATTERN = 5_000

# Sentence ends: line breaks, and .!?;: before whitespace (see _sentences for the colon).
# Over-splitting only narrows ConText scopes.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:])\s+")
_WORD = re.compile(r"[^\W\d_]+")
# _WORD.findall(text.lower()) for ASCII text, where its letters are [A-Za-z], without the regex:
# upper case to lower, everything else to a space, then split (a quarter of the time).
_ASCII_WORDS = bytes(b | 0x20 if chr(b).isascii() and chr(b).isalpha() else 0x20
                     for b in range(256))
# Poor pre-filter keys, most frequent first: nearly every sentence of a note has one.
_COMMON_WORDS = (
    "the", "to", "and", "a", "of", "she", "her", "i", "in", "is", "was", "he", "that", "it",
    "with", "for", "on", "t", "be", "not", "as", "at", "this", "have", "his", "has", "are",
    "but", "had", "they", "by", "s", "from", "or", "about", "do", "were", "can", "an", "so",
    "if", "no", "when", "would", "me", "my", "him", "been", "feel", "feels", "felt", "feeling",
    "did", "does", "herself", "himself", "very", "like", "how", "know", "want", "up", "out",
    "than", "too", "really", "could", "self", "myself", "them", "who", "themselves", "themself",
    "down", "well", "other", "any", "client", "patient", "therapist", "writer", "session",
    "others", "people", "someone", "anyone", "week", "work", "hard", "difficult", "today",
)
_COMMONNESS = {word: len(_COMMON_WORDS) - rank for rank, word in enumerate(_COMMON_WORDS)}


class LexiconError(ValueError):
    """A lexicon file is malformed; names the file, group and entry, never note text."""


class ExtractionError(RuntimeError):
    """Extraction failed; the message and chain carry no input text (DESIGN §5.1)."""


@dataclass(frozen=True, slots=True)
class Signals:
    """Signal names of one event; a name seen both currently and historically counts as current."""

    current: frozenset[str] = frozenset()
    historical: frozenset[str] = frozenset()   # "history of shame": still a signal, flagged

    def __post_init__(self) -> None:
        # Callers build these from DB rows and lists too; keep the invariant in one place.
        current = frozenset(self.current)
        object.__setattr__(self, "current", current)
        object.__setattr__(self, "historical", frozenset(self.historical) - current)

    def names(self) -> frozenset[str]:
        return self.current | self.historical

    def merged(self, other: Signals) -> Signals:
        return Signals(self.current | other.current, self.historical | other.historical)


def extract_client(text: str) -> Signals:
    """Signals about a client, from session-note or portal-message text."""
    return _extract("client", text)


def extract_therapist(text: str) -> Signals:
    """Signals about the therapist themself, from their own (first-person) message."""
    return _extract("therapist", text)


def from_tags(tags: Iterable[str]) -> Signals:
    """Structured EHR tags are deliberate clinician choices, so they are all current."""
    if isinstance(tags, str):
        raise TypeError("tags must be an iterable of names, not a single string")
    names = frozenset(tags)
    unknown = sorted(names - _KNOWN)
    if unknown:
        raise ValueError(f"unknown signal tag: {unknown[0]!r}")
    return Signals(current=names)


def _extract(audience: Audience, text: str) -> Signals:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    if not text.strip():
        return Signals()
    extractor = _extractor(audience)          # lexicon errors surface as themselves
    try:
        return extractor(text)
    except Exception:
        # spaCy/medspaCy messages can quote tokens; `from None` keeps them out of reports.
        raise ExtractionError(f"{audience} signal extraction failed (input withheld)") from None


@dataclass(slots=True)
class _Extractor:
    """One audience's pipeline, and the words that say which sentences are worth running it on.

    Every lexicon entry has an anchor word that all its matches contain; `signals_by_word` maps
    each anchor to the signals it can lead to. A sentence is skipped when it has no anchor, or
    when every signal it could yield is already current (current beats historical, so it could
    change nothing). ConText is skipped when no modifier that can drop or flag a mention
    (negation, history, another person) could reach a matched term: first no word of one
    (`context_words`), then no phrase of one in reach (`decisive`); None: always run it.
    """

    nlp: Language
    signals_by_word: Mapping[str, frozenset[str]]
    context_words: frozenset[str] | None
    decisive: _DecisivePhrases | None
    exact_labels: frozenset[str]              # labels with a case-sensitive rule (_EXACT)
    target_words: frozenset[str] = field(init=False)
    target_matcher: Callable[[Doc], list[Span]] = field(init=False)
    context: Callable[..., Doc] = field(init=False)   # (doc, targets=Doc attribute name)
    baseline_strings: int = field(init=False)

    def __post_init__(self) -> None:
        self.target_words = frozenset(self.signals_by_word)
        self.target_matcher = self.nlp.get_pipe("medspacy_target_matcher")
        self.context = self.nlp.get_pipe("medspacy_context")
        self.baseline_strings = len(self.nlp.vocab.strings)

    def worn(self) -> bool:
        return len(self.nlp.vocab.strings) - self.baseline_strings > _VOCAB_GROWTH_LIMIT

    def __call__(self, text: str, *, exhaustive: bool = False) -> Signals:
        """exhaustive: no skipping; the reference the tests hold the skipping to."""
        current: set[str] = set()
        historical: set[str] = set()
        for sentence in _sentences(text):
            words = _words(sentence)
            anchors = self.target_words.intersection(words)
            if not exhaustive and (not anchors or current.issuperset(
                    itertools.chain.from_iterable(self.signals_by_word[w] for w in anchors))):
                continue
            for name, categories in self._mentions(sentence, None if exhaustive else words):
                if name == _NOT_A_SIGNAL or categories & _DROPPING:
                    continue
                if "HISTORICAL" in categories and name not in _HISTORY_IS_THE_SIGNAL:
                    historical.add(name)
                else:
                    current.add(name)
        return Signals(frozenset(current), frozenset(historical))

    def _mentions(self, sentence: str, words: list[str] | None) -> Iterator[tuple[str, set[str]]]:
        # A Doc per sentence: ConText compares every modifier pair in a Doc, so small Docs keep
        # it cheap, and the sentence boundary is ours. The newline gives "SI denied" a next token.
        doc = self.nlp.make_doc(sentence + "\n")
        ents = self.target_matcher(doc)   # sorted, never overlapping (the matcher prunes)
        if not ents:
            return
        decisive = self._needs_context(doc, ents, words)
        if decisive:
            # ConText's targets from a Doc attribute rather than doc.ents (which would validate and
            # copy them in and out); its results reach `ents` too, through the Doc's user data.
            doc._.set(_CONTEXT_TARGETS, ents)
            doc.user_token_hooks["sent"] = _whole_doc
            self.context(doc, targets=_CONTEXT_TARGETS)
        for ent in ents:
            label = ent.label_
            if label in self.exact_labels:
                exact = (ent._.target_rule.metadata or {}).get(_EXACT)
                if exact is not None and ent.text != exact:
                    continue  # "si" is not "SI"
            categories = {m.category for m in ent._.modifiers} if decisive else set()
            yield label.lower(), categories

    def _needs_context(self, doc: Doc, ents: Sequence[Span], words: list[str] | None) -> bool:
        if self.context_words is None or self.decisive is None or words is None:
            return True
        if self.context_words.isdisjoint(words):
            return False
        return self.decisive.reach(doc, ents)


def _words(text: str) -> list[str]:
    """The lower-cased letter runs of text: _WORD.findall(text.lower())."""
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()
    return _WORD.findall(text.lower())


def _whole_doc(token: Any) -> Span:
    """Token.sent for a one-sentence Doc: the whole Doc (ConText scopes end there)."""
    return token.doc[:]


def _sentences(text: str) -> Iterator[str]:
    """A colon ends a heading ("Plan: Continue weekly"), not a finding ("SI: denied")."""
    for line in text.splitlines():
        held = ""
        for piece in _SENTENCE_BREAK.split(line):
            if held.endswith(":") and not piece[:1].isupper():
                held = f"{held} {piece}"
                continue
            if held.strip():
                yield held
            held = piece
        if held.strip():
            yield held


_extractors: dict[str, _Extractor] = {}
_build_lock = threading.Lock()


def warm() -> None:
    """Build both pipelines now, so the first webhook after start-up is not the one that waits."""
    audiences: tuple[Audience, ...] = ("client", "therapist")
    for audience in audiences:
        _extractor(audience)


def _extractor(audience: Audience) -> _Extractor:
    """Build once per process (lazily: importing this module stays cheap), rebuild when worn."""
    extractor = _extractors.get(audience)
    if extractor is None or extractor.worn():
        with _build_lock:
            extractor = _extractors.get(audience)
            if extractor is None or extractor.worn():
                extractor = _extractors[audience] = _build(audience)
    return extractor


def _build(audience: Audience) -> _Extractor:
    import medspacy
    from medspacy.context import ConTextRule
    from medspacy.target_matcher import TargetRule
    from spacy.tokens import Doc

    _silence_pyrush()
    if not Doc.has_extension(_CONTEXT_TARGETS):
        Doc.set_extension(_CONTEXT_TARGETS, default=())
    warnings.filterwarnings("ignore", message=_EMPTY_MATCHER_WARNING, category=UserWarning)
    spec = _context_spec()
    # No PyRuSH: our regex split replaces it (it is ~95% of medspaCy's default per-note cost).
    nlp = medspacy.load(medspacy_enable=["medspacy_tokenizer", "medspacy_target_matcher"])
    # prune_on_target_overlap: words inside a term belong to it ("does not know how to comfort
    # herself" is not negated by its own "not"; medspaCy's overlap test misses contained spans).
    # (terminating_types is applied below: through spaCy's config it arrives as a one-shot
    # iterator and only reaches the first rule of each category.)
    # No max_scope: a modifier's scope is its sentence, which is the whole Doc; _mentions says so
    # through a token hook (_whole_doc) rather than have spaCy walk the Doc for every modifier.
    context = nlp.add_pipe("medspacy_context", config={
        "rules": None, "span_attrs": None, "prune_on_target_overlap": True})

    splits, hosts = _exceptions(nlp)
    targets: list[TargetRule] = []
    signals_by_word: dict[str, set[str]] = {}
    for group, entries in _lexicon(audience).items():
        label = group.upper()
        for index, entry in enumerate(entries):
            where = f"{audience}.yaml: {group}[{index}]"
            if not isinstance(entry, str):
                _check_single_tokens(nlp, entry, where)
            words = _anchor_words(nlp, entry, splits)
            if words is None:
                raise LexiconError(f"{where}: needs a required plain word (a LOWER or TEXT value)")
            if group != _NOT_A_SIGNAL:  # these only ever swallow a real term's match
                for word in _with_splits(_runs(words), splits):
                    signals_by_word.setdefault(word, set()).add(group)
            if isinstance(entry, str):
                targets.append(TargetRule(entry, label))
                continue
            exact = _case_sensitive_word(entry)
            if exact is not None:  # a phrase, checked for case in _mentions (no token Matcher)
                targets.append(TargetRule(exact, label, metadata={_EXACT: exact}))
                continue
            phrases, patterns = _compile(nlp, entry, hosts)
            targets.extend(TargetRule(phrase, label) for phrase in phrases)
            targets.extend(TargetRule(where, label, pattern=pattern) for pattern in patterns)

    replaced = {category.upper() for category in spec.get("replaces_default", [])}
    defaults = [rule for rule in ConTextRule.from_json(context.DEFAULT_RULES_FILEPATH)
                if rule.category.upper() not in replaced]
    ours = [_context_rule(ConTextRule, entry, f"context.yaml: {section}[{index}]")
            for section in ("both", audience)
            for index, entry in enumerate(spec.get(section) or [])]
    modifiers = [compiled for rule in defaults + ours
                 for compiled in _context_rules(nlp, ConTextRule, rule, hosts)]
    terminating = {str(category).upper(): {str(other).upper() for other in others}
                   for category, others in (spec.get("terminating_types") or {}).items()}
    for modifier in modifiers:
        modifier.terminated_by |= terminating.get(modifier.category.upper(), set())
    context_tokens: set[str] | None = set()
    for rule in defaults + ours:
        if not _is_decisive(rule):
            continue
        words = None if isinstance(rule.pattern, str) else _anchor_words(
            nlp, rule.literal if rule.pattern is None else rule.pattern, splits)
        if words is None:
            context_tokens = None
            break
        context_tokens |= words

    target_matcher = nlp.get_pipe("medspacy_target_matcher")
    with nlp.select_pipes(disable=nlp.pipe_names):  # phrases are tokenized with the pipeline
        target_matcher.add(targets)
        context.add(modifiers)
    # The matched Spans themselves, rather than each added to doc.ents in turn (re-reading and
    # re-validating all of them every time); _mentions hands them to ConText when it runs.
    target_matcher.result_type = None
    return _Extractor(
        nlp, {word: frozenset(groups) for word, groups in signals_by_word.items()},
        None if context_tokens is None else _with_splits(_runs(context_tokens), splits),
        _decisive_phrases(nlp, context, modifiers),
        frozenset(rule.category for rule in targets if _EXACT in (rule.metadata or {})))


def _is_decisive(rule: Any) -> bool:
    return rule.category.upper() in _DECISIVE and rule.direction not in ("TERMINATE", "PSEUDO")


@dataclass(frozen=True, slots=True)
class _DecisivePhrases:
    """Whether ConText could give a term a category that drops or flags it, without running it.

    `matcher` finds the phrases of the decisive modifiers as ConText's own matcher adds them
    (lower-cased, on LOWER), keyed by what bounds their reach: direction, allowed and excluded
    types (`kinds`). A match counts if ConText would keep it and it could modify some term, by
    ConText's own tests: not overlapping a term (prune_on_target_overlap), the term's label
    allowed, the term overlapping the modifier's widest scope (its sentence, the whole Doc, in its
    direction). Everything else ConText does (max_scope, terminations, max_targets) only narrows.
    """

    matcher: Callable[[Doc], list[tuple[int, int, int]]]
    kinds: Mapping[int, tuple[str, frozenset[str] | None, frozenset[str] | None]]
    pruned_by_terms: bool                 # ConText's prune_on_target_overlap

    def reach(self, doc: Doc, ents: Sequence[Span]) -> bool:
        terms = [(ent.start, ent.end, ent.label_.upper()) for ent in ents]
        length = len(doc)
        for key, begin, finish in self.matcher(doc):
            if self.pruned_by_terms and any(_overlaps(start, end, begin, finish)
                                            for start, end, _ in terms):
                continue  # pruned: words inside a term belong to it
            direction, allowed, excluded = self.kinds[key]
            scope = ((finish, length) if direction == "FORWARD" else
                     (0, begin) if direction == "BACKWARD" else (0, length))
            for start, end, label in terms:
                if ((label in allowed) if allowed is not None else
                        excluded is None or label not in excluded) \
                        and not _overlaps(begin, finish, start, end) \
                        and _overlaps(*scope, start, end):
                    return True
        return False


def _overlaps(start: int, end: int, other_start: int, other_end: int) -> bool:
    """medspacy.util.tuple_overlaps((start, end), (other_start, other_end)), which is not
    symmetric: a span strictly inside (start, end) overlaps it, one strictly around it does not."""
    return start <= other_start < end or start < other_end <= end


def _decisive_phrases(nlp: Language, context: Any,
                      modifiers: Sequence[Any]) -> _DecisivePhrases | None:
    """None when a decisive modifier is not a phrase (then ConText always runs)."""
    from spacy.matcher import PhraseMatcher

    decisive = [rule for rule in modifiers if _is_decisive(rule)]
    if any(rule.pattern is not None for rule in decisive):
        return None
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    names: dict[tuple[str, frozenset[str] | None, frozenset[str] | None], str] = {}
    for rule in decisive:
        kind = (rule.direction,
                None if rule.allowed_types is None else frozenset(rule.allowed_types),
                None if rule.excluded_types is None else frozenset(rule.excluded_types))
        name = names.setdefault(kind, f"tend_decisive_{len(names)}")
        # One phrase Doc at a time: ~1,000 of them alive at once cost ~4 MB of RSS for good.
        matcher.add(name, [nlp.make_doc(rule.literal.lower())])
    kinds = {nlp.vocab.strings[name]: kind for kind, name in names.items()}
    return _DecisivePhrases(matcher, kinds, bool(context.prune_on_target_overlap))


def _compile(nlp: Language, pattern: Sequence[Mapping[str, Any]],
             hosts: Mapping[str, frozenset[str]]) -> tuple[list[str], list[list[Any]]]:
    """Rewrite a token pattern as phrases for the PhraseMatcher plus whatever must stay a pattern.

    spaCy's Matcher costs ~10 us a call and evaluates {"IN": [...]} predicates in Python on every
    token; the PhraseMatcher is one hash lookup per token whatever the number of phrases. So a
    LOWER-only pattern is spelled out as the phrases it matches. A phrase opening on a contraction
    piece ("n't appear") gets each word the tokenizer attaches it to ("don't appear", "isn't
    appear"), which only widens the matched span by that word. Wildcards, flags or a huge product
    stay a pattern, first token made a plain required word so few tokens reach the predicates.
    """
    choices = _word_choices(pattern)
    if choices is None or math.prod(map(len, choices)) > _MAX_PHRASES_PER_PATTERN:
        return [], _plain_first_token(list(pattern))
    if any(not any(choice) for choice in choices):
        return [], []  # a required token accepts only multi-word values: it can never match
    phrases: list[str] = []
    patterns: list[list[Any]] = []
    for combination in itertools.product(*choices):
        words = [word for word in combination if word is not None]
        if not words or any(word in hosts and before not in hosts[word]
                            for before, word in itertools.pairwise(words)):
            continue  # empty, or a piece after a word it never follows ("can" "n't")
        spellings = [[host, *words] for host in sorted(hosts.get(words[0], ()))] or [words]
        for tokens in spellings:
            phrase = _join_tokens(tokens)
            if [token.lower_ for token in nlp.make_doc(phrase)] == tokens:
                phrases.append(phrase)
            else:
                patterns.append([{"LOWER": word} for word in words])
                break
    return phrases, patterns


def _case_sensitive_word(pattern: Sequence[Mapping[str, Any]]) -> str | None:
    """The word of a one-token TEXT/ORTH pattern such as [{TEXT: "SI"}], else None."""
    if len(pattern) != 1 or len(pattern[0]) != 1:
        return None
    word = pattern[0].get("TEXT", pattern[0].get("ORTH"))
    return word if isinstance(word, str) else None


def _word_choices(pattern: Sequence[Mapping[str, Any]]) -> list[list[str | None]] | None:
    """Per token, the words it accepts (None = may be absent); None if not LOWER-only."""
    choices: list[list[str | None]] = []
    for token in pattern:
        op = token.get("OP")
        if set(token) - {"LOWER", "OP"} or "LOWER" not in token or op not in (None, "?"):
            return None
        value = token["LOWER"]
        if isinstance(value, dict) and set(value) != {"IN"}:
            return None
        values = value["IN"] if isinstance(value, dict) else [value]
        words: list[str | None] = [word for word in values if not any(c.isspace() for c in word)]
        choices.append(words + [None] if op == "?" else words)
    return choices


def _plain_first_token(pattern: list[Any]) -> list[list[Any]]:
    """Split an optional or {"IN": [...]} first token into one pattern per word: the Matcher then
    tests a plain attribute at each token and reaches the Python predicates only after it."""
    first, rest = pattern[0], pattern[1:]
    if first.get("OP") == "?":
        required = {key: value for key, value in first.items() if key != "OP"}
        return (_plain_first_token(rest) if rest else []) + _plain_first_token([required, *rest])
    value = first.get("LOWER")
    if set(first) == {"LOWER"} and isinstance(value, dict) and set(value) == {"IN"}:
        return [[{"LOWER": word}, *rest] for word in value["IN"]]
    return [pattern]


def _join_tokens(words: Sequence[str]) -> str:
    """Write tokens as text the tokenizer splits back into them: "do n't" is spelled "don't"."""
    text = words[0]
    for word in words[1:]:
        text += word if word == "n't" or word.startswith("'") else " " + word
    return text


def _context_rules(nlp: Language, rule_type: type, rule: Any,
                   hosts: Mapping[str, frozenset[str]]) -> list[Any]:
    """The same ConText modifier, as phrases and cheap patterns (see _compile)."""
    if rule.pattern is None or isinstance(rule.pattern, str):
        return [rule]
    phrases, patterns = _compile(nlp, rule.pattern, hosts)
    common = {"direction": rule.direction, "allowed_types": rule.allowed_types,
              "excluded_types": rule.excluded_types, "max_scope": rule.max_scope,
              "max_targets": rule.max_targets, "terminated_by": rule.terminated_by}
    return ([rule_type(phrase, rule.category, **common) for phrase in phrases]
            + [rule_type(rule.literal, rule.category, pattern=pattern, **common)
               for pattern in patterns])


def _silence_pyrush() -> None:
    """medspaCy imports PyRuSH, which logs debug lines through loguru; keep them out of our logs."""
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - loguru comes with PyRuSH
        return
    logger.disable("PyRuSH")


@cache
def _lexicon(audience: Audience) -> Mapping[str, tuple[Any, ...]]:
    path = LEXICON_DIR / f"{audience}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise LexiconError(f"{path.name}: top level must map signal names to lists of terms")
    expected = _AUDIENCE_SIGNALS[audience]
    unknown = sorted(set(data) - expected - {_NOT_A_SIGNAL})
    if unknown:
        raise LexiconError(f"{path.name}: unknown signal group {unknown[0]!r}")
    missing = sorted(expected - set(data))
    if missing:
        raise LexiconError(f"{path.name}: no terms for signal {missing[0]!r}")
    lexicon: dict[str, tuple[Any, ...]] = {}
    for group, entries in data.items():
        if not isinstance(entries, list) or not entries:
            raise LexiconError(f"{path.name}: {group} must be a non-empty list")
        for index, entry in enumerate(entries):
            where = f"{path.name}: {group}[{index}]"
            if isinstance(entry, list):
                _check_pattern(entry, where)
            elif not (isinstance(entry, str) and entry.strip()):
                raise LexiconError(f"{where}: an entry is a quoted phrase or a token pattern list")
        lexicon[group] = tuple(entries)
    return lexicon


@cache
def _context_spec() -> Mapping[str, Any]:
    path = LEXICON_DIR / "context.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise LexiconError(f"{path.name}: top level must be a mapping")
    sections = {"replaces_default", "terminating_types", "both", "client", "therapist"}
    unknown = sorted(set(data) - sections)
    if unknown:
        raise LexiconError(f"{path.name}: unknown section {unknown[0]!r}")
    return data


def _context_rule(rule_type: type, entry: Any, where: str) -> Any:
    allowed = {"literal", "category", "direction", "pattern", "terminated_by",
               "excluded_types", "allowed_types", "max_scope"}
    if not isinstance(entry, dict) or not {"literal", "category"} <= set(entry):
        raise LexiconError(f"{where}: needs at least literal and category")
    if set(entry) - allowed:
        raise LexiconError(f"{where}: unknown key {sorted(set(entry) - allowed)[0]!r}")
    if "pattern" in entry:
        _check_pattern(entry["pattern"], where)
    kwargs = dict(entry)
    kwargs["literal"] = str(kwargs["literal"])
    for key in ("terminated_by", "excluded_types", "allowed_types"):
        if key in kwargs:
            kwargs[key] = {str(value).upper() for value in kwargs[key]}
    try:
        return rule_type(**kwargs)
    except (TypeError, ValueError) as error:
        raise LexiconError(f"{where}: {error}") from None


def _check_pattern(pattern: Any, where: str) -> None:
    if not isinstance(pattern, list) or not pattern:
        raise LexiconError(f"{where}: a pattern is a non-empty list of token dicts")
    for position, token in enumerate(pattern):
        if not isinstance(token, dict):
            raise LexiconError(f"{where}: token {position} is not a dict")
        unsupported = sorted(set(token) - _PATTERN_KEYS)
        if unsupported:
            raise LexiconError(f"{where}: token {position} uses {unsupported[0]}, "
                               "which the blank pipeline does not set")
        for key in _WORD_KEYS:
            if key not in token:
                continue
            values = token[key]["IN"] if isinstance(token[key], dict) else [token[key]]
            if not all(isinstance(value, str) for value in values):
                raise LexiconError(f"{where}: token {position} {key} values must be quoted strings")
            if key == "LOWER" and any(value != value.lower() for value in values):
                raise LexiconError(f"{where}: token {position} LOWER values must be lower case")


def _check_single_tokens(nlp: Language, pattern: Sequence[Mapping[str, Any]], where: str) -> None:
    """A LOWER value the tokenizer splits ("self-harm") can never match a single token."""
    for position, token in enumerate(pattern):
        value = token.get("LOWER")
        values = value["IN"] if isinstance(value, dict) else [] if value is None else [value]
        for word in values:
            if not _is_token(nlp, word):
                raise LexiconError(f"{where}: token {position} value {word!r} is several tokens; "
                                   "split it into tokens or write the entry as a phrase")


def _is_token(nlp: Language, word: str) -> bool:
    if [token.lower_ for token in nlp.make_doc(word)] == [word]:
        return True
    # contraction pieces ("n't", "'m", "'s") are tokens only after a word
    return any(nlp.make_doc(host + word)[-1].lower_ == word for host in ("do", "i", "it", "they"))


def _anchor_words(nlp: Language, entry: str | Sequence[Mapping[str, Any]],
                  splits: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    """Tokens one of which every match contains, chosen to be rare: the pre-filter's keys.

    A phrase offers its plain words; a pattern, each required token whose values are all plain
    words. Common words ("she", "herself", "on") would let most sentences through, so they are
    avoided when there is a choice, and so are pieces of split words ("ca" of "can't", which
    would bring in every "t"); then the longest shortest value wins.
    """
    options: list[list[str]] = []
    if isinstance(entry, str):
        options = [[token.lower_] for token in nlp.make_doc(entry)]
    else:
        for token in entry:
            key = next((k for k in _WORD_KEYS if k in token), None)
            if key is not None and token.get("OP") not in ("?", "*", "!"):
                value = token[key]
                options.append([w.lower() for w in (value["IN"] if isinstance(value, dict)
                                                    else [value])])
    # "n't", "'s": the text shows the letters after the apostrophe ("don't" -> "don", "t").
    options = [words for words in options
               if words and all(word.rpartition("'")[2].isalpha() for word in words)]
    if not options:
        return None

    def cost(words: list[str]) -> tuple[int, bool, int]:
        runs = [word.rpartition("'")[2] for word in words]
        return (max(_COMMONNESS.get(run, 0) for run in runs),
                any(run in splits for run in runs), -min(map(len, runs)))

    return frozenset(min(options, key=cost))


def _exceptions(nlp: Language) -> tuple[Mapping[str, frozenset[str]], Mapping[str, frozenset[str]]]:
    """What the tokenizer's special cases do to words, from its own rule table.

    splits: a token cut out of a longer word ("not" of "cannot"), with that word's letter runs,
    so the pre-filter counts "cannot" as containing "not". hosts: the words a contraction piece
    comes attached to ("n't": "do", "is", "ca"...), to spell out phrases that open on one.
    """
    from spacy.attrs import ORTH

    splits: dict[str, set[str]] = {}
    hosts: dict[str, set[str]] = {}
    for text, tokens in nlp.tokenizer.rules.items():
        runs = _WORD.findall(text.lower())
        words = [str(token.get(ORTH, token.get("ORTH", ""))).lower() for token in tokens]
        for position, word in enumerate(words):
            if word.isalpha() and word not in runs:
                splits.setdefault(word, set()).update(runs)
            piece = word == "n't" or word.startswith("'")
            if position and piece and words[position - 1].isalpha():
                hosts.setdefault(word, set()).add(words[position - 1])
    return ({word: frozenset(runs) for word, runs in splits.items()},
            {piece: frozenset(words) for piece, words in hosts.items()})


def _runs(tokens: Iterable[str]) -> set[str]:
    """How tokens show up among _WORD's letter runs of the text ("n't" as "t")."""
    return {token.rpartition("'")[2] for token in tokens}


def _with_splits(words: Iterable[str], splits: Mapping[str, frozenset[str]]) -> frozenset[str]:
    return frozenset(words).union(*(splits.get(word, frozenset()) for word in words))
