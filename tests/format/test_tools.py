"""ToolDoc conversions: OpenAI function tools and ToolBench API docs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from umi.format import ToolDoc, to_tooldocs, tooldoc_from_openai, tooldoc_from_toolbench
from umi.format.tools import standardize


def test_openai_tool_flat_properties_render_like_toolbench() -> None:
    doc = tooldoc_from_openai(
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string", "description": "City name"}, "days": {"type": "integer"}},
                    "required": ["city"],
                },
            },
        }
    )
    assert doc.render() == (
        '{"Name": "get_weather", "function": "Weather by city", '
        '"input": {"city": "string, City name", "days": "integer, "}}'
    )


def test_openai_tool_enums_nested_objects_arrays_and_nullable() -> None:
    doc = tooldoc_from_openai(
        {
            "type": "function",
            "function": {
                "name": "book",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "unit": {"type": "string", "enum": ["C", "F"], "description": "Unit."},
                        "address": {
                            "type": "object",
                            "description": "Where.",
                            "properties": {"city": {"type": "string", "description": "City"}, "zip": {"type": "string"}},
                        },
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "note": {"type": ["string", "null"], "description": "Optional note"},
                        "mode": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                    },
                },
            },
        }
    )
    assert doc.input == {
        "unit": 'string, Unit. One of: "C", "F".',
        "address": "object, Where. Fields: city (string, City); zip (string).",
        "tags": "array of string, ",
        "note": "string, Optional note",
        "mode": "integer, ",
    }


def test_long_names_keep_their_last_64_characters_and_descriptions_their_first_256() -> None:
    name = "x" * 10 + "y" * 60
    doc = tooldoc_from_openai({"type": "function", "function": {"name": name, "description": "d" * 300}})
    assert doc.Name == "x" * 4 + "y" * 60
    assert len(doc.Name) == 64
    assert doc.function == "d" * 256
    assert doc.input == {}


def test_toolbench_api_doc_conversion() -> None:
    doc = tooldoc_from_toolbench(
        {
            "category_name": "Data",
            "tool_name": "Mood Ring",
            "api_name": "Quizzes",
            "api_description": "Retrieves all the MoodRing Quizzes.",
            "required_parameters": [{"name": "quizId", "type": "STRING", "description": "", "default": ""}],
            "optional_parameters": [{"name": "limit", "type": "NUMBER", "description": "Max", "default": 5}],
        }
    )
    assert doc.Name == "quizzes_for_mood_ring"
    assert doc.function == (
        'This is the subfunction for tool "mood_ring", you can use this tool.'
        'The description of this function is: "Retrieves all the MoodRing quizzes_for_mood_ring."'
    )
    assert doc.input == {"quizId": "string, ", "limit": "integer, Max"}


def test_toolbench_names_are_standardised_and_cut() -> None:
    assert standardize("  Get--Weather (v2) ") == "get_weather_v2"
    assert standardize("3d Models") == "get_3d_models"
    doc = tooldoc_from_toolbench({"tool_name": "t" * 70, "api_name": "from"})
    assert doc.Name.startswith("is_from_for_") is False  # cut from the left
    assert doc.Name == ("is_from_for_" + "t" * 70)[-64:]
    assert doc.function == 'This is the subfunction for tool "' + "t" * 70 + '", you can use this tool.'


def test_to_tooldocs_accepts_a_mix() -> None:
    docs = to_tooldocs(
        [
            {"Name": "a", "function": "f", "input": {}},
            {"type": "function", "function": {"name": "b"}},
            {"tool_name": "T", "api_name": "c"},
            ToolDoc(Name="d"),
        ]
    )
    assert [d.Name for d in docs] == ["a", "b", "c_for_t", "d"]


def test_tooldoc_requires_a_name() -> None:
    with pytest.raises(ValidationError):
        ToolDoc.model_validate({"function": "f"})
