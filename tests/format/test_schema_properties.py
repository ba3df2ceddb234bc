"""Property-based: any JSON Schema converts without raising into one JSON object per line, the
same every time, and any set of tool names maps to distinct names that parse back to themselves."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from umi.format import caller_turn_content, parse_backbone, parse_caller, render_doc, to_tooldocs, tooldoc_from_openai
from umi.format.tools import MAX_NAME_CHARS, model_names

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DEFS = ("A", "B", "C")
TYPES = st.sampled_from(["string", "integer", "number", "boolean", "null", "object", "array", "any"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
REFS = st.sampled_from([f"#/$defs/{d}" for d in DEFS] + ["#/definitions/A", "#/$defs/Missing", "https://example.invalid/s.json"])
NAMES = st.text(min_size=1, max_size=12)

LEAF = st.booleans() | st.fixed_dictionaries(
    {},
    optional={
        "type": TYPES | st.lists(TYPES, max_size=3),
        "description": st.text(max_size=30),
        "enum": st.lists(JSON_VALUES, min_size=1, max_size=4),
        "const": JSON_VALUES,
        "format": st.sampled_from(["date-time", "uri", "email"]),
        "default": JSON_VALUES,
        "$ref": REFS,
    },
)


def _composite(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {},
        optional={
            "type": TYPES | st.lists(TYPES, max_size=3),
            "description": st.text(max_size=30),
            "properties": st.dictionaries(NAMES, children, max_size=4),
            "items": children | st.lists(children, max_size=3),
            "prefixItems": st.lists(children, max_size=3),
            "additionalProperties": children,
            "anyOf": st.lists(children, max_size=3),
            "oneOf": st.lists(children, max_size=3),
            "allOf": st.lists(children, max_size=3),
            "enum": st.lists(JSON_VALUES, min_size=1, max_size=3),
            "$ref": REFS,
        },
    )


SCHEMAS = st.recursive(LEAF, _composite, max_leaves=12)
PARAMETERS = st.fixed_dictionaries(
    {"properties": st.dictionaries(NAMES, SCHEMAS, max_size=5)},
    optional={
        "type": st.just("object"),
        "$defs": st.fixed_dictionaries({}, optional={d: SCHEMAS for d in DEFS}),
        "definitions": st.fixed_dictionaries({}, optional={"A": SCHEMAS}),
        "anyOf": st.lists(SCHEMAS, max_size=2),
        "allOf": st.lists(SCHEMAS, max_size=2),
        "required": st.lists(NAMES, max_size=3),
    },
)


@PROPERTIES
@given(parameters=PARAMETERS, name=NAMES, description=st.text(max_size=40))
def test_any_schema_converts_to_one_json_object_per_line_the_same_every_time(
    parameters: dict[str, Any], name: str, description: str
) -> None:
    tool = {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}
    doc = tooldoc_from_openai(tool)
    line = doc.render()
    assert "\n" not in line and json.loads(line) == doc.doc_dict()
    assert render_doc([doc, doc]).split("\n") == [line, line, ""]
    assert set(parameters["properties"]) <= set(doc.input)  # every argument, whatever else the root adds
    assert all(isinstance(v, str) and ", " in v for v in doc.input.values())
    assert tooldoc_from_openai(json.loads(json.dumps(tool))).render() == line


@PROPERTIES
@given(names=st.lists(st.text(min_size=1, max_size=90), min_size=1, max_size=8))
def test_every_name_is_distinct_short_and_parses_back_to_itself(names: list[str]) -> None:
    seen = model_names(names)
    assert len(set(seen)) == len(seen) == len(names)
    for name in seen:
        assert 0 < len(name) <= MAX_NAME_CHARS
        call = parse_caller(caller_turn_content(name, "{}"), seen)
        assert call.name == name and not call.hallucinated
        backbone = parse_backbone("Thought.\n" + caller_turn_content(name, "{}"), seen)
        assert backbone.call is not None and backbone.call.name == name


@PROPERTIES
@given(names=st.lists(st.text(min_size=1, max_size=90), min_size=1, max_size=8, unique=True))
def test_the_role_services_name_tools_as_the_orchestrator_maps_them(names: list[str]) -> None:
    tools = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in names]
    assert [d.Name for d in to_tooldocs(tools)] == model_names(names)
