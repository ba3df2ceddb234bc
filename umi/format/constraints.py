"""Constrained decoding: the grammar a role's generation must follow, as an llguidance Lark grammar.

One builder for every engine: vLLM takes the grammar as the request field
``structured_outputs: {"grammar": ...}`` (with ``--structured-outputs-config.backend guidance``,
so that the Lark dialect below is understood), the CPU engine's launcher
(:mod:`umi.engines.transformers_structured`) and ``umi demo quality`` apply it with
:mod:`umi.engines.grammar_mask`.

Modes (``UMI_CONSTRAINED_DECODING``; the spec of the text is docs/format.md's, from the alpha-UMi
format):

    off     no constraint
    names   caller: ``Action: `` + exactly one listed tool name + ``\\nAction Input: `` + any JSON
            object, then the end of the turn; planner: any thought, then exactly one of the
            decisions the template allows (`` Next: caller.``, `` Next: conclusion.`` and, in the
            toolbench variant only, `` Next: give up.``), then the end of the turn
    schema  as ``names``, and the caller's JSON object is valid against the tool's parameters
            schema (``ToolDoc.parameters``, an OpenAI tool's ``parameters``), with no keys besides
            the documented ones where the schema does not say (:func:`closed`); a tool without one
            (a ToolDoc or ToolBench API given as such), or whose schema llguidance cannot compile,
            takes any JSON object

The summarizer and the backbone are never constrained (:func:`role_grammar` returns None).

What the grammar allows, and the departures that matter for "a valid output is left as it is":

- the thought may not contain a control phrase (``Next: caller``, ``Next: conclusion``,
  ``Next: give up``): the planner parser takes the first one, so a turn that has one earlier is not
  read as the turn that ends with it;
- JSON: llguidance's JSON Schema compiler (docs/json_schema.md of guidance-ai/llguidance) with
  :data:`JSON_OPTIONS`: up to 16 whitespace characters between tokens (so ``{"city": "Cairo"}``
  as ``json.dumps`` writes it, and indented JSON), every string escape, ``\\u`` included
  (llguidance refuses ``\\u`` escapes by default; ``json.dumps`` writes one for every non-ASCII
  character);
  object properties are generated in the order of the schema's ``properties`` (llguidance's one
  documented departure from JSON Schema): valid arguments written in another key order are
  rewritten in schema order by the constraint. The tools' docs list the arguments in schema order,
  so the trained models write them so; ``format`` is enforced for the formats llguidance knows.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from umi.format.parsers import NEXT_SUFFIX, Decision
from umi.format.templates import PromptRole, PromptVariant
from umi.format.tools import ToolDoc

ConstraintMode = Literal["off", "names", "schema"]
CONSTRAINT_MODES: tuple[ConstraintMode, ...] = ("off", "names", "schema")
# What ``auto`` means for each role (docs/role-services.md, "Constrained decoding").
ROLE_DEFAULT_MODES: dict[PromptRole, ConstraintMode] = {
    "caller": "schema", "planner": "names", "summarizer": "off", "backbone": "off",
}
ANY_OBJECT: dict[str, Any] = {"type": "object"}
# llguidance's JSON options (its docs/json_schema.md, "x-guidance"): up to 16 whitespace characters
# between tokens (json.dumps's single spaces, ToolBench's indented JSON; not the endless blank lines a
# lost model writes), and \uXXXX escapes in strings, which llguidance refuses by default and json.dumps writes for
# every non-ASCII character (the demo corpus's caller turns: "Krak\u00f3w").
JSON_OPTIONS: dict[str, Any] = {"whitespace_pattern": r"[\x20\x0A\x0D\x09]{0,16}", "json_allow_general_unicode_escapes": True}
# The decisions each template variant asks for (docs/format.md: the toolalpaca planner has no give up).
VARIANT_DECISIONS: dict[PromptVariant, tuple[Decision, ...]] = {
    "toolbench": ("caller", "conclusion", "give_up"),
    "toolalpaca": ("caller", "conclusion"),
}
_CONTROL_PHRASES = r"Next: (caller|conclusion|give up)"


def _literal(text: str) -> str:
    """A Lark string literal for ``text`` (JSON's escapes, non-ASCII kept as it is): for the
    grammar's own fixed text."""
    return json.dumps(text, ensure_ascii=False)


def _exactly(text: str) -> str:
    """A Lark regex terminal matching exactly ``text``, whatever it holds: ASCII letters, digits
    and ``_`` as they are, every other character as ``\\x{HEX}`` (Rust regex syntax; a tool name
    may hold control characters, which Lark string literals refuse)."""
    return "/" + "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"\\x{{{ord(c):x}}}" for c in text) + "/"


@functools.lru_cache(maxsize=1024)
def _compiles(schema: str) -> bool:
    """llguidance can compile the schema (it refuses some keywords: ``patternProperties``...)."""
    import llguidance

    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema)
    except ValueError:
        return False
    return llguidance.LLMatcher.validate_grammar(grammar) == ""


_SUBSCHEMAS = ("items", "additionalItems", "contains", "not", "if", "then", "else")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "dependentSchemas")


def closed(schema: Any) -> Any:
    """``schema`` with ``"additionalProperties": false`` on every object schema that lists
    ``properties`` and says nothing of other keys: a call writes the arguments the tool documents,
    not invented ones (vLLM's ``disable_additional_properties`` option of its guidance backend does
    the same: vllm/v1/structured_output/backend_guidance.py). Other values are returned as they are."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMAS:
        if key in out:
            out[key] = closed(out[key])
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = closed(out[key])
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), Mapping):
            out[key] = {name: closed(sub) for name, sub in out[key].items()}
    if isinstance(out.get("properties"), Mapping) and "additionalProperties" not in out and "patternProperties" not in out:
        out["additionalProperties"] = False
    elif isinstance(out.get("additionalProperties"), Mapping):
        out["additionalProperties"] = closed(out["additionalProperties"])
    return out


def _schema(value: Mapping[str, Any] | None) -> str:
    """The arguments' schema as JSON, with :data:`JSON_OPTIONS` (a schema's own ``x-guidance``
    wins); any JSON object when there is none or llguidance cannot compile it (the call is then
    held to a JSON object only, not refused)."""
    if value:
        options = {**JSON_OPTIONS, **(value.get("x-guidance") or {})}
        # "type": "object" always: a schema without a type accepts any JSON value, and the
        # caller's arguments are an object (``FunctionSpec`` refuses schemas of another type).
        text = json.dumps({**closed(value), "type": "object", "x-guidance": options}, ensure_ascii=False)
        if _compiles(text):
            return text
    return json.dumps({**ANY_OBJECT, "x-guidance": JSON_OPTIONS})


def caller_grammar(tools: Sequence[ToolDoc], mode: ConstraintMode) -> str | None:
    """``Action: <one of the tools' names>\\nAction Input: <JSON object>``, nothing after.

    ``mode`` ``names``: any JSON object; ``schema``: the tool's ``parameters`` when it has them.
    None for ``off`` or an empty tool list (nothing could be valid: the model answers as it would).
    """
    if mode == "off" or not tools:
        return None
    rules = ['start: "Action: " call', "call: " + " | ".join(f"call_{i}" for i in range(len(tools)))]
    for i, tool in enumerate(tools):
        schema = tool.parameters if mode == "schema" else None
        rules.append(f"call_{i}: {_exactly(tool.Name + chr(10) + 'Action Input: ')} arguments_{i}")
        rules.append(f"arguments_{i}: %json {_schema(schema)}")
    return "\n".join(rules) + "\n"


def planner_grammar(decisions: Sequence[Decision], mode: ConstraintMode) -> str | None:
    """Any thought without a control phrase, then `` Next: <decision>.``, nothing after.

    ``names`` and ``schema`` are the same here; None for ``off``.
    """
    if mode == "off":
        return None
    if not decisions:
        raise ValueError("decisions: at least one decision is needed")
    endings = " | ".join(_literal(" " + NEXT_SUFFIX[d]) for d in decisions)
    return "\n".join([
        "start: PLAN",
        "PLAN: THOUGHT DECISION",
        f"THOUGHT: /(?s:.*)/ & ~/(?s:.*){_CONTROL_PHRASES}(?s:.*)/",
        f"DECISION: {endings}",
    ]) + "\n"


def role_grammar(role: PromptRole, tools: Sequence[ToolDoc], mode: ConstraintMode, variant: PromptVariant = "toolbench") -> str | None:
    """The grammar of ``role``'s turn in ``mode``; None when it is not constrained."""
    if role == "caller":
        return caller_grammar(tools, mode)
    if role == "planner":
        return planner_grammar(VARIANT_DECISIONS[variant], mode)
    return None


def structured_outputs(grammar: str | None) -> dict[str, str] | None:
    """The request field both engines take (vLLM's ``StructuredOutputsParams``, grammar kind)."""
    return None if grammar is None else {"grammar": grammar}
