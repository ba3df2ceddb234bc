"""The alpha-UMi prompt templates, byte for byte as the released checkpoints were trained.

The misspellings ("assess", "Base on") are part of the trained text. Do not fix them.
"""

from __future__ import annotations

from typing import Literal

PromptRole = Literal["planner", "caller", "summarizer", "backbone"]
PromptVariant = Literal["toolbench", "toolalpaca"]

ROLES: tuple[PromptRole, ...] = ("planner", "caller", "summarizer", "backbone")
VARIANTS: tuple[PromptVariant, ...] = ("toolbench", "toolalpaca")

# Training prepended this to every input; the reference inference code left it out.
DEFAULT_SYSTEM_PREFIX = "system: "

_APIS = "You have assess to the following apis:\n{doc}\nThe conversation history is:\n{history}\n"
_CALL_FORMAT = (
    "Action: the name of api that should be called in this step, should be exactly in [{tool_names}],\n"
    "Action Input: the api call request."
)

_PLANNER = (
    _APIS
    + "You are the assistant to plan what to do next and whether is caller's or conclusion's turn to answer.\n"
    + "Answer with a following format:\n"
)
_PLANNER_LAST = {
    "toolbench": "The thought of the next step, followed by Next: caller or conclusion or give up.",
    "toolalpaca": "The thought of the next step, followed by Next: caller or conclusion.",
}
_CALLER = (
    _APIS
    + "The thought of this step is:\n{thought}\n"
    + "Base on the thought make an api call in the following format:\n"
    + _CALL_FORMAT
)
_SUMMARIZER = "Make a conclusion based on the conversation history:\n{history}"
_BACKBONE = (
    _APIS
    + "You should answer the action of next step in the following format:\n"
    + "The thought to solve the question,\n"
    + _CALL_FORMAT
    + "\n"
)
_BACKBONE_LAST = {
    "toolbench": "Once you think the question is finished, output conclusion: the final answer of the question or give up if you think you cannot answer this question.\n",
    "toolalpaca": "Once you think the question is finished, output conclusion: the final answer of the question.\n",
}

TEMPLATES: dict[tuple[PromptVariant, PromptRole], str] = {}
for _variant in VARIANTS:
    TEMPLATES[(_variant, "planner")] = _PLANNER + _PLANNER_LAST[_variant]
    TEMPLATES[(_variant, "caller")] = _CALLER
    TEMPLATES[(_variant, "summarizer")] = _SUMMARIZER
    TEMPLATES[(_variant, "backbone")] = _BACKBONE + _BACKBONE_LAST[_variant]

# The generation cue that follows the filled template.
CUES: dict[PromptRole, str] = {
    "planner": " assistant: ",
    "backbone": " assistant: ",
    "caller": " caller: ",
    "summarizer": " conclusion: ",
}


def template(role: PromptRole, variant: PromptVariant = "toolbench") -> str:
    try:
        return TEMPLATES[(variant, role)]
    except KeyError:
        raise ValueError(f"unknown role/variant {role!r}/{variant!r}") from None
