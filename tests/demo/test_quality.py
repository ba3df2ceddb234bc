"""`umi demo quality --if-changed` re-measures only models it has not measured yet."""

from __future__ import annotations

import json
from pathlib import Path

from umi.demo.quality import is_current


def _models(root: Path, versions: dict[str, str]) -> Path:
    for name, version in versions.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "training.json").write_text(json.dumps({"version": version}), encoding="utf-8")
    return root


def test_a_report_is_current_only_for_the_models_it_was_measured_on(tmp_path: Path) -> None:
    models = _models(tmp_path / "m", {"planner": "p1", "caller": "c1", "summarizer": "s1", "caller-v2": "c2"})
    report = tmp_path / "quality.json"
    assert not is_current(report, models)  # no report yet
    measured = {"versions": {"planner": "p1", "caller": "c1", "summarizer": "s1"}, "protocol": "paper"}
    report.write_text(json.dumps(measured), encoding="utf-8")
    assert is_current(report, models)
    assert not is_current(report, models, caller="caller-v2")
    _models(models, {"caller": "c1-retrained"})
    assert not is_current(report, models)
    report.write_text("not json", encoding="utf-8")
    assert not is_current(report, models)


def test_a_report_of_the_teacher_forced_protocol_is_measured_again(tmp_path: Path) -> None:
    models = _models(tmp_path / "m", {"planner": "p1", "caller": "c1", "summarizer": "s1"})
    report = tmp_path / "quality.json"
    versions = {"planner": "p1", "caller": "c1", "summarizer": "s1"}
    report.write_text(json.dumps({"versions": versions}), encoding="utf-8")  # before the paper's protocol
    assert not is_current(report, models)
    report.write_text(json.dumps({"versions": versions, "protocol": "teacher-forcing"}), encoding="utf-8")
    assert not is_current(report, models)


def test_models_without_a_recorded_version_are_never_current(tmp_path: Path) -> None:
    models = tmp_path / "m"
    for name in ("planner", "caller", "summarizer"):
        (models / name).mkdir(parents=True)
    report = tmp_path / "quality.json"
    report.write_text(json.dumps({"versions": {"planner": None, "caller": None, "summarizer": None}}), encoding="utf-8")
    assert not is_current(report, models)
