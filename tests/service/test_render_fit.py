"""``/v1/render`` shows how a prompt was made to fit, and the metrics count it. The tokenizer loads
before any engine, so these services run with an engine that never answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.servers import metric_value, role_service, service_settings

from services import planner

TOOLS = [
    {"type": "function", "function": {"name": f"{topic}_{i}", "description": f"The {topic} of a city ({i})",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    for i in range(30) for topic in ("stock", "weather", "hotel")
]  # fmt: skip
HISTORY = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture(scope="module")
def services(tiny_models: dict[str, Path]) -> Iterator[dict[str, httpx.Client]]:
    model = str(tiny_models["v1"])
    common = {"engine": "url", "engine_url": "http://127.0.0.1:9", "model": model, "admin_token": None}
    with (
        role_service(planner.ROLE, service_settings(**common), wait=False) as fit,
        role_service(planner.ROLE, service_settings(**common, context_policy="reference"), wait=False) as reference,
    ):
        yield {"fit": fit, "reference": reference}


def test_render_shows_the_tools_kept_and_the_metrics_count_it(services: dict[str, httpx.Client]) -> None:
    client = services["fit"]
    before = metric_value(client, "umi_prompt_fits_total", action="select_tools")
    body = client.post("/v1/render", json={"tools": TOOLS, "history": HISTORY}).json()
    fit = body["fit"]
    assert body["truncated"] is True and fit["policy"] == "fit" and fit["actions"] == ["select_tools"]
    assert fit["tools_total"] == 90 and 1 <= fit["tools_kept"] < 90 and len(fit["kept_tools"]) == fit["tools_kept"]
    assert fit["kept_tools"][0] == "weather_0" and body["prompt"].startswith("system: You have assess to the following apis:\n")
    assert fit["tokens_before"] > fit["budget_tokens"] >= fit["tokens_after"] == body["prompt_tokens"]
    assert metric_value(client, "umi_prompt_fits_total", action="select_tools") == before + 1


def test_a_prompt_that_fits_has_no_record(services: dict[str, httpx.Client]) -> None:
    body = services["fit"].post("/v1/render", json={"tools": TOOLS[:2], "history": HISTORY}).json()
    assert (body["truncated"], body["fit"]) == (False, None)


def test_the_reference_policy_cuts_the_prompt_from_the_left(services: dict[str, httpx.Client]) -> None:
    client = services["reference"]
    truncations = metric_value(client, "umi_prompt_truncations_total")
    body = client.post("/v1/render", json={"tools": TOOLS, "history": HISTORY}).json()
    assert body["fit"]["policy"] == "reference" and body["fit"]["actions"] == ["cut_left"]
    prompt = body["prompt"]
    assert not prompt.startswith("system: ") and "user: What is the weather in Oslo?</s>" in prompt and prompt.endswith(" assistant: ")
    assert metric_value(client, "umi_prompt_truncations_total") == truncations + 1


def test_parameters_that_are_not_an_object_are_refused_naming_the_field(services: dict[str, httpx.Client]) -> None:
    tool = {"type": "function", "function": {"name": "t", "parameters": {"type": "array", "items": {"type": "string"}}}}
    r = services["fit"].post("/v1/render", json={"tools": [tool], "history": HISTORY})
    assert r.status_code == 422 and r.json()["error"]["field"].endswith("function.parameters")
