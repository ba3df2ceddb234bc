"""Tool documents (``ToolDoc``) as the alpha-UMi models read them, and conversions into them.

A ToolDoc is ``{"Name": str, "function": str, "input": {arg: "type, description"}}``.
It is rendered with ``json.dumps`` in the key order it was given, so ``ToolDoc`` remembers
the order of the mapping it was validated from.
"""

from __future__ import annotations

from collections import OrderedDict

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from umi.format.schema import schema_input

MAX_NAME_CHARS = 64
MAX_FUNCTION_CHARS = 256
HALLUCINATED_NAME = "invalid_hallucination_function_name"

_TOOLDOC_KEYS = ("Name", "function", "input")


class ToolDoc(BaseModel):
    """One tool as the role models see it. Unknown keys are kept and rendered too.

    ``parameters`` is the JSON Schema of the call's arguments when the tool came with one (an
    OpenAI function tool's ``parameters``); it is not rendered (the models read ``input``) and
    constrained decoding (:mod:`umi.format.constraints`) holds the caller's arguments to it.
    """

    model_config = ConfigDict(extra="allow")

    Name: str = Field(min_length=1)
    function: str = ""
    input: dict[str, Any] = Field(default_factory=dict)

    _key_order: tuple[str, ...] = PrivateAttr(default=_TOOLDOC_KEYS)
    _parameters: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def parameters(self) -> dict[str, Any] | None:
        """The JSON Schema of the arguments, None when the tool gave none (a ToolDoc or ToolBench API)."""
        return self._parameters

    def with_parameters(self, parameters: Mapping[str, Any] | None) -> "ToolDoc":
        """A copy whose arguments follow ``parameters`` (a JSON Schema of an object)."""
        doc = self.model_copy()
        doc._parameters = dict(parameters) if parameters is not None else None
        return doc

    @model_validator(mode="wrap")
    @classmethod
    def _remember_key_order(cls, data: Any, handler: Any) -> "ToolDoc":
        doc = handler(data)
        if isinstance(data, Mapping):
            order = tuple(k for k in data if isinstance(k, str))
            missing = tuple(k for k in _TOOLDOC_KEYS if k not in order)
            doc._key_order = order + missing
        return doc

    def doc_dict(self) -> dict[str, Any]:
        """The mapping that ``json.dumps`` renders, keys in the order they were given."""
        values = self.model_dump()
        return {k: values[k] for k in self._key_order if k in values}

    def render(self) -> str:
        """``json.dumps`` with Python's default separators and ASCII escaping."""
        return json.dumps(self.doc_dict())


def cut_name(name: str) -> str:
    """Names longer than 64 characters keep their last 64 (ToolBench's rule)."""
    return name[-MAX_NAME_CHARS:]


# Text the output parsers look for: a name holding one would not parse back to itself.
_PARSER_MARKS = (("Action Input:", "Action Input_"), ("Action:", "Action_"), ("conclusion:", "conclusion_"), ("</s>", "<_s>"))
_NO_NAME = "tool"


def model_name(name: str, keep: int = MAX_NAME_CHARS) -> str:
    """The name the role models see and write back: a name that round-trips through the parsers.

    The parsers' marks inside it are defused (``Action:`` -> ``Action_``, ``Action Input:`` ->
    ``Action Input_``, ``conclusion:`` -> ``conclusion_``, ``</s>`` -> ``<_s>``); then the last
    ``keep`` characters are kept (ToolBench's cut) and whitespace at both ends is removed, since
    the caller parser strips it (a name whose cut begins with a space could never be called).
    A name left empty reads ``tool``.
    """
    for mark, safe in _PARSER_MARKS:
        name = name.replace(mark, safe)
    return name[-keep:].strip() or _NO_NAME


def model_names(names: Sequence[str]) -> list[str]:
    """Distinct model names for a request's tools, in order (:func:`model_name` of each).

    Tools whose names are the same after the cut: the first keeps it, each later one becomes
    ``<last 62 characters>_2`` (``_3``, ...: the first suffix not already taken by any tool).
    The role services (``to_tooldocs``) and the orchestrator's name map both use this, so a name
    the caller writes maps back to exactly one tool.
    """
    bases = [model_name(n) for n in names]
    first: dict[str, int] = {}
    for i, base in enumerate(bases):
        first.setdefault(base, i)
    used = set(bases)
    out: list[str] = []
    for i, (name, base) in enumerate(zip(names, bases, strict=True)):
        if first[base] == i:
            out.append(base)
            continue
        k = 2
        while True:
            suffix = f"_{k}"
            candidate = model_name(name, MAX_NAME_CHARS - len(suffix)) + suffix
            if candidate not in used:
                break
            k += 1
        used.add(candidate)
        out.append(candidate)
    return out


def cut_function(description: str) -> str:
    return description[:MAX_FUNCTION_CHARS]


# --------------------------------------------------------------------------- OpenAI tools


class FunctionSpec(BaseModel):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="a JSON Schema of an object: the named arguments of a call"
    )
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _an_object(cls, value: dict[str, Any]) -> dict[str, Any]:
        """A call's arguments are a JSON object (the caller's ``Action Input``): a schema whose
        ``type`` says otherwise (``"array"``) could never be satisfied, so it is refused."""
        kind = value.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if kind is not None and "object" not in kinds:
            raise ValueError(f"must describe a JSON object (the named arguments of a call), not type {json.dumps(kind)}")
        return value


class OpenAITool(BaseModel):
    """An OpenAI-style function tool: ``{"type": "function", "function": {...}}``."""

    type: Literal["function"] = "function"
    function: FunctionSpec


def tooldoc_from_openai(tool: OpenAITool | Mapping[str, Any]) -> ToolDoc:
    """Map an OpenAI function tool to a ToolDoc.

    ``input[arg]`` is ``"<type>, <description>"`` for each property, in schema order, built by
    :func:`umi.format.schema.schema_input` (references resolved, unions, enums, nested fields and
    formats as notes after the description). A plain property renders exactly as ToolBench's did
    (``"string, The city"``). The name is :func:`model_name`'s, the description its first 256
    characters.
    """
    spec = tool if isinstance(tool, OpenAITool) else OpenAITool.model_validate(tool)
    fn = spec.function
    doc = ToolDoc(Name=model_name(fn.name), function=cut_function(fn.description), input=schema_input(fn.parameters))
    return doc.with_parameters(fn.parameters)


# --------------------------------------------------------------------------- ToolBench API docs

_TOOLBENCH_TYPES = {"NUMBER": "integer", "STRING": "string", "BOOLEAN": "boolean"}
_RESERVED_API_NAMES = {"from", "class", "return", "false", "true", "id", "and"}


def standardize(name: str) -> str:
    """ToolBench's name standardisation: non-word characters to ``_``, squeezed, lower case,
    stripped of ``_`` at both ends, and ``get_`` before a leading digit."""
    # ToolBench's character class also keeps "^" (a quirk of its regex); so do we.
    out = re.sub(r"[^\u4e00-\u9fa5a-zA-Z0-9_^]", "_", name)
    out = re.sub(r"_+", "_", out).lower().strip("_")
    if out and out[0].isdigit():
        out = "get_" + out
    return out


def _api_name(name: str) -> str:
    std = standardize(name)
    return "is_" + std if std in _RESERVED_API_NAMES else std


class ToolBenchParameter(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    type: str = "STRING"
    description: str = ""
    default: Any = ""


class ToolBenchAPI(BaseModel):
    """One API of a ToolBench tool, as in ToolBench's query files (``api_list`` entries)."""

    model_config = ConfigDict(extra="allow")
    tool_name: str
    api_name: str
    api_description: str = ""
    required_parameters: list[ToolBenchParameter] = Field(default_factory=list)
    optional_parameters: list[ToolBenchParameter] = Field(default_factory=list)


def tooldoc_from_toolbench(api: ToolBenchAPI | Mapping[str, Any]) -> ToolDoc:
    """Map a ToolBench API doc to a ToolDoc as the training data has them.

    Name: ``<api_name>_for_<tool_name>`` (both standardised), last 64 characters.
    function: ``This is the subfunction for tool "<tool>", you can use this tool.`` followed by
    ``The description of this function is: "<description>"`` when there is one (the API's own
    name replaced by the full Name, as ToolBench does), cut to 256 characters.
    input: ``"<type>, <description>"`` for the required then the optional parameters.
    """
    doc = api if isinstance(api, ToolBenchAPI) else ToolBenchAPI.model_validate(api)
    tool = standardize(doc.tool_name)
    name = cut_name(f"{_api_name(doc.api_name)}_for_{tool}")
    function = f'This is the subfunction for tool "{tool}", you can use this tool.'
    described = doc.api_description.strip()
    if described:
        described = described.replace(doc.api_name, name)
        function += f'The description of this function is: "{described}"'
    inputs: dict[str, str] = {}
    for param in [*doc.required_parameters, *doc.optional_parameters]:
        kind = _TOOLBENCH_TYPES.get(param.type, "string")
        inputs[param.name] = f"{kind}, {param.description}"
    return ToolDoc(Name=name, function=cut_function(function), input=inputs)


ToolInput = ToolDoc | OpenAITool | ToolBenchAPI | Mapping[str, Any]


def _typed(tool: ToolInput) -> ToolDoc | OpenAITool | ToolBenchAPI:
    if isinstance(tool, ToolDoc | OpenAITool | ToolBenchAPI):
        return tool
    if isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
        return OpenAITool.model_validate(tool)
    if isinstance(tool, Mapping) and "api_name" in tool and "tool_name" in tool:
        return ToolBenchAPI.model_validate(tool)
    return ToolDoc.model_validate(tool)


def _full_name(tool: ToolDoc | OpenAITool | ToolBenchAPI) -> str:
    """The name before the cut: what :func:`model_names` makes distinct."""
    if isinstance(tool, ToolDoc):
        return tool.Name
    if isinstance(tool, OpenAITool):
        return tool.function.name
    return f"{_api_name(tool.api_name)}_for_{standardize(tool.tool_name)}"


def _identity(tool: ToolDoc | OpenAITool | ToolBenchAPI) -> str:
    body = tool.doc_dict() if isinstance(tool, ToolDoc) else tool.model_dump(mode="json")
    return type(tool).__name__ + json.dumps(body, sort_keys=True)


_CONVERTED: OrderedDict[str, ToolDoc] = OrderedDict()
_CONVERTED_MAX = 4096


def _converted(tool: OpenAITool | ToolBenchAPI, key: str) -> ToolDoc:
    """The tool's doc, converted once per distinct definition: a chat sends the same tools on
    every step, and a schema with references costs milliseconds to convert (the most recently
    used ``_CONVERTED_MAX`` are kept). ``key`` is ``_identity(tool)``."""
    doc = _CONVERTED.get(key)
    if doc is None:
        doc = tooldoc_from_openai(tool) if isinstance(tool, OpenAITool) else tooldoc_from_toolbench(tool)
        _CONVERTED[key] = doc
        if len(_CONVERTED) > _CONVERTED_MAX:
            _CONVERTED.popitem(last=False)
    else:
        _CONVERTED.move_to_end(key)
    return doc


def to_tooldocs(tools: Iterable[ToolInput]) -> list[ToolDoc]:
    """Accept ToolDocs, OpenAI function tools or ToolBench API docs, in any mix.

    A tool identical to an earlier one is left out (published tool sets repeat tools); names are
    made distinct by :func:`model_names` (ToolDocs keep theirs unless another tool has it first).
    """
    typed: list[ToolDoc | OpenAITool | ToolBenchAPI] = []
    identities: list[str] = []
    seen: set[str] = set()
    for tool in tools:
        one = _typed(tool)
        identity = _identity(one)
        if identity not in seen:
            seen.add(identity)
            identities.append(identity)
            typed.append(one)
    names = model_names([_full_name(t) for t in typed])
    docs: list[ToolDoc] = []
    for tool, identity, name in zip(typed, identities, names, strict=True):
        doc = tool if isinstance(tool, ToolDoc) else _converted(tool, identity)
        if doc.Name != name:
            doc = doc.model_copy(update={"Name": name})
        docs.append(doc)
    return docs
