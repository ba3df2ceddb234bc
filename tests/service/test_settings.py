"""Role-service settings: UMI_* environment variables and flags."""

from __future__ import annotations

import pytest

from umi.service import settings as settings_module
from umi.service.settings import load_settings
from umi.settings_cli import SettingsProblem


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("UMI_") and not key.startswith("UMI_TEST") and key != "UMI_REDIS_SERVER":
            monkeypatch.delenv(key)


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UMI_MODEL", "/models/planner")
    monkeypatch.setenv("UMI_ENGINE", "transformers")
    monkeypatch.setenv("UMI_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("UMI_SYSTEM_PREFIX", "")
    monkeypatch.setenv("UMI_ENGINE_ARGS", "--device cpu --dtype 'float32'")
    s = load_settings(["--engine", "vllm", "--enable-lora", "--max-loras", "3", "--prompt-variant", "toolalpaca"])
    assert s.engine_kind() == "vllm"  # the flag wins over UMI_ENGINE
    assert s.model == "/models/planner" and s.system_prefix == "" and s.prompt_variant == "toolalpaca"
    assert s.enable_lora is True and s.max_loras == 3
    assert s.engine_argv() == ("--device", "cpu", "--dtype", "float32")
    assert s.admin_token_value() == "s3cret" and "s3cret" not in repr(s)


def test_defaults_follow_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(["--model", "/m"])
    assert s.system_prefix == "system: " and s.prompt_variant == "toolbench"
    assert s.admin_token_value() is None and s.swap_strategy == "blue_green"


def test_auto_engine_is_transformers_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "gpu_visible", lambda: False)
    assert load_settings(["--model", "/m"]).engine_kind() == "transformers"
    monkeypatch.setattr(settings_module, "gpu_visible", lambda: True)
    monkeypatch.setattr(settings_module.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert load_settings(["--model", "/m"]).engine_kind() == "vllm"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "UMI_MODEL"),
        (["--engine", "url"], "UMI_ENGINE_URL"),
        (["--engine", "url", "--engine-url", "http://x"], "UMI_TOKENIZER"),
        (["--model", "/m", "--engine", "tgi"], "UMI_ENGINE"),
        (["--model", "/m", "--max-model-len", "3"], "UMI_MAX_MODEL_LEN"),
        (["--model", "/m", "--engine-args", "'unclosed"], "UMI_ENGINE_ARGS"),
        (["--model", "/m", "--swap-strategy", "in_place"], "UMI_ENABLE_SLEEP_MODE"),
        (["--model", "/m", "--max-lora-rank", "7"], "UMI_MAX_LORA_RANK"),
        (["--model", "/m", "--engine", "vllm", "--enable-sleep-mode", "--enable-lora", "--swap-strategy", "in_place"],
         "#39934"),
        (["--model", "/m", "--no-such-flag", "1"], "unrecognized arguments"),
    ],
)
def test_bad_settings_are_one_line_problems(args: list[str], needle: str) -> None:
    with pytest.raises(SettingsProblem) as err:
        load_settings(args)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_max_lora_rank_takes_exactly_the_ranks_vllm_accepts() -> None:
    for rank in (1, 8, 16, 32, 64, 128, 256, 320, 512):
        assert load_settings(["--model", "/m", "--max-lora-rank", str(rank)]).max_lora_rank == rank
    for rank in (2, 4, 24, 1024):
        with pytest.raises(SettingsProblem, match="vLLM accepts only 1, 8, 16, 32, 64, 128, 256, 320, 512"):
            load_settings(["--model", "/m", "--max-lora-rank", str(rank)])

