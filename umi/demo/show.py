"""A chat document (``POST /chat``'s answer) as readable lines: each step (the planner's thought and
decision, the call with its arguments, the observation, the answer), then the status."""

from __future__ import annotations

import json
from typing import Any

JSON = dict[str, Any]
OBSERVATION_CHARS = 160
TEXT_CHARS = 240  # a model that rambles still prints one readable line
LABEL = 12


def _one_line(text: str | None, limit: int | None = None) -> str:
    flat = " ".join((text or "").split())
    if limit is not None and len(flat) > limit:
        return flat[: limit - 3] + "..."
    return flat


def _arguments(value: Any) -> str:
    if isinstance(value, dict):
        return _one_line(json.dumps(value, ensure_ascii=False), TEXT_CHARS)
    return _one_line(str(value), TEXT_CHARS) if value is not None else ""


def step_line(step: JSON) -> str:
    role = step.get("role", "?")
    if role == "planner":
        decision = {"caller": "call a tool", "conclusion": "answer", "give_up": "give up"}.get(step.get("next") or "", step.get("next"))
        text = f"{_one_line(step.get('thought'), TEXT_CHARS) or '(no thought)'}  -> {decision}"
    elif role == "caller":
        text = f"{_one_line(step.get('name'), TEXT_CHARS)}({_arguments(step.get('arguments'))})"
    elif role == "observation":
        text = _one_line(step.get("content"), OBSERVATION_CHARS)
        if step.get("error"):
            text += f"   [{step['error']}]"
    elif role == "summarizer":
        text = _one_line(step.get("answer"), TEXT_CHARS)
    else:
        text = _one_line(json.dumps(step), TEXT_CHARS)
    return f"    {role:<{LABEL}}{text}"


def chat_lines(chat: JSON) -> list[str]:
    """The steps of ``chat``, one line each, and a closing line with the status and the answer."""
    lines = [step_line(s) for s in chat.get("steps", [])]
    status = chat.get("status")
    closing = f"    {'= ' + str(status):<{LABEL}}"
    if chat.get("answer"):
        closing += _one_line(chat["answer"], TEXT_CHARS)
    if chat.get("error"):
        error = chat["error"]
        closing += f"error: {error.get('type')}: {_one_line(error.get('message'), 200)}"
    return lines + [closing]
