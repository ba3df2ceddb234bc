"""Faults at the edges become a clear answer at once (issue 11): one test per fault found, with its
minimal input and the right value, plus the kinds behind them (no exception escapes a step;
poison chats end failed; bad input is a 4xx naming the field)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from tests.support.garbage_tools import GarbageToolServer
from tests.support.orchestrator_fakes import call, plan, tool

from orchestrator.metrics import Metrics
from orchestrator.models import Tool
from orchestrator.settings import Settings
from orchestrator.store import InMemoryChatStore, StoredChat
from orchestrator.supervisor import Supervisor
from orchestrator.tools import LOOP_GUARD_HEADER, EndpointPolicy, Refused, StackEndpoints, ToolRunner, decode_body
from umi.format.parsers import parse_caller
from umi.sse import read_events


def _error(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.json()["error"]["field"]


# ---------------------------------------------------------------- 1. chat ids


@pytest.mark.parametrize("chat_id", ["b:steps", "b.steps", "a b", "-lead", "x" * 129, "é"])
def test_a_chat_id_outside_the_documented_alphabet_is_a_422_naming_chat_id(make_orch, fake_roles, chat_id: str) -> None:
    orch = make_orch()
    assert _error(orch.chat(query="q", chat_id=chat_id)) == (422, "chat_id")
    assert fake_roles.count("planner") == 0


def test_a_chat_id_in_a_path_is_checked_too_and_ids_cannot_reach_each_others_keys(make_orch) -> None:
    orch = make_orch()
    assert orch.chat(query="q", chat_id="b", tools=[tool("t")]).json()["status"] == "requires_action"
    assert _error(orch.client.get("/chat/b:steps")) == (422, "chat_id")
    assert _error(orch.client.get("/chat/b:steps/events")) == (422, "chat_id")
    assert _error(orch.client.delete("/chat/b:steps")) == (422, "chat_id")
    assert orch.client.get("/chat/b").json()["status"] == "requires_action"


class _OneBadChat(InMemoryChatStore):
    """A store in which loading one chat raises (a corrupt record)."""

    async def load(self, chat_id: str, after: int = -1) -> StoredChat | None:
        if chat_id == "bad":
            raise ValueError("corrupt record")
        return await super().load(chat_id, after)


class _RecordingLoop:
    owner = "proc-b"

    def __init__(self) -> None:
        self.started: list[str] = []

    async def run(self, state: Any, token: Any) -> None:
        self.started.append(state.chat_id)


def test_the_sweeper_survives_a_chat_that_cannot_be_resumed_and_resumes_the_others() -> None:
    from tests.orchestrator.store.conftest import new_chat

    async def body() -> list[str]:
        clock = [1000.0]
        store = _OneBadChat(ttl_s=3600, lease_ttl_s=1, clock=lambda: clock[0])
        for chat_id in ("bad", "good"):
            await store.create(chat_id, "proc-a", new_chat())
        clock[0] += 5  # both leases expired
        loop = _RecordingLoop()
        supervisor = Supervisor(Settings(), store, loop, hub=_Hub(), metrics=Metrics())  # type: ignore[arg-type]
        assert await supervisor.sweep() == 2
        await asyncio.sleep(0)
        await asyncio.gather(*supervisor.tasks.values())
        return loop.started

    assert asyncio.run(body()) == ["good"]


class _Hub:
    def publish(self, *args: object) -> None:
        pass

    def has_subscribers(self, chat_id: str) -> bool:
        return False


# ---------------------------------------------------------------- 2. charsets


@pytest.mark.parametrize(
    ("body", "charset", "text"),
    [
        ('{"temp": "12 °C"}'.encode(), "utf8mb4", '{"temp": "12 °C"}'),  # unknown: UTF-8
        (b"caf\xe9", "latin-1", "café"),  # known: used
        (b"caf\xe9", None, "caf\ufffd"),  # none and not UTF-8: replacement characters
        (b"ok", "zip", "ok"),  # a codec that is not a text encoding
    ],
)
def test_a_tool_answer_is_decoded_leniently(body: bytes, charset: str | None, text: str) -> None:
    assert decode_body(body, charset) == text


def test_an_answer_in_an_unknown_charset_is_the_observation_at_once(make_orch, fake_roles) -> None:
    orch = make_orch(lease_ttl_s=120)
    with GarbageToolServer() as garbage:
        doc = orch.chat(query="q", tools=[tool("t", garbage.url + "/charset", idempotent=True)]).json()
        assert doc["status"] == "completed"  # not a stalled lease, not "result lost"
        assert (doc["steps"][2]["error"], doc["steps"][2]["content"]) == (None, '{"temp": "12 °C"}')
        assert garbage.total() == 1


# ---------------------------------------------------------------- 3. endpoints that cannot be sent


@pytest.mark.parametrize(
    ("endpoint", "field"),
    [
        ({"headers": {"X-Trace": "abc\r\nX-Injected: 1"}}, "tools[0].endpoint.headers.X-Trace"),
        ({"headers": {"X-Trace": "nul\x00"}}, "tools[0].endpoint.headers.X-Trace"),
        ({"headers": {"Bad Name": "v"}}, "tools[0].endpoint.headers.Bad Name"),
        ({"url": "not a url"}, "tools[0].endpoint.url"),
        ({"url": "ftp://127.0.0.1/x"}, "tools[0].endpoint.url"),
        ({"url": "http:///path-only"}, "tools[0].endpoint.url"),
    ],
)
def test_an_endpoint_that_cannot_be_sent_is_a_422_naming_its_field(make_orch, fake_roles, endpoint, field) -> None:
    orch = make_orch()
    spec = tool("t", "http://127.0.0.1:9/x")
    spec["endpoint"].update(endpoint)
    assert _error(orch.chat(query="q", tools=[spec])) == (422, field)
    assert fake_roles.count("planner") == 0


# ---------------------------------------------------------------- 4. a lone surrogate from the caller


def test_arguments_that_decode_to_a_lone_surrogate_are_invalid_not_an_error() -> None:
    out = parse_caller('Action: weather\nAction Input: {"q": "\\ud83d Oslo"}')
    assert (out.valid, out.arguments, out.name) == (False, None, "weather")
    assert "surrogate" in (out.error or "")
    out.model_dump_json().encode("utf-8")  # the role service can answer it


def test_a_caller_answer_with_invalid_arguments_is_an_error_observation_and_the_planner_goes_on(
    make_orch, fake_roles
) -> None:
    orch = make_orch()
    fake_roles.caller = lambda req: call("t", '{"q": "\\ud83d Oslo"}')
    doc = orch.chat(query="q", tools=[tool("t", "http://127.0.0.1:9/x")]).json()
    assert doc["status"] == "completed"
    assert doc["steps"][2]["error"] == "invalid_arguments"
    assert fake_roles.count("planner") == 2


# ---------------------------------------------------------------- 5. the stack is never a tool


def test_the_default_allowlist_refuses_every_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UMI_TOOL_ALLOWLIST", raising=False)
    policy = EndpointPolicy(Settings().allowlist)
    for url in ("http://localhost:8300/tools/x", "http://127.0.0.1/x", "https://api.example.com/v1"):
        with pytest.raises(Refused) as refused:
            policy.check_static(url)
        assert refused.value.reason == "not_allowlisted"


class _Resolver:
    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers

    async def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.answers:
            raise OSError("Name or service not known")
        return self.answers[host]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/",  # Redis
        "http://localhost:6379/",  # Redis by another loopback name
        "http://[::1]:6379/",  # and address
        "http://planner:8101/v1/plan",  # a role service by name
        "http://10.9.0.7:8101/v1/plan",  # and by its resolved address
        "http://127.0.0.1:8000/chat",  # the orchestrator's own API
        "http://orch.example:8000/metrics",  # and by a name that resolves to it
    ],
)
def test_the_stack_is_refused_even_when_its_hosts_are_allowlisted(url: str) -> None:
    resolver = _Resolver({"localhost": ["::1", "127.0.0.1"], "planner": ["10.9.0.7"], "orch.example": ["10.9.0.2"]})
    stack = StackEndpoints(["redis://127.0.0.1:6379/0", "http://planner:8101"], resolver)
    stack.listening("10.9.0.2", 8000)
    allowlist = Settings(tool_allowlist="localhost,planner,orch.example,127.0.0.0/8,::1,10.0.0.0/8").allowlist
    policy = EndpointPolicy(allowlist, resolver, stack)
    with pytest.raises(Refused) as refused:
        asyncio.run(policy.check(url))
    assert refused.value.reason == "stack"
    assert asyncio.run(policy.check("http://127.0.0.1:9000/tool")).addresses == ("127.0.0.1",)  # another port is fine


def test_a_tool_endpoint_on_the_orchestrators_own_address_is_refused(make_orch, fake_roles) -> None:
    orch = make_orch()  # allowlist 127.0.0.1, which is where the orchestrator listens
    doc = orch.chat(query="q", tools=[tool("t", orch.url + "/chat")]).json()
    assert doc["status"] == "completed" and doc["steps"][2]["error"] == "refused"
    assert "is this orchestrator" in json.loads(doc["steps"][2]["content"])["error"]
    assert fake_roles.count("planner") == 2  # no nested chat was started


def test_tool_calls_carry_the_loop_guard_header_which_the_api_refuses(make_orch, tool_server) -> None:
    orch = make_orch()
    doc = orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo", headers={LOOP_GUARD_HEADER: "forged"})]).json()
    assert doc["steps"][2]["error"] is None
    sent = tool_server.headers[0][LOOP_GUARD_HEADER.lower()]
    assert sent == f"{doc['chat_id']}:1"  # set by the orchestrator, not by the request
    for method, path in (("POST", "/chat"), ("GET", "/health"), ("GET", f"/chat/{doc['chat_id']}")):
        answer = orch.client.request(method, path, json={"query": "q"}, headers={LOOP_GUARD_HEADER: sent})
        assert (answer.status_code, answer.json()["error"]["type"]) == (403, "loop_detected")


# ---------------------------------------------------------------- 6. Happy Eyeballs


def test_a_name_that_resolves_to_ipv6_first_falls_back_to_its_ipv4_address(tool_server) -> None:
    port = int(tool_server.url.rsplit(":", 1)[1])  # the tool listens on 127.0.0.1 only
    settings = Settings(tool_allowlist="toolhost", redis_url="redis://127.0.0.1:1/0")

    async def body() -> Any:
        runner = ToolRunner(settings, Metrics(), resolve=_Resolver({"toolhost": ["::1", "127.0.0.1"]}))
        try:
            spec = Tool.model_validate(tool("t", f"http://toolhost:{port}/echo"))
            return await runner.run(spec, {"q": "x"}, "c:1")
        finally:
            await runner.aclose()

    result = asyncio.run(body())
    assert result.error is None and json.loads(result.content)["echo"] == {"q": "x"}
    assert tool_server.headers[0]["host"] == f"toolhost:{port}"


# ---------------------------------------------------------------- 7. streamed chats name their id


def test_a_streamed_chat_names_its_id_in_a_header_and_in_the_first_event(make_orch, fake_roles) -> None:
    orch = make_orch()
    with orch.client.stream("POST", "/chat", json={"query": "q", "stream": True}) as response:
        chat_id = response.headers["x-chat-id"]
        first = next(read_events(response.iter_lines()))
    assert first.event == "chat" and first.json() == {"chat_id": chat_id}
    assert orch.client.get(f"/chat/{chat_id}").status_code == 200


# ---------------------------------------------------------------- 8. strict types


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "q", "stream": "yes"}, "stream"),
        ({"query": "q", "stream": 1}, "stream"),
        ({"query": "q", "max_steps": "3"}, "max_steps"),
        ({"query": "q", "max_steps": 3.0}, "max_steps"),
        ({"query": 5}, "query"),
        ({"query": "q", "tools": [tool("t", "http://127.0.0.1:9/x", idempotent="true")]}, "tools[0].endpoint.idempotent"),
        ({"query": "q", "tools": [tool("t", "http://127.0.0.1:9/x", timeout_s="5")]}, "tools[0].endpoint.timeout_s"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_a_422_never_coerced(make_orch, fake_roles, body, field) -> None:
    assert _error(make_orch().client.post("/chat", json=body)) == (422, field)
    assert fake_roles.count("planner") == 0


def test_tool_outputs_take_strict_types_too(make_orch) -> None:
    orch = make_orch()
    answer = orch.client.post("/chat/x/tool_outputs", json={"outputs": [{"tool_call_id": "a", "output": 5}]})
    assert _error(answer) == (422, "outputs[0].output")


# ---------------------------------------------------------------- the kinds: nothing escapes, nothing loops


def test_an_unexpected_exception_in_a_tool_call_is_an_observation(monkeypatch, make_orch, tool_server) -> None:
    import orchestrator.tools as tools

    def explode(body: bytes, charset: str | None) -> str:
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(tools, "decode_body", explode)
    orch = make_orch(lease_ttl_s=120)
    doc = orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo", idempotent=True)]).json()
    assert doc["status"] == "completed"
    assert doc["steps"][2]["error"] == "tool_error" and "decoder exploded" in doc["steps"][2]["content"]
    assert tool_server.total() == 1


@pytest.mark.parametrize("orch_backend", ["in_process"])  # the roles' exception reaches the loop as it is
@pytest.mark.parametrize("max_interruptions", [1, 3])
def test_a_chat_whose_loop_keeps_crashing_ends_failed_and_its_tool_is_not_called_again(
    make_orch, fake_roles, tool_server, max_interruptions: int
) -> None:
    orch = make_orch(max_interruptions=max_interruptions, lease_ttl_s=120)
    crashes = []

    def planner(req: Any) -> Any:
        if any(t.role == "observation" for t in req.history):
            crashes.append(1)
            raise RuntimeError("poison")  # not a role error: the loop itself crashes
        return plan("call", "caller")

    fake_roles.planner = planner
    doc = orch.chat(query="q", tools=[tool("t", tool_server.url + "/echo", idempotent=True)]).json()
    assert doc["status"] == "failed" and doc["error"]["type"] == "interrupted"
    assert f"interrupted {max_interruptions} times" in doc["error"]["message"]
    assert tool_server.total() == 1  # the tool ran once: restarts resume after its observation
    assert len(crashes) == max_interruptions
