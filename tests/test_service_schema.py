"""Schemathesis against the live service's /openapi.json: generated requests, no 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from mangograde.service import ServeOptions, create_app  # noqa: E402

from .service_helpers import live_server, train_tiny  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from mangograde.data.synth import synthesize

    root = synthesize(tmp_path_factory.mktemp("schema") / "s", n=36, size=48, seed=2)
    out = train_tiny(root, tmp_path_factory.mktemp("runs") / "cnn")
    with live_server(create_app(ServeOptions(run=out, lime_samples=20))) as url:
        yield url


def test_no_generated_request_makes_a_server_error(served):
    api = schemathesis.openapi.from_url(f"{served}/openapi.json")
    checked = []
    for found in api.get_all_operations():
        operation = found.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def no_server_error(case):
            response = case.call(base_url=served, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
        checked.append(operation.label)
    assert {"POST /v1/grade", "POST /v1/explain", "GET /v1/model", "GET /metrics"} <= set(checked)
