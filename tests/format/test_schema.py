"""JSON Schema -> ToolDoc input: every construct tool schemas use in practice reaches the models.

The fixtures are small schemas written for these tests, one per construct (or fault) of the kind
pydantic, ``openai.pydantic_function_tool``, FastMCP servers and OpenAPI documents emit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from umi.format import tooldoc_from_openai
from umi.format.schema import MAX_DEPTH, schema_input
from umi.format.tools import OpenAITool

SPOT = {"type": "object", "properties": {"street": {"type": "string"}, "town": {"type": "string"}}}
SPOT_FIELDS = "Fields: street (string); town (string)."


def fn(parameters: dict[str, Any], name: str = "book_delivery") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def test_refs_to_defs_render_exactly_as_the_inline_schema() -> None:
    by_ref = {
        "$defs": {"Spot": SPOT, "Speed": {"type": "string", "enum": ["express", "standard"]}},
        "properties": {
            "drop": {"$ref": "#/$defs/Spot"},
            "stops": {"type": "array", "items": {"$ref": "#/$defs/Spot"}},
            "speed": {"$ref": "#/$defs/Speed"},
        },
    }
    inline = {
        "properties": {
            "drop": SPOT,
            "stops": {"type": "array", "items": SPOT},
            "speed": {"type": "string", "enum": ["express", "standard"]},
        }
    }
    expected = {
        "drop": f"object, {SPOT_FIELDS}",
        "stops": f"array of object, {SPOT_FIELDS}",
        "speed": 'string, One of: "express", "standard".',
    }
    assert schema_input(by_ref) == schema_input(inline) == expected
    assert tooldoc_from_openai(fn(by_ref)).render() == tooldoc_from_openai(fn(inline)).render()


@pytest.mark.parametrize(
    ("defs_key", "pointer"),
    [("definitions", "#/definitions/Spot"), ("components", "#/components/schemas/Spot")],
)
def test_definitions_and_openapi_components_resolve_too(defs_key: str, pointer: str) -> None:
    holder = {"Spot": SPOT} if defs_key == "definitions" else {"schemas": {"Spot": SPOT}}
    schema = {defs_key: holder, "properties": {"drop": {"$ref": pointer, "description": "Where to"}}}
    assert schema_input(schema) == {"drop": f"object, Where to {SPOT_FIELDS}"}


def test_a_refs_own_description_wins_over_the_targets() -> None:
    schema = {
        "$defs": {"Spot": {**SPOT, "description": "A place."}},
        "properties": {"a": {"$ref": "#/$defs/Spot"}, "b": {"$ref": "#/$defs/Spot", "description": "The pickup."}},
    }
    assert schema_input(schema) == {"a": f"object, A place. {SPOT_FIELDS}", "b": f"object, The pickup. {SPOT_FIELDS}"}


def test_enum_values_inside_array_items_are_kept() -> None:
    schema = {"properties": {"toppings": {"type": "array", "items": {"type": "string", "enum": ["olive", "basil"]}, "description": "Extras"}}}
    assert schema_input(schema) == {"toppings": 'array of string, Extras One of: "olive", "basil".'}


def test_enums_and_fields_survive_any_depth_of_arrays() -> None:
    grid = {"type": "array", "items": {"type": "array", "items": {"type": "integer", "enum": [0, 1]}}}
    rows = {"type": "array", "items": {"type": "array", "items": SPOT}}
    assert schema_input({"properties": {"grid": grid, "rows": rows}}) == {
        "grid": "array of array of integer, One of: 0, 1.",
        "rows": f"array of array of object, {SPOT_FIELDS}",
    }


def test_nullable_unions_read_as_their_other_member_with_its_fields() -> None:
    # pydantic's Optional[Spot] = None and Optional[Literal[...]]
    schema = {
        "$defs": {"Spot": SPOT},
        "properties": {
            "drop": {"anyOf": [{"$ref": "#/$defs/Spot"}, {"type": "null"}], "default": None, "description": "Where"},
            "speed": {"anyOf": [{"enum": ["fast", "slow"], "type": "string"}, {"type": "null"}]},
            "note": {"type": ["string", "null"]},
        },
    }
    assert schema_input(schema) == {
        "drop": f"object, Where {SPOT_FIELDS}",
        "speed": 'string, One of: "fast", "slow".',
        "note": "string, ",
    }


def test_array_items_that_are_unions_of_objects_list_each_variant_with_its_fields() -> None:
    card = {"type": "object", "description": "A card.", "properties": {"number": {"type": "string"}}}
    bank = {"type": "object", "properties": {"iban": {"type": "string"}, "kind": {"const": "sepa"}}}
    schema = {"properties": {"payments": {"type": "array", "items": {"anyOf": [card, bank]}}}}
    assert schema_input(schema) == {
        "payments": "array of object, Options: (1) object, A card. Fields: number (string). "
        '(2) object, Fields: iban (string); kind (string, One of: "sepa".).'
    }


def test_a_discriminated_union_under_an_object_keeps_every_variants_values() -> None:
    auto = {"type": "object", "properties": {"type": {"type": "string", "enum": ["auto"]}}}
    fixed = {"type": "object", "properties": {"type": {"type": "string", "enum": ["static"]}, "size": {"type": "integer"}}}
    schema = {"properties": {"chunking": {"type": "object", "description": "How.", "oneOf": [auto, fixed]}}}
    rendered = schema_input(schema)["chunking"]
    assert rendered == (
        'object, How. Options: (1) object, Fields: type (string, One of: "auto".). '
        '(2) object, Fields: type (string, One of: "static".); size (integer).'
    )


def test_an_object_with_fields_and_variants_shows_both() -> None:
    schema = {"properties": {"q": {"type": "object", "properties": {"id": {"type": "string"}},
                                    "oneOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"b": {"type": "boolean"}}}]}}}  # fmt: skip
    assert schema_input(schema) == {
        "q": "object, Fields: id (string). Options: (1) object, Fields: a (integer). (2) object, Fields: b (boolean)."
    }


def test_unions_of_constants_merge_into_one_list_with_their_descriptions() -> None:
    schema = {"properties": {"fruit": {"oneOf": [{"const": "a", "description": "Apple"}, {"const": "b"}], "description": "Pick"}}}
    assert schema_input(schema) == {"fruit": 'string, Pick One of: "a" (Apple), "b".'}


def test_plain_unions_join_their_types() -> None:
    schema = {"properties": {"id": {"anyOf": [{"type": "integer"}, {"type": "string"}]}, "ts": {"type": ["string", "array"], "items": {"type": "integer"}}}}
    assert schema_input(schema) == {"id": "integer or string, ", "ts": "string or array of integer, "}


def test_all_of_members_are_merged() -> None:
    # pydantic v1 put a description beside a reference this way
    schema = {
        "definitions": {"Spot": SPOT},
        "properties": {
            "drop": {"allOf": [{"$ref": "#/definitions/Spot"}], "description": "Where"},
            "full": {"allOf": [{"$ref": "#/definitions/Spot"}, {"properties": {"zip": {"type": "string", "format": "postal"}}}]},
        },
    }
    assert schema_input(schema) == {
        "drop": f"object, Where {SPOT_FIELDS}",
        "full": "object, Fields: street (string); town (string); zip (string, Format: postal.).",
    }


def test_recursive_references_are_expanded_once() -> None:
    node = {"type": "object", "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}
    schema = {"$defs": {"Node": node}, "properties": {"tree": {"$ref": "#/$defs/Node", "description": "The tree"}}}
    assert schema_input(schema) == {
        "tree": "object, The tree Fields: name (string); children (array of object, Recursive: same fields as tree.)."
    }


def test_mutually_recursive_references_name_the_path_first_expanded() -> None:
    schema = {
        "$defs": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
        },
        "properties": {"root": {"$ref": "#/$defs/A"}},
    }
    assert schema_input(schema) == {"root": "object, Fields: b (object, Fields: a (object, Recursive: same fields as root.).)."}


def test_the_root_may_be_a_reference_and_its_union_members_add_arguments() -> None:
    schema = {
        "$ref": "#/$defs/Args",
        "$defs": {"Args": {"type": "object", "properties": {"city": {"type": "string"}},
                           "anyOf": [{"properties": {"zip": {"type": "string"}}}, {"properties": {"zip": {"type": "integer"}, "n": {"type": "integer"}}}]}},
    }  # fmt: skip
    assert schema_input(schema) == {"city": "string, ", "zip": "string or integer, ", "n": "integer, "}


def test_formats_constants_and_maps_are_notes() -> None:
    schema = {
        "properties": {
            "when": {"type": "string", "format": "date-time", "description": "Start"},
            "kind": {"const": 3},
            "counts": {"type": "object", "additionalProperties": {"type": "integer", "description": "per day"}},
        }
    }
    assert schema_input(schema) == {
        "when": "string, Start Format: date-time.",
        "kind": "integer, One of: 3.",
        "counts": "object, Values: integer, per day.",
    }


def test_defaults_examples_and_bounds_are_not_rendered() -> None:
    plain = {"type": "integer", "description": "How many"}
    dressed = {**plain, "default": 10, "examples": [3], "minimum": 1, "maximum": 50}
    assert schema_input({"properties": {"n": dressed}}) == schema_input({"properties": {"n": plain}}) == {"n": "integer, How many"}


def test_argument_descriptions_keep_their_last_256_characters_as_the_reference() -> None:
    text = "a" * 100 + "b" * 256
    assert schema_input({"properties": {"x": {"type": "string", "description": text}}}) == {"x": "string, " + "b" * 256}


def test_enum_values_are_written_unescaped_so_the_doc_escapes_them_once() -> None:
    doc = tooldoc_from_openai(fn({"properties": {"city": {"enum": ["Zürich"]}}}))
    assert doc.input == {"city": 'string, One of: "Zürich".'}
    assert '\\u00fc' in doc.render() and '\\\\u00fc' not in doc.render()


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"x": {"$ref": "https://example.invalid/other.json#/X"}}},  # another document
        {"properties": {"x": {"$ref": "#/$defs/Missing"}}},
        {"properties": {"x": {"$ref": 5}}},
        {"$id": 7, "properties": {"x": {"$ref": "#/$defs/X"}}},
        {"$schema": ["not", "a", "uri"], "properties": {"x": {"type": "string"}}},
    ],
)
def test_unresolvable_references_read_as_an_empty_schema(schema: dict[str, Any]) -> None:
    assert schema_input(schema) == {"x": "string, "}


def test_nesting_deeper_than_the_limit_renders_the_type_alone() -> None:
    schema: dict[str, Any] = {"type": "string", "enum": ["deep"]}
    for _ in range(MAX_DEPTH + 5):
        schema = {"type": "object", "properties": {"n": schema}}
    rendered = schema_input({"properties": {"top": schema}})["top"]
    assert rendered.count("Fields:") == MAX_DEPTH + 1 and '"deep"' not in rendered


@pytest.mark.parametrize("kind", ["array", "string", ["array", "null"]])
def test_parameters_that_are_not_an_object_are_refused_naming_the_field(kind: Any) -> None:
    with pytest.raises(ValidationError) as err:
        OpenAITool.model_validate(fn({"type": kind, "items": {"type": "string"}}))
    (error,) = err.value.errors()
    assert error["loc"] == ("function", "parameters") and "JSON object" in error["msg"]


def test_object_parameters_and_untyped_ones_are_accepted() -> None:
    for parameters in ({}, {"type": "object"}, {"type": ["object", "null"]}, {"properties": {}}):
        assert OpenAITool.model_validate(fn(parameters)).function.parameters == parameters


def test_the_conversion_is_deterministic() -> None:
    schema = {"$defs": {"Spot": SPOT}, "properties": {"a": {"anyOf": [{"$ref": "#/$defs/Spot"}, {"type": "integer"}]}}}
    renders = {json.dumps(schema_input(json.loads(json.dumps(schema)))) for _ in range(5)}
    assert len(renders) == 1


def test_a_long_definition_is_written_out_once_per_tool_and_referred_to_after() -> None:
    big = {"type": "object", "properties": {f"field_{i}": {"type": "string", "description": "x" * 40} for i in range(12)}}
    schema = {"$defs": {"Big": big}, "properties": {"a": {"$ref": "#/$defs/Big"}, "b": {"type": "array", "items": {"$ref": "#/$defs/Big"}}}}
    rendered = schema_input(schema)
    assert rendered["a"].count("field_") == 12
    assert rendered["b"] == "array of object, Same fields as a."
