"""JSON logs: one object per line, carrying the chat_id and step of the task that logged it."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

_chat_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("umi_chat_id", default=None)
_step: contextvars.ContextVar[int | None] = contextvars.ContextVar("umi_step", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}


def bind(*, chat_id: str | None = None, step: int | None = None) -> None:
    """Set the chat and step of the current task's log records (asyncio tasks copy the context)."""
    if chat_id is not None:
        _chat_id.set(chat_id)
    if step is not None:
        _step.set(step)


class ContextFilter(logging.Filter):
    """Adds ``chat_id`` and ``step`` to every record of the logger it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "chat_id"):
            record.chat_id = _chat_id.get()
        if not hasattr(record, "step"):
            record.step = _step.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def install_context_filter() -> None:
    logger = logging.getLogger("umi.orchestrator")
    if not any(isinstance(f, ContextFilter) for f in logger.filters):
        logger.addFilter(ContextFilter())


def configure(level: str) -> None:
    """JSON lines on stderr for the orchestrator process (uvicorn's own loggers included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.Formatter.converter = time.gmtime
    install_context_filter()
