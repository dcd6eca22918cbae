"""Event numbers of a subscription as closed ranges of what is still missing.

Pure functions over ``[[first, last], ...]`` (sorted, disjoint) so that gaps,
late arrivals and duplicates can be tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass

Ranges = list[list[int]]


@dataclass(frozen=True, slots=True)
class Seen:
    highest: int
    missing: Ranges
    opened: int  # event numbers newly found missing
    closed: int  # missing event numbers that arrived late
    duplicate: bool


def count(missing: Ranges) -> int:
    return sum(last - first + 1 for first, last in missing)


def _remove(missing: Ranges, number: int) -> tuple[Ranges, bool]:
    out: Ranges = []
    found = False
    for first, last in missing:
        if first <= number <= last:
            found = True
            if first < number:
                out.append([first, number - 1])
            if number < last:
                out.append([number + 1, last])
        else:
            out.append([first, last])
    return out, found


def event_received(highest: int, missing: Ranges, number: int) -> Seen:
    """Event ``number`` arrived: a jump opens a gap, a late one closes its hole."""
    if number > highest:
        opened = number - highest - 1
        new = [*missing, [highest + 1, number - 1]] if opened > 0 else list(missing)
        return Seen(number, new, opened, 0, duplicate=False)
    remaining, found = _remove(missing, number)
    return Seen(highest, remaining, 0, 1 if found else 0, duplicate=not found)


def total_reported(highest: int, missing: Ranges, events_since_start: int) -> Seen:
    """The server says it has generated ``events_since_start`` events so far."""
    if events_since_start > highest:
        opened = events_since_start - highest
        return Seen(events_since_start, [*missing, [highest + 1, events_since_start]], opened, 0, duplicate=False)
    return Seen(highest, list(missing), 0, 0, duplicate=False)
