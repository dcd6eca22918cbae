"""Clinic and user administration, shared by the CLI and tests."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from plugin.secrets_box import SecretBox, new_token, new_webhook_secret, token_hash
from plugin.store.db import Database, utcnow
from plugin.store.models import Clinic, User

ROLES = ("admin", "supervisor", "therapist")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AdminError(ValueError):
    """A request the CLI answers with one line and a non-zero exit."""


@dataclass(frozen=True)
class NewClinic:
    clinic_id: str
    name: str
    webhook_path: str
    webhook_secret: str
    fhir_token: str


@dataclass(frozen=True)
class NewUser:
    user_id: int
    token: str


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:24] or "clinic"


def create_clinic(db: Database, box: SecretBox, name: str, clinic_id: str | None = None) -> NewClinic:
    """A clinic with a fresh webhook secret and FHIR token, shown once."""
    name = name.strip()
    if not name:
        raise AdminError("a clinic needs a name")
    with db.session() as session:
        if clinic_id is None:
            clinic_id = f"{_slug(name)}-{secrets.token_hex(3)}"
        elif session.get(Clinic, clinic_id) is not None:
            raise AdminError(f"clinic {clinic_id!r} exists already")
        secret = new_webhook_secret()
        fhir_token = new_token("tfhir")
        session.add(
            Clinic(
                id=clinic_id,
                name=name,
                webhook_secret_enc=box.seal(secret),
                fhir_token_hash=token_hash(fhir_token),
                settings={},
                created_at=utcnow(),
            )
        )
    return NewClinic(clinic_id, name, f"/webhooks/{clinic_id}/ehr", secret, fhir_token)


SECRETS_CACHE_SECONDS = 30.0
_secrets_cache: dict[tuple[str, str], tuple[float, list[str]]] = {}


def webhook_secrets(db: Database, box: SecretBox, clinic_id: str) -> list[str] | None:
    """The secrets a clinic's webhooks may be signed with (the previous one during rotation).

    Cached in the process for 30 s: every webhook needs them, and a rotation
    keeps the old secret valid for hours, so a short staleness is harmless.
    Unknown clinics are not cached, so a clinic answers as soon as it is added.
    """
    key = (db.url, clinic_id)
    cached = _secrets_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < SECRETS_CACHE_SECONDS:
        return cached[1]
    found = _read_webhook_secrets(db, box, clinic_id)
    if found is not None:
        _secrets_cache[key] = (time.monotonic(), found)
    return found


def _read_webhook_secrets(db: Database, box: SecretBox, clinic_id: str) -> list[str] | None:
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None:
            return None
        found = [box.open(clinic.webhook_secret_enc)]
        if clinic.previous_webhook_secret_enc and clinic.previous_secret_until and clinic.previous_secret_until > utcnow():
            found.append(box.open(clinic.previous_webhook_secret_enc))
        return found


def rotate_webhook_secret(db: Database, box: SecretBox, clinic_id: str, overlap_hours: int = 24) -> str:
    """A new secret; the old one keeps verifying for ``overlap_hours``."""
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None:
            raise AdminError(f"no clinic {clinic_id!r}")
        secret = new_webhook_secret()
        clinic.previous_webhook_secret_enc = clinic.webhook_secret_enc
        clinic.previous_secret_until = utcnow() + timedelta(hours=overlap_hours)
        clinic.webhook_secret_enc = box.seal(secret)
    _secrets_cache.pop((db.url, clinic_id), None)
    return secret


def set_assistance_line(db: Database, clinic_id: str, line: str | None) -> None:
    """The phone line distress messages name for this clinic (None: the deployment's)."""
    if line is not None and not re.fullmatch(r"\+?[0-9][0-9 ().-]{1,30}", line):
        raise AdminError("the assistance line must be a phone number, e.g. +1 555 0100")
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        if clinic is None:
            raise AdminError(f"no clinic {clinic_id!r}")
        settings = dict(clinic.settings or {})
        if line is None:
            settings.pop("assistance_line", None)
        else:
            settings["assistance_line"] = line
        clinic.settings = settings  # a new dict, so the JSON column is written


def add_user(db: Database, email: str, role: str, clinic_id: str, therapist_ehr_id: str | None = None) -> NewUser:
    """A user with a one-time API token; only its hash is stored."""
    if role not in ROLES:
        raise AdminError(f"role must be one of {', '.join(ROLES)}")
    if not _EMAIL.match(email):
        raise AdminError(f"{email!r} is not an email address")
    if role in ("supervisor", "therapist") and not therapist_ehr_id:
        raise AdminError(f"a {role} needs --therapist-id (their id in the EHR)")
    token = new_token("tend")
    with db.session() as session:
        if session.get(Clinic, clinic_id) is None:
            raise AdminError(f"no clinic {clinic_id!r}")
        if session.scalar(select(User.id).where(User.clinic_id == clinic_id, User.email == email)) is not None:
            raise AdminError(f"{email} is already a user of {clinic_id}")
        user = User(
            clinic_id=clinic_id, email=email, role=role, therapist_ehr_id=therapist_ehr_id, token_hash=token_hash(token), created_at=utcnow()
        )
        session.add(user)
        session.flush()
        return NewUser(user.id, token)
