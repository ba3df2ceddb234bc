"""docker-compose.yml names only what exists: its commands are `umi serve` targets, its ports are
the documented ones (the same as `make up`), its environment variables are settings the
services read, its model paths are the demo models `make models` builds (or the released
checkpoints' hub ids), its images build from the Dockerfile's stages. It also keeps the fixes of
issue 17: no top-level `name:` (docker-compose 1.29 refuses it), Redis's protected mode off in
its command and a password in the production variant (docker-compose.redis-auth.yml), one build
per image, torch installed alone from the CPU index or the wheelhouse, setuptools>=77 for the
SPDX license. The files are checked as data here, and with `config -q` by every compose client
present; `make compose-test` (tests/test_compose_stack.py) runs the stack for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

from orchestrator.settings import Settings as OrchestratorSettings
from umi.cli import SERVE_TARGETS, build_parser, serve_target
from umi.demo.stack import DEFAULT_MODELS_DIR, DOCUMENTED_PORTS, READY_PATHS, ROLES, DemoModels
from umi.service.settings import ServiceSettings
from umi.service.weights import is_hub_id
from umi.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
REDIS_AUTH = ROOT / "docker-compose.redis-auth.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCS = ROOT / "docs" / "demo.md"  # the ports table of `make up`
COMPOSE_DOCS = ROOT / "docs" / "compose.md"
CPU = ("redis", "tools", "planner", "caller", "summarizer", "orchestrator")
GPU = ("planner-gpu", "caller-gpu", "summarizer-gpu", "orchestrator-gpu")
CHECKPOINTS = {role: f"shenwzh3/alpha-umi-{role}-7b" for role in ROLES}
REDIS_PORT_IN_NETWORK = 6379
# Variables read by something else than umi-serve, and by whom.
EXTERNAL_ENV = {"HF_TOKEN": "huggingface_hub (checkpoint and tokenizer downloads)"}
TOOLS_ENV = {"UMI_TOOLS_PUBLIC_URL"}  # umi/demo/tools_app.py


def settings_env(model: type) -> set[str]:
    return {f"UMI_{name.upper()}" for name in model.model_fields}


ROLE_ENV = settings_env(ServiceSettings)
ORCHESTRATOR_ENV = settings_env(OrchestratorSettings)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def kind(name: str) -> str:
    """planner-gpu -> planner."""
    return name.removesuffix("-gpu")


def test_the_services_and_profiles(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == set(CPU) | set(GPU)
    assert all("profiles" not in services[name] for name in CPU)  # the default: CPU
    assert all(services[name]["profiles"] == ["gpu"] for name in GPU)


def test_every_service_has_a_healthcheck_on_its_own_port_and_readiness_path(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD", name
        if name == "redis":
            assert test[1:] == ["redis-cli", "ping"]
            continue
        assert test[1:3] == ["python3", "-c"], name
        (url,) = re.findall(r"'(http://[^']+)'", test[3])
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1" and parts.port == DOCUMENTED_PORTS.of(kind(name)), name
        assert parts.path == READY_PATHS[kind(name)], name


def test_dependencies_wait_for_healthy_services_of_the_same_profile(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "orchestrator": {"redis", "planner", "caller", "summarizer", "tools"},
        "orchestrator-gpu": {"redis", "planner-gpu", "caller-gpu", "summarizer-gpu", "tools"},
    }
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert set(depends) == expected.get(name, set()), name
        assert all(d == {"condition": "service_healthy"} for d in depends.values()), name


def test_commands_are_umi_serve_targets_on_the_documented_ports(services: dict[str, dict[str, Any]]) -> None:
    parser = build_parser()
    for name, service in services.items():
        if name == "redis":
            assert service["command"][0] == "redis-server"
            continue
        command = service["command"]
        assert command[0] == "umi", name
        args = parser.parse_args(command[1:])
        assert args.command == "serve" and args.name == kind(name) and args.name in SERVE_TARGETS, name
        flags = serve_target(args.name).serve_parser().parse_args(args.args)
        assert flags.host == "0.0.0.0"  # reachable by service name inside the compose network
        assert flags.port == DOCUMENTED_PORTS.of(kind(name)), name


def test_ports_are_published_on_loopback_as_documented(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        (published,) = service["ports"]
        host_ip, host_port, container_port = published.split(":")
        assert host_ip == "127.0.0.1", name
        assert int(host_port) == DOCUMENTED_PORTS.of(kind(name)), name
        assert int(container_port) == (REDIS_PORT_IN_NETWORK if name == "redis" else DOCUMENTED_PORTS.of(kind(name))), name
    docs = DOCS.read_text(encoding="utf-8")
    for name, port in DOCUMENTED_PORTS.as_dict().items():
        assert re.search(rf"\| {name} \|.*\b{port}\b", docs), f"docs/demo.md: the ports table lacks {name} {port}"


def test_environment_variables_are_settings_the_services_read(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        env = set(service.get("environment", {}))
        known = {"orchestrator": ORCHESTRATOR_ENV, "tools": TOOLS_ENV, "redis": set()}.get(kind(name), ROLE_ENV)
        assert env - known - set(EXTERNAL_ENV) == set(), name
    tools_source = (ROOT / "umi" / "demo" / "tools_app.py").read_text(encoding="utf-8")
    assert all(var in tools_source for var in TOOLS_ENV)


def test_service_urls_name_services_and_their_ports(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for var, value in service.get("environment", {}).items():
            if not (var.endswith("_URL") and isinstance(value, str) and "://" in value):
                continue
            target = urlsplit(value)
            assert target.hostname in services, f"{name}: {var}={value}"
            assert target.hostname == name or services[target.hostname].get("profiles") in (None, service.get("profiles")), var
            expected = REDIS_PORT_IN_NETWORK if target.hostname == "redis" else DOCUMENTED_PORTS.of(kind(target.hostname))
            assert target.port == expected, f"{name}: {var}={value}"
    # each orchestrator's tool allowlist lets it call the tools service by name, and nothing else
    # (the default allowlist is empty)
    assert OrchestratorSettings().allowlist.names == frozenset()
    for name, service in services.items():
        if kind(name) == "orchestrator":
            assert service["environment"]["UMI_TOOL_ALLOWLIST"] == "tools", name


def test_models_are_the_demo_models_or_the_released_checkpoints(services: dict[str, dict[str, Any]]) -> None:
    recipe = load_recipe(ROOT / "recipes" / "demo.toml")
    built = set(recipe.stage2) | {"backbone"}  # what `make models` writes under models/demo
    assert set(DemoModels.DIRS.values()) <= built
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^DEMO_MODELS \?= {re.escape(DEFAULT_MODELS_DIR)}$", makefile, re.M)
    for role in ROLES:
        cpu = services[role]
        (mount,) = cpu["volumes"]
        assert mount == f"${{DEMO_MODELS:-./{DEFAULT_MODELS_DIR}}}:/models/demo:ro"
        model = Path(cpu["environment"]["UMI_MODEL"])
        assert model.parent == Path("/models/demo") and model.name == DemoModels.DIRS[role]
        assert cpu["environment"]["UMI_ENGINE"] == "transformers"
        gpu = services[f"{role}-gpu"]
        assert gpu["environment"]["UMI_MODEL"] == CHECKPOINTS[role] and is_hub_id(CHECKPOINTS[role])
        assert gpu["environment"]["UMI_ENGINE"] == "vllm"
        (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and len(device["device_ids"]) == 1


def dockerfile_stages() -> set[str]:
    return set(re.findall(r"^FROM \S+ AS ([\w-]+)$", DOCKERFILE.read_text(encoding="utf-8"), re.M))


def test_images_build_from_the_dockerfiles_stages(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name == "redis":
            continue
        target = "gpu" if name.endswith("-gpu") and name != "orchestrator-gpu" else "cpu"
        assert service["image"] == f"umi-serve:{target}", name
        if "build" in service:
            build = service["build"]
            assert build["context"] == "." and (ROOT / build["dockerfile"]).is_file(), name
            assert build["target"] == target and target in dockerfile_stages(), name
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            path = re.sub(r"^\$\{\w+:-(.+)\}$", r"\1", path)  # ${ARG:-default}: the default
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"


def test_each_image_is_built_by_one_service_that_starts_first(services: dict[str, dict[str, Any]]) -> None:
    """`up --build` builds an image once, not once per service (issue 17). docker-compose 1.29
    makes the images ready service after service in the file's order (dependencies first) and
    pulls an image it does not build: the builder must come before the image's other users."""
    builders: dict[str, list[str]] = {}
    for name, service in services.items():
        if "build" in service:
            builders.setdefault(service["image"], []).append(name)
    assert builders == {"umi-serve:cpu": ["tools"], "umi-serve:gpu": ["planner-gpu"]}
    order = list(services)
    for image, (builder,) in builders.items():
        users = [name for name, service in services.items() if service.get("image") == image]
        assert order.index(builder) == min(order.index(u) for u in users), image
        assert "depends_on" not in services[builder]


def test_the_file_has_no_top_level_name_and_the_docs_name_the_project(compose: dict[str, Any]) -> None:
    assert "name" not in compose  # Compose v2 only: docker-compose 1.29 refuses the whole file
    assert "-p umi-serve" in COMPOSE.read_text(encoding="utf-8")
    assert "-p umi-serve" in COMPOSE_DOCS.read_text(encoding="utf-8")


def option(command: list[str], flag: str) -> str | None:
    """The value after ``flag`` in a command, None without the flag."""
    return command[command.index(flag) + 1] if flag in command else None


def test_redis_turns_protected_mode_off_in_its_command(services: dict[str, dict[str, Any]]) -> None:
    """Any Redis 7 but the official image's (which turns it off) refuses connections from other
    containers in protected mode: `DENIED Redis is running in protected mode`."""
    redis = services["redis"]
    command = redis["command"]
    assert command[0] == "redis-server" and option(command, "--protected-mode") == "no"
    (volume,) = redis["volumes"]
    assert option(command, "--dir") == volume.split(":")[1]  # the data on the volume with any image
    assert redis["image"] == "${REDIS_IMAGE:-redis:7-alpine}"


def test_the_production_redis_requires_a_password_that_the_orchestrators_use(services: dict[str, dict[str, Any]]) -> None:
    override = yaml.safe_load(REDIS_AUTH.read_text(encoding="utf-8"))["services"]
    assert set(override) <= set(services)
    password = "${REDIS_PASSWORD:?set REDIS_PASSWORD}"  # compose refuses the file without it
    command = override["redis"]["command"]
    assert option(command, "--requirepass") == password and option(command, "--protected-mode") == "yes"
    assert command[command.index("--dir"):] == services["redis"]["command"][services["redis"]["command"].index("--dir"):]
    assert override["redis"]["environment"]["REDISCLI_AUTH"] == password
    assert "grep -q PONG" in override["redis"]["healthcheck"]["test"][1]  # NOAUTH exits 0 too
    for name in ("orchestrator", "orchestrator-gpu"):
        assert override[name]["environment"]["UMI_REDIS_URL"] == f"redis://:{password}@redis:{REDIS_PORT_IN_NETWORK}/0"


def test_torch_is_installed_alone_from_the_cpu_index_or_the_wheelhouse() -> None:
    """No fallback to PyPI's CUDA torch (issue 17): torch has its own step with `--index-url`
    (never `--extra-index-url`) or `--no-index`, before the project's, and the build fails on a
    CUDA build. The pin it reads is the cpu extra's one exact torch."""
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert "--extra-index-url" not in dockerfile
    runs = re.findall(r"^RUN ((?:.*\\\n)*.*)$", dockerfile, re.M)
    (torch_step,) = [r for r in runs if '"$torch"' in r]
    assert '--index-url "${TORCH_INDEX_URL}" "$torch"' in torch_step
    assert '--no-index --find-links /wheelhouse "$torch"' in torch_step
    (project_step,) = [r for r in runs if "'.[cpu]'" in r]
    assert runs.index(torch_step) < runs.index(project_step)
    assert "torch.version.cuda" in project_step and "sys.exit" in project_step
    assert re.search(r"^ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu$", dockerfile, re.M)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (torch,) = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["cpu"] if r.startswith("torch")]
    assert torch.name == "torch" and [s.operator for s in torch.specifier] == ["=="]


def test_the_build_arguments_give_the_base_image_and_the_wheelhouse(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS cpu$", dockerfile, re.M)
    assert "COPY ${WHEELHOUSE:-pyproject.toml} /wheelhouse/" in dockerfile
    assert dockerfile.count("--no-index --find-links /wheelhouse") == 2  # torch, then the project
    assert services["tools"]["build"]["args"] == ["PYTHON_IMAGE", "WHEELHOUSE", "TORCH_INDEX_URL"]
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "wheelhouse" not in ignored and ".compose-test" not in ignored  # they are sent to the build


def test_the_build_requires_a_setuptools_that_reads_an_spdx_license() -> None:
    """`license = "Apache-2.0"` (PEP 639) needs setuptools 77.0.0 or later (its changelog)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert isinstance(pyproject["project"]["license"], str)
    (setuptools,) = [Requirement(r) for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert setuptools.specifier.contains("77.0.0") and not setuptools.specifier.contains("76.1.0")


def test_every_variable_the_files_read_is_documented(services: dict[str, dict[str, Any]]) -> None:
    text = COMPOSE.read_text(encoding="utf-8") + REDIS_AUTH.read_text(encoding="utf-8")
    variables = set(re.findall(r"\$\{(\w+)", text)) | set(services["tools"]["build"]["args"])
    assert {"DEMO_MODELS", "UMI_ADMIN_TOKEN", "REDIS_IMAGE", "REDIS_PASSWORD", "WHEELHOUSE"} <= variables
    docs = COMPOSE_DOCS.read_text(encoding="utf-8")
    assert [v for v in sorted(variables) if f"`{v}`" not in docs] == []


def compose_clients() -> list[list[str]]:
    """The compose clients here: Compose v2 (`docker compose`) and docker-compose 1.29."""
    clients = []
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        clients.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        clients.append(["docker-compose"])
    return clients


def test_every_compose_client_here_accepts_the_files() -> None:
    clients = compose_clients()
    if not clients:
        pytest.skip("no compose client here (`make compose-test` installs docker-compose)")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_PASSWORD"}
    for client in clients:
        base = [*client, "-p", "umi-serve", "-f", str(COMPOSE)]
        for args in (base, [*base, "--profile", "gpu"]):
            done = subprocess.run([*args, "config", "-q"], capture_output=True, text=True, cwd=ROOT, env=env)
            assert done.returncode == 0, (client, done.stderr)
        with_auth = [*base, "-f", str(REDIS_AUTH), "config", "-q"]
        refused = subprocess.run(with_auth, capture_output=True, text=True, cwd=ROOT, env=env)
        assert refused.returncode != 0 and "REDIS_PASSWORD" in refused.stderr, client
        accepted = subprocess.run(with_auth, capture_output=True, text=True, cwd=ROOT, env={**env, "REDIS_PASSWORD": "x"})
        assert accepted.returncode == 0, (client, accepted.stderr)
