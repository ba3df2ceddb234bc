"""The orchestrator: POST /chat runs plan -> call -> observe -> summarize over HTTP.

``umi serve orchestrator --host H --port P [--log-level L]`` runs one stateless process; run as
many as needed against one Redis. See docs/orchestrator.md.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument(
        "--workers", type=int, default=1,
        help="processes sharing the port (each a full, stateless orchestrator; default 1)",
    )  # fmt: skip
    args = parser.parse_args(list(extra_args or []))
    settings = Settings()
    level = args.log_level or settings.log_level
    configure(level)
    common = {
        "host": args.host, "port": args.port, "log_config": None, "log_level": level.lower(),
        "access_log": False, "timeout_graceful_shutdown": 5,
    }  # fmt: skip
    if args.workers > 1:  # each worker process builds its own app (and logs) from the environment
        os.environ["UMI_LOG_LEVEL"] = level
        uvicorn.run("orchestrator.api:create_worker_app", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)
