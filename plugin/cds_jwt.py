"""Verifying the JWT a CDS Hooks client sends with every call (CDS Hooks 2.0, "Trusting CDS Clients").

The issuer must be allow-listed for a clinic (``cds_clients``); the key comes
from that issuer's JWKS URL (a ``jku`` header is honoured only when it is that
URL); RS384 and ES384 only; ``aud`` is the URL of the endpoint called; ``exp``,
``iat`` and ``jti`` are required and a ``jti`` is remembered in Redis for the
token's remaining lifetime so that it cannot be replayed. JWKS documents are
cached per URL by PyJWT's ``PyJWKClient`` for a short time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

import jwt
from redis import Redis
from sqlalchemy import select

from plugin.store.db import Database
from plugin.store.models import CdsClient

ALGORITHMS = ("RS384", "ES384")
JWKS_TTL_SECONDS = 300.0
JWKS_TIMEOUT_SECONDS = 5.0
MAX_LIFETIME_SECONDS = 600  # longer-lived tokens are refused (the spec expects about five minutes)
LEEWAY_SECONDS = 30
JTI_PREFIX = "tend:cds:jti:"


class CdsAuthError(Exception):
    """Why a call was refused: shown to the caller and logged, never contains the token."""


@dataclass(frozen=True, slots=True)
class Caller:
    clinic_id: str
    issuer: str
    subject: str | None
    jti: str


class JwksCache:
    """One ``PyJWKClient`` per JWKS URL, each caching its key set for a short TTL."""

    def __init__(self, lifespan: float = JWKS_TTL_SECONDS) -> None:
        self.lifespan = lifespan
        self._clients: dict[str, jwt.PyJWKClient] = {}
        self._lock = threading.Lock()

    def key(self, url: str, kid: str | None) -> jwt.PyJWK:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=self.lifespan, timeout=JWKS_TIMEOUT_SECONDS)
                self._clients[url] = client
        try:
            if kid:
                return client.get_signing_key(kid)
            keys = client.get_signing_keys()
        except jwt.PyJWKClientError as err:
            raise CdsAuthError(f"no usable key in the issuer's JWKS ({type(err).__name__})") from None
        if len(keys) != 1:
            raise CdsAuthError("the token has no kid and the JWKS holds more than one key")
        return keys[0]


def _client_for(db: Database, issuer: str) -> CdsClient | None:
    with db.session() as session:
        row = session.scalar(select(CdsClient).where(CdsClient.issuer == issuer))
        if row is not None:
            session.expunge(row)
        return row


def verify(token: str, *, audience: str, db: Database, redis: Redis, jwks: JwksCache) -> Caller:
    """The verified caller, or ``CdsAuthError`` naming the first problem."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise CdsAuthError("the bearer token is not a JWT") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise CdsAuthError(f"algorithm {str(alg)[:10]!r} is not accepted (RS384 or ES384)")
    issuer = unverified.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise CdsAuthError("the token has no iss")
    client = _client_for(db, issuer)
    if client is None:
        raise CdsAuthError("the issuer is not allow-listed for any clinic")
    jku = header.get("jku")
    if jku is not None and jku != client.jwks_url:
        raise CdsAuthError("the jku header is not the issuer's allow-listed JWKS URL")
    signing_key = jwks.key(client.jwks_url, header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            signing_key.key,
            algorithms=[alg],
            audience=audience,
            issuer=client.issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise CdsAuthError("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise CdsAuthError("the token's aud is not this endpoint's URL") from None
    except jwt.MissingRequiredClaimError as err:
        raise CdsAuthError(f"the token lacks the {err.claim} claim") from None
    except jwt.PyJWTError as err:
        raise CdsAuthError(f"the token did not verify ({type(err).__name__})") from None
    remaining = int(claims["exp"] - time.time()) + LEEWAY_SECONDS
    if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
        raise CdsAuthError("the token lives longer than 10 minutes")
    jti = str(claims["jti"])
    digest = hashlib.sha256(f"{client.issuer}\x1f{jti}".encode()).hexdigest()
    if not redis.set(JTI_PREFIX + digest, "1", nx=True, ex=max(1, remaining)):
        raise CdsAuthError("the token's jti was used before")
    return Caller(client.clinic_id, client.issuer, claims.get("sub"), jti)
