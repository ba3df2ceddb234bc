"""Entry points of a role service: ``umi serve ROLE [--host H] [--port P] [flags]`` and
``python -m services.ROLE [--host H] [--port P] [flags]``; flags are the UMI_* settings in
kebab case (``--model``, ``--engine``, ``--engine-url``, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn

from umi.service.app import create_app
from umi.service.roles import RoleSpec
from umi.service.settings import ServiceSettings, SettingsProblem, load_settings
from umi.service.weights import is_hub_id

EXIT_USAGE = 2


def _split_host_port(args: Sequence[str], host: str, port: int) -> tuple[str, int, list[str]]:
    """``--host``/``--port`` may come after the role (``umi serve planner --port 9000``): take them out."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--host", default=host)
    parser.add_argument("--port", type=int, default=port)
    known, rest = parser.parse_known_args([a for a in args if a != "--"])
    return known.host, known.port, rest


def _check_local_paths(settings: ServiceSettings) -> None:
    """A model or tokenizer that is neither a directory nor a hub id cannot start: say so now."""
    for name, value in (("UMI_MODEL", settings.model), ("UMI_TOKENIZER", settings.tokenizer)):
        if value and not is_hub_id(value) and not Path(value).is_dir():
            raise SettingsProblem(f"{name}: {value}: no such directory (and not a hub id)")


def serve(spec: RoleSpec, host: str = "127.0.0.1", port: int = 8000, extra_args: Sequence[str] = ()) -> None:
    """Run the role service in the foreground until SIGINT/SIGTERM (engines are stopped on the way out)."""
    host, port, args = _split_host_port(extra_args, host, port)
    try:
        settings = load_settings(args, prog=f"umi serve {spec.role}")
        _check_local_paths(settings)
    except SettingsProblem as exc:
        print(f"umi serve {spec.role}: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per engine call and health probe otherwise
    app = create_app(spec, settings)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level, timeout_graceful_shutdown=int(settings.drain_timeout_s))


ServeFunction = Callable[..., None]


def serve_function(spec: RoleSpec) -> ServeFunction:
    """The ``serve(host=, port=, extra_args=)`` that ``umi serve ROLE`` calls in ``services.ROLE``."""

    def serve_role(host: str = "127.0.0.1", port: int = 8000, extra_args: Sequence[str] = ()) -> None:
        serve(spec, host, port, extra_args)

    serve_role.__doc__ = f"Run the {spec.role} role service (see umi.service.entry.serve)."
    return serve_role


def main(spec: RoleSpec, argv: Sequence[str] | None = None) -> int:
    serve(spec, extra_args=sys.argv[1:] if argv is None else list(argv))
    return 0
