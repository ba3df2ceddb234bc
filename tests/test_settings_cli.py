"""One settings style (umi.settings_cli): every setting is a described variable and the same flag,
and docs/configuration.md is generated from the settings classes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from orchestrator.settings import Settings
from umi.cli import SERVE_TARGETS, config_reference, serve_target
from umi.service.settings import ServiceSettings
from umi.settings_cli import CONFIG_DOCS_COMMAND, SettingsParser, SettingsProblem, env_name, parse_or_exit, settings_parser

CONFIGURATION_MD = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
SETTINGS_CLASSES = [Settings, ServiceSettings]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("UMI_") and not key.startswith("UMI_TEST") and key != "UMI_REDIS_SERVER":
            monkeypatch.delenv(key)


@pytest.mark.parametrize("settings_cls", SETTINGS_CLASSES, ids=lambda c: c.__name__)
def test_every_setting_has_a_description_a_variable_and_a_flag_whose_help_names_both(settings_cls: type[BaseSettings]) -> None:
    parser = settings_parser(settings_cls, "umi serve x")
    flags = {action.dest: action for action in parser._actions if action.option_strings}
    for name, info in settings_cls.model_fields.items():
        assert info.description, f"{settings_cls.__name__}.{name} has no description"
        flag = flags[name]
        assert flag.option_strings[0] == "--" + name.replace("_", "-")
        assert info.description.replace("%", "%%") in flag.help and env_name(settings_cls, name) in flag.help


def test_every_serve_target_reads_host_and_port_with_the_same_parser() -> None:
    for name in SERVE_TARGETS:
        parser = serve_target(name).serve_parser()
        assert isinstance(parser, SettingsParser), name
        args = parser.parse_args(["--host", "0.0.0.0", "--port", "9001"])
        assert (args.host, args.port) == ("0.0.0.0", 9001), name


def test_orchestrator_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMI_REDIS_URL", "redis://from-env:6379/0")
    monkeypatch.setenv("UMI_MAX_TOOLS", "7")
    parser = serve_target("orchestrator").serve_parser()
    args = parser.parse_args(["--redis-url", "redis://from-flag:6380/1", "--chat-wait-s", "2.5", "--workers", "3"])
    settings = parser.settings(args)
    assert settings.redis_url == "redis://from-flag:6380/1" and settings.chat_wait_s == 2.5
    assert settings.max_tools == 7 and args.workers == 3  # what no flag gave comes from the environment


def test_worker_processes_get_the_given_flags_as_variables() -> None:
    parser = serve_target("orchestrator").serve_parser()
    args = parser.parse_args(["--redis-url", "redis://r:1/0", "--log-level", "DEBUG", "--port", "9"])
    assert parser.environment(args) == {"UMI_REDIS_URL": "redis://r:1/0", "UMI_LOG_LEVEL": "DEBUG"}
    role = settings_parser(ServiceSettings, "umi serve planner")
    assert role.environment(role.parse_args(["--no-enable-lora"])) == {"UMI_ENABLE_LORA": "false"}


def test_a_bad_value_is_one_line_naming_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    parser = serve_target("orchestrator").serve_parser()
    with pytest.raises(SettingsProblem, match=r"^UMI_MAX_TOOLS: Input should be greater than or equal to 1$"):
        parser.settings(parser.parse_args(["--max-tools", "0"]))
    with pytest.raises(SystemExit) as exited:
        parse_or_exit(parser, ["--redis-timeout-s", "soon"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("umi serve orchestrator: error: UMI_REDIS_TIMEOUT_S: ") and err.count("\n") == 1


def test_configuration_reference_is_generated_from_the_settings_classes() -> None:
    text = config_reference()
    for settings_cls in SETTINGS_CLASSES:
        for name in settings_cls.model_fields:
            assert f"| `{env_name(settings_cls, name)}` | `--{name.replace('_', '-')}`" in text
    assert "| `--workers` | `1` |" in text and CONFIG_DOCS_COMMAND in text


def test_docs_configuration_md_is_fresh() -> None:
    assert CONFIGURATION_MD.read_text(encoding="utf-8") == config_reference(), (
        f"docs/configuration.md is stale: regenerate it with `{CONFIG_DOCS_COMMAND}`"
    )
