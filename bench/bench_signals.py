"""Signal extraction throughput on a realistic 2 KB session note (DESIGN §7: >= 1,000 notes/s).

Run by hand: `python bench/bench_signals.py [notes]`. Pins itself to one core, builds the
pipeline outside the timing, then times `extract_client` over the same note against a trivial
baseline (lower + split + one set lookup per word) measured in the same run, so the ratio
stays meaningful on a busy or slow machine. Best of several rounds, since other processes on
the machine can only make a round slower.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plugin.signals import extract_client  # noqa: E402

TARGET_NOTES_PER_S = 1_000
ROUNDS = 5

# The same dense note the tests use: nearly every signal, negations, history, other people.
NOTE = (ROOT / "tests" / "fixtures" / "notes" / "dense_2kb.txt").read_text(encoding="utf-8")

_BASELINE_WORDS = frozenset({"shame", "perfectionism", "self-critical", "worthless", "suicidal"})


def baseline(text: str) -> bool:
    """The cheapest thing that still reads every word: what 'fast' is measured against."""
    return any(word in _BASELINE_WORDS for word in text.lower().split())


def rate(function: Callable[[str], object], text: str, notes: int) -> tuple[float, float]:
    """Best and median notes/s over ROUNDS rounds of `notes` calls."""
    rates = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(notes):
            function(text)
        rates.append(notes / (time.perf_counter() - started))
    return max(rates), statistics.median(rates)


def main() -> int:
    notes = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    started = time.perf_counter()
    signals = extract_client(NOTE)          # builds the pipeline; not part of the timing
    build_s = time.perf_counter() - started

    signals_best, signals_median = rate(extract_client, NOTE, notes)
    baseline_best, baseline_median = rate(baseline, NOTE, notes * 20)

    print(f"note: {len(NOTE.encode())} bytes; signals: current={sorted(signals.current)} "
          f"historical={sorted(signals.historical)}")
    print(f"pipeline build (once per process): {build_s:.2f} s")
    print(f"extract_client: {signals_best:,.0f} notes/s best of {ROUNDS} "
          f"(median {signals_median:,.0f}), {notes} notes a round, one core")
    print(f"baseline (lower+split+set lookup): {baseline_best:,.0f} notes/s best "
          f"(median {baseline_median:,.0f})")
    print(f"ratio extract/baseline: {signals_best / baseline_best:.4f} "
          f"(baseline is {baseline_best / signals_best:,.0f}x faster)")
    verdict = "PASS" if signals_best >= TARGET_NOTES_PER_S else "MISS"
    print(f"{verdict}: target >= {TARGET_NOTES_PER_S:,} notes/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
