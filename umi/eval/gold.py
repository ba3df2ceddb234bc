"""Gold steps: every planner decision of a trajectory file, and what each role should answer.

A gold step is a planner turn that decides (followed by a call or a conclusion, or giving
up), as in GLPFT's planner samples and the reference's test samples (``infer_pipeline.py``);
steps whose gold call is a hallucinated name are skipped (the reference keeps them; there are
none in its test sets). Every gold finish step has a gold answer, ``none`` included (the
reference scores those too). Its id is ``"<trajectory index>:<turn index>"``. Each role is
asked with the gold history before its turn, filtered as that role was trained
(:func:`for_caller`: no hallucinated calls; :func:`for_summarizer`: no ``none`` conclusions).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from umi.format import Decision, ToolDoc, Trajectory, Turn, parse_caller
from umi.format.turns import GIVE_UP_MARK

NONE_ANSWER = "none"


class GoldCall(BaseModel):
    history: list[Turn]  # up to and including the planner turn
    thought: str
    name: str
    arguments_raw: str


class GoldAnswer(BaseModel):
    history: list[Turn]  # up to and including the planner turn
    answer: str


class GoldStep(BaseModel):
    id: str
    trajectory: int
    turn: int
    tools: list[ToolDoc]
    history: list[Turn]  # before the planner turn: what the planner (and backbone) is asked with
    decision: Decision
    planner_turn: str
    call: GoldCall | None = None
    answer: GoldAnswer | None = None

    def tool_names(self) -> list[str]:
        return [t.Name for t in self.tools]


def for_caller(turns: Sequence[Turn]) -> list[Turn]:
    """History as the caller was trained on it: hallucinated calls left out."""
    return [t for t in turns if not t.is_hallucinated_call]


def for_summarizer(turns: Sequence[Turn]) -> list[Turn]:
    """History as the summarizer was trained on it: ``none`` conclusions left out."""
    return [t for t in turns if not (t.role == "conclusion" and t.content == NONE_ANSWER)]


def gold_steps(trajectories: Sequence[Trajectory]) -> list[GoldStep]:
    steps: list[GoldStep] = []
    for ti, traj in enumerate(trajectories):
        turns = traj.conversations
        for i, turn in enumerate(turns):
            if turn.role != "planner":
                continue
            following = turns[i + 1] if i + 1 < len(turns) else None
            if GIVE_UP_MARK in turn.content:
                decision: Decision = "give_up"
            elif following is not None and following.role == "conclusion":
                decision = "conclusion"
            elif following is not None and following.role == "caller":
                if following.is_hallucinated_call:
                    continue
                decision = "caller"
            else:
                continue
            step = GoldStep(
                id=f"{ti}:{i}", trajectory=ti, turn=i, tools=traj.tools, history=list(turns[:i]),
                decision=decision, planner_turn=turn.content,
            )
            if decision == "caller" and following is not None:
                parsed = parse_caller(following.content)
                step.call = GoldCall(
                    history=for_caller(turns[: i + 1]), thought=turn.content,
                    name=parsed.name, arguments_raw=parsed.arguments_raw,
                )
            elif decision == "conclusion" and following is not None:
                step.answer = GoldAnswer(history=for_summarizer(turns[: i + 1]), answer=following.content)
            steps.append(step)
    return steps
