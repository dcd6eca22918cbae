"""Reads of the suggestion log, its weekly stats and the access log, always through ``access``.

Everything returned is plain data (dicts of str/int/datetime/list) for the API
schemas, the CSV export and the pages alike. Clients appear only as their random
code; no note or message text exists to show.

Pagination is keyset on ``(created_at, id)`` descending with an opaque cursor,
so a page stays stable when new suggestions arrive while someone reads.
"""

from __future__ import annotations

import base64
import binascii
import json
import statistics
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, not_, or_, select
from sqlalchemy.orm import Session

from plugin.review import access
from plugin.store.db import utcnow
from plugin.store.models import AccessLog, Client, DeliveryAttempt, Feedback, Suggestion, Therapist, User

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_ID = 2**63 - 1
KINDS = ("suggest", "nudge", "hold", "defer", "suppress")
NO_FEEDBACK = "none"
DEFAULT_STATS_WEEKS = 12
ITEM_FIELDS = (
    "id",
    "created_at",
    "therapist",
    "therapist_name",
    "client",
    "rule",
    "rule_version",
    "decision",
    "audience",
    "status",
    "timing_reason",
    "deliver_at",
    "delivered_at",
    "feedback",
)
STATS_COUNTS = ("suggested", "delivered", "helpful", "not_helpful", "used_in_session", "held", "deferred", "suppressed")


class NotFound(LookupError):
    """Nothing in the user's scope answers: the caller says 404, whatever the reason."""


class BadCursor(ValueError):
    """A cursor that this module did not make."""


@dataclass(frozen=True)
class Filters:
    therapist: str | None = None  # the therapist's EHR id
    rule: str | None = None
    decision: str | None = None  # kind
    status: str | None = None
    feedback: str | None = None  # a feedback value, or "none" for no feedback at all
    start: datetime | None = None  # created_at >= start
    end: datetime | None = None  # created_at < end

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Filters":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in names and v not in (None, "")})

    def as_params(self) -> dict[str, str]:
        """The filters that are set, as strings (for the access log and links)."""
        out = {}
        for name, value in asdict(self).items():
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    limit: int
    filters: dict[str, str] = field(default_factory=dict)


# --- cursors ----------------------------------------------------------------------


def encode_cursor(created_at: datetime, row_id: int) -> str:
    raw = json.dumps([created_at.astimezone(timezone.utc).isoformat(), row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 < row_id <= MAX_ID:
            raise ValueError
        return when.astimezone(timezone.utc), row_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, OverflowError, json.JSONDecodeError):
        raise BadCursor("this cursor was not made by Tend; start again from the first page") from None


# --- the suggestion log ----------------------------------------------------------------


def _therapist_id(session: Session, user: access.Viewer, ehr_id: str) -> int:
    found = session.scalar(select(Therapist.id).where(*access.therapist_scope(user), Therapist.ehr_id == ehr_id))
    if found is None:
        raise NotFound(ehr_id)
    return found


def _where(session: Session, user: access.Viewer, filters: Filters) -> list[ColumnElement[bool]]:
    clauses = access.suggestion_scope(user)
    if filters.therapist is not None:
        clauses.append(Suggestion.therapist_id == _therapist_id(session, user, filters.therapist))
    if filters.rule is not None:
        clauses.append(Suggestion.rule_id == filters.rule)
    if filters.decision is not None:
        clauses.append(Suggestion.kind == filters.decision)
    if filters.status is not None:
        clauses.append(Suggestion.status == filters.status)
    if filters.feedback == NO_FEEDBACK:
        clauses.append(not_(exists().where(Feedback.suggestion_id == Suggestion.id)))
    elif filters.feedback is not None:
        clauses.append(exists().where(Feedback.suggestion_id == Suggestion.id, Feedback.feedback == filters.feedback))
    if filters.start is not None:
        clauses.append(Suggestion.created_at >= filters.start)
    if filters.end is not None:
        clauses.append(Suggestion.created_at < filters.end)
    return clauses


def _after(cursor: str | None) -> list[ColumnElement[bool]]:
    if not cursor:
        return []
    at, row_id = decode_cursor(cursor)
    # The plain ``created_at <= at`` bound is redundant for the result but lets both
    # planners start the index scan at the cursor instead of filtering from the top.
    return [Suggestion.created_at <= at, or_(Suggestion.created_at < at, and_(Suggestion.created_at == at, Suggestion.id < row_id))]


def _item_select() -> Select[Any]:
    return (
        select(
            Suggestion.id,
            Suggestion.created_at,
            Therapist.ehr_id,
            Therapist.display_name,
            Client.code,
            Suggestion.rule_id,
            Suggestion.rule_version,
            Suggestion.kind,
            Suggestion.audience,
            Suggestion.status,
            Suggestion.timing_reason,
            Suggestion.deliver_at,
            Suggestion.delivered_at,
        )
        .join(Therapist, Therapist.id == Suggestion.therapist_id)
        .outerjoin(Client, Client.id == Suggestion.client_id)
        .order_by(Suggestion.created_at.desc(), Suggestion.id.desc())
    )


def _feedback_for(session: Session, ids: list[int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = defaultdict(list)
    if ids:
        rows = session.execute(select(Feedback.suggestion_id, Feedback.feedback).where(Feedback.suggestion_id.in_(ids)).order_by(Feedback.feedback))
        for suggestion_id, value in rows:
            found[suggestion_id].append(value)
    return found


def _items(session: Session, rows: list[Any]) -> list[dict[str, Any]]:
    feedback = _feedback_for(session, [row.id for row in rows])
    return [
        {
            "id": row.id,
            "created_at": row.created_at,
            "therapist": row.ehr_id,
            "therapist_name": row.display_name or "",
            "client": row.code,
            "rule": row.rule_id,
            "rule_version": row.rule_version,
            "decision": row.kind,
            "audience": row.audience,
            "status": row.status,
            "timing_reason": row.timing_reason or "",
            "deliver_at": row.deliver_at,
            "delivered_at": row.delivered_at,
            "feedback": feedback.get(row.id, []),
        }
        for row in rows
    ]


def list_suggestions(session: Session, user: access.Viewer, filters: Filters, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    """One page, newest first. ``NotFound`` when the therapist filter names no visible therapist."""
    limit = max(1, min(limit, MAX_LIMIT))
    query = _item_select().where(*_where(session, user, filters), *_after(cursor)).limit(limit + 1)
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page(_items(session, rows), next_cursor, limit, filters.as_params())


def iter_suggestions(db: Any, user: access.Viewer, filters: Filters, *, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every suggestion that ``list_suggestions`` would page through, in the same order.

    Reads in keyset batches, each in its own short session, so that a long export
    neither holds a transaction open nor keeps the whole log in memory.
    """
    cursor: str | None = None
    while True:
        with db.session() as session:
            page = list_suggestions(session, user, filters, limit=batch, cursor=cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def get_suggestion(session: Session, user: access.Viewer, suggestion_id: int) -> dict[str, Any]:
    """One suggestion with its full explanation; ``NotFound`` when out of scope (or absent)."""
    if not 0 < suggestion_id <= MAX_ID:
        raise NotFound(suggestion_id)
    row = session.execute(_item_select().where(*access.suggestion_scope(user), Suggestion.id == suggestion_id)).one_or_none()
    if row is None:
        raise NotFound(suggestion_id)
    stored = session.get_one(Suggestion, suggestion_id)
    item = _items(session, [row])[0]
    explanation = stored.explanation or {}
    attempts = session.execute(
        select(DeliveryAttempt.at, DeliveryAttempt.outcome, DeliveryAttempt.detail).where(DeliveryAttempt.suggestion_id == suggestion_id).order_by(DeliveryAttempt.at, DeliveryAttempt.id)
    )
    feedback = session.execute(select(Feedback.feedback, Feedback.source, Feedback.created_at).where(Feedback.suggestion_id == suggestion_id).order_by(Feedback.created_at, Feedback.id))
    item.update(
        {
            "message_key": stored.message_key,
            "practice_id": stored.practice_id,
            "ladder_step": stored.ladder_step,
            "analogy_id": stored.analogy_id,
            "framing_id": stored.framing_id,
            "expires_at": stored.expires_at,
            "timing": explanation.get("timing") or "",
            "conditions": [{"name": str(name), "values": values if isinstance(values, dict) else {"value": values}} for name, values in _pairs(explanation.get("conditions"))],
            "reasons": [str(r) for r in explanation.get("reasons") or []],
            "source": explanation.get("source") or "",
            "source_url": explanation.get("source_url") or "",
            "facts": flatten_facts(explanation.get("facts") or {}),
            "failure_reason": stored.failure_reason,
            "attempts": [{"at": a.at, "outcome": a.outcome, "detail": a.detail or ""} for a in attempts],
            "feedback_detail": [{"feedback": f.feedback, "source": f.source, "at": f.created_at} for f in feedback],
        }
    )
    return item


def _pairs(conditions: Any) -> list[tuple[Any, Any]]:
    out = []
    for entry in conditions or []:
        if isinstance(entry, (list, tuple)) and len(entry) == 2:
            out.append((entry[0], entry[1]))
    return out


def flatten_facts(facts: Mapping[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """``{"client": {"age": 34}}`` -> ``[{"name": "client.age", "value": 34}]``, sorted by name."""
    out: list[dict[str, Any]] = []
    for key in sorted(facts):
        value = facts[key]
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.extend(flatten_facts(value, name + "."))
        else:
            out.append({"name": name, "value": value})
    return out


# --- weekly stats ----------------------------------------------------------------------


def iso_week(when: datetime) -> str:
    year, week, _ = when.astimezone(timezone.utc).isocalendar()
    return f"{year}-W{week:02d}"


def week_start(when: datetime) -> date:
    day = when.astimezone(timezone.utc).date()
    return day - timedelta(days=day.weekday())


def stats_range(filters: Filters, now: datetime | None = None) -> Filters:
    """The filters with a time range: by default the last twelve ISO weeks (UTC)."""
    end = filters.end
    start = filters.start
    if start is None:
        anchor = (end or now or utcnow()).astimezone(timezone.utc)
        monday = datetime.combine(week_start(anchor), datetime.min.time(), tzinfo=timezone.utc)
        start = monday - timedelta(weeks=DEFAULT_STATS_WEEKS - 1)
    return Filters(**{**asdict(filters), "start": start, "end": end})


def stats(session: Session, user: access.Viewer, filters: Filters, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per ISO week (UTC), rule and therapist: counts and the median seconds to the first feedback.

    ``suggested`` counts what was offered to the therapist (decisions ``suggest`` and
    ``nudge``); ``held``/``deferred``/``suppressed`` count those decisions;
    ``delivered`` counts suggestions that reached the therapist.
    """
    filters = stats_range(filters, now)
    where = _where(session, user, filters)
    rows = session.execute(
        select(Suggestion.id, Suggestion.created_at, Suggestion.rule_id, Therapist.ehr_id, Suggestion.kind, Suggestion.delivered_at)
        .join(Therapist, Therapist.id == Suggestion.therapist_id)
        .where(*where)
    ).all()
    first_feedback: dict[int, datetime] = {}
    feedback_kinds: dict[int, set[str]] = defaultdict(set)
    for suggestion_id, value, at in session.execute(
        select(Feedback.suggestion_id, Feedback.feedback, Feedback.created_at).join(Suggestion, Suggestion.id == Feedback.suggestion_id).where(*where)
    ):
        feedback_kinds[suggestion_id].add(value)
        if suggestion_id not in first_feedback or at < first_feedback[suggestion_id]:
            first_feedback[suggestion_id] = at
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    waits: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for row in rows:
        key = (iso_week(row.created_at), row.rule_id, row.ehr_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "week": key[0],
                "week_start": week_start(row.created_at),
                "rule": row.rule_id,
                "therapist": row.ehr_id,
                **{name: 0 for name in STATS_COUNTS},
            }
        group["suggested"] += row.kind in ("suggest", "nudge")
        group["held"] += row.kind == "hold"
        group["deferred"] += row.kind == "defer"
        group["suppressed"] += row.kind == "suppress"
        group["delivered"] += row.delivered_at is not None
        kinds = feedback_kinds.get(row.id, set())
        group["helpful"] += "helpful" in kinds
        group["not_helpful"] += "not_helpful" in kinds
        group["used_in_session"] += "used_in_session" in kinds
        if row.id in first_feedback:
            since = row.delivered_at or row.created_at
            waits[key].append(max(0.0, (first_feedback[row.id] - since).total_seconds()))
    out = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2])):
        group = groups[key]
        group["median_seconds_to_feedback"] = round(statistics.median(waits[key]), 1) if waits[key] else None
        out.append(group)
    return out


def weeks_in(start: datetime, end: datetime | None, now: datetime | None = None) -> list[str]:
    """Every ISO week from ``start`` up to ``end`` (or now), so that charts show empty weeks too."""
    last = (end - timedelta(microseconds=1)) if end is not None else (now or utcnow())
    day = week_start(start)
    out = []
    while day <= last.astimezone(timezone.utc).date() and len(out) < 520:
        out.append(iso_week(datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)))
        day += timedelta(weeks=1)
    return out


def weekly_series(rows: list[dict[str, Any]], by: str, weeks: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Stats rows summed per ``by`` ("rule" or "therapist") and week, for the charts.

    With ``weeks``, every one of them appears in each series (zero when nothing happened).
    """
    series: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        per_week = series[row[by]]
        week = per_week.setdefault(row["week"], {"week": row["week"], **{name: 0 for name in STATS_COUNTS}})
        for name in STATS_COUNTS:
            week[name] += row[name]
    out = {}
    for name, per_week in sorted(series.items()):
        names = sorted(set(weeks or []) | set(per_week))
        out[name] = [per_week.get(w) or {"week": w, **{c: 0 for c in STATS_COUNTS}} for w in names]
    return out


def therapists_overview(session: Session, user: access.Viewer, *, now: datetime | None = None, weeks: int = 4) -> list[dict[str, Any]]:
    """Every therapist in scope with their totals over the last ``weeks`` weeks."""
    now = now or utcnow()
    since = now - timedelta(weeks=weeks)
    therapists = session.execute(
        select(Therapist.id, Therapist.ehr_id, Therapist.display_name, Therapist.supervisor_ehr_id).where(*access.therapist_scope(user)).order_by(Therapist.display_name, Therapist.ehr_id)
    ).all()
    totals: dict[str, dict[str, Any]] = {}
    for row in stats(session, user, Filters(start=since)):
        total = totals.setdefault(row["therapist"], {name: 0 for name in STATS_COUNTS})
        for name in STATS_COUNTS:
            total[name] += row[name]
    last = dict(
        session.execute(
            select(Therapist.ehr_id, select(Suggestion.created_at).where(Suggestion.therapist_id == Therapist.id, access.private_scope(user)).order_by(Suggestion.created_at.desc()).limit(1).scalar_subquery()).where(
                *access.therapist_scope(user)
            )
        ).all()
    )
    return [
        {
            "therapist": t.ehr_id,
            "therapist_name": t.display_name or "",
            "supervisor": t.supervisor_ehr_id or "",
            "last_suggestion_at": last.get(t.ehr_id),
            **totals.get(t.ehr_id, {name: 0 for name in STATS_COUNTS}),
        }
        for t in therapists
    ]


def visible_therapist(session: Session, user: access.Viewer, ehr_id: str) -> dict[str, Any]:
    row = session.execute(select(Therapist.ehr_id, Therapist.display_name).where(*access.therapist_scope(user), Therapist.ehr_id == ehr_id)).one_or_none()
    if row is None:
        raise NotFound(ehr_id)
    return {"therapist": row.ehr_id, "therapist_name": row.display_name or ""}


def rules_seen(session: Session, user: access.Viewer) -> list[str]:
    """The rule ids in this user's part of the log (for the filter form)."""
    return list(session.scalars(select(Suggestion.rule_id).where(*access.suggestion_scope(user)).group_by(Suggestion.rule_id).order_by(Suggestion.rule_id)))


def visible_therapists(session: Session, user: access.Viewer) -> list[tuple[str, str]]:
    return [(r.ehr_id, r.display_name or r.ehr_id) for r in session.execute(select(Therapist.ehr_id, Therapist.display_name).where(*access.therapist_scope(user)).order_by(Therapist.display_name, Therapist.ehr_id))]


# --- the access log (append-only) ------------------------------------------------------


def record_access(session: Session, user: Any, what: str, params: Mapping[str, Any]) -> None:
    """Append who read what; the only write this module makes. There is no update or delete."""
    session.add(AccessLog(clinic_id=user.clinic_id, user_id=user.id, what=what[:200], params=dict(params), at=utcnow()))


def access_log(session: Session, user: access.Viewer, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None) -> Page:
    limit = max(1, min(limit, MAX_LIMIT))
    query = (
        select(AccessLog.id, AccessLog.at, AccessLog.what, AccessLog.params, User.email, User.role)
        .join(User, User.id == AccessLog.user_id)
        .where(*access.access_log_scope(user))
        .order_by(AccessLog.at.desc(), AccessLog.id.desc())
        .limit(limit + 1)
    )
    if cursor:
        at, row_id = decode_cursor(cursor)
        query = query.where(AccessLog.at <= at, or_(AccessLog.at < at, and_(AccessLog.at == at, AccessLog.id < row_id)))
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [{"id": r.id, "at": r.at, "user": r.email, "role": r.role, "what": r.what, "params": r.params or {}} for r in rows]
    return Page(items, encode_cursor(rows[-1].at, rows[-1].id) if more and rows else None, limit)
