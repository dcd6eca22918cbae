"""The OpenAPI document is valid, and the API holds to it under fuzzing (schemathesis, in process)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from tests.review_world import build_world

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.core.parameters import ParameterLocation  # noqa: E402
EXAMPLES_PER_OPERATION = 40


@pytest.fixture
def world(rt):  # type: ignore[no-untyped-def]
    return build_world(rt)


def test_the_openapi_document_is_valid_openapi_3(world, client) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = client.get("/api/v1/openapi.json").get_json()
    validator.validate(document)
    assert document["openapi"].startswith("3.")
    assert {"/api/v1/suggestions", "/api/v1/suggestions/{suggestion_id}", "/api/v1/suggestions.csv", "/api/v1/stats", "/api/v1/access-log"} <= set(document["paths"])


def test_errors_are_documented_as_problem_json(world, client) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    assert set(document["components"]["responses"]["UNPROCESSABLE_CONTENT" if "UNPROCESSABLE_CONTENT" in document["components"]["responses"] else "UNPROCESSABLE_ENTITY"]["content"]) == {"application/problem+json"}
    assert set(document["components"]["responses"]["NOT_FOUND"]["content"]) == {"application/problem+json"}


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("who", ["admin", "supervisor", "therapist"])
def test_fuzzed_requests_never_5xx_and_always_match_the_schema(world, app, who, mode) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    headers = world.headers(who)
    # Cursors are opaque: a schema-valid string that Tend did not make is rightly a 422
    # (tested in test_review_api), so fuzzing uses real ones.
    real_cursor = app.test_client().get("/api/v1/suggestions?limit=3", headers=headers).get_json()["next_cursor"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    for operation in operations:

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
        def check(case) -> None:  # type: ignore[no-untyped-def]
            if mode == "positive" and case.query and "cursor" in case.query:
                case.query["cursor"] = real_cursor
            # A case that breaks the Authorization header on purpose is sent as generated (our
            # valid token would mask the breakage); every other case is sent as this role.
            header_mode = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
            broken_header = header_mode is not None and header_mode.mode is schemathesis.GenerationMode.NEGATIVE
            case.call_and_validate(headers=None if broken_header else headers)

        check()
