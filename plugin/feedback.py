"""A button press: record it once, apply its effect once, say how to update the message.

Effects (what each answer changes for the next decisions):

- ``done`` on a therapist nudge or break: a ``PracticeLog`` row (source ``slack``), so
  ``own_practice_14d`` counts it (``therapist.practice-first`` then lets suggestions through).
  ``done`` on a client suggestion is recorded only (the therapist is not the one practising).
- ``client_found_it_hard``: the client's ``last_step_response`` becomes ``overwhelming`` when the
  suggestion was for the client's current ladder step, so the ladder steps back one level next
  time (the "backdraft" of DESIGN §4.4).
- ``used_in_session``: recorded only. It says the step was *offered*, not how the client received
  it; tolerance comes from the signed note's ``practice_feedback``. Reading it as ``tolerated``
  would advance the ladder on no evidence, against tip 4 (start small, go slow).
- ``snooze_1h`` / ``snooze_today``: the button is pressed on a message already delivered, so there
  is nothing left to reschedule; the message stays in the DM to come back to, and the therapist's
  nudges pause for that time (``paused_until``, the same pause as ``/tend pause``: timing defers or
  skips what falls inside it; safety messages are never paused).
- ``not_now`` on a therapist nudge: a self-care cooldown, not a pause. The ``Feedback`` row's
  ``created_at`` is the press time, and ``context.ledger_for`` counts it as the last self-care
  moment, so no further *self-care* nudge goes out for ``timing.Limits.selfcare_cooldown`` (2 h)
  after it; client suggestions and safety messages are unaffected (``paused_until`` is not
  touched). On a client suggestion: recorded only; the ladder does not move, so the same step
  comes again before a later session.
- ``helpful`` / ``not_helpful``: recorded only (the review stats read them).

Exactly once: ``Feedback`` is unique on (suggestion_id, feedback). A second press of the same
button, or a retried request, finds the row, adds nothing and applies nothing; it is still
answered with the same message update, which is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plugin.context import local_day
from plugin.delivery.blocks import Feedback as Answer
from plugin.delivery.blocks import Outgoing
from plugin.delivery.compose import outgoing_for
from plugin.store.db import Database, utcnow
from plugin.store.models import Client, Feedback, PracticeLog, Suggestion, Therapist

SNOOZE_1H = timedelta(hours=1)


class FeedbackRefused(ValueError):
    """Not recorded: ``reason`` is ``not_yours`` or ``not_for_this`` (copy keys under slack.feedback)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Recorded:
    suggestion_id: int
    feedback: Answer
    new: bool
    outgoing: Outgoing  # the message as it was sent, to rebuild it with ``blocks.recorded``
    slack_channel: str | None
    slack_ts: str | None


def record(
    db: Database,
    therapist_id: int,
    suggestion_id: int,
    feedback: str,
    *,
    source: str = "slack",
    assistance_line: str | None = None,
    now: datetime | None = None,
) -> Recorded:
    """Record ``feedback`` on the therapist's own suggestion; raise ``FeedbackRefused`` otherwise."""
    now = now or utcnow()
    try:
        answer = Answer(feedback)
    except ValueError:
        raise FeedbackRefused("not_for_this") from None
    with db.session() as session:
        row = session.get(Suggestion, suggestion_id)
        therapist = session.get(Therapist, therapist_id)
        if row is None or therapist is None or row.therapist_id != therapist.id or row.clinic_id != therapist.clinic_id:
            raise FeedbackRefused("not_yours")
        try:
            # The message as the therapist saw it: anchored at its delivery, not at the press.
            outgoing = outgoing_for(row, row.delivered_at or now, assistance_line)
        except (ValueError, KeyError):
            raise FeedbackRefused("not_for_this") from None
        if answer not in outgoing.effective_buttons:
            raise FeedbackRefused("not_for_this")
        new = _insert_once(session, row, answer, source, now)
        if new:
            _apply(session, row, therapist, answer, now)
        return Recorded(row.id, answer, new, outgoing, row.slack_channel, row.slack_ts)


def _insert_once(session: Session, row: Suggestion, answer: Answer, source: str, now: datetime) -> bool:
    exists = session.scalar(select(Feedback.id).where(Feedback.suggestion_id == row.id, Feedback.feedback == answer.value))
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Feedback(clinic_id=row.clinic_id, suggestion_id=row.id, feedback=answer.value, source=source, created_at=now))
            session.flush()
    except IntegrityError:  # a concurrent press of the same button committed first
        return False
    return True


def _pause_at_least(therapist: Therapist, until: datetime) -> None:
    if therapist.paused_until is None or therapist.paused_until < until:
        therapist.paused_until = until


def _apply(session: Session, row: Suggestion, therapist: Therapist, answer: Answer, now: datetime) -> None:
    own = row.audience == "therapist"
    if answer is Answer.DONE and own:
        session.add(PracticeLog(clinic_id=row.clinic_id, therapist_id=therapist.id, practice_id=row.practice_id, source="slack", at=now))
    elif answer is Answer.CLIENT_FOUND_IT_HARD and row.client_id is not None:
        client = session.get(Client, row.client_id)
        if client is not None and client.clinic_id == row.clinic_id and (row.ladder_step is None or row.ladder_step == client.ladder_step):
            client.last_step_response = "overwhelming"
    elif answer is Answer.SNOOZE_1H:
        _pause_at_least(therapist, now + SNOOZE_1H)
    elif answer is Answer.SNOOZE_TODAY:
        _pause_at_least(therapist, local_day(now, therapist.timezone)[1])
    # NOT_NOW: nothing to apply here. The Feedback row (created_at = now) is the cooldown's start.
