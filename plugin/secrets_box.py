"""Secrets at rest: tokens stored as hashes, webhook secrets encrypted.

API and FHIR tokens are only ever compared, so a SHA-256 of a high-entropy
token is enough. Webhook signing secrets must be recovered to verify HMACs, so
they are encrypted (Fernet) under a key derived from ``TEND_SECRET_KEY``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(token: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return stored_hash is not None and hmac.compare_digest(token_hash(token), stored_hash)


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = hashlib.sha256(b"tend-secret-box\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise ValueError("a stored secret could not be decrypted: TEND_SECRET_KEY changed?") from None
