"""What a therapist sees of themself: /tend stats and the App Home view.

Numbers come from the store (this week's delivered messages and the answers
to them, the own-practice streak); wording comes from the catalogue through
``slack_views.Lines``, which guards every payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plugin.context import PRACTICE_WINDOW
from plugin.delivery.compose import kind_of
from plugin.delivery.slack_views import Lines
from plugin.store.db import Database
from plugin.store.models import Feedback, PracticeLog, Suggestion, Therapist
from plugin.therapist_settings import DAY_KEYS, local_clock

STREAK_LOOKBACK_DAYS = 366
MAX_WEEK_LINES = 20
SNOOZES = ("snooze_1h", "snooze_today")
# When a message got several answers, the one shown is the most telling.
ANSWER_ORDER = ("done", "used_in_session", "client_found_it_hard", "helpful", "not_helpful", "not_now", "snooze_today", "snooze_1h")


@dataclass(frozen=True, slots=True)
class WeekItem:
    delivered_at: datetime
    what: str  # nudge | suggest | break | safety
    answer: str  # a Feedback value or "none"


@dataclass(frozen=True, slots=True)
class Overview:
    tz: str
    week: tuple[WeekItem, ...]
    streak_days: int
    practice_14d: int

    def count(self, answer: str) -> int:
        return sum(1 for item in self.week if item.answer == answer)

    @property
    def delivered(self) -> int:
        return len(self.week)


def week_start(now: datetime, tz: str) -> datetime:
    local = now.astimezone(ZoneInfo(tz)).date()
    monday = local - timedelta(days=local.weekday())
    return datetime.combine(monday, time.min, ZoneInfo(tz))


def _what(row: Suggestion) -> str:
    """``slack.home.what.<key>``: safety (either kind), break, suggest or nudge."""
    kind = kind_of(row)
    return "safety" if kind.is_safety else str(kind)


def streak(practice_days: set[date], today: date) -> int:
    """Consecutive local days with own practice, ending today (or yesterday: today is not over)."""
    day = today if today in practice_days else today - timedelta(days=1)
    count = 0
    while day in practice_days:
        count += 1
        day -= timedelta(days=1)
    return count


def overview(session: Session, therapist: Therapist, now: datetime) -> Overview:
    tz = therapist.timezone or "UTC"
    zone = ZoneInfo(tz)
    rows = list(
        session.scalars(
            select(Suggestion)
            .where(Suggestion.therapist_id == therapist.id, Suggestion.status == "delivered", Suggestion.delivered_at >= week_start(now, tz))
            .order_by(Suggestion.delivered_at)
        )
    )
    answers: dict[int, set[str]] = {}
    if rows:
        for suggestion_id, value in session.execute(
            select(Feedback.suggestion_id, Feedback.feedback).where(Feedback.suggestion_id.in_([r.id for r in rows]))
        ):
            answers.setdefault(suggestion_id, set()).add(value)
    week = tuple(
        WeekItem(
            delivered_at=row.delivered_at or now,
            what=_what(row),
            answer=next((a for a in ANSWER_ORDER if a in answers.get(row.id, ())), "none"),
        )
        for row in rows
    )
    since = now - timedelta(days=STREAK_LOOKBACK_DAYS)
    moments = session.scalars(select(PracticeLog.at).where(PracticeLog.therapist_id == therapist.id, PracticeLog.at >= since))
    days = {m.astimezone(zone).date() for m in moments}
    recent = session.scalar(
        select(func.count()).select_from(PracticeLog).where(PracticeLog.therapist_id == therapist.id, PracticeLog.at >= now - PRACTICE_WINDOW)
    )
    return Overview(tz=tz, week=week, streak_days=streak(days, now.astimezone(zone).date()), practice_14d=recent or 0)


# --- /tend stats ------------------------------------------------------------------


def stats_message(ov: Overview) -> dict[str, Any]:
    lines = Lines()
    if ov.streak_days:
        lines.section("slack.commands.stats_streak", days=ov.streak_days, count=ov.practice_14d)
    else:
        lines.section("slack.commands.stats_no_streak", count=ov.practice_14d)
    lines.section("slack.commands.stats_week", delivered=ov.delivered, done=ov.count("done"), helpful=ov.count("helpful"))
    return lines.message()


# --- App Home -----------------------------------------------------------------------


def _hours_line(lines: Lines, therapist: Therapist, tz: str) -> None:
    hours = therapist.working_hours or {}
    if not hours:
        lines.section("slack.home.hours_default", zone=tz)
        return
    parts = []
    for day in DAY_KEYS:
        if day in hours:
            start, end = hours[day]
            parts.append(lines.say("slack.home.hours_day", day=lines.say(f"slack.home.days.{day}"), start=str(start), end=str(end)))
    lines.vocabulary.add(", ")
    lines.section("slack.home.hours", hours=", ".join(parts), zone=tz)


def home_view(therapist: Therapist, ov: Overview, now: datetime, default_limit: int) -> dict[str, Any]:
    tz = ov.tz
    lines = Lines().header("slack.home.title").section("slack.home.intro").divider()

    lines.header("slack.home.week_title")
    if ov.week:
        lines.section(
            "slack.home.week_counts",
            delivered=ov.delivered,
            done=ov.count("done"),
            helpful=ov.count("helpful"),
            not_helpful=ov.count("not_helpful"),
            not_now=ov.count("not_now"),
            snoozed=sum(ov.count(s) for s in SNOOZES),
            open=ov.count("none"),
        )
        rendered = []
        for item in ov.week[-MAX_WEEK_LINES:]:
            local = item.delivered_at.astimezone(ZoneInfo(tz))
            day = lines.say(f"slack.home.days.{DAY_KEYS[local.weekday()]}")
            rendered.append(
                lines.say(
                    "slack.home.week_line",
                    day=f"{day} {local:%H:%M}",
                    what=lines.say(f"slack.home.what.{item.what}"),
                    answer=lines.say(f"slack.home.answers.{item.answer}"),
                )
            )
        lines.text("\n".join(rendered))
    else:
        lines.section("slack.home.week_empty")
    lines.divider()

    lines.header("slack.home.practice_title")
    if ov.streak_days:
        lines.section("slack.home.streak", days=ov.streak_days, count=ov.practice_14d)
    else:
        lines.section("slack.home.no_streak", count=ov.practice_14d)
    lines.divider()

    lines.header("slack.home.settings_title")
    _hours_line(lines, therapist, tz)
    lines.section("slack.home.limit", n=therapist.daily_limit or default_limit)
    pauses = [p for p in (therapist.paused_until, therapist.stopped_until) if p is not None and p > now]
    if pauses:
        lines.section("slack.home.paused_until", until=local_clock(max(pauses), tz, now), zone=tz)
    else:
        lines.section("slack.home.not_paused")
    lines.context("slack.home.settings_hint")
    lines.divider()

    lines.header("slack.home.supervisors_title")
    lines.section_list("slack.home.supervisors")
    lines.section_list("slack.home.supervisors_not")
    return lines.home_view()


# --- entry points for the Slack listeners --------------------------------------------


def view_for(db: Database, therapist_id: int, now: datetime, default_limit: int) -> dict[str, Any] | None:
    with db.session() as session:
        therapist = session.get(Therapist, therapist_id)
        if therapist is None:
            return None
        return home_view(therapist, overview(session, therapist, now), now, default_limit)


def stats_for(db: Database, therapist_id: int, now: datetime) -> dict[str, Any] | None:
    with db.session() as session:
        therapist = session.get(Therapist, therapist_id)
        if therapist is None:
            return None
        return stats_message(overview(session, therapist, now))
