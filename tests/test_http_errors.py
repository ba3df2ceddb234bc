"""One error layer (umi.http_errors) for both HTTP APIs: the orchestrator and the role services.

The apps run in-process without their lifespan: routing, body limits and validation answer
before a handler needs Redis or an engine.
"""

from __future__ import annotations



import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestrator.api import create_app as create_orchestrator
from orchestrator.chats import Chats
from orchestrator.models import ChatRequest
from orchestrator.settings import Settings
from services import planner
from umi.engines import EngineError, EngineRequestError, EngineStartError, EngineUnavailable
from umi.http_errors import HttpError, field_path, lone_surrogate_at
from umi.service.app import create_app as create_role_service
from umi.service.errors import as_service_error
from umi.service.settings import ServiceSettings

BODY_LIMIT_BYTES = 4096
ERROR_SCHEMA = "#/components/schemas/ErrorBody"
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}


@dataclass
class Api:
    name: str
    app: FastAPI
    client: TestClient
    post_path: str  # a route that takes a JSON body
    bad_body: dict[str, Any]  # a body with one invalid nested field
    bad_field: str  # its path


def orchestrator_api() -> Api:
    app = create_orchestrator(Settings(max_body_bytes=BODY_LIMIT_BYTES))
    bad = {"query": "q", "tools": [TOOL, {"type": "function", "function": {"parameters": {}}}]}
    return Api("orchestrator", app, TestClient(app), "/chat", bad, "tools[1].function.name")


def role_service_api() -> Api:
    settings = ServiceSettings(model="/models/planner", engine="transformers", max_body_bytes=BODY_LIMIT_BYTES)
    app = create_role_service(planner.ROLE, settings)
    bad = {"tools": [TOOL], "history": [{"role": "user", "content": "q"}, {"role": "robot", "content": "x"}]}
    return Api("planner", app, TestClient(app), "/v1/plan", bad, "history[1].role")


@pytest.fixture(params=["orchestrator", "planner"])
def api(request: pytest.FixtureRequest) -> Api:
    # Not entered as a context manager, TestClient does not run the lifespan (no Redis, no engine).
    return orchestrator_api() if request.param == "orchestrator" else role_service_api()


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body["error"]) == {"type", "message", "field"}, body
    return body["error"]


# ---------------------------------------------------------------- answers


def test_an_unknown_route_answers_404_with_the_error_body(api: Api) -> None:
    error = error_of(api.client.get("/no/such/route"), 404)
    assert error["type"] == "not_found" and error["field"] is None and "/no/such/route" in error["message"]


def test_a_wrong_method_answers_405_with_the_error_body_and_allow(api: Api) -> None:
    response = api.client.put(api.post_path, json={})
    error = error_of(response, 405)
    assert error["type"] == "method_not_allowed" and error["field"] is None
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("text", ['{"query": "x", "tools": [}', '{\n  "history": [],\n  "tools": [1,]\n}'])
def test_malformed_json_says_where_it_broke_and_names_no_field(api: Api, text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as broken:
        json.loads(text)
    response = api.client.post(api.post_path, content=text.encode(), headers={"content-type": "application/json"})
    error = error_of(response, 422)
    assert error["type"] == "invalid_request" and error["field"] is None
    where = f"line {broken.value.lineno} column {broken.value.colno} (char {broken.value.pos})"
    assert error["message"].startswith("the body is not valid JSON: ") and where in error["message"]


def test_a_validation_error_names_the_field_with_brackets_for_indexes(api: Api) -> None:
    error = error_of(api.client.post(api.post_path, json=api.bad_body), 422)
    assert error["type"] == "invalid_request" and error["field"] == api.bad_field
    assert error["message"].startswith(f"{api.bad_field}: ")


def test_a_body_that_is_not_an_object_is_at_fault_as_a_whole(api: Api) -> None:
    error = error_of(api.client.post(api.post_path, json=[1, 2]), 422)
    assert error["field"] == "body"


def test_a_body_sent_without_the_json_content_type_says_to_send_it(api: Api) -> None:
    response = api.client.post(api.post_path, content=b'{"query": "q"}', headers={"content-type": "application/x-www-form-urlencoded"})
    error = error_of(response, 422)
    assert error["field"] == "body" and "Content-Type: application/json" in error["message"]


def test_an_oversize_body_answers_413_naming_the_body(api: Api) -> None:
    big = {**api.bad_body, "padding": "x" * BODY_LIMIT_BYTES}
    error = error_of(api.client.post(api.post_path, json=big), 413)
    assert error == {"type": "limit", "message": f"the request body is over {BODY_LIMIT_BYTES} bytes", "field": "body"}


def test_orchestrator_metrics_without_the_admin_token_answers_401_with_the_error_body() -> None:
    client = TestClient(create_orchestrator(Settings(admin_token="s3cret")))
    error = error_of(client.get("/metrics", headers={"Authorization": "Bearer wrong"}), 401)
    assert error["type"] == "unauthorized" and error["field"] is None


def test_role_service_admin_api_answers_401_and_403_with_the_error_body() -> None:
    settings = ServiceSettings(model="/models/planner", engine="transformers", admin_token="s3cret")
    client = TestClient(create_role_service(planner.ROLE, settings))
    assert error_of(client.get("/admin/weights"), 401)["type"] == "unauthorized"
    assert error_of(role_service_api().client.get("/admin/weights"), 403)["type"] == "admin_disabled"


def test_an_unexpected_exception_answers_500_with_the_error_body(api: Api) -> None:
    @api.app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    response = TestClient(api.app, raise_server_exceptions=False).get("/boom")
    error = error_of(response, 500)
    assert error == {"type": "internal_error", "message": "unexpected RuntimeError; the server log has the details", "field": None}


def test_orchestrator_limits_name_tools_by_index_in_the_same_spelling() -> None:
    chats = Chats(Settings(), store=None, supervisor=None, hub=None, metrics=None)  # type: ignore[arg-type]
    other = {**TOOL, "function": {**TOOL["function"], "description": "another tool of the same name"}}
    conflicting = ChatRequest(query="q", tools=[TOOL, other])
    with pytest.raises(HttpError) as refused:
        chats.check_limits(conflicting)
    assert (refused.value.status, refused.value.type, refused.value.field) == (422, "invalid_request", "tools[1].function.name")


def test_field_paths_skip_the_union_members_pydantic_tried() -> None:
    body = {"tools": [{"type": "function", "function": {}}]}
    assert field_path(("body", "tools", 0, "OpenAITool", "function", "name"), body) == "tools[0].function.name"
    assert field_path(("body", "history", 2, "role")) == "history[2].role"
    assert field_path(("header", "last-event-id")) == "last-event-id"
    assert field_path(("body",)) == "body"


def test_engine_errors_share_one_base_and_map_to_their_answers() -> None:
    assert all(issubclass(cls, EngineError) for cls in (EngineUnavailable, EngineRequestError, EngineStartError))
    unavailable = as_service_error(EngineUnavailable("starting", retry_after_s=7))
    assert (unavailable.status, unavailable.type, unavailable.headers) == (503, "engine_unavailable", {"Retry-After": "7"})
    assert (as_service_error(EngineRequestError("bad model", 404)).status, as_service_error(EngineStartError("x")).type) == (
        502, "engine_error",
    )  # fmt: skip


# ---------------------------------------------------------------- OpenAPI


def operations(app: FastAPI) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in app.openapi()["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


@pytest.mark.parametrize("make", [orchestrator_api, role_service_api], ids=["orchestrator", "planner"])
def test_openapi_declares_every_error_status_with_the_error_body(make: Any) -> None:
    api = make()
    document = api.app.openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's own 422 is replaced
    auth = {"/chat", "/metrics", "/admin/"} if api.name == "orchestrator" else {"/admin/"}
    store = ("/chat",) if api.name == "orchestrator" else ()
    seen = 0
    for name, operation in operations(api.app):
        path = name.split(" ", 1)[1]
        if path.startswith("/v1/") and api.name == "orchestrator":  # OpenAI's error body (orchestrator.openai_api)
            for status in ("4XX", "5XX"):
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/OpenAIErrorBody"}, f"{name} {status}: {schema}"
            continue
        declared = {int(status) for status in operation["responses"] if not status.startswith("2")}
        expected = {500}
        if "requestBody" in operation:
            expected |= {413, 422}
        if any(path.startswith(prefix) for prefix in auth):
            expected |= {401}
        if path.startswith(store) or path in ("/ready", api.post_path):
            expected |= {503}
        assert expected <= declared, f"{name} declares {sorted(declared)}; it may answer {sorted(expected)}"
        for status in declared:
            schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_SCHEMA}, f"{name} {status}: {schema}"
        seen += 1
    assert seen >= 6


def test_a_json_body_with_a_lone_surrogate_escape_is_a_422_not_a_500(api: Api) -> None:
    response = api.client.post(api.post_path, content=b'{"query": "q", "metadata": {"a": "\\ud800"}}',
                               headers={"content-type": "application/json"})  # fmt: skip
    error = error_of(response, 422)
    assert error["field"] is None and "lone surrogate" in error["message"]


def test_openai_routes_refuse_a_lone_surrogate_in_their_own_error_shape() -> None:
    app = orchestrator_api().app
    response = TestClient(app).post("/v1/chat/completions", content=b'{"model": "alpha-umi", "messages": '
                                    b'[{"role": "user", "content": "\\udfff\\ud800x"}]}',
                                    headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 400 and "lone surrogate" in response.json()["error"]["message"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFFFF)))
def test_the_surrogate_scan_agrees_with_the_json_parser(text: str) -> None:
    body = json.dumps({"a": text}).encode()  # ensure_ascii: every surrogate is an escape
    try:
        json.loads(body)["a"].encode("utf-8")
        valid = True
    except UnicodeEncodeError:
        valid = False
    assert (lone_surrogate_at(body) is None) == valid
