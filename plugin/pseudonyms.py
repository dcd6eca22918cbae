"""Client identities: a keyed hash to join on, a random code to show.

The hash (HMAC-SHA256 of clinic + EHR patient id under ``TEND_PSEUDONYM_KEY``)
lets Tend recognise the same client across events without storing who they
are. The code people see is drawn at random, so it cannot be reversed into an
identifier (the re-identification code HIPAA allows, 45 CFR 164.514(c)).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

# No 0/O, 1/I/L: codes are read aloud in supervision.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 6


def client_key(pseudonym_key: str, clinic_id: str, ehr_client_id: str) -> str:
    message = f"{clinic_id}\x1f{ehr_client_id}".encode()
    return hmac.new(pseudonym_key.encode(), message, hashlib.sha256).hexdigest()


def new_client_code() -> str:
    return "C-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
