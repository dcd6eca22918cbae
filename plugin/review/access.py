"""Who may see what, as SQL where-clauses.

Pure functions: each takes a user (anything with ``clinic_id``, ``role`` and
``therapist_ehr_id``, such as ``plugin.store.models.User``) and returns the
clauses that limit a query to that user's view. Every query of the review goes
through them, so scoping is decided in one place and enforced by the database:

- ``admin``: the whole clinic;
- ``supervisor``: the therapists whose ``supervisor_ehr_id`` is the user's
  ``therapist_ehr_id`` (their supervisees, not themselves);
- ``therapist``: the therapist whose ``ehr_id`` is the user's ``therapist_ehr_id``.

A ``private`` suggestion (decided on what the therapist wrote to Tend: the reply,
or the safety message) is seen by its own therapist only; supervisors and admins
never see it, not even as a count.

Another clinic is never in scope; callers answer out-of-scope ids with 404.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import ColumnElement, false, select, true

from plugin.store.models import AccessLog, Suggestion, Therapist

ROLES = ("admin", "supervisor", "therapist")


class Viewer(Protocol):
    clinic_id: str
    role: str
    therapist_ehr_id: str | None


def therapist_scope(user: Viewer) -> list[ColumnElement[bool]]:
    """Where-clauses on ``Therapist`` for the therapists this user may see."""
    clauses: list[ColumnElement[bool]] = [Therapist.clinic_id == user.clinic_id]
    if user.role == "admin":
        return clauses
    if user.role == "supervisor" and user.therapist_ehr_id:
        return [*clauses, Therapist.supervisor_ehr_id == user.therapist_ehr_id]
    if user.role == "therapist" and user.therapist_ehr_id:
        return [*clauses, Therapist.ehr_id == user.therapist_ehr_id]
    return [false()]


def suggestion_scope(user: Viewer) -> list[ColumnElement[bool]]:
    """Where-clauses on ``Suggestion`` for the suggestions this user may see."""
    clauses: list[ColumnElement[bool]] = [Suggestion.clinic_id == user.clinic_id, private_scope(user)]
    if user.role == "admin":
        return clauses
    if user.role not in ROLES:
        return [false()]
    visible = select(Therapist.id).where(*therapist_scope(user))
    return [*clauses, Suggestion.therapist_id.in_(visible)]


def private_scope(user: Viewer) -> ColumnElement[bool]:
    """Where-clause on ``Suggestion``: private rows only for a therapist, whose scope is themselves."""
    if user.role == "therapist":
        return true()
    return Suggestion.private.is_(false())


def can_read_access_log(user: Viewer) -> bool:
    return user.role == "admin"


def access_log_scope(user: Viewer) -> list[ColumnElement[bool]]:
    """Where-clauses on ``AccessLog``: a clinic's admins read its whole access log; nobody else any."""
    if not can_read_access_log(user):
        return [false()]
    return [AccessLog.clinic_id == user.clinic_id]
