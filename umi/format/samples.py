"""The GLPFT sample builder: trajectories -> per-role ``{input, target}`` samples.

It follows the reference preprocessing literally, including where the roles' histories differ:

planner     one sample per planner turn that is followed by a caller or conclusion turn, or
            that contains ``Next: give up.``; skipped when the next caller turn is hallucinated.
            Its history holds every turn, hallucinated calls included.
caller      one sample per caller turn that is not hallucinated; the thought is the turn just
            before it. A hallucinated call is neither sampled nor added to the history.
summarizer  one sample per conclusion turn whose value is not ``none``; a ``none`` conclusion
            is not added to the history either.
backbone    one sample per planner turn followed by a call or a conclusion, or giving up; the
            target merges the thought with the call (``thought\\nAction: ...``), the conclusion
            (``thought\\nconclusion: ...``) or ``thought\\nconclusion: give up.``, and the history
            holds those merged turns instead of separate caller and conclusion turns.
            (The reference reuses a stale prompt for give-up turns; here the prompt is built from
            the history at that turn, like every other sample.)

``input`` is the filled template plus the role's cue, without the ``system: `` prefix, which
training adds; ``target`` is the turn's value, without the ``</s>`` that training appends.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import BaseModel

from umi.format.render import fill_template
from umi.format.templates import PromptRole, PromptVariant
from umi.format.tools import HALLUCINATED_NAME
from umi.format.turns import GIVE_UP_MARK, Trajectory, backbone_turn, render_backbone_history

NONE_CONCLUSION = "none"


class Sample(BaseModel):
    input: str
    target: str


def _planner(traj: Trajectory, variant: PromptVariant) -> Iterator[Sample]:
    turns = traj.conversations
    history = ""
    for i, turn in enumerate(turns):
        following = turns[i + 1] if i + 1 < len(turns) else None
        if turn.role == "planner":
            decides = GIVE_UP_MARK in turn.content or (
                following is not None and following.role in ("caller", "conclusion")
            )
            hallucinated_next = (
                following is not None and following.role == "caller" and HALLUCINATED_NAME in following.content
            )
            if decides and not hallucinated_next:
                yield Sample(input=fill_template("planner", traj.tools, history, variant=variant), target=turn.content)
        history += turn.render()


def _caller(traj: Trajectory, variant: PromptVariant) -> Iterator[Sample]:
    turns = traj.conversations
    history = ""
    for i, turn in enumerate(turns):
        if turn.role == "caller":
            if HALLUCINATED_NAME in turn.content:
                continue
            thought = turns[i - 1].content if i > 0 else ""
            yield Sample(
                input=fill_template("caller", traj.tools, history, thought=thought, variant=variant),
                target=turn.content,
            )
        history += turn.render()


def _summarizer(traj: Trajectory, variant: PromptVariant) -> Iterator[Sample]:
    history = ""
    for turn in traj.conversations:
        if turn.role == "conclusion":
            if turn.content == NONE_CONCLUSION:
                continue
            yield Sample(input=fill_template("summarizer", traj.tools, history, variant=variant), target=turn.content)
        history += turn.render()


def _backbone(traj: Trajectory, variant: PromptVariant) -> Iterator[Sample]:
    turns = traj.conversations
    for i, turn in enumerate(turns):
        if turn.role != "planner":
            continue
        merged = backbone_turn(turn, turns[i + 1] if i + 1 < len(turns) else None)
        if merged is not None:
            history = render_backbone_history(turns[:i])
            yield Sample(input=fill_template("backbone", traj.tools, history, variant=variant), target=merged)


_BUILDERS = {"planner": _planner, "caller": _caller, "summarizer": _summarizer, "backbone": _backbone}


def build_samples(
    trajectories: Iterable[Trajectory], role: PromptRole, variant: PromptVariant = "toolbench"
) -> list[Sample]:
    """All samples of one role, trajectory after trajectory, in order."""
    builder = _BUILDERS[role]
    return [sample for traj in trajectories for sample in builder(traj, variant)]

