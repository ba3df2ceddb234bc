"""Tool documents (``ToolDoc``) as the alpha-UMi models read them, and conversions into them.

A ToolDoc is ``{"Name": str, "function": str, "input": {arg: "type, description"}}``.
It is rendered with ``json.dumps`` in the key order it was given, so ``ToolDoc`` remembers
the order of the mapping it was validated from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

MAX_NAME_CHARS = 64
MAX_FUNCTION_CHARS = 256
HALLUCINATED_NAME = "invalid_hallucination_function_name"

_TOOLDOC_KEYS = ("Name", "function", "input")


class ToolDoc(BaseModel):
    """One tool as the role models see it. Unknown keys are kept and rendered too."""

    model_config = ConfigDict(extra="allow")

    Name: str = Field(min_length=1)
    function: str = ""
    input: dict[str, Any] = Field(default_factory=dict)

    _key_order: tuple[str, ...] = PrivateAttr(default=_TOOLDOC_KEYS)

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


def cut_function(description: str) -> str:
    return description[:MAX_FUNCTION_CHARS]


# --------------------------------------------------------------------------- OpenAI tools


class FunctionSpec(BaseModel):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    strict: bool | None = None


class OpenAITool(BaseModel):
    """An OpenAI-style function tool: ``{"type": "function", "function": {...}}``."""

    type: Literal["function"] = "function"
    function: FunctionSpec


def _schema_type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        names = [str(k) for k in kind if k != "null"] or ["null"]
        return " or ".join(names)
    if isinstance(kind, str):
        if kind == "array" and isinstance(schema.get("items"), Mapping):
            return f"array of {_schema_type(schema['items'])}"
        return kind
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            names = [_schema_type(o) for o in options if isinstance(o, Mapping)]
            names = [n for n in names if n != "null"]
            if names:
                return " or ".join(dict.fromkeys(names))
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        first = schema["enum"][0]
        return {bool: "boolean", int: "integer", float: "number"}.get(type(first), "string")
    if "properties" in schema:
        return "object"
    return "string"


def _schema_description(schema: Mapping[str, Any]) -> str:
    """The description, then (only when the schema has them) enum values and nested fields."""
    parts = [str(schema.get("description", "")).strip()]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        parts.append("One of: " + ", ".join(json.dumps(v) for v in enum) + ".")
    target = schema
    if isinstance(schema.get("items"), Mapping):
        target = schema["items"]
    props = target.get("properties")
    if isinstance(props, Mapping) and props:
        fields = [
            f"{name} ({_schema_type(sub)}{', ' + _schema_description(sub) if _schema_description(sub) else ''})"
            for name, sub in props.items()
            if isinstance(sub, Mapping)
        ]
        parts.append("Fields: " + "; ".join(fields) + ".")
    return " ".join(p for p in parts if p)


def tooldoc_from_openai(tool: OpenAITool | Mapping[str, Any]) -> ToolDoc:
    """Map an OpenAI function tool to a ToolDoc.

    ``input[arg]`` is ``"<type>, <description>"`` for each property, in schema order. A plain
    property renders exactly as ToolBench's did (``"string, The city"``); enums add
    ``One of: ...`` and nested objects add ``Fields: ...`` to the description. The name keeps
    its last 64 characters, the description its first 256.
    """
    spec = tool if isinstance(tool, OpenAITool) else OpenAITool.model_validate(tool)
    fn = spec.function
    props = fn.parameters.get("properties") or {}
    inputs: dict[str, str] = {}
    if isinstance(props, Mapping):
        for arg, schema in props.items():
            schema = schema if isinstance(schema, Mapping) else {}
            inputs[str(arg)] = f"{_schema_type(schema)}, {_schema_description(schema)}"
    return ToolDoc(Name=cut_name(fn.name), function=cut_function(fn.description), input=inputs)


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


def to_tooldocs(tools: Iterable[ToolDoc | OpenAITool | ToolBenchAPI | Mapping[str, Any]]) -> list[ToolDoc]:
    """Accept ToolDocs, OpenAI function tools or ToolBench API docs, in any mix."""
    docs: list[ToolDoc] = []
    for tool in tools:
        if isinstance(tool, ToolDoc):
            docs.append(tool)
        elif isinstance(tool, OpenAITool):
            docs.append(tooldoc_from_openai(tool))
        elif isinstance(tool, ToolBenchAPI):
            docs.append(tooldoc_from_toolbench(tool))
        elif isinstance(tool, Mapping) and tool.get("type") == "function" and "function" in tool:
            docs.append(tooldoc_from_openai(tool))
        elif isinstance(tool, Mapping) and "api_name" in tool and "tool_name" in tool:
            docs.append(tooldoc_from_toolbench(tool))
        else:
            docs.append(ToolDoc.model_validate(tool))
    return docs
