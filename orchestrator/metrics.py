"""Prometheus metrics of one orchestrator app (a registry per app, so tests can run several)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5)
OTHER_TOOL = "_other"


class Metrics:
    def __init__(self, max_tool_labels: int = 200) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.chats = Counter("umi_orchestrator_chats_total", "Chats that reached a status, by status", ["status"], registry=r)
        self.chats_running = Gauge("umi_orchestrator_chats_running", "Chats this process is advancing now", registry=r)
        self.chats_resumed = Counter("umi_orchestrator_chats_resumed_total", "Chats taken over after their lease expired", registry=r)
        self.leases_lost = Counter("umi_orchestrator_leases_lost_total", "Chats another process took from this one", registry=r)
        self.steps = Counter("umi_orchestrator_steps_total", "Steps written, by role", ["role"], registry=r)
        self.role_seconds = Histogram(
            "umi_orchestrator_role_seconds", "Role-service call latency (all attempts)", ["role"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.role_errors = Counter(
            "umi_orchestrator_role_errors_total", "Failed role-service attempts, by kind", ["role", "kind"], registry=r
        )
        self.tool_seconds = Histogram(
            "umi_orchestrator_tool_seconds", "Server-executed tool latency", ["tool"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.tool_errors = Counter(
            "umi_orchestrator_tool_errors_total", "Tool calls whose observation reports an error, by kind",
            ["tool", "kind"], registry=r,
        )  # fmt: skip
        self.redis_seconds = Histogram(
            "umi_orchestrator_redis_seconds", "Redis round-trip latency, by operation", ["op"],
            buckets=_REDIS_BUCKETS, registry=r,
        )  # fmt: skip
        self.redis_round_trips = Counter(
            "umi_orchestrator_redis_round_trips_total", "Round trips to Redis (a pipeline of many writes is one)", registry=r
        )
        self.redis_errors = Counter("umi_orchestrator_redis_errors_total", "Failed Redis round trips", ["op"], registry=r)
        self._tool_labels: set[str] = set()
        self._max_tool_labels = max_tool_labels
        self._lock = threading.Lock()

    def tool_label(self, name: str) -> str:
        """Tool names come from requests: beyond the first N distinct ones they share a label."""
        if name in self._tool_labels:
            return name
        with self._lock:
            if len(self._tool_labels) < self._max_tool_labels:
                self._tool_labels.add(name)
                return name
        return OTHER_TOOL
