"""docker-compose.yml's CPU stack for real (`make compose-test`, scripts/compose-test.sh, run by
CI): `up -d --build` on a Docker engine, the image built once from a wheelhouse without network,
then checked from the host over real HTTP: the healthchecks, every published port on 127.0.0.1
only, the readiness of each service, two demo chats with the right values, the caller swapped to
caller-v2 under light load with 0 failed requests, a chat with the new tool, Redis with a password
(docker-compose.redis-auth.yml), and `down -v` leaving no container, network or volume.

The Redis image is Debian's redis-server, whose protected mode is on by default: the orchestrator
reaching it from another container is the check that the compose command turns it off.

scripts/compose-test.sh sets what this module needs (docs/compose.md): DOCKER_HOST (its private
engine), UMI_COMPOSE_TEST_BASE_IMAGE (the base image made from Debian packages, given as
PYTHON_IMAGE and REDIS_IMAGE), UMI_COMPOSE_TEST_WHEELHOUSE (a directory of the build context,
given as WHEELHOUSE) and UMI_COMPOSE_TEST_CLI (the compose client, default `docker-compose`).
Without them the module is skipped."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from umi.demo.run import SwapOutcome, ask, ask_all, swap_under_load, tool_list
from umi.demo.stack import DOCUMENTED_PORTS, READY_PATHS, ROLES, DemoModels
from umi.demo.tasks import NEW_TOOL, DemoTasks, demo_tasks

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
REDIS_AUTH_FILE = ROOT / "docker-compose.redis-auth.yml"
PROJECT = "umi-serve"  # the documented `-p umi-serve`
SERVICES = {"redis", "tools", *ROLES, "orchestrator"}  # the CPU stack (no profile)
IMAGE = "umi-serve:cpu"
CONTAINER_MODELS = Path("/models/demo")  # where the compose file mounts the demo models
HOST = "127.0.0.1"
HEALTHY_TIMEOUT_S = 600.0  # the role services' healthchecks allow 180 s + 12 x 5 s; a busy CI runner
COMPOSE_TIMEOUT_S = 1500.0  # `up --build`: the image build (minutes on 2 cores) and the start
# Of the demo's example chats (umi.demo.tasks), two the demo-3 models answer right on their own
# (the held-out weather question, `Mtééo à Timișoara ?`, calls get_time): this test is about the
# containers, the models' accuracy is umi demo quality's.
CHATS = ("one:convert_currency", "one:translate_word")

BASE_IMAGE = os.environ.get("UMI_COMPOSE_TEST_BASE_IMAGE", "")
pytestmark = [
    pytest.mark.compose,
    pytest.mark.timeout(COMPOSE_TIMEOUT_S + HEALTHY_TIMEOUT_S),
    pytest.mark.skipif(not BASE_IMAGE, reason="runs with `make compose-test` (a private Docker engine; docs/compose.md)"),
]


def url(service: str) -> str:
    return f"http://{HOST}:{DOCUMENTED_PORTS.of(service)}"


@dataclass
class Compose:
    """The compose client on this project, and the Docker CLI on the same engine."""

    cli: list[str]
    env: dict[str, str]

    def __call__(self, *args: str, files: tuple[Path, ...] = (COMPOSE_FILE,), timeout_s: float = 300.0) -> str:
        command = [*self.cli, "-p", PROJECT, *(a for f in files for a in ("-f", str(f))), *args]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:  # the containers' last log lines say why (an unhealthy service, a crash)
            logs = subprocess.run([*self.cli, "-p", PROJECT, *(a for f in files for a in ("-f", str(f))), "logs", "--no-color", "--tail", "30"],
                                  cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)  # fmt: skip
            raise AssertionError(f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}\n"
                                 f"the containers' last log lines:\n{logs.stdout}{logs.stderr}")
        return done.stdout + done.stderr

    def docker(self, *args: str) -> str:
        done = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, networks and volumes (by compose's label), by kind."""
        label = f"label=com.docker.compose.project={PROJECT}"
        listings = {"container": ("ps", "-a", "{{.Names}}"), "network": ("network", "ls", "{{.Name}}"), "volume": ("volume", "ls", "{{.Name}}")}
        return {kind: self.docker(*command, "--filter", label, "--format", name).split() for kind, (*command, name) in listings.items()}

    def containers(self) -> dict[str, dict[str, Any]]:
        """The project's containers by service name (`docker inspect`)."""
        ids = self.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").split()
        inspected = json.loads(self.docker("inspect", *ids)) if ids else []
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}

    def wait_healthy(self, services: set[str], timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            health = {name: c["State"].get("Health", {}).get("Status") for name, c in self.containers().items() if name in services}
            if set(health) == services and all(h == "healthy" for h in health.values()):
                return
            assert time.monotonic() < deadline, f"not healthy after {timeout_s:.0f} s: {health}"
            time.sleep(2.0)


@dataclass
class Stack:
    compose: Compose
    up_output: str
    image_tags: list[str]  # the images tagged during `up --build`: one tag per image built


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    taken = [name for name, port in DOCUMENTED_PORTS.as_dict().items() if _listening(HOST, port)]
    assert not taken, f"the documented ports are taken on {HOST} (another `make up`?): {taken}"
    env = {
        **os.environ,
        "PYTHON_IMAGE": BASE_IMAGE,
        "REDIS_IMAGE": BASE_IMAGE,
        "WHEELHOUSE": os.environ.get("UMI_COMPOSE_TEST_WHEELHOUSE", ""),
        "UMI_ADMIN_TOKEN": secrets.token_hex(16),
    }
    compose = Compose(shlex.split(os.environ.get("UMI_COMPOSE_TEST_CLI", "docker-compose")), env)
    # the image tags of the build, as they happen (the engine keeps only its last 256 events, and
    # the healthchecks soon push them out)
    events = subprocess.Popen(
        ["docker", "events", "--since", str(int(time.time()) - 1), "--filter", "type=image", "--filter", "event=tag",
         "--format", "{{.Actor.Attributes.name}}"], env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        try:
            output = compose("up", "-d", "--build", timeout_s=COMPOSE_TIMEOUT_S)
        finally:
            events.terminate()
            tags = events.communicate(timeout=30)[0].split()
        compose.wait_healthy(SERVICES)
        yield Stack(compose, output, tags)
    finally:
        compose("down", "-v", "--remove-orphans")  # again after a failure; nothing to do otherwise


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="module")
def tasks() -> DemoTasks:
    return demo_tasks()


def test_the_image_is_built_once_for_all_services(stack: Stack) -> None:
    assert [tag for tag in stack.image_tags if tag.startswith("umi-serve:")] == [IMAGE], stack.up_output
    images = {name: c["Config"]["Image"] for name, c in stack.compose.containers().items()}
    assert {name for name, image in images.items() if image == IMAGE} == SERVICES - {"redis"}


def test_every_service_is_healthy_and_the_orchestrator_started_last(stack: Stack) -> None:
    containers = stack.compose.containers()
    assert set(containers) == SERVICES
    assert all(c["State"]["Health"]["Status"] == "healthy" for c in containers.values())
    started = {name: c["State"]["StartedAt"] for name, c in containers.items()}
    assert max(started, key=started.__getitem__) == "orchestrator"  # depends_on: service_healthy


def test_published_ports_are_bound_on_loopback_only(stack: Stack) -> None:
    for name, container in stack.compose.containers().items():
        bindings = [b for bs in container["NetworkSettings"]["Ports"].values() for b in bs or []]
        assert [(b["HostIp"], int(b["HostPort"])) for b in bindings] == [(HOST, DOCUMENTED_PORTS.of(name))], name
    # nothing answers on the host's address in the compose network (as it would on 0.0.0.0)
    (network,) = json.loads(stack.compose.docker("network", "inspect", f"{PROJECT}_default"))
    gateway = network["IPAM"]["Config"][0]["Gateway"]
    assert [name for name, port in DOCUMENTED_PORTS.as_dict().items() if _listening(gateway, port)] == []


def test_each_service_answers_its_readiness_check_from_the_host(stack: Stack) -> None:
    for name, path in READY_PATHS.items():
        response = httpx.get(url(name) + path, timeout=10.0)
        assert response.status_code == 200, f"{name}: {response.status_code} {response.text}"
    assert redis.Redis(host=HOST, port=DOCUMENTED_PORTS.redis, socket_timeout=5.0).ping()
    assert httpx.get(url("orchestrator") + "/ready", timeout=10.0).json()["redis"] == "ok"


def test_two_demo_chats_complete_with_the_right_values(stack: Stack, tasks: DemoTasks) -> None:
    chosen = [t for t in tasks.examples if t.id in CHATS]
    assert [t.id for t in chosen] == list(CHATS)

    async def chats() -> list[Any]:
        async with httpx.AsyncClient(timeout=300.0) as client:
            return await ask_all(client, url("orchestrator"), chosen, await tool_list(client, url("tools"), "v1"), 2)

    for outcome in asyncio.run(chats()):
        assert outcome.verdict() == (True, []), (outcome.task.query, outcome.chat)


@pytest.fixture(scope="module")
def swap(stack: Stack, tasks: DemoTasks) -> SwapOutcome:
    async def swap() -> SwapOutcome:
        async with httpx.AsyncClient(timeout=30.0) as client:
            v2 = await tool_list(client, url("tools"), "v2")
        caller_v2 = CONTAINER_MODELS / DemoModels.DIRS["caller_v2"]
        return await swap_under_load(url("orchestrator"), url("caller"), stack.compose.env["UMI_ADMIN_TOKEN"], caller_v2, tasks.load, v2)

    return asyncio.run(swap())


def test_the_caller_swaps_to_caller_v2_under_light_load_with_no_failed_request(swap: SwapOutcome) -> None:
    assert swap.swapped, swap.report
    assert swap.report["model"]["version"] != swap.report["previous"]["version"]
    assert len(swap.chats) >= 2 and swap.caller_requests > 0
    assert swap.failed_requests == 0, [c.error or c.status for c in swap.chats if c.request_failed]


def test_a_chat_uses_the_new_tool_after_the_swap(swap: SwapOutcome, tasks: DemoTasks) -> None:
    assert swap.swapped

    async def chat() -> Any:
        async with httpx.AsyncClient(timeout=300.0) as client:
            return await ask(client, url("orchestrator"), tasks.new_tool, await tool_list(client, url("tools"), "v2"))

    outcome = asyncio.run(chat())
    assert outcome.status == "completed", outcome.chat or outcome.error
    assert any(step.get("name") == NEW_TOOL for step in outcome.chat["steps"]), outcome.chat


def test_redis_with_a_password_refuses_strangers_and_serves_the_orchestrator(stack: Stack, swap: SwapOutcome) -> None:
    """docker-compose.redis-auth.yml on the running stack (after the chats: it recreates Redis and
    the orchestrator)."""
    password = secrets.token_hex(16)
    stack.compose.env["REDIS_PASSWORD"] = password
    stack.compose("up", "-d", "--no-build", "redis", "orchestrator", files=(COMPOSE_FILE, REDIS_AUTH_FILE))
    stack.compose.wait_healthy({"redis", "orchestrator"})
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=HOST, port=DOCUMENTED_PORTS.redis, socket_timeout=5.0).ping()
    assert redis.Redis(host=HOST, port=DOCUMENTED_PORTS.redis, password=password, socket_timeout=5.0).ping()
    assert httpx.get(url("orchestrator") + "/ready", timeout=10.0).json()["redis"] == "ok"


def test_down_leaves_no_container_network_or_volume(stack: Stack) -> None:
    stack.compose("down", "-v", "--remove-orphans")
    assert stack.compose.leftovers() == {"container": [], "network": [], "volume": []}
