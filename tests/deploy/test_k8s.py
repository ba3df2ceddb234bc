"""deploy/k8s names only what exists, and Kubernetes would take it: every kustomization renders
(its resources and patches resolve: ``tests.support.kustomize``), every manifest validates against
the API schemas of a pinned Kubernetes version (kubernetes-validate, strict), and every image,
command, port, environment variable, model, probe path, selector and reference names something
in the project or in the rendered output (as tests/test_compose.py does for docker-compose.yml).
There is no cluster here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from orchestrator.settings import Settings as OrchestratorSettings
from tests.support.kustomize import build
from umi.cli import SERVE_TARGETS
from umi.demo.stack import DOCUMENTED_PORTS, READY_PATHS, ROLES
from umi.service.settings import ServiceSettings
from umi.service.weights import is_hub_id

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.35.0"
KUSTOMIZATIONS = sorted(p.parent.relative_to(K8S).as_posix() for p in K8S.rglob("kustomization.yaml"))
APPLIED = [k for k in KUSTOMIZATIONS if k != "base"]  # the base is applied through an overlay
CRDS = {"ScaledObject": "keda.sh/v1alpha1", "ServiceMonitor": "monitoring.coreos.com/v1"}
IMAGES = {"umi-serve:cpu", "umi-serve:gpu", "redis:7-alpine"}  # the Dockerfile's targets, compose's Redis
CHECKPOINTS = {role: f"shenwzh3/alpha-umi-{role}-7b" for role in ROLES}
EXTERNAL_ENV = {"HF_TOKEN", "HF_HOME"}  # huggingface_hub: token and cache directory
ENV = {
    **{role: {f"UMI_{n.upper()}" for n in ServiceSettings.model_fields} for role in ROLES},
    "orchestrator": {f"UMI_{n.upper()}" for n in OrchestratorSettings.model_fields},
    "tools": {"UMI_TOOLS_PUBLIC_URL"},  # umi/demo/tools_app.py
}
ROUTES = {  # the GET routes each app declares (its probes must be among them)
    "role": ROOT / "umi" / "service" / "app.py", "orchestrator": ROOT / "orchestrator" / "api.py",
    "tools": ROOT / "umi" / "demo" / "tools_app.py",
}  # fmt: skip


def declared_paths(source: Path) -> set[str]:
    return set(re.findall(r'\.(?:get|api_route)\(\s*"(/[^"]*)"', source.read_text(encoding="utf-8")))


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, build(K8S / request.param)


def pods(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def component(workload: dict[str, Any]) -> str:
    return workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def env_of(container: dict[str, Any]) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_every_kustomization_renders_with_its_resources_and_patches(rendered) -> None:  # type: ignore[no-untyped-def]
    name, docs = rendered
    assert docs, name
    ids = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(ids) == len(set(ids)), f"{name}: a resource twice"


def test_every_manifest_validates_against_the_pinned_kubernetes_api(rendered) -> None:  # type: ignore[no-untyped-def]
    name, docs = rendered
    for doc in docs:
        if doc["kind"] in CRDS:  # outside the API's schemas: checked by the reference tests below
            assert doc["apiVersion"] == CRDS[doc["kind"]]
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_misspelt_field_fails_validation() -> None:
    deployment = next(d for d in build(K8S / "overlays" / "cpu-demo") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_images_commands_ports_env_and_probes_name_what_exists(rendered) -> None:  # type: ignore[no-untyped-def]
    name, docs = rendered
    for workload in pods(docs):
        part = component(workload)
        spec = workload["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, (name, part)
        for container in spec["containers"]:
            assert container["image"] in IMAGES, (name, part)
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, (name, part)
            assert "limits" in container["resources"] and "requests" in container["resources"], (name, part)
            if part == "redis":
                continue
            command = container["command"]
            assert command[:2] == ["umi", "serve"] and command[2] == part and part in SERVE_TARGETS, (name, command)
            port = int(command[command.index("--port") + 1])
            assert port == DOCUMENTED_PORTS.of(part) and [p["containerPort"] for p in container["ports"]] == [port]
            env = env_of(container)
            assert set(env) - EXTERNAL_ENV <= ENV[part], (name, part, set(env) - EXTERNAL_ENV - ENV[part])
            routes = declared_paths(ROUTES["role" if part in ROLES else part])
            assert container["readinessProbe"]["httpGet"]["path"] == READY_PATHS[part]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["path"] in routes, (name, part, probe)
            if part in ROLES:
                model = env["UMI_MODEL"] or ""
                if env["UMI_ENGINE"] == "vllm":
                    assert is_hub_id(model) and model == CHECKPOINTS[part]
                    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
                else:
                    assert (ROOT / "models" / model.removeprefix("/models/")).is_dir(), model
                drain_s = float(env.get("UMI_DRAIN_TIMEOUT_S") or ServiceSettings.model_fields["drain_timeout_s"].default)
                delay_s = float(env.get("UMI_DRAIN_DELAY_S") or ServiceSettings.model_fields["drain_delay_s"].default)
                stop_s = ServiceSettings.model_fields["engine_stop_grace_s"].default
                pre_stop_s = container["lifecycle"]["preStop"]["sleep"]["seconds"]
                # the SIGTERM path (umi.service.drain): preStop, then the drain delay, the drain, the engine's stop
                assert spec["terminationGracePeriodSeconds"] > pre_stop_s + delay_s + drain_s + stop_s, (name, part)


def test_services_policies_budgets_and_scalers_point_at_what_is_rendered(rendered) -> None:  # type: ignore[no-untyped-def]
    name, docs = rendered
    workloads = {(d["kind"], d["metadata"]["name"]): d for d in pods(docs)}
    templates = [w["spec"]["template"] for w in workloads.values()]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for service in services.values():
        backing = [t for t in templates if matches(service["spec"]["selector"], t["metadata"]["labels"])]
        if name == "monitoring":
            continue
        assert backing, (name, service["metadata"]["name"])
        names = {p["name"] for t in backing for c in t["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names
    for doc in docs:
        if doc["kind"] in ("PodDisruptionBudget", "NetworkPolicy"):
            selector = (doc["spec"].get("selector") or doc["spec"]["podSelector"]).get("matchLabels", {})
            assert any(matches(selector, t["metadata"]["labels"]) for t in templates), (name, doc["metadata"]["name"])
        if doc["kind"] == "HorizontalPodAutoscaler":
            assert ("Deployment", doc["spec"]["scaleTargetRef"]["name"]) in workloads
        if doc["kind"] == "ScaledObject":
            assert ("Deployment", doc["spec"]["scaleTargetRef"]["name"]) in workloads
            assert doc["metadata"]["namespace"] == workloads[("Deployment", doc["spec"]["scaleTargetRef"]["name"])]["metadata"]["namespace"]
    orchestrator = workloads.get(("Deployment", "orchestrator"))
    if orchestrator is not None:  # its role URLs name the role Services on their ports
        env = env_of(orchestrator["spec"]["template"]["spec"]["containers"][0])
        for role in ROLES:
            url = urlsplit(env[f"UMI_{role.upper()}_URL"] or "")
            assert url.hostname in services and url.port in {p["port"] for p in services[url.hostname]["spec"]["ports"]}
        redis_url = env["UMI_REDIS_URL"] or ""
        if redis_url.startswith("redis://"):
            assert urlsplit(redis_url).hostname in services
        else:
            assert redis_url.startswith("redis+sentinel://") and env["UMI_REDIS_WAIT_REPLICAS"] == "1"


def test_every_role_has_a_headless_service_for_discovery() -> None:
    services = {d["metadata"]["name"]: d for d in build(K8S / "overlays" / "gpu") if d["kind"] == "Service"}
    for role in ROLES:
        assert services[f"{role}-headless"]["spec"]["clusterIP"] == "None"


def test_the_overlays_applied_are_kustomizations() -> None:
    assert {"overlays/cpu-demo", "overlays/gpu", "overlays/gpu-keda", "monitoring"} <= set(APPLIED)
