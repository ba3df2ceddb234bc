"""`umi swap ROLE` across a fleet: role services on loopback (each with its fake `vllm serve`,
tests/support/fake_vllm.py), swapped one at a time through their admin APIs, canary first, and
every swapped replica rolled back when one fails.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.haproxy import run_haproxy
from tests.support.servers import (
    ADMIN_TOKEN,
    FAKE_VLLM_COMMAND,
    admin_status,
    lora_adapter,
    metric_value,
    role_service,
    service_settings,
    wait_until,
)

from services import planner
from umi.cli import main
from umi.engines.process import free_port
from umi.roleapi import CHAT_ID_HEADER
from umi.fleet_swap import FleetInputError, FleetSwap, ReplicaFailure, SwapTarget, error_rate, replicas_from_dns, replicas_from_urls, requests_by_code

Fleet = Callable[..., AbstractContextManager[list[httpx.Client]]]
PROGRESS = re.compile(r"^\[(\d+)/\d+(?: canary)?\] (\S+)  (\w+) (start|ok|failed)")


@pytest.fixture
def fleet(tiny_models: dict[str, Path]) -> Fleet:
    """``fleet(n, overrides_per_replica)``: n planner replicas on fake vLLM engines, serving v1."""

    @contextmanager
    def make(n: int, per_replica: dict[int, dict[str, Any]] | None = None, hosts: list[str] | None = None,
             port: int | None = None) -> Iterator[list[httpx.Client]]:
        with ExitStack() as stack:
            clients = []
            for i in range(n):
                values: dict[str, Any] = dict(
                    engine="vllm", engine_command=FAKE_VLLM_COMMAND, model=str(tiny_models["v1"]), model_version="v1",
                    enable_lora=True, max_loras=4, max_lora_rank=16, max_model_len=1024,
                )
                values.update((per_replica or {}).get(i, {}))
                host = hosts[i] if hosts else "127.0.0.1"
                clients.append(stack.enter_context(role_service(planner.ROLE, service_settings(**values), host=host, port=port)))
            yield clients

    return make


def umi_swap(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str,
             token: str = ADMIN_TOKEN) -> tuple[int, str, str]:
    """``umi swap planner ARGS`` in this process: (exit status, stdout, stderr)."""
    monkeypatch.setenv("UMI_ADMIN_TOKEN", token)
    capsys.readouterr()
    try:
        code = main(["swap", "planner", *args])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def steps(stderr: str) -> list[tuple[int, str, str, str]]:
    """The progress lines: (replica number from 1, url, phase, status), in order."""
    return [(int(m[1]), m[2], m[3], m[4]) for line in stderr.splitlines() if (m := PROGRESS.match(line))]


def urls(clients: list[httpx.Client]) -> list[str]:
    return [str(c.base_url).rstrip("/") for c in clients]


def test_every_replica_swaps_in_order_canary_first(
    fleet: Fleet, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with fleet(3) as clients:
        order = [urls(clients)[i] for i in (1, 0, 2)]  # the order given is the order swapped
        code, out, err = umi_swap(capsys, monkeypatch, "--to", str(tiny_models["v2"]), "--version", "v2",
                                  "--replicas", ",".join(order), "--check-window", "0.2", "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["ok"] is True and [r["url"] for r in report["replicas"]] == order
        assert [r["canary"] for r in report["replicas"]] == [True, False, False]
        for r in report["replicas"]:
            assert r["outcome"] == "swapped" and r["previous"]["version"] == "v1" and r["model"]["version"] == "v2"
            assert r["error_rate"] == 0 and r["window_requests"] == 1  # the warm-up request

        # All preflights first, then one replica at a time: none starts before the previous one passed its checks.
        per_replica = [("swap", "start"), ("swap", "ok"), ("ready", "ok"), ("version", "ok"), ("warm_up", "ok"),
                       ("error_rate", "start"), ("error_rate", "ok"), ("done", "ok")]
        expected = [(url, "preflight", "ok") for url in order] + [(url, *step) for url in order for step in per_replica]
        assert [(url, phase, status) for _, url, phase, status in steps(err)] == expected
        assert "every replica serves v2" in err

        for client in clients:
            status = admin_status(client)
            assert status["model"] == {"name": "tiny-v2", "version": "v2"}
            assert [h["version"] for h in status["history"]] == ["v1"]
            assert metric_value(client, "umi_requests_total", endpoint="/v1/plan", code="200") == 1

        # Run again: every replica already serves v2, so nothing is swapped.
        code, out, err = umi_swap(capsys, monkeypatch, "--to", str(tiny_models["v2"]), "--version", "v2",
                                  "--replicas", ",".join(order), "--check-window", "0", "--json")
        assert code == 0 and [r["outcome"] for r in json.loads(out)["replicas"]] == ["skipped"] * 3
        assert all(len(admin_status(c)["history"]) == 1 for c in clients)


def test_a_refused_swap_in_the_middle_rolls_back_the_swapped_replicas(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = lora_adapter(tmp_path, "planner-lora-v2")
    with fleet(3, {1: {"enable_lora": False}}) as clients:  # the second replica cannot load adapters
        code, out, err = umi_swap(capsys, monkeypatch, "--to", str(adapter), "--version", "lora-v2", "--kind", "lora",
                                  "--replicas", ",".join(urls(clients)), "--check-window", "0", "--json")
        assert code == 1
        bad = urls(clients)[1]
        assert f"umi swap: error: {bad}: swap: the swap was refused: 422 lora_unsupported" in err
        report = json.loads(out)
        assert report["failed_replica"] == bad
        assert [r["outcome"] for r in report["replicas"]] == ["rolled_back", "failed", "untouched"]
        for client in clients:  # every replica serves the base weights again; the canary's adapter is gone
            status = admin_status(client)
            assert status["model"] == {"name": "tiny-v1", "version": "v1"} and status["served_model"] == "planner"
        canary = admin_status(clients[0])
        assert canary["last_swap"]["rollback"] is True and canary["history"] == []
        assert admin_status(clients[2])["last_swap"] is None  # never touched
        assert steps(err)[-2:] == [(1, urls(clients)[0], "rollback", "start"), (1, urls(clients)[0], "rollback", "ok")]


def test_a_replica_that_fails_its_checks_after_switching_is_rolled_back_with_the_others(
    fleet: Fleet, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with fleet(2) as clients:
        second = clients[1]

        def break_the_second_replica_once_it_switched() -> None:
            # Its new engine's core dies on the next completion (as a vLLM engine core does): the
            # replica answers 503 and restarts the engine, inside its check window.
            wait_until(lambda: admin_status(second)["model"]["version"] == "v2", 60, "the second replica to switch")
            httpx.post(admin_status(second)["engine"]["url"] + "/fake/inject", json={"engine_dies": True, "exit_after_s": 30})
            second.post("/v1/plan", json={"tools": [], "history": [{"role": "user", "content": "hi"}]})

        breaker = threading.Thread(target=break_the_second_replica_once_it_switched)
        breaker.start()
        code, out, err = umi_swap(capsys, monkeypatch, "--to", str(tiny_models["v2"]), "--version", "v2",
                                  "--replicas", ",".join(urls(clients)), "--check-window", "2", "--json")
        breaker.join()
        assert code == 1, err
        bad = urls(clients)[1]
        assert re.search(rf"umi swap: error: {re.escape(bad)}: (ready|warm_up|error_rate): ", err), err
        report = json.loads(out)
        assert [r["outcome"] for r in report["replicas"]] == ["rolled_back", "rolled_back"]
        for client in clients:
            assert admin_status(client)["model"]["version"] == "v1"
        rollbacks = [(n, phase, status) for n, _, phase, status in steps(err) if phase == "rollback"]
        assert rollbacks == [(2, "rollback", "start"), (2, "rollback", "ok"), (1, "rollback", "start"), (1, "rollback", "ok")]


def test_a_fault_of_its_own_after_a_switch_still_rolls_back(
    fleet: Fleet, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_check(self: FleetSwap, result: Any) -> str:
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr(FleetSwap, "_version", broken_check)
    with fleet(1) as (client,):
        code, _, err = umi_swap(capsys, monkeypatch, "--to", str(tiny_models["v2"]), "--version", "v2",
                                "--replicas", urls([client])[0], "--check-window", "0")
        assert code == 1 and "version: RuntimeError: a bug in a check" in err, err
        assert admin_status(client)["model"]["version"] == "v1"  # the replica that switched went back


def test_under_chat_load_through_haproxy_nothing_fails_and_no_chat_goes_back_to_the_old_version(
    fleet: Fleet, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    chats: list[list[int | str]] = []  # per chat, in order: the version of each answer, or the failed status
    stop = threading.Event()

    def chat_loop(lb_url: str) -> None:
        with httpx.Client(base_url=lb_url, timeout=60) as client:
            while not stop.is_set() and len(chats) < 400:
                seen: list[int | str] = []
                chats.append(seen)
                chat_id = f"chat-{len(chats)}"
                for _ in range(8):
                    r = client.post("/v1/plan", json={"tools": [], "history": [{"role": "user", "content": "hi"}]},
                                    headers={CHAT_ID_HEADER: chat_id})
                    seen.append(r.json()["model"]["version"] if r.status_code == 200 else r.status_code)

    with fleet(2) as clients, run_haproxy({"planner": urls(clients)}) as frontends:
        wait_until(lambda: httpx.post(frontends["planner"] + "/v1/plan", json={"tools": [], "history": [
            {"role": "user", "content": "hi"}]}).status_code == 200, 30, "HAProxy to see the replicas")
        workers = [threading.Thread(target=chat_loop, args=(frontends["planner"],)) for _ in range(3)]
        for w in workers:
            w.start()
        try:
            code, _, err = umi_swap(capsys, monkeypatch, "--to", str(tiny_models["v2"]), "--version", "v2",
                                    "--replicas", ",".join(urls(clients)), "--check-window", "0.5")
        finally:
            stop.set()
            for w in workers:
                w.join()
    assert code == 0, err
    answers = [a for seen in chats for a in seen]
    assert answers and all(isinstance(a, str) for a in answers), [a for a in answers if not isinstance(a, str)]
    assert {"v1", "v2"} <= set(answers)
    mixed = [seen for seen in chats if "v2" in seen and "v1" in seen[seen.index("v2"):]]
    assert not mixed  # chat affinity: a chat stays on its replica, and a replica switches once


def test_dns_name_swaps_every_address_it_resolves_to(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    hosts = sorted({str(i[4][0]) for i in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM)})
    assert replicas_from_dns(f"localhost:{port}", None) == [
        f"http://{f'[{h}]' if ':' in h else h}:{port}" for h in sorted(hosts, key=lambda h: ":" in h)
    ]
    adapter = lora_adapter(tmp_path, "planner-lora-v2")
    with fleet(len(hosts), hosts=hosts, port=port) as clients:  # one replica per address of localhost
        code, out, err = umi_swap(capsys, monkeypatch, "--to", str(adapter), "--version", "lora-v2", "--kind", "lora",
                                  "--dns", f"localhost:{port}", "--check-window", "0", "--json")
        assert code == 0, err
        assert {r["url"] for r in json.loads(out)["replicas"]} == set(urls(clients))
        for client in clients:
            assert admin_status(client)["model"] == {"name": "planner-lora-v2", "version": "lora-v2"}


def test_bad_input_gives_clear_errors_and_changes_nothing(
    fleet: Fleet, tiny_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    v2 = ["--to", str(tiny_models["v2"]), "--version", "v2", "--check-window", "0"]
    code, _, err = umi_swap(capsys, monkeypatch, *v2, "--replicas", " , ")
    assert code == 2 and err.strip() == "umi: error: --replicas: no replica URL given"
    code, _, err = umi_swap(capsys, monkeypatch, *v2, "--replicas", "127.0.0.1:8101")
    assert code == 2 and "'127.0.0.1:8101' is not an http(s)://host[:port] URL" in err
    code, _, err = umi_swap(capsys, monkeypatch, *v2, "--dns", "no-such-host.invalid:8101")
    assert code == 2 and "--dns: 'no-such-host.invalid' does not resolve" in err
    for flags, said in [(("--check-window", "inf"), "--check-window: inf is not a finite number"),
                        (("--drain-timeout", "nan"), "--drain-timeout: nan is not a finite number"),
                        (("--drain-timeout", "0"), "--drain-timeout: 0 is not more than 0"), (("--version", " "), "--version: is empty")]:
        code, _, err = umi_swap(capsys, monkeypatch, *v2, *flags, "--replicas", "http://127.0.0.1:9")
        assert code == 2 and said in err, err
    code, _, err = umi_swap(capsys, monkeypatch, *v2, "--replicas", "http://127.0.0.1:9", token="")
    assert code == 2 and "no admin token: set UMI_ADMIN_TOKEN or give --token-file" in err
    code, _, err = umi_swap(capsys, monkeypatch, *v2, "--replicas", "http://127.0.0.1:9", "--token-file", str(tmp_path / "none"))
    assert code == 2 and "--token-file: No such file or directory" in err

    with fleet(1) as (client,):
        url = urls([client])[0]
        unreachable = f"http://127.0.0.1:{free_port()}"
        code, _, err = umi_swap(capsys, monkeypatch, *v2, "--replicas", f"{url},{unreachable}")
        assert code == 1 and f"umi swap: error: {unreachable}: preflight: unreachable: ConnectError" in err
        code, _, err = umi_swap(capsys, monkeypatch, *v2, "--replicas", url, token="wrong")
        assert code == 1 and f"umi swap: error: {url}: preflight: GET /admin/weights answered 401 unauthorized" in err
        token_file = tmp_path / "token"
        token_file.write_text(ADMIN_TOKEN + "\n")
        code, _, err = umi_swap(capsys, monkeypatch, "--to", str(tmp_path / "missing"), "--version", "v9",
                                "--replicas", url, "--token-file", str(token_file), token="wrong")
        assert code == 1 and "swap: the swap was refused: 422 weights_not_found" in err  # the file's token was used
        status = admin_status(client)
        assert status["model"]["version"] == "v1" and status["last_swap"] is None


def test_replica_lists_and_error_rates() -> None:
    assert replicas_from_urls("http://a:1/, http://b:2,http://a:1/") == ["http://a:1", "http://b:2"]
    assert replicas_from_dns("127.0.0.1", 8101, "https") == ["https://127.0.0.1:8101"]
    assert replicas_from_dns("[::1]:8102", None) == ["http://[::1]:8102"]
    for bad, message in (("localhost", "needs a port"), ("localhost:0", "is not a port"), (":80", "has no host")):
        with pytest.raises(FleetInputError, match=message):
            replicas_from_dns(bad, None)
    metrics = ('umi_requests_total{role="planner",endpoint="/v1/plan",code="200"} 8.0\n'
               'umi_requests_total{role="planner",endpoint="/v1/plan",code="503"} 2.0\n'
               'umi_requests_total{role="planner",endpoint="/ready",code="503"} 7.0\n')
    after = requests_by_code(metrics, "/v1/plan")
    assert after == {"200": 8.0, "503": 2.0}
    assert error_rate({"200": 4.0}, after) == (2 / 6, 6)
    assert error_rate(after, after) == (0.0, 0)
    with pytest.raises(ReplicaFailure, match="counters went down"):
        error_rate({"200": 9.0}, after)


def test_a_rollback_goes_back_the_way_the_swap_came() -> None:
    full = SwapTarget(path="/m/v2", version="v2", strategy="in_place", drain_timeout_s=5.0)
    assert full.body()["strategy"] == "in_place"
    assert full.rollback_body() == {"strategy": "in_place", "drain_timeout_s": 5.0}
    assert SwapTarget(path="/a/lora", version="v2", kind="lora").rollback_body() == {}  # lora has no strategy
    assert SwapTarget(path="/m/v2", version="v2").rollback_body() == {}  # each replica's UMI_SWAP_STRATEGY
