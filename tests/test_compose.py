"""docker-compose.yml names only what exists: its commands are `umi serve` targets, its ports are
the documented ones (the same as `make up`), its environment variables are settings the
services read, its model paths are the demo models `make models` builds (or the released
checkpoints' hub ids), its images build from the Dockerfile's stages. There is no Docker engine
here: the file is checked as data, and with `docker compose config -q` where that client runs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from orchestrator.settings import Settings as OrchestratorSettings
from umi.cli import SERVE_TARGETS, build_parser, serve_target
from umi.demo.stack import DEFAULT_MODELS_DIR, DOCUMENTED_PORTS, READY_PATHS, ROLES, DemoModels
from umi.service.settings import ServiceSettings
from umi.service.weights import is_hub_id
from umi.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCS = ROOT / "docs" / "demo.md"
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


def test_images_build_from_the_dockerfiles_stages(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = set(re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, re.M))
    for name, service in services.items():
        if name == "redis":
            continue
        build = service["build"]
        assert build["context"] == "." and (ROOT / build["dockerfile"]).is_file() and build["target"] in stages, name
        assert service["image"] == f"umi-serve:{build['target']}"
        assert build["target"] == ("gpu" if name.endswith("-gpu") and name != "orchestrator-gpu" else "cpu"), name
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which does not exist"


def test_every_variable_the_file_reads_is_documented() -> None:
    variables = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text(encoding="utf-8")))
    assert variables  # DEMO_MODELS, UMI_ADMIN_TOKEN, HF_TOKEN, the GPU choices
    docs = DOCS.read_text(encoding="utf-8")
    assert [v for v in sorted(variables) if f"`{v}`" not in docs] == []


def test_docker_compose_config_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` client here")
    for profile in ([], ["--profile", "gpu"]):
        done = subprocess.run([docker, "compose", "-f", str(COMPOSE), *profile, "config", "-q"], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
