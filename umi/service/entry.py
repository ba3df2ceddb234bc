"""Entry points of a role service: ``umi serve ROLE [--host H] [--port P] [flags]`` and
``python -m services.ROLE [--host H] [--port P] [flags]``; flags are the UMI_* settings in
kebab case (``--model``, ``--engine``, ``--engine-url``, ...), built by ``umi.settings_cli``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from umi.logs import configure_json_logs
from umi.service.app import create_app
from umi.service.drain import DrainingServer
from umi.service.roles import RoleSpec
from umi.service.settings import ServiceSettings
from umi.settings_cli import SettingsProblem
from umi.service.weights import is_hub_id
from umi.settings_cli import SettingsParser, parse_or_exit, settings_parser
from umi.tracing import configure_tracing

DEFAULT_PORT = 8000


def _check_local_paths(settings: ServiceSettings) -> None:
    """A model or tokenizer that is neither a directory nor a hub id cannot start: say so now."""
    for name, value in (("UMI_MODEL", settings.model), ("UMI_TOKENIZER", settings.tokenizer)):
        if value and not is_hub_id(value) and not Path(value).is_dir():
            raise SettingsProblem(f"{name}: {value}: no such directory (and not a hub id)")


def serve_parser(role: str) -> SettingsParser:
    """The flags of ``umi serve ROLE``: ``--host``, ``--port`` and every role-service setting."""
    return settings_parser(ServiceSettings, f"umi serve {role}", port=DEFAULT_PORT, description=f"Run the {role} role service.")


def serve(spec: RoleSpec, argv: Sequence[str] = ()) -> None:
    """Run the role service in the foreground until SIGINT/SIGTERM: SIGTERM drains first
    (umi.service.drain: /ready 503, UMI_DRAIN_DELAY_S, in-flight requests within
    UMI_DRAIN_TIMEOUT_S), then the engines stop. Exits 3 (uvicorn's start-up failure) when the
    server did not start."""
    args, settings = parse_or_exit(serve_parser(spec.role), argv, check=_check_local_paths)
    configure_json_logs(settings.log_level)  # JSON lines with trace_id and span_id, like the orchestrator's
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per engine call and health probe otherwise
    configure_tracing(f"umi-{spec.role}")  # OTEL_* variables; off unless they ask (umi.tracing)
    app = create_app(spec, settings)
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_config=None, log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
    )  # fmt: skip
    server = DrainingServer(config, app.state.service.manager, settings.drain_delay_s)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


ServeFunction = Callable[[Sequence[str]], None]


def serve_functions(spec: RoleSpec) -> tuple[ServeFunction, Callable[[], SettingsParser]]:
    """The ``serve(argv)`` and ``serve_parser()`` that ``umi serve ROLE`` finds in ``services.ROLE``."""

    def serve_role(argv: Sequence[str] = ()) -> None:
        serve(spec, argv)

    def role_parser() -> SettingsParser:
        return serve_parser(spec.role)

    serve_role.__doc__ = f"Run the {spec.role} role service (see umi.service.entry.serve)."
    return serve_role, role_parser


def main(spec: RoleSpec, argv: Sequence[str] | None = None) -> int:
    serve(spec, sys.argv[1:] if argv is None else list(argv))
    return 0
