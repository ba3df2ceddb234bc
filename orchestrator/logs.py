"""JSON logs (``umi.logs``): one object per line, carrying the chat_id and step of the task that
logged it, and the trace_id and span_id of the span it was logged in."""

from __future__ import annotations

import contextvars
import logging

from umi.logs import configure_json_logs
from umi.tracing import TraceLogFilter

__all__ = ["ContextFilter", "bind", "configure", "install_context_filter"]

_chat_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("umi_chat_id", default=None)
_step: contextvars.ContextVar[int | None] = contextvars.ContextVar("umi_step", default=None)


def bind(*, chat_id: str | None = None, step: int | None = None) -> None:
    """Set the chat and step of the current task's log records (asyncio tasks copy the context)."""
    if chat_id is not None:
        _chat_id.set(chat_id)
    if step is not None:
        _step.set(step)


class ContextFilter(TraceLogFilter):
    """Adds ``chat_id``, ``step``, ``trace_id`` and ``span_id`` to every record of the logger it
    is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        if not hasattr(record, "chat_id"):
            record.chat_id = _chat_id.get()
        if not hasattr(record, "step"):
            record.step = _step.get()
        return True


def install_context_filter() -> None:
    logger = logging.getLogger("umi.orchestrator")
    if not any(isinstance(f, ContextFilter) for f in logger.filters):
        logger.addFilter(ContextFilter())


def configure(level: str) -> None:
    """JSON lines on stderr for the orchestrator process (uvicorn's own loggers included)."""
    configure_json_logs(level)
    install_context_filter()
