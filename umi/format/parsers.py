"""Reading what the role models generate. A parser never raises on model output, whatever the
text (NULs, control characters, lone UTF-16 surrogates, megabytes), and everything it returns
serialises as UTF-8 JSON: lone surrogates in the text become U+FFFD, and arguments whose JSON
decodes to a lone surrogate (``{"q": "\\ud83d"}``) are invalid arguments like any other.

planner:    the first control phrase, checked in the order give up, conclusion, caller; the
            text is cut right after it. No phrase at all counts as ``caller`` (the reference's
            default), and the turn is completed with `` Next: caller.`` so the history keeps the
            trained shape.
caller:     the name after the last ``Action:`` (before the last ``Action Input:``), the
            arguments after the last ``Action Input:``; defaults ``none`` and ``{}``. Arguments
            are parsed as JSON when they are a JSON object, otherwise kept raw and flagged.
summarizer: the text after the last ``conclusion:`` when present, else all of it.
backbone:   one model for every role: ``conclusion: give up``, ``conclusion: <answer>`` or a
            call (``Action:`` / ``Action Input:``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel

from umi.format.turns import END_OF_TURN, caller_turn_content

Decision = Literal["caller", "conclusion", "give_up"]

# Checked in this order; the period is optional in what the model writes.
_CONTROL_PHRASES: tuple[tuple[Decision, str], ...] = (
    ("give_up", "Next: give up"),
    ("conclusion", "Next: conclusion"),
    ("caller", "Next: caller"),
)
NEXT_SUFFIX: dict[Decision, str] = {
    "caller": "Next: caller.",
    "conclusion": "Next: conclusion.",
    "give_up": "Next: give up.",
}
NO_NAME = "none"
NO_ARGUMENTS = "{}"


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with each lone UTF-16 surrogate (which UTF-8 cannot encode) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)


def cut_at_end_of_turn(text: str) -> str:
    """Generation stops at ``</s>``; anything a server returned after it is not the turn's."""
    index = text.find(END_OF_TURN)
    return text if index < 0 else text[:index]


class PlannerOutput(BaseModel):
    thought: str
    next: Decision
    text: str  # the planner turn as it goes into the history, ending in "Next: <x>."
    raw: str


def parse_planner(generated: str) -> PlannerOutput:
    generated = valid_unicode(generated)
    raw = cut_at_end_of_turn(generated)
    for decision, phrase in _CONTROL_PHRASES:
        start = raw.find(phrase)
        if start < 0:
            continue
        end = start + len(phrase)
        if raw[end : end + 1] == ".":
            end += 1
        text = raw[:end]
        if not text.endswith("."):
            text += "."
        return PlannerOutput(thought=raw[:start].strip(), next=decision, text=text, raw=generated)
    thought = raw.strip()
    # The trained shape of a planner turn is "<thought>\n Next: caller." (or " Next: caller.").
    text = (thought + "\n" if thought else "") + " " + NEXT_SUFFIX["caller"]
    return PlannerOutput(thought=thought, next="caller", text=text, raw=generated)


class CallerOutput(BaseModel):
    name: str
    arguments: dict[str, Any] | None  # the parsed JSON object, None when not valid
    arguments_raw: str
    valid: bool  # the arguments are a JSON object
    hallucinated: bool  # a name that is not among the tools (and not "none")
    error: str | None = None
    text: str  # the caller turn as it goes into the history
    raw: str


def _parse_arguments(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, f"arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, f"arguments must be a JSON object, got {type(value).__name__}"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return None, "arguments are not valid Unicode: a \\u escape names a lone UTF-16 surrogate"
    except (ValueError, RecursionError) as exc:
        return None, f"arguments cannot be used: {exc}"
    return value, None


def parse_caller(generated: str, tool_names: Collection[str] | None = None) -> CallerOutput:
    generated = valid_unicode(generated)
    raw = cut_at_end_of_turn(generated)
    input_at = raw.rfind("Action Input:")
    arguments_raw = raw[input_at + len("Action Input:") :].strip() if input_at >= 0 else NO_ARGUMENTS
    head = raw[:input_at] if input_at >= 0 else raw
    action_at = head.rfind("Action:")
    if action_at < 0 and input_at >= 0:
        # "Action:" only after the arguments: take the last one anywhere.
        head, action_at = raw, raw.rfind("Action:")
    if action_at >= 0:
        name = head[action_at + len("Action:") :]
        cut = name.find("Action Input:")
        name = (name[:cut] if cut >= 0 else name).strip() or NO_NAME
    else:
        name = NO_NAME
    arguments, error = _parse_arguments(arguments_raw)
    hallucinated = tool_names is not None and name != NO_NAME and name not in tool_names
    if name == NO_NAME and error is None:
        error = "no Action in the output"
    return CallerOutput(
        name=name,
        arguments=arguments,
        arguments_raw=arguments_raw,
        valid=arguments is not None,
        hallucinated=hallucinated,
        error=error,
        text=caller_turn_content(name, arguments_raw),
        raw=generated,
    )


class SummarizerOutput(BaseModel):
    answer: str
    raw: str


def parse_summarizer(generated: str) -> SummarizerOutput:
    generated = valid_unicode(generated)
    raw = cut_at_end_of_turn(generated)
    at = raw.rfind("conclusion:")
    answer = raw[at + len("conclusion:") :] if at >= 0 else raw
    return SummarizerOutput(answer=answer.strip(), raw=generated)


class BackboneOutput(BaseModel):
    thought: str
    next: Decision
    call: CallerOutput | None = None
    answer: str | None = None
    raw: str


_GIVE_UP = re.compile(r"conclusion:\s*give up", re.IGNORECASE)


def parse_backbone(generated: str, tool_names: Collection[str] | None = None) -> BackboneOutput:
    generated = valid_unicode(generated)
    raw = cut_at_end_of_turn(generated)
    at = raw.find("conclusion:")
    if _GIVE_UP.search(raw):
        return BackboneOutput(thought=raw[:at].strip(), next="give_up", raw=generated)
    if at >= 0:
        answer = parse_summarizer(raw).answer
        return BackboneOutput(thought=raw[:at].strip(), next="conclusion", answer=answer, raw=generated)
    action_at = raw.find("Action:")
    thought = (raw[:action_at] if action_at >= 0 else raw).strip()
    call = parse_caller(raw, tool_names)
    return BackboneOutput(thought=thought, next="caller", call=call, raw=generated)
