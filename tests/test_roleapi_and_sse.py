"""The shared role-API bodies and the SSE encoder/decoder."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from umi.roleapi import CallRequest, PlanRequest
from umi.sse import encode_event, iter_events


def test_tools_may_be_openai_tooldoc_or_toolbench() -> None:
    req = CallRequest.model_validate(
        {
            "tools": [{"type": "function", "function": {"name": "a"}}, {"Name": "b"}, {"tool_name": "X", "api_name": "c"}],
            "history": [{"role": "user", "content": "q"}, {"from": "assistant", "value": "t Next: caller."}],
            "thought": "t Next: caller.",
        }
    )
    assert [d.Name for d in req.tooldocs()] == ["a", "b", "c_for_x"]
    assert [t.role for t in req.history] == ["user", "planner"]


def test_unknown_fields_are_refused_with_their_name() -> None:
    with pytest.raises(ValidationError) as err:
        PlanRequest.model_validate({"tools": [], "history": [], "temperature": 2})
    assert "temperature" in str(err.value)


def test_sse_round_trip_with_multiline_data_and_ids() -> None:
    frames = encode_event("token", {"text": "a\nb"}, event_id="7") + encode_event("done", "line1\nline2")

    async def collect() -> list:
        async def lines():
            for line in frames.decode().split("\n"):
                yield line

        return [e async for e in iter_events(lines())]

    first, second = asyncio.run(collect())
    assert (first.event, first.id, first.json()) == ("token", "7", {"text": "a\nb"})
    assert (second.event, second.id, second.data) == ("done", None, "line1\nline2")


def test_tools_are_converted_once_per_request() -> None:
    req = PlanRequest.model_validate({"tools": [{"type": "function", "function": {"name": "a"}}], "history": []})
    assert req.tooldocs() is req.tooldocs()


def test_sync_reader_decodes_like_the_async_one() -> None:
    from umi.sse import read_events

    frames = encode_event("token", {"text": "x"}, event_id="1") + b": comment\n\n" + encode_event("result", "a\nb")
    events = list(read_events(frames.decode().split("\n")))
    assert [(e.event, e.id, e.data) for e in events] == [("token", "1", '{"text":"x"}'), ("result", None, "a\nb")]
