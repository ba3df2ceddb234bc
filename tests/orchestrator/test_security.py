"""SSRF refusals (before any connection), request limits, API keys and the admin token."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from tests.support.orchestrator_fakes import call, tool

from orchestrator.settings import Allowlist
from orchestrator.tools import EndpointPolicy, Refused


class RecordingResolver:
    """Stands in for DNS: answers fixed addresses and records every lookup."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError("Name or service not known")
        return self.answers[host]


ALLOWLIST = "localhost,127.0.0.0/8,::1,tools,api.internal,rebind.internal,meta.internal,10.1.0.0/16"


def check(url: str, resolver: RecordingResolver | None = None) -> str:
    resolver = resolver or RecordingResolver({})
    policy = EndpointPolicy(Allowlist.parse(ALLOWLIST), resolver)
    try:
        asyncio.run(policy.check(url))
    except Refused as exc:
        return exc.reason
    return "allowed"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.10.20/x", "link_local"),
        ("http://[fe80::1]/x", "link_local"),
        ("http://[fe80::1%25eth0]:8080/x", "link_local"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://100.100.100.200/latest/meta-data", "metadata"),
        ("http://168.63.129.16/machine", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://METADATA.google.internal./x", "metadata"),
        ("http://instance-data/latest", "metadata"),
        ("http://127.0.0.1@169.254.169.254/", "metadata"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://example.com/api", "not_allowlisted"),
        ("http://10.2.3.4/api", "not_allowlisted"),
        ("http://redis:6379/", "not_allowlisted"),
        ("http://2130706433/", "not_allowlisted"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme"),
        ("http://unresolvable.internal.invalid/", "not_allowlisted"),
    ],
)
def test_each_refusal_happens_before_any_lookup_or_connection(url: str, reason: str) -> None:
    resolver = RecordingResolver({})
    assert check(url, resolver) == reason
    assert resolver.lookups == []  # a refused host is never even resolved


@pytest.mark.parametrize(
    ("host", "addresses", "reason"),
    [
        ("rebind.internal", ["169.254.1.1"], "link_local"),
        ("meta.internal", ["10.1.0.5", "169.254.169.254"], "metadata"),
        ("api.internal", [], "unresolvable"),
        ("api.internal", ["fe80::2"], "link_local"),
    ],
)
def test_an_allowed_name_that_resolves_to_a_forbidden_address_is_refused(host: str, addresses: list[str], reason: str) -> None:
    resolver = RecordingResolver({host: addresses})
    assert check(f"http://{host}:8080/x", resolver) == reason
    assert resolver.lookups == [host]


def test_allowed_hosts_pass_and_the_connection_goes_to_the_checked_address() -> None:
    resolver = RecordingResolver({"api.internal": ["10.1.0.7"], "localhost": ["127.0.0.1"]})
    policy = EndpointPolicy(Allowlist.parse(ALLOWLIST), resolver)
    target = asyncio.run(policy.check("https://api.internal:8443/v1?x=1"))
    assert str(target.url) == "https://api.internal:8443/v1?x=1"  # Host and SNI stay the name
    assert target.addresses == ("10.1.0.7",)  # the session's resolver answers only these
    assert check("http://127.0.0.1:9/x") == check("http://[::1]/x") == check("http://10.1.2.3/") == "allowed"
    assert check("http://localhost/x", resolver) == "allowed"
    assert check("http://tools:8080/x", RecordingResolver({"tools": ["172.18.0.5"]})) == "allowed"


def test_an_endpoint_off_the_allowlist_is_a_422_naming_it_before_any_model_is_asked(make_orch, fake_roles, tool_server) -> None:
    orch = make_orch(tool_allowlist="localhost")  # 127.0.0.1 is not on it
    answer = orch.chat(query="q", tools=[tool("ok", None), tool("t", tool_server.url + "/echo")])
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["type"], error["field"]) == ("tool_refused", "tools[1].endpoint.url")
    assert "not on the tool allowlist (UMI_TOOL_ALLOWLIST)" in error["message"]
    assert fake_roles.count("planner") == 0 and tool_server.total() == 0


def test_an_endpoint_refused_at_call_time_is_the_observation_and_the_chat_goes_on(make_orch, fake_roles, tool_server) -> None:
    orch = make_orch(tool_allowlist="nowhere.invalid")  # allowed by name, but the name does not resolve
    fake_roles.caller = lambda req: call("t", {"q": "x"})
    doc = orch.chat(query="q", tools=[tool("t", "http://nowhere.invalid/echo")]).json()
    assert doc["status"] == "completed"
    observation = doc["steps"][2]
    assert observation["error"] == "refused"
    assert tool_server.total() == 0


def test_an_allowlisted_name_is_called_with_its_host_header(make_orch, fake_roles, tool_server) -> None:
    orch = make_orch(tool_allowlist="localhost")
    port = tool_server.url.rsplit(":", 1)[1]
    doc = orch.chat(query="q", tools=[tool("t", f"http://localhost:{port}/echo")]).json()
    assert doc["steps"][2]["error"] is None and tool_server.total() == 1
    assert tool_server.headers[0]["host"] == f"localhost:{port}"


def test_a_metadata_endpoint_is_refused_up_front(orch, fake_roles) -> None:
    answer = orch.chat(query="q", tools=[tool("t", "http://169.254.169.254/latest/meta-data/iam")])
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "tools[0].endpoint.url"
    assert "link-local" in answer.json()["error"]["message"] or "metadata" in answer.json()["error"]["message"]
    assert fake_roles.count("planner") == 0


# ---------------------------------------------------------------- limits


def _error(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, response.json()["error"]["field"]


def test_each_limit_answers_its_status_and_names_the_field(make_orch, fake_roles) -> None:
    orch = make_orch(max_body_bytes=4096, max_query_chars=100, max_tools=2, max_steps_limit=10)
    assert _error(orch.chat(query="x" * 5000)) == (413, "body")
    assert _error(orch.chat(query="x" * 101)) == (422, "query")
    assert _error(orch.chat(query="q", tools=[tool("a"), tool("b"), tool("c")])) == (422, "tools")
    assert _error(orch.chat(query="q", max_steps=11)) == (422, "max_steps")
    assert _error(orch.chat(query="q", max_steps=0)) == (422, "max_steps")
    assert _error(orch.chat(query="")) == (422, "query")
    conflicting = [tool("a"), tool("a", "http://127.0.0.1:9/a")]
    assert _error(orch.chat(query="q", tools=conflicting)) == (422, "tools[1].function.name")
    array_arguments = {"type": "function", "function": {"name": "a", "parameters": {"type": "array"}}}
    assert _error(orch.chat(query="q", tools=[array_arguments])) == (422, "tools[0].function.parameters")
    misspelt_endpoint = {**tool("b"), "endpont": {"url": "http://127.0.0.1:9/b"}}
    assert _error(orch.chat(query="q", tools=[tool("a"), misspelt_endpoint])) == (422, "tools[1].endpont")
    assert _error(orch.chat(query="q", chat_id="bad id/")) == (422, "chat_id")
    assert _error(orch.chat(query="q", surprise=1)) == (422, "surprise")
    assert fake_roles.count("planner") == 0


def test_a_streamed_body_over_the_limit_is_refused_without_content_length(make_orch, fake_roles) -> None:
    orch = make_orch(max_body_bytes=4096)

    def chunks():
        yield b'{"query": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = orch.client.post("/chat", content=chunks(), headers={"content-type": "application/json"})
    assert _error(response) == (413, "body")
    assert fake_roles.count("planner") == 0


# ---------------------------------------------------------------- keys


def test_api_keys_guard_chats_and_each_key_sees_only_its_own(make_orch) -> None:
    orch = make_orch(api_keys="key-a, key-b", admin_token="root")

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    assert _error(orch.chat(query="q"))[0] == 401
    assert orch.client.post("/chat", json={"query": "q"}, headers=auth("key-z")).status_code == 401
    created = orch.client.post("/chat", json={"query": "q", "chat_id": "mine"}, headers=auth("key-a"))
    assert created.status_code == 200
    assert orch.client.get("/chat/mine", headers=auth("key-a")).status_code == 200
    assert orch.client.get("/chat/mine", headers=auth("key-b")).status_code == 404
    assert orch.client.get("/chat/mine/events", headers=auth("key-b")).status_code == 404
    taken = orch.client.post("/chat", json={"query": "q", "chat_id": "mine"}, headers=auth("key-b"))
    assert _error(taken) == (409, "chat_id")
    assert orch.client.get("/chat/mine", headers=auth("root")).status_code == 200
    assert orch.client.get("/health").status_code == 200
    assert orch.client.get("/metrics").status_code == 401
    assert orch.client.get("/metrics", headers=auth("root")).status_code == 200
    assert orch.client.delete("/chat/mine", headers=auth("key-b")).status_code == 404
    assert orch.client.delete("/chat/mine", headers=auth("key-a")).status_code == 204
