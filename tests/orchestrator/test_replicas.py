"""Replicas of the role services behind HAProxy (deploy/haproxy/haproxy.cfg, run for real by
tests/support/haproxy.py), with the real orchestrator in front: two replicas each of the planner
and the caller, real `umi serve ROLE` processes on fake vLLM engines (tests/support/replicas.py).

- chat affinity: every step of a chat reaches the same replica of each role (X-Umi-Chat-Id and
  the consistent hash), and different chats spread over the replicas;
- the drain on SIGTERM: /ready answers 503 while the service still listens and serves, a request
  in flight when the listener closes still completes, then the process exits;
- a rolling restart under load (SIGTERM one replica at a time and start it again, as a rollout
  does): no chat fails;
- a replica that closes connections without answering (as one that died mid-request does) while
  its /ready still says 200: HAProxy sends those requests to the other replica.

The fake engines answer "Using <role>. Next: caller." to everything: the planner always hands on
to the caller, whose call names no tool, so each chat alternates planner and caller steps until
its max_steps (the summarizer is never asked; it has no replicas here).
"""

from __future__ import annotations

import re
import signal
import socket
import socketserver
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.orchestrator.conftest import Orch
from tests.support.haproxy import Frontends, run_haproxy
from tests.support.orchestrator_fakes import tool
from tests.support.replicas import Replica, replicas
from tests.support.servers import wait_until
from umi.sse import Event, read_events

pytestmark = pytest.mark.redis
ROLES = ("planner", "caller")
DRAIN_DELAY_S = 2.0  # above HAProxy's check inter 1s x fall 1, as docs/deployment.md#haproxy-in-front-of-role-replicas says
MAX_STEPS = 4  # planner turns of a chat (each followed by a caller step)
MARK = re.compile(r"chat-marker-(\d+)")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[Replica]]]:
    env = {"UMI_DRAIN_DELAY_S": str(DRAIN_DELAY_S), "UMI_DRAIN_TIMEOUT_S": "30"}
    with replicas(dict.fromkeys(ROLES, 2), tmp_path_factory.mktemp("replicas"), env=env) as group:
        yield group


@pytest.fixture(scope="module")
def balancer(fleet: dict[str, list[Replica]]) -> Iterator[Frontends]:
    with run_haproxy({role: [r.url for r in fleet[role]] for role in ROLES}) as frontends:
        for role in ROLES:
            wait_until(lambda role=role: set(frontends.server_status(role).values()) == {"UP"}, 30, f"{role} replicas UP")
        yield frontends


@pytest.fixture
def lb_orch(make_orch: Callable[..., Orch], balancer: Frontends) -> Orch:
    return make_orch(
        planner_url=balancer["planner"], caller_url=balancer["caller"], summarizer_url=balancer["summarizer"],
        role_backoff_s=0.05,
    )  # fmt: skip


def run_chat(orch: Orch, n: int) -> dict:
    response = orch.chat(query=f"look this up (chat-marker-{n})", tools=[tool("search")], max_steps=MAX_STEPS)
    response.raise_for_status()
    return response.json()


def chats_seen(replica: Replica) -> Counter[int]:
    """How many completions of each marked chat the replica's engine served."""
    return Counter(int(m.group(1)) for c in replica.completions() if (m := MARK.search(c["prompt"])))


def test_every_step_of_a_chat_reaches_the_same_replica_and_chats_spread(fleet, lb_orch) -> None:
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(lambda n: run_chat(lb_orch, n), range(16)))
    assert {d["status"] for d in docs} == {"max_steps"}
    for role in ROLES:
        served = {r.name: chats_seen(r) for r in fleet[role]}
        replicas_of = defaultdict(set)
        for name, counts in served.items():
            for chat in counts:
                replicas_of[chat].add(name)
        assert all(len(names) == 1 for names in replicas_of.values()), (role, dict(replicas_of))
        assert set(replicas_of) == set(range(16))  # every chat asked this role, several times
        assert {n for counts in served.values() for n in counts.values()} == {MAX_STEPS}
        assert all(served.values()), f"16 chats all went to one {role} replica: {served}"


def test_a_rolling_restart_under_load_fails_no_chat(fleet, balancer, lb_orch) -> None:
    stop = threading.Event()
    results: list[dict] = []
    counter = iter(range(100, 10_000))
    lock = threading.Lock()

    def load() -> None:
        while not stop.is_set() and len(results) < 400:
            with lock:
                n = next(counter)
            doc = run_chat(lb_orch, n)
            with lock:
                results.append(doc)

    def roll(role: str) -> None:
        for i, replica in enumerate(fleet[role], start=1):
            replica.restart()  # SIGTERM, drain, exit, start, ready
            wait_until(lambda: balancer.server_status(role)[f"{role}-{i}"] == "UP", 15, f"{role}-{i} back UP")

    with ThreadPoolExecutor(3) as pool:
        loads = [pool.submit(load) for _ in range(3)]
        try:
            wait_until(lambda: len(results) >= 3, 30, "chats under way")
            before = len(results)
            with ThreadPoolExecutor(len(ROLES)) as rollers:
                list(rollers.map(roll, ROLES))  # the roles roll at the same time, each one replica at a time
            during = len(results) - before
        finally:
            stop.set()
            for f in loads:
                f.result()
    failed = [d for d in results if d["status"] != "max_steps"]
    lb = {role: balancer.stats(role)["BACKEND"] for role in ROLES}
    print(f"\nrolling restart of {sum(map(len, fleet.values()))} replicas under 3 concurrent chats: {len(results)} chats "
          f"({during} during the rollout), {len(failed)} failed; HAProxy retries/redispatches "
          + ", ".join(f"{role} {row['wretr']}/{row['wredis']}" for role, row in lb.items()))  # fmt: skip
    assert not failed, failed[:3]
    assert during >= 3, "no chat ran during the rollout"
    for replica in (r for group in fleet.values() for r in group):
        assert replica.starts == 2
        assert "draining: /ready answers 503" in (replica.log_dir / f"{replica.name}-1.log").read_text()


class HangUp(socketserver.BaseRequestHandler):
    """Answers GET /ready with 200; closes any other request's connection without a byte."""

    posts = 0

    def handle(self) -> None:
        request = self.request.recv(65536)
        if request.startswith(b"GET /ready "):
            self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
        else:
            type(self).posts += 1
        self.request.shutdown(socket.SHUT_RDWR)


def test_a_connection_closed_without_an_answer_is_sent_to_the_other_replica(fleet) -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), HangUp) as hang_up:
        threading.Thread(target=hang_up.serve_forever, daemon=True).start()
        try:
            dead = f"http://127.0.0.1:{hang_up.server_address[1]}"
            with run_haproxy({"planner": [dead, fleet["planner"][1].url]}) as lb:
                wait_until(lambda: set(lb.server_status("planner").values()) == {"UP"}, 30, "both servers UP")
                body = {"tools": [], "history": [{"role": "user", "content": "hi"}]}
                # without X-Umi-Chat-Id HAProxy goes round-robin: every other request meets the hang-up first
                answers = [httpx.post(lb["planner"] + "/v1/plan", json=body, timeout=30) for _ in range(6)]
                backend = lb.stats("planner")["BACKEND"]
        finally:
            hang_up.shutdown()
    assert [a.status_code for a in answers] == [200] * 6
    assert HangUp.posts >= 3 and int(backend["wredis"]) >= 3, (HangUp.posts, backend["wretr"], backend["wredis"])


def test_sigterm_turns_ready_to_503_and_the_request_in_flight_completes(fleet, balancer) -> None:
    """Last in this module: the replica it stops stays stopped."""
    replica = fleet["planner"][0]
    replica.engine_call("POST", "/fake/inject", json={"hold_streams": True})  # streams stop after one token
    body = {"tools": [], "history": [{"role": "user", "content": "a long answer"}], "stream": True}
    events: list[Event] = []

    def in_flight() -> None:
        with httpx.stream("POST", replica.url + "/v1/plan", json=body, timeout=60) as response:
            events.extend(read_events(response.iter_lines()))

    client = threading.Thread(target=in_flight)
    client.start()
    try:
        wait_until(lambda: any("a long answer" in c["prompt"] for c in replica.completions()), 10, "the request at the engine")
        replica.sigterm()
        wait_until(lambda: httpx.get(replica.url + "/ready", timeout=5).status_code == 503, 5, "/ready 503")
        drained = httpx.get(replica.url + "/ready", timeout=5).json()
        assert drained["state"] == "draining"
        # still listening and serving during the delay: a new request completes
        late = httpx.post(replica.url + "/v1/plan", json={**body, "stream": False}, timeout=30)
        assert late.status_code == 200
        wait_until(lambda: balancer.server_status("planner")["planner-1"] != "UP", 5, "HAProxy to take planner-1 out")
        # after the delay the listener closes while the held request is still in flight
        wait_until(lambda: _refused(replica.url), DRAIN_DELAY_S + 5, "the listener to close")
        assert replica.alive() and client.is_alive()
    finally:
        replica.engine_call("POST", "/fake/inject", json={"hold_streams": False})
        client.join(timeout=30)
    assert [e.event for e in events][-1] == "result"
    assert replica.wait_exit(30) == -signal.SIGTERM  # exits by the signal, as uvicorn does
    log = replica.log_path.read_text()
    assert log.index("draining: /ready answers 503") < log.index("Shutting down") < log.index("Application shutdown complete")


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=2)
    except httpx.ConnectError:
        return True
    return False
