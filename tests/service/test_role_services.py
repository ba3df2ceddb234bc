"""The four role services against a real `transformers serve` engine on a tiny random model.

One engine serves them all: the planner service starts and supervises it (engine
``transformers``); the caller, summarizer and backbone services reach it as ``url`` engines.
Random weights make random text, so each answer is checked against the parser applied to the
text it returned, and the prompts against the format core.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from tests.support.servers import ADMIN, admin_status, metric_value, read_events, role_service, service_settings

from services import backbone, caller, planner, summarizer
from umi.format import Turn, parse_backbone, parse_caller, parse_planner, parse_summarizer, render_prompt, to_tooldocs
from umi.service.prompt_fit import load_tokenizer

pytestmark = pytest.mark.engine

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}},
        },
    }
]
HISTORY = [
    {"role": "user", "content": "What is the weather in Oslo?"},
    {"role": "planner", "content": "I should call get_weather.\n Next: caller."},
]
SHORT = {"max_tokens": 12, "seed": 7}  # transformers serve seeds torch per request: repeatable text


@pytest.fixture(scope="module")
def clients(tiny_models: dict[str, Path]) -> Iterator[dict[str, httpx.Client]]:
    model = str(tiny_models["v1"])
    with ExitStack() as stack:
        planner_client = stack.enter_context(
            role_service(planner.ROLE, service_settings(engine="transformers", model=model, model_version="v1"))
        )
        engine_url = admin_status(planner_client)["engine"]["url"]
        out = {"planner": planner_client}
        for name, spec, extra in (
            ("caller", caller.ROLE, {}),
            ("summarizer", summarizer.ROLE, {}),
            ("backbone", backbone.ROLE, {"prompt_variant": "toolalpaca", "system_prefix": ""}),
        ):
            settings = service_settings(engine="url", engine_url=engine_url, model=model, model_version="v1", **extra)
            out[name] = stack.enter_context(role_service(spec, settings))
        yield out


def test_plan_returns_the_parsed_decision_the_version_and_usage(clients: dict[str, httpx.Client]) -> None:
    r = clients["planner"].post("/v1/plan", json={"tools": TOOLS, "history": HISTORY[:1], "sampling": SHORT})
    assert r.status_code == 200, r.text
    body = r.json()
    parsed = parse_planner(body["text"])
    assert (body["thought"], body["next"], body["turn"]) == (parsed.thought, parsed.next, parsed.text)
    assert body["model"] == {"name": "tiny-v1", "version": "v1"}
    rendered = clients["planner"].post("/v1/render", json={"tools": TOOLS, "history": HISTORY[:1]}).json()
    assert body["usage"]["prompt_tokens"] == rendered["prompt_tokens"]
    assert 1 <= body["usage"]["completion_tokens"] <= SHORT["max_tokens"]
    assert isinstance(body["latency_ms"], float)


def test_call_returns_the_parsed_action(clients: dict[str, httpx.Client]) -> None:
    r = clients["caller"].post(
        "/v1/call", json={"tools": TOOLS, "history": HISTORY, "thought": HISTORY[1]["content"], "sampling": SHORT}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    parsed = parse_caller(body["text"], ["get_weather"])
    for key in ("name", "arguments", "arguments_raw", "valid", "hallucinated", "error"):
        assert body[key] == getattr(parsed, key), key
    assert body["turn"] == parsed.text
    assert body["model"]["version"] == "v1"


def test_summarize_returns_the_answer(clients: dict[str, httpx.Client]) -> None:
    history = [*HISTORY, {"role": "caller", "content": 'Action: get_weather\nAction Input: {"city": "Oslo"}'},
               {"role": "observation", "content": '{"temp": 3}'}]
    r = clients["summarizer"].post("/v1/summarize", json={"history": history, "sampling": SHORT})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"] == parse_summarizer(body["text"]).answer
    assert body["usage"]["completion_tokens"] >= 1


def test_backbone_step_returns_the_single_model_decision(clients: dict[str, httpx.Client]) -> None:
    r = clients["backbone"].post("/v1/step", json={"tools": TOOLS, "history": HISTORY[:1], "sampling": SHORT})
    assert r.status_code == 200, r.text
    body = r.json()
    parsed = parse_backbone(body["text"], ["get_weather"])
    assert (body["thought"], body["next"], body["answer"]) == (parsed.thought, parsed.next, parsed.answer)
    assert (body["call"] or {}).get("name") == (parsed.call.name if parsed.call else None)


@pytest.mark.parametrize(
    ("role", "thought", "variant", "prefix"),
    [
        ("planner", "", "toolbench", "system: "),
        ("caller", HISTORY[1]["content"], "toolbench", "system: "),
        ("summarizer", "", "toolbench", "system: "),
        ("backbone", "", "toolalpaca", ""),  # UMI_PROMPT_VARIANT and UMI_SYSTEM_PREFIX of that service
    ],
)
def test_render_returns_the_exact_prompt_without_generating(
    clients: dict[str, httpx.Client], tiny_models: dict[str, Path], role: str, thought: str, variant: str, prefix: str
) -> None:
    client = clients[role]
    body: dict = {"history": HISTORY}
    tools = to_tooldocs(TOOLS) if role != "summarizer" else []
    if role != "summarizer":
        body["tools"] = TOOLS
    if role == "caller":
        body["thought"] = thought
    before = metric_value(client, "umi_tokens_total")
    r = client.post("/v1/render", json=body)
    assert r.status_code == 200, r.text
    expected = render_prompt(role, tools, [Turn.model_validate(t) for t in HISTORY], thought, variant, prefix)
    tokenizer = load_tokenizer(str(tiny_models["v1"]))
    assert r.json() == {"prompt": expected, "prompt_tokens": len(tokenizer(expected)["input_ids"]), "truncated": False, "fit": None}
    assert metric_value(client, "umi_tokens_total") == before  # nothing was generated


def test_long_history_is_cut_after_the_header_and_tools_to_fit_the_context(clients: dict[str, httpx.Client]) -> None:
    client = clients["planner"]
    long_history = [{"role": "user", "content": "Tell me everything about the weather. " * 300}, *HISTORY[1:]]
    body = {"tools": TOOLS, "history": long_history}
    full = render_prompt("planner", to_tooldocs(TOOLS), [Turn.model_validate(t) for t in long_history])
    r = client.post("/v1/render", json=body).json()
    assert r["truncated"] is True and r["fit"]["actions"] == ["cut_history"]
    assert r["prompt_tokens"] <= 1024 - 512 - 16  # tiny context - default max new tokens - margin
    header = full[: full.index("The conversation history is:\n") + len("The conversation history is:\n")]
    assert r["prompt"].startswith(header) and full.endswith(r["prompt"][len(header) :])
    truncations = metric_value(client, "umi_prompt_truncations_total")
    g = client.post("/v1/plan", json={**body, "sampling": SHORT})
    assert g.status_code == 200, g.text
    assert metric_value(client, "umi_prompt_truncations_total") == truncations + 1
    assert g.json()["fit"] == client.post("/v1/render", json={**body, "sampling": SHORT}).json()["fit"]


def test_stream_sends_tokens_then_the_result(clients: dict[str, httpx.Client]) -> None:
    with clients["planner"].stream(
        "POST", "/v1/plan", json={"tools": TOOLS, "history": HISTORY[:1], "stream": True, "sampling": SHORT}
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = read_events(r)
    kinds = [e.event for e in events]
    assert kinds[-1] == "result" and set(kinds[:-1]) == {"token"} and len(kinds) >= 2
    result = events[-1].json()
    assert "".join(e.json()["text"] for e in events[:-1]) == result["text"]
    assert result["next"] == parse_planner(result["text"]).next
    assert result["model"] == {"name": "tiny-v1", "version": "v1"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tools": TOOLS, "history": [{"role": "robot", "content": "x"}]}, "history[0].role"),
        ({"tools": TOOLS, "history": HISTORY, "temperature": 1}, "temperature"),
        ({"tools": TOOLS, "history": HISTORY, "sampling": {"max_tokens": 0}}, "sampling.max_tokens"),
        ({"history": HISTORY}, "tools"),
        ({"tools": TOOLS, "history": HISTORY, "sampling": {"max_tokens": 1020}}, "sampling.max_tokens"),
    ],
)
def test_bad_requests_name_the_field(clients: dict[str, httpx.Client], body: dict, field: str) -> None:
    r = clients["planner"].post("/v1/plan", json=body)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["field"] == field and field in error["message"]


def test_caller_needs_the_thought(clients: dict[str, httpx.Client]) -> None:
    r = clients["caller"].post("/v1/call", json={"tools": TOOLS, "history": HISTORY})
    assert r.status_code == 422 and r.json()["error"]["field"] == "thought"


def test_health_ready_and_metrics(clients: dict[str, httpx.Client]) -> None:
    client = clients["planner"]
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["model"] == {"name": "tiny-v1", "version": "v1"}
    ok_before = metric_value(client, "umi_requests_total", endpoint="/v1/plan", code="200")
    tokens_before = metric_value(client, "umi_tokens_total", kind="completion")
    assert client.post("/v1/plan", json={"tools": TOOLS, "history": HISTORY[:1], "sampling": SHORT}).status_code == 200
    assert metric_value(client, "umi_requests_total", endpoint="/v1/plan", code="200") == ok_before + 1
    assert metric_value(client, "umi_tokens_total", kind="completion") > tokens_before
    assert metric_value(client, "umi_request_latency_seconds_count", endpoint="/v1/plan") >= ok_before + 1
    assert metric_value(client, "umi_weights_info", name="tiny-v1", version="v1") == 1
    assert metric_value(client, "umi_engine_state", state="ready") == 1
    assert metric_value(client, "umi_engine_state", state="restarting") == 0
    errors_before = metric_value(client, "umi_request_errors_total", type="invalid_request")
    client.post("/v1/plan", json={"history": []})
    assert metric_value(client, "umi_request_errors_total", type="invalid_request") == errors_before + 1


def test_openapi_documents_the_role_api(clients: dict[str, httpx.Client]) -> None:
    spec = clients["caller"].get("/openapi.json").json()
    call = spec["paths"]["/v1/call"]["post"]
    schema_ref = call["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.endswith("/CallRequest")
    assert {"/v1/render", "/health", "/ready", "/metrics", "/admin/weights", "/admin/weights/rollback"} <= set(spec["paths"])
    assert "thought" in spec["components"]["schemas"]["CallRequest"]["properties"]
    assert clients["caller"].get("/docs").status_code == 200


def test_admin_status_names_the_engine_and_weights(clients: dict[str, httpx.Client]) -> None:
    status = admin_status(clients["caller"])
    assert status["role"] == "caller" and status["state"] == "ready"
    assert status["engine"]["kind"] == "url" and status["model"]["version"] == "v1"
    assert clients["caller"].get("/admin/weights").status_code == 401
    assert json.loads(clients["planner"].get("/admin/weights", headers=ADMIN).text)["engine"]["kind"] == "transformers"


def test_url_engine_swap_gates_on_the_warm_up(clients: dict[str, httpx.Client], tiny_models: dict[str, Path]) -> None:
    """The url engine swaps to another server (or the same one with new weights behind it) after
    the same gate; weights the server cannot serve are refused and the old ones stay."""
    client = clients["summarizer"]
    engine_url = admin_status(client)["engine"]["url"]
    # transformers serve is pinned to tiny-v1; asking it for another model fails the warm-up.
    refused = client.post("/admin/weights", json={"path": str(tiny_models["v2"]), "engine_url": engine_url}, headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "warmup_failed"
    assert "pinned" in refused.json()["error"]["message"]
    assert admin_status(client)["model"]["version"] == "v1"

    r = client.post(
        "/admin/weights", json={"path": str(tiny_models["v1"]), "version": "v1b", "engine_url": engine_url}, headers=ADMIN
    )
    assert r.status_code == 200 and r.json()["strategy"] == "blue_green" and r.json()["model"]["version"] == "v1b"
    assert client.post("/v1/summarize", json={"history": HISTORY, "sampling": SHORT}).json()["model"]["version"] == "v1b"
    back = client.post("/admin/weights/rollback", headers=ADMIN)
    assert back.status_code == 200 and back.json()["model"]["version"] == "v1"


def test_umi_eval_steps_against_the_running_role_services(
    clients: dict[str, httpx.Client], trajectories_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A small end-to-end evaluation: gold steps -> real role services -> metrics, and the same
    numbers again from the saved predictions with no model."""
    from umi.cli import main

    urls = {role: str(client.base_url) for role, client in clients.items()}
    out = tmp_path / "eval.json"
    code = main([
        "eval", "steps", "--data", str(trajectories_path), "--planner", urls["planner"], "--caller", urls["caller"],
        "--summarizer", urls["summarizer"], "--backbone", urls["backbone"], "--out", str(out), "--quiet",
        "--max-tokens", "12", "--concurrency", "4",
    ])
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    for name in ("multi-model", "single-model"):
        metrics = report["runs"][name]["metrics"]
        assert (metrics["steps"], metrics["missing"]) == (5, 0)
        assert metrics["plan_acc"] is not None and metrics["act_em"] is not None
    predictions = tmp_path / "eval.multi.predictions.json"
    records = json.loads(predictions.read_text(encoding="utf-8"))
    assert all(r["model"]["version"] == "v1" for r in records)
    # the paper's protocol: the caller or summarizer only where the planner decided so
    decided = {r["id"]: parse_planner(r["text"]).next for r in records if r["role"] == "planner"}
    asked = {"caller": "caller", "conclusion": "summarizer", "give_up": None}
    assert len(decided) == 5
    assert sorted((r["id"], r["role"]) for r in records if r["role"] != "planner") == sorted(
        (i, asked[d]) for i, d in decided.items() if asked[d] is not None
    )
    capsys.readouterr()
    rescored = tmp_path / "rescored.json"
    assert main(["eval", "score", "--gold", str(trajectories_path), "--pred", str(predictions), "--out", str(rescored)]) == 0
    again = json.loads(rescored.read_text(encoding="utf-8"))["runs"]["multi-model"]["metrics"]
    assert again == report["runs"]["multi-model"]["metrics"]
