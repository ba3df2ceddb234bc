"""Scoring predictions against gold steps.

Multi-model predictions carry ``planner`` records for every gold step, ``caller`` records on
gold call steps and ``summarizer`` records on gold finish steps; single-model predictions carry
one ``backbone`` record per gold step. A missing record, or one whose request failed
(``error`` set), counts as wrong and is listed as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from umi.eval.gold import GoldStep
from umi.eval.metrics import argument_f1, is_hallucinated, mean, rouge_l_f1
from umi.eval.predictions import Prediction
from umi.format import Decision, parse_backbone, parse_caller, parse_planner, parse_summarizer

Mode = Literal["multi", "single"]


class StepScore(BaseModel):
    id: str
    gold_decision: Decision
    pred_decision: Decision | None
    gold_name: str | None = None
    pred_name: str | None = None
    hallucinated: bool = False
    arg_f1: float | None = None
    rouge_l: float | None = None
    missing: list[str] = []


class Metrics(BaseModel):
    """Percentages, as the paper reports them; None where no step qualifies."""

    plan_acc: float | None
    act_em: float | None
    hallu: float | None
    arg_f1: float | None
    rouge_l: float | None
    steps: int
    call_steps: int
    finish_steps: int
    missing: int


class ScoreResult(BaseModel):
    mode: Mode
    metrics: Metrics
    steps: list[StepScore]


class ScoreError(ValueError):
    pass


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def _index(predictions: Sequence[Prediction]) -> dict[tuple[str, str], Prediction]:
    """Records by (step, role); a failed request is no prediction (it counts as missing)."""
    return {(p.id, p.role): p for p in predictions if p.error is None}


def _score_multi(step: GoldStep, preds: dict[tuple[str, str], Prediction]) -> StepScore:
    out = StepScore(id=step.id, gold_decision=step.decision, pred_decision=None)
    planner = preds.get((step.id, "planner"))
    if planner is None:
        out.missing.append("planner")
    else:
        out.pred_decision = parse_planner(planner.text).next
    if step.call is not None:
        out.gold_name = step.call.name
        caller = preds.get((step.id, "caller"))
        if caller is None:
            out.missing.append("caller")
            out.pred_name, args = "none", "{}"
        else:
            call = parse_caller(caller.text, step.tool_names())
            out.pred_name, args = call.name, call.arguments_raw
        out.hallucinated = is_hallucinated(out.pred_name, step.tool_names())
        out.arg_f1 = argument_f1(step.call.arguments_raw, args, out.pred_name == out.gold_name)
    if step.answer is not None:
        summarizer = preds.get((step.id, "summarizer"))
        if summarizer is None:
            out.missing.append("summarizer")
            out.rouge_l = 0.0
        else:
            out.rouge_l = rouge_l_f1(parse_summarizer(summarizer.text).answer, step.answer.answer)
    return out


def _score_single(step: GoldStep, preds: dict[tuple[str, str], Prediction]) -> StepScore:
    out = StepScore(id=step.id, gold_decision=step.decision, pred_decision=None)
    record = preds.get((step.id, "backbone"))
    parsed = None if record is None else parse_backbone(record.text, step.tool_names())
    if parsed is None:
        out.missing.append("backbone")
    else:
        out.pred_decision = parsed.next
        if parsed.call is not None:
            out.pred_name = parsed.call.name
            out.hallucinated = parsed.call.hallucinated
    if step.call is not None:
        out.gold_name = step.call.name
        name = out.pred_name or "none"
        args = parsed.call.arguments_raw if parsed is not None and parsed.call is not None else "{}"
        out.arg_f1 = argument_f1(step.call.arguments_raw, args, name == out.gold_name)
    if step.answer is not None:
        answer = parsed.answer if parsed is not None and parsed.answer is not None else "none"
        out.rouge_l = rouge_l_f1(answer, step.answer.answer)
    return out


def detect_mode(predictions: Sequence[Prediction]) -> Mode:
    roles = {p.role for p in predictions}
    if "backbone" in roles and roles - {"backbone"}:
        raise ScoreError("predictions mix backbone records with planner/caller/summarizer records; score them apart")
    return "single" if "backbone" in roles else "multi"


def score(gold: Sequence[GoldStep], predictions: Sequence[Prediction], mode: Mode | None = None) -> ScoreResult:
    mode = mode or detect_mode(predictions)
    known = {s.id for s in gold}
    unknown = sorted({p.id for p in predictions} - known)
    if unknown:
        raise ScoreError(f"predictions name steps the gold file does not have: {', '.join(unknown[:5])}")
    preds = _index(predictions)
    scorer = _score_single if mode == "single" else _score_multi
    steps = [scorer(step, preds) for step in gold]
    calls = [s for s in steps if s.gold_name is not None]
    metrics = Metrics(
        plan_acc=_pct(mean([1.0 if s.pred_decision == s.gold_decision else 0.0 for s in steps])),
        act_em=_pct(mean([1.0 if s.pred_name == s.gold_name else 0.0 for s in calls])),
        hallu=_pct(mean([1.0 if s.hallucinated else 0.0 for s in steps])),
        arg_f1=_pct(mean([s.arg_f1 for s in calls if s.arg_f1 is not None])),
        rouge_l=_pct(mean([s.rouge_l for s in steps if s.rouge_l is not None])),
        steps=len(steps),
        call_steps=len(calls),
        finish_steps=sum(1 for s in steps if s.rouge_l is not None),
        missing=sum(1 for s in steps if s.missing),
    )
    return ScoreResult(mode=mode, metrics=metrics, steps=steps)
