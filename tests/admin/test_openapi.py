"""schemathesis against a live `tokenhub serve`: every documented call, fuzzed (valid and invalid
input), never a 5xx, every answer documented and matching its schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.procs import ADMIN_TOKEN, ServeProcess, provider, run_migrate, start_serve, write_config

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
OPERATIONS = {"POST /admin/keys", "GET /admin/keys", "GET /admin/keys/{id}", "PATCH /admin/keys/{id}",
              "POST /admin/keys/{id}/revoke", "POST /admin/keys/{id}/rotate", "GET /admin/audit",
              "GET /admin/providers", "GET /admin/keys/{id}/usage", "GET /metrics"}  # not the document itself
EXAMPLES = 25  # per operation and mode: about 500 requests, a few seconds


@pytest.fixture(scope="module")
def live_admin(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[ServeProcess]:
    directory: Path = tmp_path_factory.mktemp("schemathesis")
    config = write_config(directory, database_url=database_url, redis_url=redis_url,
                          namespace=f"thtest-{uuid.uuid4().hex[:10]}",
                          providers=[provider("openai", "http://127.0.0.1:9/v1", ["gpt-4o", "gpt-4o-mini"]),
                                     provider("local", "http://127.0.0.1:9/v1", ["llama-3.1-8b"])],
                          keystore={"ack_timeout_seconds": 1.0}, logging={"level": "WARNING"})
    run_migrate(config)
    proc = start_serve(config)
    try:
        asyncio.run(proc.wait_healthy())
        yield proc
    finally:
        asyncio.run(proc.stop())
    assert "Traceback" not in proc.log(), proc.log()[-3000:]


def _load(live: ServeProcess) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(live.admin_url("/admin/openapi.json"), headers=AUTH, timeout=10)
    schema.config.update(base_url=live.admin_url("/").rstrip("/"), headers=AUTH)
    return schema


def _fuzz(operation: Any, mode: schemathesis.GenerationMode, examples: int) -> None:
    # schemathesis' lazy pytest integration (from_fixture) does not run under pytest 9, so each
    # operation's strategy is driven by Hypothesis directly; the checks are schemathesis' own.
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case: Any) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=15)

    run()


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_admin_api_matches_its_openapi_document(live_admin: ServeProcess, mode: schemathesis.GenerationMode) -> None:
    operations = [result.ok() for result in _load(live_admin).get_all_operations()]  # type: ignore[union-attr]
    assert {op.label for op in operations} == OPERATIONS
    for operation in operations:
        inputs = len(operation.path_parameters) + len(operation.query) + len(operation.body)
        if mode is schemathesis.GenerationMode.NEGATIVE and not inputs:
            continue  # nothing to make invalid (GET /metrics, GET /admin/providers)
        _fuzz(operation, mode, EXAMPLES)
