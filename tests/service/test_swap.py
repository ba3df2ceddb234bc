"""Hot swap of full weights on the CPU engine (`transformers serve`, blue/green), under load:
zero failed requests, the version changes after the switch and never goes back, refused swaps
leave the old weights serving, rollback, one swap at a time, the admin token; and an engine
that dies: 503 with Retry-After, then recovery.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.servers import (
    ADMIN,
    admin_status,
    metric_value,
    pid_alive,
    role_service,
    service_settings,
    steady_load,
    wait_ready,
    wait_until,
)

from services import planner

pytestmark = pytest.mark.engine

PLAN = {"tools": [{"Name": "get_weather", "function": "Weather by city", "input": {"city": "string, City"}}],
        "history": [{"role": "user", "content": "Weather in Oslo?"}], "sampling": {"max_tokens": 8}}


@pytest.fixture(scope="module")
def service(tiny_models: dict[str, Path]) -> Iterator[httpx.Client]:
    settings = service_settings(engine="transformers", model=str(tiny_models["v1"]), model_version="v1")
    with role_service(planner.ROLE, settings) as client:
        yield client


def versions_in_order(seen: list[tuple[int, str | None]]) -> list[str]:
    """The distinct versions one client saw, in the order it saw them."""
    out: list[str] = []
    for _, version in seen:
        if version is not None and (not out or out[-1] != version):
            out.append(version)
    return out


def test_admin_needs_the_bearer_token(service: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}):
        r = service.post("/admin/weights", json={"path": "/nowhere"}, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["type"] == "unauthorized"
    assert service.get("/admin/weights").status_code == 401
    assert service.post("/admin/weights/rollback").status_code == 401


def test_refused_swaps_keep_the_old_weights_serving(service: httpx.Client, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    before = admin_status(service)
    refused_before = metric_value(service, "umi_swaps_total", outcome="refused")

    r = service.post("/admin/weights", json={"path": str(tmp_path / "missing")}, headers=ADMIN)
    assert r.status_code == 422 and r.json()["error"] | {"message": ""} == {"type": "weights_not_found", "message": "", "field": "path"}
    (tmp_path / "empty").mkdir()
    r = service.post("/admin/weights", json={"path": str(tmp_path / "empty")}, headers=ADMIN)
    assert r.status_code == 422 and "config.json" in r.json()["error"]["message"]

    # Weights whose file is cut short: the new engine exits while loading; traffic meanwhile is untouched.
    with steady_load(str(service.base_url), "/v1/plan", PLAN, workers=2, max_requests=400) as load:
        r = service.post("/admin/weights", json={"path": str(tiny_models["broken"]), "version": "bad"}, headers=ADMIN)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "weights_load_failed" and error["field"] == "path" and "safetensors" in error["message"].lower()
    assert load.all and not load.failures
    assert {v for _, v in load.all} == {"v1"}

    after = admin_status(service)
    assert after["model"] == before["model"] == {"name": "tiny-v1", "version": "v1"}
    assert after["engine"]["pid"] == before["engine"]["pid"] and after["history"] == before["history"]
    assert service.post("/v1/plan", json=PLAN).json()["model"]["version"] == "v1"
    assert metric_value(service, "umi_swaps_total", outcome="refused") == refused_before + 3


def test_blue_green_swap_under_load_then_rollback(service: httpx.Client, tiny_models: dict[str, Path]) -> None:
    old_pid = admin_status(service)["engine"]["pid"]
    second: dict[str, httpx.Response] = {}

    def try_second_swap_while_the_first_runs() -> None:
        wait_until(lambda: admin_status(service)["swap"] is not None, 60, "the swap to start")
        second["response"] = service.post("/admin/weights", json={"path": str(tiny_models["v1"])}, headers=ADMIN)

    racer = threading.Thread(target=try_second_swap_while_the_first_runs)
    racer.start()
    with steady_load(str(service.base_url), "/v1/plan", PLAN, workers=3, max_requests=900) as load:
        r = service.post("/admin/weights", json={"path": str(tiny_models["v2"]), "version": "v2"}, headers=ADMIN)
    racer.join()

    assert r.status_code == 200, r.text
    report = r.json()
    assert report["model"] == {"name": "tiny-v2", "version": "v2"} and report["previous"]["version"] == "v1"
    assert report["strategy"] == "blue_green" and report["drained"] is True and report["abandoned_requests"] == 0
    assert second["response"].status_code == 409 and second["response"].json()["error"]["type"] == "swap_in_progress"

    assert load.all and not load.failures, load.failures
    for seen in load.per_worker:
        assert versions_in_order(seen) in (["v1", "v2"], ["v2"]), seen  # switched once, never back
        assert seen[-1][1] == "v2"  # each client's last request started after the swap returned
    assert {v for _, v in load.all} == {"v1", "v2"}

    status = admin_status(service)
    assert status["model"]["version"] == "v2" and status["engine"]["model"] == str(tiny_models["v2"])
    assert status["engine"]["pid"] != old_pid and not pid_alive(old_pid)  # the old engine was stopped
    assert [h["version"] for h in status["history"]] == ["v1"]
    assert metric_value(service, "umi_weights_info", version="v2") == 1
    assert metric_value(service, "umi_weights_info", version="v1") == 0

    endless = service.post("/admin/weights/rollback", content=b'{"drain_timeout_s": 1e999}', headers={**ADMIN, "content-type": "application/json"})
    assert endless.status_code == 422 and endless.json()["error"]["field"] == "drain_timeout_s", endless.text  # infinity: a drain without end
    refused = service.post("/admin/weights/rollback", json={"strategy": "in_place"}, headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "in_place_unsupported", refused.text
    back = service.post("/admin/weights/rollback", json={"strategy": "blue_green"}, headers=ADMIN)
    assert back.status_code == 200, back.text  # the refused rollback kept the history
    assert back.json()["model"] == {"name": "tiny-v1", "version": "v1"} and back.json()["rollback"] is True
    assert service.post("/v1/plan", json=PLAN).json()["model"]["version"] == "v1"
    nothing = service.post("/admin/weights/rollback", headers=ADMIN)
    assert nothing.status_code == 409 and nothing.json()["error"]["type"] == "no_previous_weights"


def test_engine_death_answers_503_with_retry_after_then_recovers(service: httpx.Client) -> None:
    pid = admin_status(service)["engine"]["pid"]
    restarts = metric_value(service, "umi_engine_restarts_total")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: service.get("/ready").status_code == 503, 30, "/ready to report the dead engine")

    r = service.post("/v1/plan", json=PLAN)
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["type"] == "engine_unavailable"
    assert int(service.get("/ready").headers["retry-after"]) >= 1

    wait_ready(service)
    assert service.post("/v1/plan", json=PLAN).status_code == 200
    status = admin_status(service)
    assert status["engine"]["restarts"] >= 1 and status["engine"]["pid"] != pid
    assert metric_value(service, "umi_engine_restarts_total") == restarts + 1


def test_no_engine_answers_503_at_once_and_no_token_disables_admin(tiny_models: dict[str, Path]) -> None:
    # A url engine at an address where nothing listens: the service never gets ready, which
    # is also what this test needs to see: 503 with Retry-After, never a hang.
    settings = service_settings(engine="url", engine_url="http://127.0.0.1:9", model=str(tiny_models["v1"]), admin_token=None)
    with role_service(planner.ROLE, settings, wait=False) as client:
        r = client.post("/admin/weights", json={"path": "x"}, headers=ADMIN)
        assert r.status_code == 403 and r.json()["error"]["type"] == "admin_disabled"
        plan = client.post("/v1/plan", json=PLAN)
        assert plan.status_code == 503 and int(plan.headers["retry-after"]) >= 1
        streamed = client.post("/v1/plan", json={**PLAN, "stream": True})  # a plain 503, not a stream
        assert streamed.status_code == 503 and streamed.json()["error"]["type"] == "engine_unavailable"
        assert client.get("/ready").status_code == 503
