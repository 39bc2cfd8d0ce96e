"""The console's API fuzzed from its own /openapi.json with schemathesis, as each role.

Every operation gets a few generated requests (bounded, derandomized: the same ones each
run) with the role's session and CSRF token; no answer may be a 5xx, and every answer
must match the schema. The stream (it never ends) and logout (it would end the session
mid-run) are left out; they have tests of their own.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.dashboards.conftest import ConsoleHarness

EXAMPLES = 4
SKIPPED = {("GET", "/api/stream"), ("POST", "/api/logout")}


@pytest.mark.parametrize("role", ["admin", "operator", "officer3", "ent1"])
def test_no_5xx_and_every_answer_matches_the_schema(
    harness: ConsoleHarness, make_condition: Any, role: str
) -> None:
    harness.apply(make_condition())  # an alarm to find
    harness.login(role)
    schema = schemathesis.openapi.from_dict(harness.client.get("/openapi.json").json())
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), results  # the schema itself is valid
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    tried = 0
    for operation in operations:
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://testserver")
            response = harness.client.request(
                kwargs["method"],
                kwargs["url"],
                params=kwargs.get("params"),
                headers={**(kwargs.get("headers") or {}), **harness.client.headers},
                json=kwargs.get("json"),
                content=kwargs.get("data"),
            )
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        call()
        tried += 1
    assert tried >= 15
