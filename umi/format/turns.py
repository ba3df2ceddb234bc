"""Typed conversation turns and trajectories, and how history renders into a prompt.

A turn is ``{"role": R, "content": str}`` with R one of ``user``, ``planner``, ``caller``,
``observation``, ``conclusion``. The trajectory files of the reference use
``{"from": F, "value": str}`` with ``assistant`` for the planner; both spellings are accepted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from umi.format.tools import HALLUCINATED_NAME, ToolDoc

Role = Literal["user", "planner", "caller", "observation", "conclusion"]

# Names as they appear in the rendered history (and in trajectory files).
HISTORY_PREFIX: dict[str, str] = {
    "user": "user: ",
    "planner": "assistant: ",
    "caller": "caller: ",
    "observation": "observation: ",
    "conclusion": "conclusion: ",
}
END_OF_TURN = "</s>"
_FILE_ROLE = {"assistant": "planner"}


class Turn(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    role: Role = Field(validation_alias=AliasChoices("role", "from"))
    content: str = Field(validation_alias=AliasChoices("content", "value"))

    @field_validator("role", mode="before")
    @classmethod
    def _file_role(cls, value: Any) -> Any:
        return _FILE_ROLE.get(value, value) if isinstance(value, str) else value

    def render(self) -> str:
        """One turn of ``{history}``. An observation carries no ``</s>``."""
        end = "" if self.role == "observation" else END_OF_TURN
        return HISTORY_PREFIX[self.role] + self.content + end

    @property
    def is_hallucinated_call(self) -> bool:
        return self.role == "caller" and HALLUCINATED_NAME in self.content


def render_history(turns: Iterable[Turn]) -> str:
    """The turns concatenated with no separator."""
    return "".join(t.render() for t in turns)


GIVE_UP_MARK = "Next: give up."


def backbone_turn(planner: Turn, following: Turn | None) -> str | None:
    """The single model's turn for a planner turn: the thought merged with what follows it.

    ``<thought>\nAction: ...`` (a call), ``<thought>\nconclusion: <answer>`` or
    ``<thought>\nconclusion: give up.``; None when the planner turn decides nothing.
    """
    if GIVE_UP_MARK in planner.content:
        return planner.content.replace(GIVE_UP_MARK, "").strip() + "\nconclusion: give up."
    if following is not None and following.role == "caller":
        return planner.content.replace("Next: caller.", "").strip() + "\n" + following.content
    if following is not None and following.role == "conclusion":
        return planner.content.replace("Next: conclusion.", "").strip() + "\nconclusion: " + following.content
    return None


def render_backbone_history(turns: Sequence[Turn]) -> str:
    """History as the single model (backbone) was trained on it: caller and conclusion turns
    live inside the planner turn before them (see :func:`backbone_turn`)."""
    history = ""
    for i, turn in enumerate(turns):
        if turn.role in ("user", "observation"):
            history += turn.render()
        elif turn.role == "planner":
            following = turns[i + 1] if i + 1 < len(turns) else None
            merged = backbone_turn(turn, following)
            history += HISTORY_PREFIX["planner"] + (turn.content if merged is None else merged) + END_OF_TURN
    return history


def caller_turn_content(name: str, arguments: str | dict[str, Any]) -> str:
    """The text of a caller turn: ``Action: <name>\\nAction Input: <json>``; arguments given as a
    dict keep their characters (``"Kraków"``, not a ``\\u`` escape): the text a model copies from
    the question."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f"Action: {name}\nAction Input: {raw}"


class Trajectory(BaseModel):
    """One entry of a trajectory file (GLPFT stage-2 data)."""

    tools: list[ToolDoc]
    instruction: str = ""
    conversations: list[Turn]

    def tool_names(self) -> list[str]:
        return [t.Name for t in self.tools]


def last_planner_turn(turns: Sequence[Turn]) -> Turn | None:
    for turn in reversed(turns):
        if turn.role == "planner":
            return turn
    return None
