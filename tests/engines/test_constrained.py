"""Constrained decoding on both engines: when the unconstrained greedy output is already valid, the
constrained one is identical; when it is not, the constrained one is valid (a listed name, arguments
that validate against the tool's schema).

The CPU engine for real (`python -m umi.engines.transformers_structured serve` on the shipped demo
caller), vLLM against the fake (tests/support/fake_vllm.py), whose scripted greedy model is masked
by the same llguidance grammar as vLLM's guidance backend masks logits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from tests.support.servers import FAKE_VLLM_COMMAND, admin_status, role_service, service_settings

from services import caller
from umi.demo.tools_app import tool_set
from umi.engines import CompletionParams, Engine, EngineOptions, EngineRequestError, LaunchSpec, TransformersEngine, VllmEngine, VllmFlags
from umi.engines.base import Completion, TextDelta
from umi.format import Turn, parse_caller, render_prompt, to_tooldocs
from umi.format.constraints import role_grammar, structured_outputs
from umi.format.tools import ToolDoc

DEMO_CALLER = Path(__file__).resolve().parents[2] / "models" / "demo" / "caller"
GREEDY = CompletionParams(max_tokens=96, temperature=0.0, stop=("</s>",))


def tool(name: str, **properties: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": name, "parameters": {
        "type": "object", "properties": {k: {"type": v, "description": k} for k, v in properties.items()}, "required": list(properties)}}}


DEMO_TOOLS = [{"type": "function", "function": t.schema("")["function"]} for t in tool_set("v1")]  # as the demo caller learnt them
# Names the demo caller never saw in training: it writes a demo tool's name instead.
NEW_TOOLS = [tool("weather_now", city="string"), tool("time_now", city="string")]


def caller_prompt(tools: list[ToolDoc], question: str, thought: str) -> str:
    history = [Turn(role="user", content=question), Turn(role="planner", content=thought)]
    return render_prompt("caller", tools, history, thought)


def valid(text: str, tools: list[ToolDoc]) -> bool:
    """A listed name, and arguments that validate against its schema."""
    call = parse_caller(text, [t.Name for t in tools])
    doc = next((t for t in tools if t.Name == call.name), None)
    if doc is None or call.arguments is None:
        return False
    try:
        jsonschema.validate(call.arguments, doc.parameters or {"type": "object"})
    except jsonschema.ValidationError:
        return False
    return True


def constrained(tools: list[ToolDoc]) -> CompletionParams:
    return CompletionParams(**{**GREEDY.__dict__, "structured_outputs": structured_outputs(role_grammar("caller", tools, "schema"))})


async def streamed(engine: Engine, prompt: str, params: CompletionParams) -> str:
    deltas, final = [], None
    async for event in engine.stream(engine.served_model, prompt, params):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            assert isinstance(event, Completion)
            final = event.text
    assert final == "".join(deltas)
    return final


@pytest.fixture(scope="module")
def cpu_engine() -> Iterator[tuple[asyncio.AbstractEventLoop, TransformersEngine]]:
    yield from _running(TransformersEngine(str(DEMO_CALLER), EngineOptions(start_timeout_s=180, request_timeout_s=120),
                                           LaunchSpec(extra_args=("--device", "cpu")), structured_outputs=True))


def _running(engine: Any) -> Iterator[tuple[asyncio.AbstractEventLoop, Any]]:
    """``engine`` started on a loop of its own, yielded with it, always stopped."""
    loop = asyncio.new_event_loop()
    loop.run_until_complete(engine.start())
    try:
        yield loop, engine
    finally:
        loop.run_until_complete(engine.stop())
        loop.close()


CASES = [  # (tools, question, thought)
    (DEMO_TOOLS, "Weather in Oslo?", "I will use get_weather.\n Next: caller."),
    (DEMO_TOOLS, "What time is it in Lima?", "I will use get_time.\n Next: caller."),
    (DEMO_TOOLS, "WEATHER IN NAIROBI", "I will use get_weather.\n Next: caller."),
    (NEW_TOOLS, "Weather in Oslo?", "I will use weather_now.\n Next: caller."),
    (NEW_TOOLS, "Weather in Oslo?", "I will use get_weather.\n Next: caller."),
    (DEMO_TOOLS, "Population of Lima?", "I will use get_population.\n Next: caller."),  # a thought naming an unlisted tool
]


@pytest.mark.engine
def test_cpu_engine_constrained_greedy_output_is_the_same_when_valid_and_valid_otherwise(
    cpu_engine: tuple[asyncio.AbstractEventLoop, TransformersEngine],
) -> None:
    loop, engine = cpu_engine
    seen = {"valid": 0, "invalid": 0}
    for specs, question, thought in CASES:
        tools = to_tooldocs(specs)
        prompt = caller_prompt(tools, question, thought)
        free = loop.run_until_complete(engine.complete(engine.served_model, prompt, GREEDY)).text
        held = loop.run_until_complete(engine.complete(engine.served_model, prompt, constrained(tools))).text
        if valid(free, tools):
            seen["valid"] += 1
            assert held == free, (question, thought)
        else:
            seen["invalid"] += 1
            assert valid(held, tools), (question, thought, held)
        assert loop.run_until_complete(streamed(engine, prompt, constrained(tools))) == held
    # Both sides of the invariant were exercised (the demo caller knows the demo tools, not the new
    # ones, and copies the tool its thought names).
    assert seen["valid"] >= 1 and seen["invalid"] >= 1, seen


@pytest.mark.engine
def test_cpu_engine_refuses_a_malformed_structured_outputs_field_as_vllm_does(
    cpu_engine: tuple[asyncio.AbstractEventLoop, TransformersEngine],
) -> None:
    loop, engine = cpu_engine
    for spec, message in [({"grammar": "start: x", "regex": "a"}, "only use one kind"), ({}, "must use one kind"),
                          ({"grammar": "start: (("}, "structured_outputs.grammar: Grammar error"),
                          ({"regex": "a("}, "(?s)structured_outputs.regex: Grammar error: .*unclosed group"),
                          ({"choice": []}, "structured_outputs.choice: must be a non-empty list"), ({"structural_tag": "{}"}, "not supported"),
                          # a chain of 3,000 rules overflowed llguidance's native stack and killed the server
                          ({"grammar": "start: x0\n" + "".join(f'x{i}: "a" | x{i + 1}\n' for i in range(3000)) + 'x3000: "z"\n'},
                           "structured_outputs.grammar: 3002 rules, more than this engine takes"),
                          ({"regex": "a" * 300_000}, "structured_outputs.regex: 300000 characters")]:
        params = CompletionParams(**{**GREEDY.__dict__, "structured_outputs": spec})
        with pytest.raises(EngineRequestError, match=message) as info:
            loop.run_until_complete(engine.complete(engine.served_model, "x", params))
        assert info.value.status == 400
    # The server is still up: a choice constraint, as vLLM takes it, works.
    params = CompletionParams(**{**GREEDY.__dict__, "structured_outputs": {"choice": ["yes", "no"]}})
    assert loop.run_until_complete(engine.complete(engine.served_model, "Is it?", params)).text in ("yes", "no")


# --------------------------------------------------------------------------- vLLM, against the fake


@pytest.fixture
def fake_vllm(tiny_models: dict[str, Path]) -> Iterator[tuple[asyncio.AbstractEventLoop, VllmEngine]]:
    yield from _running(VllmEngine(str(tiny_models["v1"]), EngineOptions(start_timeout_s=60), LaunchSpec(command=tuple(FAKE_VLLM_COMMAND.split())),
                                   VllmFlags("caller", structured_outputs_backend="guidance")))


def script(engine: VllmEngine, *texts: str) -> None:
    httpx.post(engine.base_url + "/fake/inject", json={"script": list(texts)}).raise_for_status()


def test_vllm_constrained_greedy_output_is_the_same_when_valid_and_valid_otherwise(
    fake_vllm: tuple[asyncio.AbstractEventLoop, VllmEngine],
) -> None:
    loop, engine = fake_vllm
    tools = to_tooldocs(DEMO_TOOLS)
    prompt = caller_prompt(tools, "Weather in Kraków?", "I will use get_weather.\n Next: caller.")
    right = 'Action: get_weather\nAction Input: {"city": "Krak\\u00f3w"}'
    cases = [
        ([right], right),  # valid: left as it is
        (['Action: get_wether\nAction Input: {"city": "Oslo"}', right], right),  # a name not listed
        (['Action: get_weather\nAction Input: {"town": "Oslo"}', right], right),  # arguments the schema refuses
        (['Action: get_weather\nAction Input: {"city": "Oslo"} and then', 'Action: get_weather\nAction Input: {"city": "Oslo"}'],
         'Action: get_weather\nAction Input: {"city": "Oslo"}'),  # text after the call
    ]
    for texts, expected in cases:
        script(engine, *texts)
        free = loop.run_until_complete(engine.complete(engine.served_model, prompt, GREEDY)).text
        held = loop.run_until_complete(engine.complete(engine.served_model, prompt, constrained(tools))).text
        assert free == texts[0]
        assert held == expected and valid(held, tools)
        assert loop.run_until_complete(streamed(engine, prompt, constrained(tools))) == expected
    with pytest.raises(EngineRequestError, match="only use one kind") as info:
        loop.run_until_complete(engine.complete(engine.served_model, prompt, CompletionParams(
            **{**GREEDY.__dict__, "structured_outputs": {"grammar": "start: x", "json": {}}})))
    assert info.value.status == 400


def test_the_caller_service_sends_its_grammar_and_starts_vllm_with_the_guidance_backend(tiny_models: dict[str, Path]) -> None:
    settings = service_settings(engine="vllm", engine_command=FAKE_VLLM_COMMAND, model=str(tiny_models["v1"]), model_version="v1")
    request = {"tools": DEMO_TOOLS, "history": [{"role": "user", "content": "Weather in Oslo?"},
                                                {"role": "planner", "content": "I will use get_weather.\n Next: caller."}],
               "thought": "I will use get_weather.\n Next: caller.", "sampling": {"max_tokens": 64, "temperature": 0}}
    with role_service(caller.ROLE, settings) as client:
        url = admin_status(client)["engine"]["url"]
        argv = httpx.get(url + "/fake/state").json()["argv"]
        assert argv[argv.index("--structured-outputs-config.backend") + 1] == "guidance"
        httpx.post(url + "/fake/inject", json={"script": ['Action: get_wether\nAction Input: {"city": "Oslo"}',
                                                          'Action: get_weather\nAction Input: {"city": "Oslo"}']}).raise_for_status()
        body = client.post("/v1/call", json=request).json()
        assert (body["name"], body["arguments"], body["hallucinated"]) == ("get_weather", {"city": "Oslo"}, False)
        sent = httpx.get(url + "/fake/state").json()["completions"][-1]["structured_outputs"]
        assert sent == structured_outputs(role_grammar("caller", to_tooldocs(DEMO_TOOLS), "schema"))
    off = service_settings(engine="vllm", engine_command=FAKE_VLLM_COMMAND, model=str(tiny_models["v1"]), constrained_decoding="off")
    with role_service(caller.ROLE, off) as client:
        url = admin_status(client)["engine"]["url"]
        assert "--structured-outputs-config.backend" not in httpx.get(url + "/fake/state").json()["argv"]
        client.post("/v1/call", json=request).raise_for_status()
        assert httpx.get(url + "/fake/state").json()["completions"][-1]["structured_outputs"] is None


def test_the_constraint_mode_of_each_role() -> None:
    auto = service_settings(engine="vllm", model="m")
    assert [auto.constraint_mode(r) for r in ("caller", "planner", "summarizer", "backbone")] == ["schema", "names", "off", "off"]
    elsewhere = service_settings(engine="url", engine_url="http://x", model="m")  # a server this service did not start
    assert [elsewhere.constraint_mode(r) for r in ("caller", "planner")] == ["off", "off"]
    names = service_settings(engine="url", engine_url="http://x", model="m", constrained_decoding="names")
    assert [names.constraint_mode(r) for r in ("caller", "planner", "summarizer")] == ["names", "names", "off"]
    assert json.loads(json.dumps(structured_outputs("start: x"))) == {"grammar": "start: x"}
