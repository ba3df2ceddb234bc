"""deploy/observability/: every metric the Grafana dashboard and the Prometheus rules query is one
the services export, with the labels they use (selectors and ``by (...)`` groupings)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from orchestrator.metrics import Metrics
from umi.service.metrics import ServiceMetrics

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "observability"
METRIC = re.compile(r"(?<![\w:])(umi_\w+|vllm:[\w:]+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
SERIES_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
VLLM_METRICS = {
    # vLLM's own /metrics (docs.vllm.ai, "Production Metrics"), scraped on the GPU profile.
    "vllm:num_requests_running": {"model_name"},
    "vllm:num_requests_waiting": {"model_name"},
    "vllm:e2e_request_latency_seconds_bucket": {"model_name", "le"},
    "vllm:time_to_first_token_seconds_bucket": {"model_name", "le"},
}


def exported() -> dict[str, set[str]]:
    """Every sample name the orchestrator and a role service export -> its label names."""
    out: dict[str, set[str]] = dict(VLLM_METRICS)
    for registry in (Metrics().registry, ServiceMetrics("planner").registry):
        for name, collector in registry._names_to_collectors.items():
            labels = set(getattr(collector, "_labelnames", ()))
            out[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return out


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def problems(expr: str, known: dict[str, set[str]]) -> list[str]:
    found = METRIC.findall(expr)
    out = [f"{expr!r} queries no metric"] if not found else []
    used_labels: set[str] = set()
    for name, matchers in found:
        if name not in known:
            out.append(f"{name} is not exported")
            continue
        used_labels |= known[name]
        for label in MATCHER.findall(matchers):
            if label not in known[name] | SERIES_LABELS:
                out.append(f"{name} has no label {label!r}")
    for group in GROUPING.findall(expr):
        for label in (x.strip() for x in group.split(",") if x.strip()):
            if label not in used_labels | SERIES_LABELS:
                out.append(f"{expr!r} groups by {label!r}, a label none of its metrics has")
    return out


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_and_label_queried_is_exported_by_the_services(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else rule_exprs()
    assert len(exprs) >= 10
    known = exported()
    assert [p for expr in exprs for p in problems(expr, known)] == []


def test_the_check_catches_a_wrong_name_or_label() -> None:
    known = exported()
    assert problems("rate(umi_orchestrator_chat_total[5m])", known) == ["umi_orchestrator_chat_total is not exported"]
    assert problems('umi_orchestrator_chats_total{state="x"}', known) == ["umi_orchestrator_chats_total has no label 'state'"]
    assert problems("sum by (tool) (rate(umi_orchestrator_steps_total[5m]))", known) != []
    assert problems("sum by (role) (rate(umi_orchestrator_steps_total[5m]))", known) == []


def test_the_dashboard_covers_what_operators_watch() -> None:
    queried = " ".join(dashboard_exprs())
    for family in ("umi_orchestrator_chats_total", "umi_orchestrator_steps_total", "umi_orchestrator_role_seconds_bucket",
                   "umi_orchestrator_tool_errors_total", "umi_orchestrator_role_errors_total", "umi_orchestrator_redis_seconds_bucket",
                   "umi_swaps_total", "umi_swap_duration_seconds_bucket", "umi_engine_restarts_total", "umi_weights_info",
                   "vllm:num_requests_running"):  # fmt: skip
        assert family in queried, family
