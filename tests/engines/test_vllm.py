"""The vllm engine against a faithful fake `vllm serve` (tests/support/fake_vllm.py): its command line and
environment, LoRA swaps (versioned names, alias flip, unload later, never load_inplace), in-place
sleep/reload swaps that queue requests, blue/green with a failed warm-up, and failure injection
(crash mid-request, slow load, load failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.servers import (
    ADMIN,
    FAKE_VLLM_COMMAND,
    admin_status,
    lora_adapter,
    metric_value,
    read_events,
    role_service,
    service_settings,
    steady_load,
    wait_until,
)

from services import planner
from umi.engines import (
    VLLM_VERSION,
    CompletionParams,
    EngineOptions,
    EngineRequestError,
    EngineStartError,
    LaunchSpec,
    TransformersEngine,
    VllmEngine,
    VllmFlags,
)
from umi.sse import Event

PLAN = {"tools": [{"Name": "get_weather", "function": "Weather by city", "input": {}}],
        "history": [{"role": "user", "content": "Weather in Oslo?"}], "sampling": {"max_tokens": 8}}

ServiceMaker = Callable[..., AbstractContextManager[httpx.Client]]


@pytest.fixture
def vllm_service(tiny_models: dict[str, Path]) -> ServiceMaker:
    @contextmanager
    def make(**overrides: Any) -> Iterator[httpx.Client]:
        values: dict[str, Any] = dict(
            engine="vllm",
            engine_command=FAKE_VLLM_COMMAND,
            model=str(tiny_models["v1"]),
            model_version="v1",
            enable_lora=True,
            max_loras=4,
            max_lora_rank=16,
            enable_sleep_mode=True,
            gpu_memory_utilization=0.3,
            tensor_parallel_size=1,
            max_model_len=1024,
            dtype="float16",
            engine_args="--fake-token-delay 0.01 --enforce-eager",
            constrained_decoding="off",  # the fake's words are its tokens then (constrained: tests/engines/test_constrained.py)
        )
        values.update(overrides)
        with role_service(planner.ROLE, service_settings(**values)) as client:
            yield client

    return make


def fake_state(client: httpx.Client) -> dict[str, Any]:
    return httpx.get(admin_status(client)["engine"]["url"] + "/fake/state").json()


def marked_copy(source: Path, target: Path, marker: str) -> Path:
    """A copy of model weights with a fake-vLLM failure marker in it."""
    shutil.copytree(source, target)
    (target / marker).write_text("")
    return target


def swap(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/admin/weights", json=body, headers=ADMIN)


def admin_calls(state: dict[str, Any], *names: str) -> list[tuple]:
    out = []
    for c in state["calls"]:
        if c["call"] in names:
            out.append((c["call"], c.get("lora_name") or c.get("method") or c.get("level") or c.get("tags")))
    return out


# --------------------------------------------------------------------------- command lines


def test_vllm_command_line_and_environment() -> None:
    flags = VllmFlags(
        served_model_name="caller", tensor_parallel_size=2, gpu_memory_utilization=0.3, max_model_len=4096,
        enable_lora=True, max_loras=4, max_lora_rank=64, enable_sleep_mode=True,
    )
    launch = LaunchSpec(host="127.0.0.1", port=8101, extra_args=("--enforce-eager",), dtype="bfloat16")
    engine = VllmEngine("/models/caller-7b", EngineOptions(), launch, flags)
    assert engine.command() == [
        "vllm", "serve", "/models/caller-7b", "--host", "127.0.0.1", "--port", "8101", "--dtype", "bfloat16",
        "--served-model-name", "caller", "--generation-config", "vllm", "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.3",
        "--max-model-len", "4096", "--enable-lora", "--max-loras", "4", "--max-lora-rank", "64",
        "--enable-sleep-mode", "--enforce-eager",
    ]
    assert engine.environment() == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_SERVER_DEV_MODE": "1"}
    plain = VllmEngine("m", EngineOptions(), LaunchSpec(port=1, command=("python", "x.py")), VllmFlags(served_model_name="p"))
    assert plain.command() == [
        "python", "x.py", "serve", "m", "--host", "127.0.0.1", "--port", "1", "--served-model-name", "p",
        "--generation-config", "vllm",
    ]
    assert plain.environment() == {} and plain.unset_environment() == ("VLLM_API_KEY",)


def test_transformers_command_line() -> None:
    engine = TransformersEngine("/models/tiny", EngineOptions(), LaunchSpec(port=8200, extra_args=("--device", "cpu")))
    argv = engine.command()
    assert Path(argv[0]).name == "transformers"
    assert argv[1:] == ["serve", "/models/tiny", "--host", "127.0.0.1", "--port", "8200", "--device", "cpu"]
    assert engine.served_model == "/models/tiny"


# --------------------------------------------------------------------------- against the fake


def test_vllm_serve_gets_the_settings_as_flags(vllm_service: ServiceMaker, tiny_models: dict[str, Path]) -> None:
    with vllm_service() as client:
        state = fake_state(client)
        argv = state["argv"]
        assert argv[:2] == ["serve", str(tiny_models["v1"])]
        pairs = {argv[i]: argv[i + 1] for i in range(2, len(argv) - 1) if argv[i].startswith("--")}
        assert pairs["--served-model-name"] == "planner" and pairs["--max-loras"] == "4"
        assert pairs["--gpu-memory-utilization"] == "0.3" and pairs["--max-model-len"] == "1024"
        assert pairs["--dtype"] == "float16" and pairs["--max-lora-rank"] == "16"
        assert {"--enable-lora", "--enable-sleep-mode"} <= set(argv)
        assert state["unknown_args"] == ["--enforce-eager"]  # UMI_ENGINE_ARGS, passed through
        assert state["env"] == {"lora_runtime": True, "dev_mode": True, "api_key": False}

        r = client.post("/v1/plan", json=PLAN)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["text"] == "Using tiny-v1. Next: caller." and body["next"] == "caller"
        assert body["thought"] == "Using tiny-v1." and body["model"] == {"name": "tiny-v1", "version": "v1"}
        sent = fake_state(client)["completions"][-1]
        assert sent["model"] == "planner" and sent["prompt"].startswith("system: You have assess")


def test_lora_swaps_use_versioned_names_flip_the_alias_and_unload_later(vllm_service: ServiceMaker, tmp_path: Path) -> None:
    a1, a2 = lora_adapter(tmp_path, "caller-lora-a1"), lora_adapter(tmp_path, "caller-lora-a2")
    with vllm_service() as client:
        pid = admin_status(client)["engine"]["pid"]
        with steady_load(str(client.base_url), "/v1/plan", PLAN, workers=2, max_requests=300) as load:
            first = swap(client, path=str(a1), kind="lora", version="a1")
            second = swap(client, path=str(a2), kind="lora", version="a2")
        assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
        assert first.json()["strategy"] == second.json()["strategy"] == "lora"
        assert second.json()["model"] == {"name": "caller-lora-a2", "version": "a2"}
        assert not load.failures
        for seen in load.per_worker:
            order = [v for i, (_, v) in enumerate(seen) if i == 0 or seen[i - 1][1] != v]
            assert order in (["v1", "a1", "a2"], ["v1", "a2"], ["a1", "a2"], ["a2"]), order

        state = fake_state(client)
        assert state["pid"] == pid  # same engine process all along
        assert state["adapters"] == {"planner-a2-2": str(a2)}
        assert admin_calls(state, "load_lora_adapter", "unload_lora_adapter") == [
            ("load_lora_adapter", "planner-a1-1"),
            ("load_lora_adapter", "planner-a2-2"),
            ("unload_lora_adapter", "planner-a1-1"),
        ]
        assert state["load_inplace_seen"] is False
        r = client.post("/v1/plan", json=PLAN).json()
        assert r["text"].startswith("Using caller-lora-a2.") and r["model"]["version"] == "a2"

        back = client.post("/admin/weights/rollback", headers=ADMIN)
        assert back.status_code == 200 and back.json()["model"]["version"] == "a1"
        assert fake_state(client)["adapters"] == {"planner-a1-3": str(a1)}  # a new name, never a reused one
        base = client.post("/admin/weights/rollback", headers=ADMIN)
        assert base.status_code == 200 and base.json()["strategy"] == "reuse"
        assert base.json()["model"] == {"name": "tiny-v1", "version": "v1"}
        assert fake_state(client)["adapters"] == {}
        assert admin_status(client)["served_model"] == "planner"
        assert client.post("/v1/plan", json=PLAN).json()["text"].startswith("Using tiny-v1.")


def test_refused_lora_swaps_keep_the_old_weights(vllm_service: ServiceMaker, tmp_path: Path) -> None:
    failing = lora_adapter(tmp_path, "fails-to-load", ("FAKE_LOAD_FAILS", ""))
    bad_warmup = lora_adapter(tmp_path, "fails-warm-up", ("FAKE_WARMUP_FAILS", ""))
    not_adapter = tmp_path / "not-an-adapter"
    not_adapter.mkdir()
    with vllm_service() as client:
        r = swap(client, path=str(not_adapter), kind="lora")
        assert r.status_code == 422 and r.json()["error"]["type"] == "weights_not_found"
        assert "adapter_config.json" in r.json()["error"]["message"]

        r = swap(client, path=str(failing), kind="lora", version="x")
        assert r.status_code == 422 and r.json()["error"]["type"] == "weights_load_failed"
        assert "injected failure" in r.json()["error"]["message"]

        r = swap(client, path=str(bad_warmup), kind="lora", version="y")
        assert r.status_code == 422 and r.json()["error"]["type"] == "warmup_failed"
        state = fake_state(client)
        assert state["adapters"] == {}  # the adapter that failed its warm-up was unloaded again

        assert admin_status(client)["model"]["version"] == "v1"
        assert client.post("/v1/plan", json=PLAN).json()["model"]["version"] == "v1"


def test_a_second_swap_during_a_slow_load_is_409(vllm_service: ServiceMaker, tmp_path: Path) -> None:
    slow = lora_adapter(tmp_path, "slow", ("FAKE_SLOW_LOAD", "2"))
    other = lora_adapter(tmp_path, "other")
    with vllm_service() as client:
        result: dict[str, httpx.Response] = {}
        first = threading.Thread(target=lambda: result.update(first=swap(client, path=str(slow), kind="lora", version="s")))
        first.start()
        wait_until(lambda: (admin_status(client)["swap"] or {}).get("phase", "").startswith("loading adapter"), 30, "the slow load")
        busy = swap(client, path=str(other), kind="lora")
        first.join()
        assert busy.status_code == 409 and busy.json()["error"]["type"] == "swap_in_progress"
        assert result["first"].status_code == 200 and admin_status(client)["model"]["version"] == "s"


def test_in_place_swap_queues_requests_during_the_pause(vllm_service: ServiceMaker, tiny_models: dict[str, Path]) -> None:
    with vllm_service(enable_lora=False, engine_args="--fake-token-delay 0.01 --fake-reload-delay 1.5") as client:
        pid = admin_status(client)["engine"]["pid"]
        during: dict[str, httpx.Response] = {}

        def request_while_paused() -> None:
            wait_until(lambda: (admin_status(client)["swap"] or {}).get("phase") == "reloading weights", 60, "the reload")
            assert client.get("/ready").json()["state"] == "paused"
            during["response"] = client.post("/v1/plan", json=PLAN)

        waiter = threading.Thread(target=request_while_paused)
        waiter.start()
        with steady_load(str(client.base_url), "/v1/plan", PLAN, workers=2, max_requests=300) as load:
            r = swap(client, path=str(tiny_models["v2"]), version="v2", strategy="in_place")
        waiter.join()
        assert r.status_code == 200, r.text
        assert r.json()["strategy"] == "in_place" and r.json()["model"]["version"] == "v2"
        assert not load.failures and {v for _, v in load.all} <= {"v1", "v2"}
        # Admitted while paused, it waited and then ran on the new weights.
        assert during["response"].status_code == 200 and during["response"].json()["model"]["version"] == "v2"
        assert during["response"].json()["text"].startswith("Using tiny-v2.")

        state = fake_state(client)
        assert state["pid"] == pid and state["model_path"] == str(tiny_models["v2"])
        assert state["completions_while_sleeping"] == 0
        assert admin_calls(state, "sleep", "wake_up", "collective_rpc", "reset_prefix_cache") == [
            ("sleep", 2), ("wake_up", ["weights"]), ("collective_rpc", "reload_weights"),
            ("wake_up", ["kv_cache"]), ("reset_prefix_cache", None),
        ]
        assert state["calls"][2]["kwargs"] == {"weights_path": str(tiny_models["v2"])}  # the documented form


def test_in_place_swap_that_fails_to_load_restores_the_old_weights(
    vllm_service: ServiceMaker, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    bad = marked_copy(tiny_models["v2"], tmp_path / "v2-bad", "FAKE_LOAD_FAILS")
    with vllm_service(enable_lora=False) as client:
        r = swap(client, path=str(bad), strategy="in_place")
        assert r.status_code == 422 and r.json()["error"]["type"] == "weights_load_failed"
        state = fake_state(client)
        assert state["model_path"] == str(tiny_models["v1"]) and state["sleeping"] is False
        reloads = [c["kwargs"]["weights_path"] for c in state["calls"] if c.get("method") == "reload_weights"]
        assert reloads == [str(bad), str(tiny_models["v1"])]
        ok = client.post("/v1/plan", json=PLAN)
        assert ok.status_code == 200 and ok.json()["model"]["version"] == "v1"


def test_blue_green_on_vllm_refuses_weights_that_fail_the_warm_up(
    vllm_service: ServiceMaker, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    bad = marked_copy(tiny_models["v2"], tmp_path / "v2-warmup-fails", "FAKE_WARMUP_FAILS")
    with vllm_service() as client:
        first_pid = admin_status(client)["engine"]["pid"]
        r = swap(client, path=str(bad), version="bad")
        assert r.status_code == 422 and r.json()["error"]["type"] == "warmup_failed"
        assert admin_status(client)["engine"]["pid"] == first_pid

        ok = swap(client, path=str(tiny_models["v2"]), version="v2")
        assert ok.status_code == 200 and ok.json()["strategy"] == "blue_green"
        status = admin_status(client)
        assert status["engine"]["pid"] != first_pid and fake_state(client)["model_path"] == str(tiny_models["v2"])
        assert client.post("/v1/plan", json=PLAN).json()["text"].startswith("Using tiny-v2.")


def test_crash_mid_request_gives_503_or_an_error_event_then_recovers(vllm_service: ServiceMaker, tmp_path: Path) -> None:
    a1 = lora_adapter(tmp_path, "a1")
    with vllm_service() as client:
        assert swap(client, path=str(a1), kind="lora", version="a1").status_code == 200
        engine_url = admin_status(client)["engine"]["url"]

        httpx.post(engine_url + "/fake/inject", json={"crash_mid_request": True})
        with client.stream("POST", "/v1/plan", json={**PLAN, "stream": True}) as r:
            assert r.status_code == 200
            events = read_events(r)
        assert [e.event for e in events] == ["token", "token", "error"]
        assert events[-1].json()["error"]["type"] == "engine_unavailable"

        r = client.post("/v1/plan", json=PLAN)  # the engine is dead or restarting now
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1

        def restarted(times: int) -> Callable[[], bool]:
            return lambda: admin_status(client)["engine"]["restarts"] == times and client.get("/ready").status_code == 200

        wait_until(restarted(1), 60, "the first restart")
        httpx.post(engine_url + "/fake/inject", json={"crash_mid_request": True})
        r = client.post("/v1/plan", json=PLAN)
        assert r.status_code == 503 and r.json()["error"]["type"] == "engine_unavailable"

        wait_until(restarted(2), 60, "the second restart")
        r = client.post("/v1/plan", json=PLAN)
        assert r.status_code == 200 and r.json()["model"]["version"] == "a1"
        assert r.json()["text"].startswith("Using a1.")  # the adapter was loaded again after the restarts
        assert admin_status(client)["engine"]["restarts"] == 2
        assert metric_value(client, "umi_engine_restarts_total") == 2


def test_swaps_the_engine_cannot_do_are_refused(vllm_service: ServiceMaker, tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    with vllm_service(enable_lora=False, enable_sleep_mode=False) as client:
        r = swap(client, path=str(lora_adapter(tmp_path, "a")), kind="lora")
        assert r.status_code == 422 and r.json()["error"] | {"message": ""} == {"type": "lora_unsupported", "field": "kind", "message": ""}
        r = swap(client, path=str(tiny_models["v2"]), strategy="in_place")
        assert r.status_code == 422 and r.json()["error"]["field"] == "strategy"
        r = swap(client, path=str(tiny_models["v2"]), engine_url="http://127.0.0.1:1")
        assert r.status_code == 422 and r.json()["error"]["field"] == "engine_url"
        state = fake_state(client)
        assert state["env"] == {"lora_runtime": False, "dev_mode": False, "api_key": False}
        assert "--enable-lora" not in state["argv"]


def test_blue_green_drains_in_flight_requests_on_the_old_engine(vllm_service: ServiceMaker, tiny_models: dict[str, Path]) -> None:
    """A stream that runs through the switch finishes on the old engine; past the drain timeout
    the old engine is stopped anyway and the report counts the request it abandoned."""
    with vllm_service() as client:
        def held_stream(out: list[Event]) -> threading.Thread:
            def run() -> None:
                with client.stream("POST", "/v1/plan", json={**PLAN, "stream": True}) as r:
                    read_events(r, out)
            return threading.Thread(target=run)

        def swap_while_held(out: list[Event], path: Path, version: str, drain_timeout_s: float) -> httpx.Response:
            old_engine = admin_status(client)["engine"]["url"]
            httpx.post(old_engine + "/fake/inject", json={"hold_streams": True})
            stream = held_stream(out)
            stream.start()
            wait_until(lambda: admin_status(client)["in_flight"] == 1 and len(out) == 1, 30, "the held stream")
            result: dict[str, httpx.Response] = {}
            swapper = threading.Thread(
                target=lambda: result.update(r=swap(client, path=str(path), version=version, drain_timeout_s=drain_timeout_s))
            )
            swapper.start()
            if drain_timeout_s > 5:
                wait_until(lambda: (admin_status(client)["swap"] or {}).get("phase") == "draining", 60, "the drain")
                assert client.post("/v1/plan", json=PLAN).json()["model"]["version"] == version  # new requests: new weights
                httpx.post(old_engine + "/fake/inject", json={"hold_streams": False})
            swapper.join()
            stream.join()
            return result["r"]

        finished: list[Event] = []
        r = swap_while_held(finished, tiny_models["v2"], "v2", drain_timeout_s=60)
        assert r.status_code == 200 and r.json()["drained"] is True and r.json()["abandoned_requests"] == 0
        assert finished[-1].event == "result" and finished[-1].json()["model"]["version"] == "v1"

        abandoned: list[Event] = []
        r = swap_while_held(abandoned, tiny_models["v1"], "v1-again", drain_timeout_s=0.5)
        assert r.status_code == 200 and r.json()["drained"] is False and r.json()["abandoned_requests"] == 1
        assert abandoned[-1].event == "error" and abandoned[-1].json()["error"]["type"] == "engine_unavailable"


# --------------------------------------------------------------------------- vLLM behaviours (issue 16)
# One test per behaviour of vLLM at the pinned version that the adapter must handle; the fake
# imitates each (tests/support/fake_vllm.py cites the vLLM source). docs/role-services.md "vLLM behaviours".


def test_the_pinned_vllm_version_is_the_same_in_pyproject_and_the_dockerfile() -> None:
    root = Path(__file__).parents[2]
    assert f'gpu = ["vllm=={VLLM_VERSION}"]' in (root / "pyproject.toml").read_text()
    images = [line for line in (root / "Dockerfile").read_text().splitlines() if "vllm/vllm-openai:" in line]
    assert images and all(line.rstrip().endswith(f"vllm/vllm-openai:v{VLLM_VERSION}") for line in images), images


def test_in_place_swaps_are_refused_with_lora_enabled_because_vllm_cannot_reload_them(
    vllm_service: ServiceMaker, tiny_models: dict[str, Path]
) -> None:
    with vllm_service() as client:  # LoRA and sleep mode both on
        r = swap(client, path=str(tiny_models["v2"]), strategy="in_place")
        assert r.status_code == 422 and r.json()["error"]["type"] == "in_place_unsupported"
        assert "#39934" in r.json()["error"]["message"] and r.json()["error"]["field"] == "strategy"
        assert admin_calls(fake_state(client), "sleep", "collective_rpc") == []  # refused before touching the engine


def test_an_engine_whose_core_dies_answers_503_with_retry_after_and_is_restarted_before_it_exits(
    vllm_service: ServiceMaker,
) -> None:
    with vllm_service() as client:
        engine_url = admin_status(client)["engine"]["url"]
        # vLLM answers 500 and exits only later; exit_after_s is long so only our probe can restart it in time.
        httpx.post(engine_url + "/fake/inject", json={"engine_dies": True, "exit_after_s": 60})
        r = client.post("/v1/plan", json=PLAN)
        assert r.status_code == 503 and r.json()["error"]["type"] == "engine_unavailable"
        assert int(r.headers["retry-after"]) >= 1

        def restarted(times: int) -> Callable[[], bool]:
            return lambda: admin_status(client)["engine"]["restarts"] == times and client.get("/ready").status_code == 200

        wait_until(restarted(1), 40, "the restart after a 500")
        httpx.post(engine_url + "/fake/inject", json={"engine_dies": True, "exit_after_s": 60})
        with client.stream("POST", "/v1/plan", json={**PLAN, "stream": True}) as streamed:
            assert streamed.status_code == 200
            events = read_events(streamed)
        assert [e.event for e in events] == ["token", "token", "error"]
        assert events[-1].json()["error"]["type"] == "engine_unavailable"
        wait_until(restarted(2), 40, "the restart after an in-stream error")
        assert client.post("/v1/plan", json=PLAN).status_code == 200


def test_an_in_place_reload_that_keeps_the_old_weights_is_refused(
    vllm_service: ServiceMaker, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    stale = marked_copy(tiny_models["v2"], tmp_path / "v2-stale", "FAKE_RELOAD_STALE")
    with vllm_service(enable_lora=False) as client:
        r = swap(client, path=str(stale), version="stale", strategy="in_place")
        assert r.status_code == 422 and r.json()["error"]["type"] == "weights_load_failed"
        assert "#32718" in r.json()["error"]["message"]
        ok = client.post("/v1/plan", json=PLAN)
        assert ok.status_code == 200 and ok.json()["model"]["version"] == "v1" and ok.json()["text"].startswith("Using tiny-v1.")


def test_a_hung_engine_that_still_answers_health_is_restarted_after_request_timeouts(vllm_service: ServiceMaker) -> None:
    with vllm_service(request_timeout_s=1.0, health_failures=2) as client:
        engine_url = admin_status(client)["engine"]["url"]
        httpx.post(engine_url + "/fake/inject", json={"hang": True})
        for _ in range(2):
            r = client.post("/v1/plan", json=PLAN)
            assert r.status_code == 503 and r.json()["error"]["type"] == "engine_unavailable", r.text
        wait_until(lambda: admin_status(client)["engine"]["restarts"] == 1 and client.get("/ready").status_code == 200,
                   40, "the restart of the hung engine")
        assert client.post("/v1/plan", json=PLAN).status_code == 200


def test_the_checkpoints_generation_config_does_not_change_the_roles_sampling(
    vllm_service: ServiceMaker, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "tiny-v1-gen"
    shutil.copytree(tiny_models["v1"], model)
    (model / "generation_config.json").write_text(json.dumps({"top_p": 0.6, "top_k": 20, "repetition_penalty": 1.3}))
    role_sampling = {"temperature": 0.5, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0}
    with vllm_service(model=str(model)) as client:
        assert client.post("/v1/plan", json=PLAN).status_code == 200
        assert fake_state(client)["completions"][-1]["sampling"] == role_sampling
    # vLLM's default (--generation-config auto, here appended by UMI_ENGINE_ARGS) would leak them.
    with vllm_service(model=str(model), engine_args="--generation-config auto") as client:
        assert client.post("/v1/plan", json=PLAN).status_code == 200
        assert fake_state(client)["completions"][-1]["sampling"] == {**role_sampling, "top_p": 0.6, "top_k": 20, "repetition_penalty": 1.3}


def test_an_engine_that_refuses_its_command_line_is_not_retried_and_requests_get_the_reason(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    command = f"sh -c 'echo start >> {starts}; exec {FAKE_VLLM_COMMAND} \"$@\"' sh"
    settings = service_settings(
        engine="vllm", engine_command=command, model=str(tiny_models["v1"]), enable_lora=True, max_lora_rank=16,
        engine_args="--max-lora-rank 7", restart_backoff_s=0.5,  # a rank vLLM refuses, past the settings check
    )
    with role_service(planner.ROLE, settings, wait=False) as client:
        wait_until(lambda: client.get("/ready").json().get("state") == "failed", 60, "the start to fail")
        time.sleep(2.0)  # several backoff periods: a retry would have started the engine again
        assert starts.read_text().splitlines() == ["start"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and "invalid choice: 7" in ready.json()["error"]["message"]
        r = client.post("/v1/plan", json=PLAN)
        assert r.status_code == 503 and "invalid choice: 7" in r.json()["error"]["message"]


@pytest.fixture
def fake_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `nvidia-smi` on PATH that reports the free and total MiB written to the returned file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    memory = tmp_path / "gpu-memory"
    memory.write_text("80000, 81920\n")
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat {memory}\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return memory


def test_blue_green_is_refused_up_front_when_a_second_copy_cannot_fit_on_the_gpu(
    vllm_service: ServiceMaker, tiny_models: dict[str, Path], fake_gpu: Path
) -> None:
    with vllm_service(gpu_memory_utilization=0.28) as client:
        first_pid = admin_status(client)["engine"]["pid"]
        fake_gpu.write_text("16000, 81920\n")  # three roles at 0.28 each on one GPU: 0.16 left
        r = swap(client, path=str(tiny_models["v2"]), version="v2")
        assert r.status_code == 422 and r.json()["error"]["type"] == "blue_green_unsupported"
        message = r.json()["error"]["message"]
        assert r.json()["error"]["field"] == "strategy" and "in_place" in message and "lora" in message
        assert "16000 MiB free" in message
        assert admin_status(client)["engine"]["pid"] == first_pid
        # What the refusal avoids: vLLM (and the fake) refuses to start below its share.
        engine = VllmEngine(str(tiny_models["v2"]), EngineOptions(start_timeout_s=60),
                            LaunchSpec(command=tuple(FAKE_VLLM_COMMAND.split())), VllmFlags("planner", gpu_memory_utilization=0.28))
        with pytest.raises(EngineStartError, match="less than desired GPU memory utilization"):
            asyncio.run(engine.start())


def test_an_inherited_vllm_api_key_does_not_lock_the_service_out(
    vllm_service: ServiceMaker, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "s3cret")
    with vllm_service() as client:
        assert client.post("/v1/plan", json=PLAN).status_code == 200
        assert fake_state(client)["env"]["api_key"] is False

    async def with_a_key() -> None:  # the fake, like vLLM, locks /v1 with a key
        engine = VllmEngine(str(tiny_models["v1"]), EngineOptions(start_timeout_s=60),
                            LaunchSpec(command=tuple(FAKE_VLLM_COMMAND.split()), extra_args=("--api-key", "k")), VllmFlags("p"))
        await engine.start()
        try:
            with pytest.raises(EngineRequestError, match="401"):
                await engine.complete("p", "hello", CompletionParams(max_tokens=2, temperature=0.0))
        finally:
            await engine.stop()

    asyncio.run(with_a_key())


def test_a_seed_outside_int64_and_a_prompt_over_the_engines_context_are_422_naming_the_field(
    vllm_service: ServiceMaker,
) -> None:
    with vllm_service(engine_args="--fake-token-delay 0.01 --max-model-len 200") as client:  # vLLM's context: 200
        r = client.post("/v1/plan", json={**PLAN, "sampling": {"max_tokens": 8, "seed": 2**63}})
        assert r.status_code == 422 and r.json()["error"]["field"] == "sampling.seed"
        assert client.post("/v1/plan", json={**PLAN, "sampling": {"max_tokens": 8, "seed": 2**63 - 1}}).status_code == 200

        long_history = [{"role": "user", "content": " ".join(["word"] * 300)}]
        r = client.post("/v1/plan", json={**PLAN, "history": long_history})
        assert r.status_code == 422 and r.json()["error"]["field"] == "sampling.max_tokens", r.text
        assert "maximum context length" in r.json()["error"]["message"]
