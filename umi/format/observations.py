"""Observation text: how a tool's answer, or its failure, enters the history.

Shared by the orchestrator (which records observations) and the demo corpus (which must train
the models on the very text the orchestrator records). These never raise, whatever the text, and
what they return always encodes as UTF-8 (lone surrogates become U+FFFD, ``valid_unicode``).
"""

from __future__ import annotations

import json

from umi.format.parsers import valid_unicode

DEFAULT_OBSERVATION_MAX_CHARS = 1024


def cut_observation(text: str, max_chars: int = DEFAULT_OBSERVATION_MAX_CHARS) -> str:
    """Observations keep their first ``max_chars`` characters, then ``...`` (as the reference)."""
    text = valid_unicode(text)
    return text if len(text) <= max_chars else text[:max_chars] + "..."


def error_observation(message: str, response: str = "") -> str:
    """An error observation in the reference's (ToolBench's) shape: the JSON object
    ``{"error": message, "response": response}``."""
    return json.dumps({"error": valid_unicode(message), "response": valid_unicode(response)}, ensure_ascii=False)


def unknown_tool_observation(name: str) -> str:
    """The caller named a tool that is not in the request (as the reference's environment says)."""
    return error_observation(f"No such function name: {name}")


def invalid_arguments_observation(error: str | None) -> str:
    return error_observation(f"Tool input parse error: {error or 'the arguments are not a JSON object'}")
