"""JSON logs for every umi-serve process: one object per line on stderr.

Each line has ``ts`` (seconds since the epoch), ``level``, ``logger``, ``msg``, every ``extra``
field that is not None, ``exc`` for an exception, and ``trace_id`` / ``span_id`` when it was
logged inside a span (``umi.tracing.TraceLogFilter``). The orchestrator adds ``chat_id`` and
``step`` (``orchestrator.logs``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from umi.tracing import TraceLogFilter

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}


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


def configure_json_logs(level: str, *filters: logging.Filter) -> logging.Handler:
    """JSON lines on stderr for the whole process (uvicorn's own loggers included), with the
    trace ids and ``filters`` applied to every record; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceLogFilter())
    for f in filters:
        handler.addFilter(f)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.Formatter.converter = time.gmtime
    return handler
