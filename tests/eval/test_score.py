"""Scoring saved predictions, the report files, and `umi eval score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from umi.cli import main
from umi.eval.gold import gold_steps
from umi.eval.predictions import Prediction
from umi.eval.score import ScoreError, score
from umi.format import load_trajectories

CALL_WEATHER = 'Action: get_weather_for_weather\nAction Input: {"city": "Z\u00fcrich"}'

MULTI = [
    {"id": "0:1", "role": "planner", "text": "Call weather.\n Next: caller."},
    {"id": "0:1", "role": "caller", "text": CALL_WEATHER},
    {"id": "0:4", "role": "planner", "text": "Next: conclusion."},
    {"id": "0:4", "role": "summarizer", "text": "It is 3 degrees in Z\u00fcrich."},
    {"id": "1:4", "role": "planner", "text": "Next: give up."},
    {"id": "1:4", "role": "caller", "text": 'Action: convert_for_currency\nAction Input: {"amount": 5, "to": "EUR"}'},
    {"id": "1:7", "role": "planner", "text": "Done. Next: conclusion."},
    # 2:1 (the give-up step) has no planner prediction: counted wrong, listed as missing
]
SINGLE = [
    {"id": "0:1", "role": "backbone", "text": 'Look.\nAction: get_weather_for_weather\nAction Input: {"city": "Oslo"}'},
    {"id": "0:4", "role": "backbone", "text": "ok\nconclusion: It is 3 degrees"},
    {"id": "1:4", "role": "backbone", "text": "x\nconclusion: give up."},
    {"id": "1:7", "role": "backbone", "text": "done\nconclusion: none"},
    {"id": "2:1", "role": "backbone", "text": "no\nconclusion: give up."},
]


@pytest.fixture()
def gold(trajectories_path: Path):
    return gold_steps(load_trajectories(trajectories_path))


def test_gold_steps(gold) -> None:
    assert [(s.id, s.decision) for s in gold] == [
        ("0:1", "caller"), ("0:4", "conclusion"), ("1:4", "caller"), ("1:7", "conclusion"), ("2:1", "give_up"),
    ]
    step = gold[2]
    assert step.call is not None and step.call.name == "convert_for_currency"
    assert all(not t.is_hallucinated_call for t in step.call.history)  # the caller never sees it
    assert any(t.is_hallucinated_call for t in step.history)  # the planner does
    assert gold[3].answer is None  # a "none" conclusion has no R-L


def test_multi_model_metrics(gold) -> None:
    result = score(gold, [Prediction.model_validate(p) for p in MULTI])
    m = result.metrics
    assert result.mode == "multi"
    assert (m.plan_acc, m.act_em, m.hallu, m.arg_f1, m.rouge_l) == (60.0, 100.0, 0.0, 87.5, 100.0)
    assert (m.steps, m.call_steps, m.finish_steps, m.missing) == (5, 2, 1, 1)
    assert result.steps[-1].missing == ["planner"]


def test_hallucinated_call_counts_in_hallu_act_em_and_arg_f1(gold) -> None:
    preds = [dict(p) for p in MULTI]
    preds[5]["text"] = "Action: book_flight\nAction Input: {}"
    m = score(gold, [Prediction.model_validate(p) for p in preds]).metrics
    assert (m.hallu, m.act_em, m.arg_f1) == (20.0, 50.0, 50.0)


def test_single_model_metrics(gold) -> None:
    result = score(gold, [Prediction.model_validate(p) for p in SINGLE])
    m = result.metrics
    assert result.mode == "single"
    assert (m.plan_acc, m.act_em, m.hallu, m.arg_f1, m.rouge_l) == (80.0, 50.0, 0.0, 25.0, 80.0)


def test_mixed_or_unknown_predictions_are_refused(gold) -> None:
    with pytest.raises(ScoreError, match="mix"):
        score(gold, [Prediction.model_validate(p) for p in MULTI + SINGLE])
    with pytest.raises(ScoreError, match="9:9"):
        score(gold, [Prediction(id="9:9", role="planner", text="")])


def test_umi_eval_score_writes_json_markdown_and_png(
    trajectories_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    multi, single = tmp_path / "multi.json", tmp_path / "single.json"
    multi.write_text(json.dumps(MULTI), encoding="utf-8")
    single.write_text(json.dumps(SINGLE), encoding="utf-8")
    out = tmp_path / "report" / "score.json"
    code = main(["eval", "score", "--gold", str(trajectories_path), "--pred", str(multi), "--pred", str(single), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| multi-model | 60.00 | 100.00 | 0.00 | 87.50 | 100.00 | 5 |" in printed
    assert "| single-model | 80.00 | 50.00 | 0.00 | 25.00 | 80.00 | 5 |" in printed
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["runs"]["multi-model"]["metrics"]["arg_f1"] == 87.5
    assert out.with_suffix(".md").read_text(encoding="utf-8").count("\n") == 4
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_umi_eval_score_bad_predictions_file(trajectories_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "0:1", "role": "oracle", "text": ""}]), encoding="utf-8")
    code = main(["eval", "score", "--gold", str(trajectories_path), "--pred", str(bad), "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert code == 2 and "prediction 0.role" in err and err.count("\n") == 1
