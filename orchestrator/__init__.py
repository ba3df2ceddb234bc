"""The orchestrator: POST /chat runs plan -> call -> observe -> summarize over HTTP.

``umi serve orchestrator --host H --port P [--log-level L]`` runs one stateless process; run as
many as needed against one Redis. See docs/orchestrator.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def serve(host: str = "127.0.0.1", port: int = 8000, extra_args: Sequence[str] | None = None) -> None:
    import uvicorn

    from orchestrator.api import create_app
    from orchestrator.logs import configure
    from orchestrator.settings import Settings

    parser = argparse.ArgumentParser(prog="umi serve orchestrator")
    # `umi serve NAME --host H --port P`: umi.cli's REMAINDER hands options after NAME to us.
    parser.add_argument("--host", default=host)
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--log-level", default=None, help="overrides UMI_LOG_LEVEL")
    args = parser.parse_args(list(extra_args or []))
    host, port = args.host, args.port
    settings = Settings()
    level = args.log_level or settings.log_level
    configure(level)
    uvicorn.run(
        create_app(settings), host=host, port=port, log_config=None, log_level=level.lower(), access_log=False,
        timeout_graceful_shutdown=5,
    )  # fmt: skip
