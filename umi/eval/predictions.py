"""The predictions file: what the models generated, one record per step and role.

A JSON list of ``{"id": "<trajectory>:<turn>", "role": "planner" | "caller" | "summarizer" |
"backbone", "text": "<the raw generation>"}`` plus optional ``model`` (``{name, version}``),
``latency_ms``, ``usage`` and ``protocol`` (``paper`` or ``teacher-forcing``: how a multi-model
run asked its roles, see steps.py). Scoring parses ``text`` with the same parsers the services use,
so numbers can be recomputed from a saved file with no model (``umi eval score``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

PredictionRole = Literal["planner", "caller", "summarizer", "backbone"]
Protocol = Literal["paper", "teacher-forcing"]


class Prediction(BaseModel):
    id: str
    role: PredictionRole
    text: str
    model: dict[str, Any] | None = None
    latency_ms: float | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None  # the request failed; text is then ""
    protocol: Protocol | None = None  # multi-model runs of `umi eval steps` record it


_LIST = TypeAdapter(list[Prediction])


class PredictionsFileError(Exception):
    pass


def load_predictions(path: str | Path) -> list[Prediction]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictionsFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PredictionsFileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise PredictionsFileError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    try:
        return _LIST.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise PredictionsFileError(f"{path}: prediction {loc}: {first['msg']}") from None


def dump_predictions(predictions: list[Prediction]) -> list[dict[str, Any]]:
    return [p.model_dump(exclude_none=True) for p in predictions]
