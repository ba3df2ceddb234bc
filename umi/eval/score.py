"""Scoring predictions against gold steps, over the steps the reference scripts select.

Each generation is first read as the reference pipeline stores it (GLPFT ``infer_pipeline.py``,
``inference.py``): cut at ``</s>``, a leading ``": "`` dropped, and a text that is empty, ``.``
or ``,`` once stripped becomes ``none``.

Multi-model, ``paper`` protocol (the default; steps.py): the decision is the planner's
(:func:`umi.format.parse_planner`, as the orchestrator routes); a call is made only where it
decided ``caller`` (the caller's record), an answer given only where it decided ``conclusion``
(the summarizer's record). A caller or summarizer record at a step whose planner decided
otherwise raises ScoreError (such predictions were made by another protocol).
``teacher-forcing``: caller records on gold call steps and summarizer records on gold finish
steps, whatever the planner said.
Single-model: one ``backbone`` record per step, read with the reference's rules
(``evaluate-backbone.py``): ``conclusion: give up`` anywhere gives up; else ``conclusion: ``
concludes; else it is a call.

A call: name and arguments by :func:`umi.format.parse_caller` (the name after the last
``Action:`` before the last ``Action Input:``), except that an empty name stays empty (the
reference counts it as a hallucination). An answer: the text after the last ``conclusion: ``
(with its space) if there is one, else all of it, unstripped, as the reference hands it to ROUGE.

Over which steps the metrics (metrics.py) are taken, in percent:
Plan ACC  all steps
Act. EM   gold call steps; the name is ``none`` where no call was made
Hallu.    all steps; a step counts when a call was made with a hallucinated name
Arg. F1   gold call steps (arguments ``{}`` where no call was made), less those left out
R-L       gold finish steps, ``none`` gold answers included; the answer is ``none`` where none
          was given

A missing record, or one whose request failed (``error`` set), counts as wrong (no decision,
no call, R-L 0 on the step) and is listed as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from umi.eval.gold import NONE_ANSWER, GoldStep
from umi.eval.metrics import ROUGE, RougeVariant, argument_f1, is_hallucinated, mean
from umi.eval.predictions import Prediction, Protocol
from umi.format import Decision, parse_caller, parse_planner
from umi.format.parsers import NO_ARGUMENTS, NO_NAME, cut_at_end_of_turn

Mode = Literal["multi", "single"]
_ANSWER_MARK = "conclusion: "
_GIVE_UP_ANSWER = "conclusion: give up"


class StepScore(BaseModel):
    id: str
    gold_decision: Decision
    pred_decision: Decision | None
    gold_name: str | None = None
    pred_name: str | None = None  # the name of the call made at this step; None: no call
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
    protocol: Protocol
    rouge: RougeVariant
    metrics: Metrics
    steps: list[StepScore]


class ScoreError(ValueError):
    pass


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def _index(predictions: Sequence[Prediction]) -> dict[tuple[str, str], Prediction]:
    """Records by (step, role); a failed request is no prediction (it counts as missing)."""
    return {(p.id, p.role): p for p in predictions if p.error is None}


def as_stored(text: str) -> str:
    """A generation as the reference pipeline stores it (see the module docstring)."""
    text = cut_at_end_of_turn(text)
    if text.startswith(": "):
        text = text[2:]
    return NONE_ANSWER if text.strip() in ("", ".", ",") else text


def answer_of(text: str) -> str:
    """The answer in a stored generation: after the last ``conclusion: ``, else all of it."""
    at = text.rfind(_ANSWER_MARK)
    return text[at + len(_ANSWER_MARK) :] if at >= 0 else text


def call_of(text: str, tool_names: list[str]) -> tuple[str, str]:
    """(name, raw arguments) of a stored generation that calls."""
    call = parse_caller(text, tool_names)
    name = call.name
    if name == NO_NAME:
        input_at = text.rfind("Action Input:")
        head = text[:input_at] if input_at >= 0 else text
        at = head.rfind("Action:")
        if at >= 0 and not head[at + len("Action:") :].strip():
            name = ""
    return name, call.arguments_raw


class _Read(BaseModel):
    """What one step's predictions say, before comparing with the gold."""

    decision: Decision | None = None
    name: str | None = None  # a call was made
    arguments: str = NO_ARGUMENTS
    answer: str | None = None  # an answer was given
    missing: list[str] = []


def _read_multi(step: GoldStep, preds: dict[tuple[str, str], Prediction], protocol: Protocol) -> _Read:
    out = _Read()
    planner = preds.get((step.id, "planner"))
    if planner is None:
        out.missing.append("planner")
    else:
        out.decision = parse_planner(as_stored(planner.text)).next
    caller, summarizer = preds.get((step.id, "caller")), preds.get((step.id, "summarizer"))
    if protocol == "paper":
        for role, record in (("caller", caller), ("summarizer", summarizer)):
            wanted = "caller" if role == "caller" else "conclusion"
            if record is not None and out.decision != wanted:
                raise ScoreError(
                    f"step {step.id}: a {role} prediction where the planner decided {out.decision or 'nothing'}: these "
                    "predictions were not made by the paper's protocol (score them with --protocol teacher-forcing)"
                )
        ask_caller, ask_summarizer = out.decision == "caller", out.decision == "conclusion"
    else:
        ask_caller, ask_summarizer = step.call is not None, step.answer is not None
    if ask_caller:
        if caller is None:
            out.missing.append("caller")
            out.name = NO_NAME
        else:
            out.name, out.arguments = call_of(as_stored(caller.text), step.tool_names())
    if ask_summarizer:
        if summarizer is None:
            out.missing.append("summarizer")
        else:
            out.answer = answer_of(as_stored(summarizer.text))
    return out


def _read_single(step: GoldStep, preds: dict[tuple[str, str], Prediction]) -> _Read:
    record = preds.get((step.id, "backbone"))
    if record is None:
        return _Read(missing=["backbone"])
    text = as_stored(record.text)
    if _GIVE_UP_ANSWER in text:
        return _Read(decision="give_up")
    if _ANSWER_MARK in text:
        return _Read(decision="conclusion", answer=answer_of(text))
    name, arguments = call_of(text, step.tool_names())
    return _Read(decision="caller", name=name, arguments=arguments)


def _score_step(step: GoldStep, read: _Read, rouge: RougeVariant) -> StepScore:
    out = StepScore(
        id=step.id, gold_decision=step.decision, pred_decision=read.decision, pred_name=read.name,
        hallucinated=is_hallucinated(read.name, step.tool_names()), missing=read.missing,
    )
    if step.call is not None:
        out.gold_name = step.call.name
        name = NO_NAME if read.name is None else read.name
        out.arg_f1 = argument_f1(step.call.arguments_raw, read.arguments, name == step.call.name)
    if step.answer is not None:
        given = NONE_ANSWER if read.answer is None else read.answer
        out.rouge_l = 0.0 if read.missing else ROUGE[rouge](given, step.answer.answer)
    return out


def detect_mode(predictions: Sequence[Prediction]) -> Mode:
    roles = {p.role for p in predictions}
    if "backbone" in roles and roles - {"backbone"}:
        raise ScoreError("predictions mix backbone records with planner/caller/summarizer records; score them apart")
    return "single" if "backbone" in roles else "multi"


def detect_protocol(predictions: Sequence[Prediction], protocol: Protocol | None = None) -> Protocol:
    """The protocol the records name (``paper`` when none does); ScoreError when they mix
    protocols or contradict ``protocol``."""
    found = {p.protocol for p in predictions if p.protocol is not None}
    if len(found) > 1:
        raise ScoreError(f"predictions mix protocols ({', '.join(sorted(found))}); score them apart")
    named = found.pop() if found else None
    if protocol is not None and named is not None and named != protocol:
        raise ScoreError(f"the predictions were made by the {named} protocol, not {protocol}")
    return protocol or named or "paper"


def score(
    gold: Sequence[GoldStep],
    predictions: Sequence[Prediction],
    mode: Mode | None = None,
    protocol: Protocol | None = None,
    rouge: RougeVariant = "paper",
) -> ScoreResult:
    """Metrics of ``predictions`` over ``gold``. ``protocol`` (multi-model only) defaults to the
    one the records name, else ``paper``; the single model is asked alike under both.
    Raises ScoreError on records of unknown steps, mixed kinds or protocols, and (``paper``)
    records the planner's decision did not ask for."""
    mode = mode or detect_mode(predictions)
    protocol = detect_protocol(predictions, protocol) if mode == "multi" else "paper"
    known = {s.id for s in gold}
    unknown = sorted({p.id for p in predictions} - known)
    if unknown:
        raise ScoreError(f"predictions name steps the gold file does not have: {', '.join(unknown[:5])}")
    preds = _index(predictions)
    steps = [
        _score_step(s, _read_single(s, preds) if mode == "single" else _read_multi(s, preds, protocol), rouge)
        for s in gold
    ]
    calls = [s for s in steps if s.gold_name is not None]
    metrics = Metrics(
        plan_acc=_pct(mean([1.0 if s.pred_decision == s.gold_decision else 0.0 for s in steps])),
        act_em=_pct(mean([1.0 if (NO_NAME if s.pred_name is None else s.pred_name) == s.gold_name else 0.0 for s in calls])),
        hallu=_pct(mean([1.0 if s.hallucinated else 0.0 for s in steps])),
        arg_f1=_pct(mean([s.arg_f1 for s in calls if s.arg_f1 is not None])),
        rouge_l=_pct(mean([s.rouge_l for s in steps if s.rouge_l is not None])),
        steps=len(steps),
        call_steps=len(calls),
        finish_steps=sum(1 for s in steps if s.rouge_l is not None),
        missing=sum(1 for s in steps if s.missing),
    )
    return ScoreResult(mode=mode, protocol=protocol, rouge=rouge, metrics=metrics, steps=steps)
