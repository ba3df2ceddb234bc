"""Server-sent events: one encoder and one decoder for every service of the project."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

MEDIA_TYPE = "text/event-stream"
EVENT_SCHEMA: dict[str, object] = {
    "type": "object",
    "description": "one server-sent event (the WHATWG event stream format): its event name, data, id",
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}},
}
"""The OpenAPI schema of one event of a ``text/event-stream`` answer, as schema checkers read it
(each event against the schema, OpenAPI 3.2's ``itemSchema`` in spirit)."""


def encode_event(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE frame. ``data`` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in payload.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


class EventDecoder:
    """Lines in, events out: the one SSE parser, behind both the sync and the async readers."""

    def __init__(self) -> None:
        self._event, self._data, self._id = "message", [], None  # type: ignore[var-annotated]

    def feed(self, raw: str) -> Event | None:
        line = raw.rstrip("\r")
        if line == "":
            return self.flush()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            self._id = value
        return None

    def flush(self) -> Event | None:
        event = Event(event=self._event, data="\n".join(self._data), id=self._id) if self._data else None
        self._event, self._data, self._id = "message", [], None
        return event


def read_events(lines: Iterable[str]) -> Iterator[Event]:
    """Decode frames from lines (e.g. ``httpx.Response.iter_lines()``)."""
    decoder = EventDecoder()
    for line in lines:
        if (event := decoder.feed(line)) is not None:
            yield event
    if (event := decoder.flush()) is not None:
        yield event


async def iter_events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """Decode frames from an async iterator of lines (e.g. ``httpx.Response.aiter_lines()``)."""
    decoder = EventDecoder()
    async for line in lines:
        if (event := decoder.feed(line)) is not None:
            yield event
    if (event := decoder.flush()) is not None:
        yield event
