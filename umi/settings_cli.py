"""Settings as flags, and the configuration reference: one way for every ``umi serve`` target.

Every field of a settings class (pydantic-settings, ``env_prefix="UMI_"``) is also a flag: the
field name in kebab case (``redis_url`` -> ``--redis-url``), whose help is the field's
description, its environment variable and its default. Flags win over the environment;
booleans take ``--flag`` / ``--no-flag``. The settings class validates the values, so a bad flag
is the same one-line problem as a bad variable (``UMI_ENGINE: Input should be ...``).

    parser = settings_parser(Settings, "umi serve orchestrator", port=8000)
    args, settings = parse_or_exit(parser, argv)    # exit 2 with one line on a problem

``--host`` and ``--port`` (given ``port``) are the address the server binds, not settings.

``docs/configuration.md`` is :func:`reference` of every command's parser, written by
``umi config-docs > docs/configuration.md`` (a test fails when it is stale).
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

EXIT_USAGE = 2
CONFIG_DOCS_COMMAND = "umi config-docs > docs/configuration.md"


class SettingsProblem(Exception):
    """Settings or flags that cannot start a service; the message is one line for the operator."""


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    return f"{settings_cls.model_config.get('env_prefix', '')}{field}".upper()


def _literal_values(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (values := _literal_values(arg)) is not None:
                return values
    return None


def _is_bool(info: FieldInfo) -> bool:
    return info.annotation is bool


def show_default(info: FieldInfo) -> str:
    """The default as an operator would write it: ``unset`` for None, ``true``/``false``."""
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, SecretStr):
        return "(secret)"
    return str(value)


class SettingsParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`SettingsProblem` (one line), not ``exit(2)``."""

    settings_cls: type[BaseSettings] | None = None

    def error(self, message: str) -> NoReturn:
        raise SettingsProblem(message)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The settings given as flags (raw strings; booleans as bools)."""
        fields = self.settings_cls.model_fields if self.settings_cls else {}
        return {name: value for name, value in vars(args).items() if name in fields}

    def settings(self, args: argparse.Namespace) -> Any:
        """The settings: the flags in ``args`` over the environment. Raises :class:`SettingsProblem`."""
        assert self.settings_cls is not None
        return load(self.settings_cls, self.given(args))

    def environment(self, args: argparse.Namespace) -> dict[str, str]:
        """The flags in ``args`` as ``UMI_*`` variables (for worker processes that read only those)."""
        assert self.settings_cls is not None
        return {
            env_name(self.settings_cls, name): (str(value).lower() if isinstance(value, bool) else str(value))
            for name, value in self.given(args).items()
        }


def add_settings_flags(parser: SettingsParser, settings_cls: type[BaseSettings]) -> None:
    """One flag per field of ``settings_cls``; an absent flag leaves the field to the environment."""
    group = parser.add_argument_group(
        "settings", "each is also the environment variable in brackets; a flag wins over it"
    )
    for name, info in settings_cls.model_fields.items():
        text = (info.description or "").replace("%", "%%")
        help_text = f"{text} [{env_name(settings_cls, name)}; default: {show_default(info).replace('%', '%%')}]"
        if _is_bool(info):
            boolean = argparse.BooleanOptionalAction
            group.add_argument(flag_name(name), dest=name, action=boolean, default=argparse.SUPPRESS, help=help_text)
            continue
        values = _literal_values(info.annotation)
        metavar = "{" + ",".join(map(str, values)) + "}" if values else name.upper()
        group.add_argument(flag_name(name), dest=name, default=argparse.SUPPRESS, metavar=metavar, help=help_text)
    parser.settings_cls = settings_cls


def settings_parser(
    settings_cls: type[BaseSettings] | None, prog: str, port: int | None = None, description: str | None = None
) -> SettingsParser:
    """The parser of a command: ``--host``/``--port`` when ``port`` is given, then the settings flags."""
    parser = SettingsParser(prog=prog, description=description, usage="%(prog)s [options]")
    if port is not None:
        address = parser.add_argument_group("address", "where the server listens (not settings)")
        address.add_argument("--host", default="127.0.0.1", help="the address to bind [default: 127.0.0.1]")
        address.add_argument("--port", type=int, default=port, help=f"the port to bind [default: {port}]")
    if settings_cls is not None:
        add_settings_flags(parser, settings_cls)
    return parser


def one_line(settings_cls: type[BaseSettings], exc: ValidationError) -> str:
    """The first validation error, naming the variable: ``UMI_MAX_MODEL_LEN: Input should be ...``."""
    first = exc.errors()[0]
    field = next((str(p) for p in first["loc"] if isinstance(p, str)), "")
    message = first["msg"].removeprefix("Value error, ")
    return f"{env_name(settings_cls, field) + ': ' if field else ''}{message}"


def load(settings_cls: type[BaseSettings], given: dict[str, Any]) -> Any:
    """``settings_cls`` from the environment with ``given`` over it. Raises :class:`SettingsProblem`."""
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        raise SettingsProblem(one_line(settings_cls, exc)) from None


def parse_or_exit(
    parser: SettingsParser, argv: Sequence[str], check: Callable[[Any], None] | None = None
) -> tuple[argparse.Namespace, Any]:
    """The arguments and the settings; on a problem, ``PROG: error: <one line>`` and exit 2."""
    try:
        args = parser.parse_args(list(argv))
        settings = parser.settings(args) if parser.settings_cls else None
        if check is not None:
            check(settings)
    except SettingsProblem as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return args, settings


# ------------------------------------------------------------------ the reference


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{text}`" if text else '`""`'


def reference(sections: Sequence[tuple[str, str, SettingsParser]]) -> str:
    """``docs/configuration.md``: per command (title, intro, parser), its flags and settings."""
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated from the settings classes by `{CONFIG_DOCS_COMMAND}`; do not edit. -->",
        "",
        "Every setting is an environment variable and the same flag of the command (the field name in",
        "kebab case); a flag wins over the variable. Booleans take `--flag` / `--no-flag`, or",
        "`true` / `false` in the environment. `COMMAND --help` prints the same list.",
    ]
    for title, intro, parser in sections:
        lines += ["", f"## `{title}`", "", intro, ""]
        settings_cls = parser.settings_cls
        fields = settings_cls.model_fields if settings_cls else {}
        others = [a for a in parser._actions if a.option_strings and a.dest not in fields and a.dest != "help"]
        if others:
            lines += ["| flag | default | what it sets |", "|---|---|---|"]
            for action in others:
                text = (action.help or "").split(" [default:")[0]
                lines.append(f"| `{action.option_strings[0]}` | {_code(str(action.default))} | {_cell(text)} |")
            lines.append("")
        if settings_cls is None:
            continue
        lines += ["| variable | flag | default | description |", "|---|---|---|---|"]
        for name, info in fields.items():
            flag = f"`{flag_name(name)}` / `--no-{name.replace('_', '-')}`" if _is_bool(info) else f"`{flag_name(name)}`"
            default = show_default(info)
            default_cell = default if default in ("unset", "(secret)") else _code(default)
            lines.append(f"| `{env_name(settings_cls, name)}` | {flag} | {_cell(default_cell)} | {_cell(info.description or '')} |")
    return "\n".join(lines) + "\n"
