"""Server-sent events: one encoder and one decoder for every service of the project."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

MEDIA_TYPE = "text/event-stream"


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


async def iter_events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """Decode frames from an async iterator of lines (e.g. ``httpx.Response.aiter_lines()``)."""
    event, data, event_id = "message", [], None
    async for raw in lines:
        line = raw.rstrip("\r")
        if line == "":
            if data:
                yield Event(event=event, data="\n".join(data), id=event_id)
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
    if data:
        yield Event(event=event, data="\n".join(data), id=event_id)
