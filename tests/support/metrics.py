"""Reading Prometheus text exposition in tests: one reader, with prometheus_client's parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_value(text: str, name: str, /, **labels: str) -> float:
    """The sum of the samples named ``name`` (exactly) whose labels include ``labels``; 0.0 when
    no sample matches. ``text`` is a `/metrics` answer (Prometheus text format 0.0.4)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def metric_exported(text: str, name: str) -> bool:
    """Whether ``text`` has at least one sample named ``name``."""
    return any(sample.name == name for family in text_string_to_metric_families(text) for sample in family.samples)
