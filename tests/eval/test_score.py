"""Scoring saved predictions over the steps the reference scripts select, the report files, and
`umi eval score`. tests/fixtures/eval_cases.json holds one gold case per edge case:

0:1 call (city Rome)      0:4 finish "The capital is Paris."   1:1 call (convert)
1:4 finish, gold answer "none"   2:1 give up   3:1 call whose gold arguments are not JSON
3:4 finish "It is 3 degrees. Sunny."   4:1 finish whose answer holds "Next: give up"
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from umi.cli import main
from umi.eval.gold import gold_steps
from umi.eval.predictions import Prediction
from umi.eval.score import ScoreError, score
from umi.format import load_trajectories

CASES = Path(__file__).parents[1] / "fixtures" / "eval_cases.json"
PERFECT = 2 / (2 + 1e-8)  # the rouge package's F of identical texts

# The paper's protocol: caller and summarizer records only where the planner decided so.
MULTI = [
    {"id": "0:1", "role": "planner", "text": "Weather.\n Next: caller."},
    {"id": "0:1", "role": "caller", "text": 'Action: get_weather\nAction Input: {"city": "Paris"}'},  # Arg. F1 0.5
    {"id": "0:4", "role": "planner", "text": "Done.\n Next: conclusion."},
    {"id": "0:4", "role": "summarizer", "text": "the capital is paris"},  # R-L 0.5: case kept
    {"id": "1:1", "role": "planner", "text": "I know.\n Next: conclusion."},  # wrong: no call, Act. EM 0
    {"id": "1:1", "role": "summarizer", "text": "5 USD"},
    {"id": "1:4", "role": "planner", "text": "Again.\n Next: caller."},  # wrong, at a finish step...
    {"id": "1:4", "role": "caller", "text": "Action: book_flight\nAction Input: {}"},  # ...and hallucinated
    {"id": "2:1", "role": "planner", "text": "Cannot.\n Next: give up."},
    {"id": "3:1", "role": "planner", "text": " Next: caller."},
    # "Action:" inside the arguments: the name is still get_weather (the reference reads 'Oslo"}')
    {"id": "3:1", "role": "caller", "text": 'Action: get_weather\nAction Input: {"city": "Action: Oslo"}'},
    {"id": "3:4", "role": "planner", "text": " Next: conclusion."},
    {"id": "3:4", "role": "summarizer", "text": "..."},  # the rouge package raises; 0 here
    {"id": "4:1", "role": "planner", "text": "Easy.\n Next: conclusion."},
    {"id": "4:1", "role": "summarizer", "text": "Next: give up the car."},  # still a conclusion here
]

SINGLE = [
    {"id": "0:1", "role": "backbone", "text": 'Weather.\nAction: get_weather\nAction Input: {"city": "Rome"}'},
    {"id": "0:4", "role": "backbone", "text": "Done.\nconclusion: The capital is Paris."},
    {"id": "1:1", "role": "backbone", "text": "Hm.\nAction: \nAction Input: {}"},  # empty name: hallucinated
    {"id": "1:4", "role": "backbone", "text": "Done.\nConclusion: none"},  # "Conclusion" is no conclusion: a call
    {"id": "2:1", "role": "backbone", "text": "No.\nconclusion: give up."},
    # 3:1 has no prediction: wrong, missing, Arg. F1 0 although the gold arguments are not JSON
    {"id": "3:4", "role": "backbone", "text": "ok\nconclusion: It is 3 degrees. Sunny. "},
    {"id": "4:1", "role": "backbone", "text": "x\nconclusion: Next: give up the car."},
]


def _preds(records: list[dict]) -> list[Prediction]:
    return [Prediction.model_validate(r) for r in records]


@pytest.fixture()
def gold():
    return gold_steps(load_trajectories(CASES))


def test_gold_steps_keep_finish_steps_whose_answer_is_none(gold) -> None:
    assert [(s.id, s.decision) for s in gold] == [
        ("0:1", "caller"), ("0:4", "conclusion"), ("1:1", "caller"), ("1:4", "conclusion"),
        ("2:1", "give_up"), ("3:1", "caller"), ("3:4", "conclusion"), ("4:1", "conclusion"),
    ]
    assert gold[3].answer is not None and gold[3].answer.answer == "none"


def test_gold_steps_skip_hallucinated_gold_calls_and_hide_them_from_the_caller(trajectories_path: Path) -> None:
    steps = gold_steps(load_trajectories(trajectories_path))
    assert "1:1" not in [s.id for s in steps]
    step = next(s for s in steps if s.id == "1:4")
    assert step.call is not None and step.call.name == "convert_for_currency"
    assert all(not t.is_hallucinated_call for t in step.call.history)  # the caller never sees it
    assert any(t.is_hallucinated_call for t in step.history)  # the planner does


def test_multi_model_metrics_by_the_papers_protocol(gold) -> None:
    result = score(gold, _preds(MULTI))
    m = result.metrics
    assert (result.mode, result.protocol, result.rouge) == ("multi", "paper", "paper")
    # Plan: 6 of 8 right (1:1 and 1:4 wrong). Act. EM: 0:1 and 3:1 of 0:1, 1:1, 3:1.
    # Hallu.: book_flight at 1:4, a finish step, over all 8 steps. Arg. F1: (0.5 + 0) / 2, 3:1 left out.
    # R-L over the 4 finish steps: 0.5 (0:4), "none" vs "none" (1:4: no answer given), 0 ("..."), 1 (4:1).
    assert (m.plan_acc, m.act_em, m.hallu, m.arg_f1) == (75.0, 66.67, 12.5, 25.0)
    assert m.rouge_l == pytest.approx(100 * (0.5 / (1 + 1e-8) + PERFECT + 0 + PERFECT) / 4, abs=0.005)
    assert (m.steps, m.call_steps, m.finish_steps, m.missing) == (8, 3, 4, 0)
    by_id = {s.id: s for s in result.steps}
    assert by_id["1:4"].hallucinated and by_id["1:4"].pred_name == "book_flight"
    assert by_id["1:1"].pred_name is None and by_id["3:1"].arg_f1 is None


def test_umis_word_token_r_l_is_an_option(gold) -> None:
    m = score(gold, _preds(MULTI), rouge="words").metrics
    # 1.0 ("the capital is paris"), 1.0 ("none"), 0.0 ("..."), 1.0
    assert m.rouge_l == 75.0


def test_single_model_metrics_by_the_reference_rules(gold) -> None:
    result = score(gold, _preds(SINGLE))
    m = result.metrics
    assert result.mode == "single"
    # Plan: 1:4 (a call, not "conclusion: ") and 3:1 (missing) wrong. Act. EM: 0:1 only.
    # Arg. F1: 1 (0:1), 0 (1:1, empty name), 0 (3:1, no call). Hallu.: the empty name at 1:4.
    assert (m.plan_acc, m.act_em, m.hallu, m.arg_f1, m.missing) == (75.0, 33.33, 12.5, 33.33, 1)
    sunny = 2 * (5 / 6) / (1 + 5 / 6 + 1e-8)  # "Sunny. " keeps an empty word (test_metrics.py)
    assert m.rouge_l == pytest.approx(100 * (PERFECT + PERFECT + sunny + PERFECT) / 4, abs=0.005)
    assert m.rouge_l == 97.73


def test_teacher_forced_predictions_score_the_caller_on_gold_call_steps_only(trajectories_path: Path) -> None:
    gold = gold_steps(load_trajectories(trajectories_path))
    records = [
        {"id": "0:1", "role": "planner", "text": "Call weather.\n Next: caller."},
        {"id": "0:1", "role": "caller", "text": 'Action: get_weather_for_weather\nAction Input: {"city": "Z\\u00fcrich"}'},
        {"id": "0:4", "role": "planner", "text": "Next: conclusion."},
        {"id": "0:4", "role": "summarizer", "text": "It is 3 degrees in Z\u00fcrich."},
        {"id": "1:4", "role": "planner", "text": "Next: give up."},  # wrong, yet its caller is scored
        {"id": "1:4", "role": "caller", "text": 'Action: convert_for_currency\nAction Input: {"amount": 5, "to": "EUR"}'},
        {"id": "1:7", "role": "planner", "text": "Done. Next: conclusion."},
        {"id": "1:7", "role": "summarizer", "text": "none"},
        # 2:1 (the give-up step) has no planner prediction: counted wrong, listed as missing
    ]
    preds = [Prediction.model_validate({**r, "protocol": "teacher-forcing"}) for r in records]
    result = score(gold, preds)
    m = result.metrics
    assert result.protocol == "teacher-forcing"
    assert (m.plan_acc, m.act_em, m.hallu, m.arg_f1, m.rouge_l) == (60.0, 100.0, 0.0, 87.5, 100.0)
    assert (m.steps, m.call_steps, m.finish_steps, m.missing) == (5, 2, 2, 1)
    with pytest.raises(ScoreError, match="1:4: a caller prediction where the planner decided give_up"):
        score(gold, [p.model_copy(update={"protocol": None}) for p in preds])  # read as the paper's protocol


def test_a_failed_request_counts_as_wrong(gold) -> None:
    records = [dict(r) for r in MULTI]
    assert records[-1]["id"] == "4:1" and records[-1]["role"] == "summarizer"
    records[-1] = {"id": "4:1", "role": "summarizer", "text": "", "error": "HTTP 503: busy"}
    result = score(gold, _preds(records))
    step = next(s for s in result.steps if s.id == "4:1")
    assert step.missing == ["summarizer"] and step.rouge_l == 0.0


def test_no_step_in_a_bucket_gives_no_number(gold) -> None:
    give_up = [s for s in gold if s.id == "2:1"]
    m = score(give_up, _preds([{"id": "2:1", "role": "planner", "text": "Next: give up."}])).metrics
    assert (m.plan_acc, m.act_em, m.hallu, m.arg_f1, m.rouge_l) == (100.0, None, 0.0, None, None)


def test_mixed_or_unknown_predictions_are_refused(gold) -> None:
    with pytest.raises(ScoreError, match="mix"):
        score(gold, _preds(MULTI + SINGLE))
    with pytest.raises(ScoreError, match="9:9"):
        score(gold, [Prediction(id="9:9", role="planner", text="")])
    with pytest.raises(ScoreError, match="mix protocols"):
        score(gold, [Prediction(id="0:1", role="planner", text="", protocol=p) for p in ("paper", "teacher-forcing")])
    with pytest.raises(ScoreError, match="made by the paper protocol"):
        score(gold, [Prediction(id="0:1", role="planner", text="", protocol="paper")], protocol="teacher-forcing")


def test_umi_eval_score_prints_the_papers_rows_beside_paper_protocol_runs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    multi, single = tmp_path / "multi.json", tmp_path / "single.json"
    multi.write_text(json.dumps(MULTI), encoding="utf-8")
    single.write_text(json.dumps(SINGLE), encoding="utf-8")
    out = tmp_path / "report" / "score.json"
    code = main(["eval", "score", "--gold", str(CASES), "--pred", str(multi), "--pred", str(single), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| multi-model | 75.00 | 66.67 | 12.50 | 25.00 | 62.50 | 8 |" in printed
    assert "| single-model | 75.00 | 33.33 | 12.50 | 33.33 | 97.73 | 8 |" in printed
    assert "| alpha-UMi 7B (paper) | 88.92 |" in printed
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["runs"]["multi-model"]["protocol"] == "paper"
    assert out.with_suffix(".md").read_text(encoding="utf-8").count("\n") == 6
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code = main(["eval", "score", "--gold", str(CASES), "--pred", str(multi), "--rouge", "words", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "| multi-model (R-L: words) | 75.00 | 66.67 | 12.50 | 25.00 | 75.00 | 8 |" in printed
    assert "(paper)" not in printed and "Not comparable with the paper's numbers" in printed


def test_umi_eval_score_bad_predictions_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "0:1", "role": "oracle", "text": ""}]), encoding="utf-8")
    code = main(["eval", "score", "--gold", str(CASES), "--pred", str(bad), "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert code == 2 and "prediction 0.role" in err and err.count("\n") == 1


def test_umi_eval_score_refuses_teacher_forced_predictions_read_as_the_papers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tf = tmp_path / "tf.json"
    tf.write_text(json.dumps([MULTI[4], {"id": "1:1", "role": "caller", "text": "Action: convert\nAction Input: {}"}]), encoding="utf-8")
    code = main(["eval", "score", "--gold", str(CASES), "--pred", str(tf), "--out", str(tmp_path / "o.json")])
    assert code == 2 and "--protocol teacher-forcing" in capsys.readouterr().err
    code = main(["eval", "score", "--gold", str(CASES), "--pred", str(tf), "--protocol", "teacher-forcing", "--out", str(tmp_path / "o.json")])
    assert code == 0 and "| multi-model (teacher forcing) |" in capsys.readouterr().out
