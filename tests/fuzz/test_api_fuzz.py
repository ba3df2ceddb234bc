"""API fuzzing (schemathesis, from each app's own /openapi.json): no 5xx, only documented status
codes and content types, and responses that match their schemas.

The orchestrator runs in-process (uvicorn in a thread, the in-memory chat store, the fake role
services' scripts called in-process); the role service is the real caller service on the vLLM
engine driven by tests/support/fake_vllm.py (the same process manager and HTTP client as
production; the fake answers completions without a model). Examples per operation:
``UMI_FUZZ_EXAMPLES`` (tests/support/fuzz.py): `make test` runs a short budget, `make fuzz` a
long one.

Each test loads the app's schema from its running server and fuzzes every operation with
hypothesis (``APIOperation.as_strategy``; schemathesis's ``from_fixture`` pytest loader does not
run under pytest 9).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from hypothesis import given
from tests.support.fuzz import FUZZ
from tests.support.orchestrator_fakes import FakeRoles, InProcessRoles, ThreadServer
from tests.support.servers import FAKE_VLLM_COMMAND, role_service, service_settings

from orchestrator.api import create_app
from orchestrator.settings import Settings
from orchestrator.store import InMemoryChatStore

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


def fuzz(base_url: str) -> list[str]:
    """Fuzz every operation of the app at ``base_url``; the operations fuzzed."""
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    done = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

        run()
        done.append(operation.label)
    return done


def test_the_orchestrator_answers_every_fuzzed_request_as_documented() -> None:
    settings = Settings(
        chat_wait_s=2, max_steps_limit=5, max_query_chars=256, tool_timeout_s=1, redis_url="redis://127.0.0.1:1/0",
        planner_url="http://in-process", caller_url="http://in-process", summarizer_url="http://in-process",
    )  # fmt: skip
    fake = FakeRoles()
    app = create_app(
        settings, store=lambda s, m: InMemoryChatStore(s.chat_ttl_s, s.lease_ttl_s), roles=lambda s, m: InProcessRoles(fake)
    )
    with ThreadServer(app) as server:
        assert "POST /chat" in fuzz(server.url)


def test_the_caller_service_answers_every_fuzzed_request_as_documented(tiny_models: dict[str, Path]) -> None:
    from services import caller

    settings = service_settings(
        engine="vllm", engine_command=FAKE_VLLM_COMMAND, model=str(tiny_models["v1"]), model_version="v1",
        max_model_len=1024, engine_args="--enforce-eager",
    )  # fmt: skip
    with role_service(caller.ROLE, settings) as client:
        assert "POST /v1/call" in fuzz(str(client.base_url).rstrip("/"))
