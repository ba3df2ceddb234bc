"""Filling the templates: ``{doc}``, ``{tool_names}``, ``{history}``, ``{thought}``.

The placeholders are substituted one after the other with ``str.replace`` in the order the
reference preprocessing used (doc, tool names, history, thought), so even a tool description
that contains a literal ``{history}`` renders exactly as it did in training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from umi.format.templates import (
    CUES,
    DEFAULT_SYSTEM_PREFIX,
    PromptRole,
    PromptVariant,
    template,
)
from umi.format.tools import ToolDoc
from umi.format.turns import Turn, render_backbone_history, render_history


def render_doc(tools: Iterable[ToolDoc]) -> str:
    """Each tool's ``json.dumps`` followed by a newline."""
    return "".join(t.render() + "\n" for t in tools)


def render_tool_names(tools: Iterable[ToolDoc]) -> str:
    return ", ".join(t.Name for t in tools)


def fill_template(
    role: PromptRole,
    tools: Sequence[ToolDoc],
    history: str,
    thought: str = "",
    variant: PromptVariant = "toolbench",
) -> str:
    """The template with its placeholders filled and the role's cue appended (no system prefix).

    This is the ``input`` of a GLPFT sample.
    """
    text = template(role, variant)
    text = text.replace("{doc}", render_doc(tools)).replace("{tool_names}", render_tool_names(tools))
    text = text.replace("{history}", history)
    if role == "caller":
        text = text.replace("{thought}", thought)
    return text + CUES[role]


def role_history(role: PromptRole, history: Sequence[Turn]) -> str:
    """``{history}`` for a role: the backbone merges caller and conclusion turns into the planner turn."""
    return render_backbone_history(history) if role == "backbone" else render_history(history)


def render_prompt(
    role: PromptRole,
    tools: Sequence[ToolDoc],
    history: Sequence[Turn],
    thought: str = "",
    variant: PromptVariant = "toolbench",
    system_prefix: str = DEFAULT_SYSTEM_PREFIX,
) -> str:
    """The exact text a role model is sent: system prefix + filled template + cue.

    For the caller, ``thought`` is the planner turn that precedes the call, verbatim (still
    ending in `` Next: caller.``); that turn is normally also the last one of ``history``.
    For the backbone, caller and conclusion turns are merged into the planner turn before them,
    as the single model was trained (:func:`umi.format.turns.render_backbone_history`).
    """
    return system_prefix + fill_template(role, tools, role_history(role, history), thought, variant)
