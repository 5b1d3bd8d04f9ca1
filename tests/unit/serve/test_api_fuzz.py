"""Schemathesis over the server's own OpenAPI schema (in-process, ASGI): whatever the generated requests hold
(random files and base64, odd headers, wrong content types), the server never answers 5xx."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

from imgclf.serve import ServeSettings, create_app  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES = 150  # per operation


@pytest.fixture(scope="module")
def api_schema(base_bundle: Path):
    # schemathesis' in-process client sends Host "testserver"; small limits keep every generated case cheap.
    app = create_app(base_bundle, ServeSettings(allowed_hosts=(asgi.HOST,), timeout_s=10, max_body_mb=1,
                                                 max_images=8, max_pixels=1_000_000))  # fmt: skip
    with asgi.get_client(app) as client:  # starts the app's lifespan, kept for the cases until shutdown_lifespans
        deadline = time.monotonic() + 120
        while client.get(f"http://{asgi.HOST}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the app never became ready"
            time.sleep(0.05)
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    assert {"/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(app.openapi()["paths"])
    yield schema
    asgi.shutdown_lifespans()


def test_no_generated_request_gets_a_server_error(api_schema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /v1/predict", "POST /v1/explain"}
    seen: dict[int, int] = {}
    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def fuzz(case) -> None:
            response = case.call()
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])

        fuzz()
    print(f"\n{sum(seen.values())} generated requests over {len(operations)} operations; statuses {sorted(seen)}")
    assert sum(seen.values()) >= EXAMPLES and any(400 <= code < 500 for code in seen)
