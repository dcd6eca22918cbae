"""Keys, signed JWTs and a prepared clinic for the CDS Hooks tests."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from plugin.store.db import utcnow
from plugin.store.models import CdsClient
from tests.fakes.jwks_server import JwksServer

ISSUER = "https://ehr.example.org/cds-client"
SERVICE = "/cds-services/tend-self-compassion"


@dataclass
class Ehr:
    """A CDS client: its keys, its JWKS on loopback, and a way to sign calls."""

    jwks: JwksServer
    rsa_key: Any
    ec_key: Any
    public_url: str

    def token(self, path: str = SERVICE, *, alg: str = "RS384", **overrides: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "ehr-client-1", "aud": self.public_url + path, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
        headers = {"kid": "rsa-1" if alg == "RS384" else "ec-1", "typ": "JWT", "jku": self.jwks.url}
        headers.update(overrides.pop("headers", {}))
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.rsa_key if alg.startswith("RS") else self.ec_key
        return jwt.encode(claims, key, algorithm=alg, headers=headers)


def _jwk(algorithm: Any, public_key: Any, kid: str, alg: str) -> dict[str, Any]:
    jwk = json.loads(algorithm.to_jwk(public_key))
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return jwk


@pytest.fixture(scope="session")
def ehr_keys() -> tuple[Any, Any]:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def ehr(rt, clinic, ehr_keys) -> Iterator[Ehr]:  # type: ignore[no-untyped-def]
    rsa_key, ec_key = ehr_keys
    with JwksServer() as server:
        server.keys = [
            _jwk(RSAAlgorithm(RSAAlgorithm.SHA384), rsa_key.public_key(), "rsa-1", "RS384"),
            _jwk(ECAlgorithm(ECAlgorithm.SHA384), ec_key.public_key(), "ec-1", "ES384"),
        ]
        with rt.db.session() as session:
            session.add(CdsClient(clinic_id=clinic.clinic_id, issuer=ISSUER, jwks_url=server.url, created_at=utcnow()))
        yield Ehr(server, rsa_key, ec_key, rt.settings.public_url)


def hook_body(hook: str = "encounter-start", patient: str = "P-77", user: str = "Practitioner/T-100", instance: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": user, "patientId": patient, "encounterId": "enc-9001"}
    if hook == "appointment-book":
        context.pop("encounterId")
        context["appointments"] = {"resourceType": "Bundle", "type": "collection", "entry": []}
    return {
        "hookInstance": instance or str(uuid.uuid4()),
        "fhirServer": "https://ehr.example.org/fhir",
        "hook": hook,
        "context": context,
        "prefetch": {},
    }


def call(client, ehr: Ehr, body: dict[str, Any], path: str = SERVICE, token: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token or ehr.token(path)}"})
