"""The orchestrator: POST /chat runs plan -> call -> observe -> summarize over HTTP.

``umi serve orchestrator [--host H] [--port P] [--workers N] [flags]`` runs one stateless
process (or N sharing the port); run as many as needed against one Redis. Flags are the UMI_*
settings in kebab case (``--redis-url``, ``--planner-url``, ...; docs/configuration.md). See
docs/orchestrator.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from umi.settings_cli import SettingsParser


def serve_parser() -> SettingsParser:
    """The flags of ``umi serve orchestrator``: ``--host``, ``--port``, ``--workers`` and every setting."""
    from orchestrator.settings import Settings
    from umi.settings_cli import settings_parser

    parser = settings_parser(Settings, "umi serve orchestrator", port=8000, description="Run the orchestrator.")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="processes sharing the port, each a full, stateless orchestrator [default: 1]",
    )  # fmt: skip
    return parser


def serve(argv: Sequence[str] = ()) -> None:
    import uvicorn

    from orchestrator.api import create_app
    from orchestrator.logs import configure
    from umi.settings_cli import parse_or_exit
    from umi.tracing import configure_tracing

    parser = serve_parser()
    args, settings = parse_or_exit(parser, argv)
    configure(settings.log_level)
    configure_tracing("umi-orchestrator")  # OTEL_* variables; off unless they ask (umi.tracing)
    common = {
        "host": args.host, "port": args.port, "log_config": None, "log_level": settings.log_level.lower(),
        "access_log": False, "timeout_graceful_shutdown": 5,
    }  # fmt: skip
    if args.workers > 1:  # each worker process builds its own app (and logs) from the environment
        os.environ.update(parser.environment(args))
        uvicorn.run("orchestrator.api:create_worker_app", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(settings), **common)
