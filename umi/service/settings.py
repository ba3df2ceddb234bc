"""Role-service settings: ``UMI_*`` environment variables, or the same names as flags
(``umi serve planner --model DIR --engine transformers``; flags win over the environment;
``umi.settings_cli`` builds the flags). Every setting is listed in docs/configuration.md.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from umi.engines import EngineOptions
from umi.engines.vllm_serve import MAX_LORA_RANKS
from umi.format.constraints import ROLE_DEFAULT_MODES, ConstraintMode
from umi.format.templates import DEFAULT_SYSTEM_PREFIX, PromptRole, PromptVariant
from umi.settings_cli import load, settings_parser

EngineKind = Literal["vllm", "transformers", "url"]
SwapStrategy = Literal["blue_green", "in_place"]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UMI_", extra="ignore")

    # --- what to serve
    engine: Literal["auto", "vllm", "transformers", "url"] = Field(
        "auto", description="vllm, transformers or url; auto: vllm when it is installed and a GPU is visible, else transformers"
    )
    model: str | None = Field(
        None,
        description="the weights: a local model directory or a hub id (the base model for LoRA); required, "
        "except by the url engine, which needs it or UMI_TOKENIZER",
    )
    model_name: str | None = Field(None, description="the name responses report (default: the last part of UMI_MODEL)")
    model_version: str | None = Field(
        None, description="the version responses report (default: training.json's version, else a fingerprint of the weight files)"
    )
    tokenizer: str | None = Field(None, description="where to load the tokenizer from (default: UMI_MODEL)")
    engine_url: str | None = Field(None, description="the OpenAI-compatible server of the url engine")
    engine_model: str | None = Field(None, description="url engine: the `model` field of its requests (default: UMI_MODEL)")
    engine_args: str = Field("", description="extra flags for `vllm serve` / `transformers serve`, shell-quoted")
    engine_command: str | None = Field(
        None, description="the engine executable, shell-quoted (default: `vllm`, or this environment's `transformers`)"
    )
    engine_host: str = Field("127.0.0.1", description="address the engine subprocess binds")
    engine_port: int = Field(0, ge=0, le=65535, description="port of the first engine subprocess (0: a free port; blue/green engines take free ports)")

    # --- prompts and sampling
    prompt_variant: PromptVariant = Field("toolbench", description="template variant: toolbench or toolalpaca")
    system_prefix: str = Field(DEFAULT_SYSTEM_PREFIX, description="text before every prompt (what training used; '' for the reference inference)")
    max_model_len: int | None = Field(
        None, ge=16, description="context length in tokens (default: the model's max_position_embeddings); also vLLM --max-model-len"
    )
    context_margin: int = Field(16, ge=0, description="tokens kept free besides the prompt and the new tokens")
    context_policy: Literal["fit", "reference"] = Field(
        "fit",
        description="a prompt over the context: fit (shorten old observations, drop old steps, keep the most relevant "
        "tools, then cut the history; header and tools stay whole) or reference (cut the whole prompt from the left)",
    )
    constrained_decoding: Literal["auto", "off", "names", "schema"] = Field(
        "auto",
        description="constrained decoding: off; names (the caller writes one listed tool name and a JSON object, the "
        "planner ends with one allowed decision); schema (names, and the caller's arguments valid against the tool's "
        "JSON Schema); auto: caller schema, planner names, summarizer and backbone off (and everything off with the url "
        "engine: a server this service did not start may not take llguidance grammars)",
    )
    temperature: float | None = Field(None, ge=0, le=5, description="overrides the role's default temperature (0.5)")
    max_new_tokens: int | None = Field(None, ge=1, description="overrides the role's default max new tokens (512)")

    # --- vLLM
    dtype: str | None = Field(None, description="--dtype for the engine (vllm, transformers)")
    tensor_parallel_size: int | None = Field(None, ge=1, description="vllm --tensor-parallel-size")
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1, description="vllm --gpu-memory-utilization (this engine's share of the GPU)")
    enable_lora: bool = Field(False, description="vllm --enable-lora and runtime LoRA loading (LoRA swaps)")
    max_loras: int | None = Field(None, ge=1, description="vllm --max-loras")
    max_lora_rank: int | None = Field(
        None, description=f"vllm --max-lora-rank: one of {', '.join(map(str, MAX_LORA_RANKS))} (what vLLM accepts)"
    )
    enable_sleep_mode: bool = Field(
        False, description="vllm --enable-sleep-mode and dev endpoints (in-place swaps; not with UMI_ENABLE_LORA)"
    )
    lora_alias: str | None = Field(None, description="prefix of adapter names (default: the role)")

    # --- swaps and supervision
    admin_token: SecretStr | None = Field(None, description="bearer token of /admin/* (unset: admin API disabled)")
    swap_strategy: SwapStrategy = Field("blue_green", description="default strategy of full-weight swaps")
    drain_timeout_s: float = Field(
        60.0, gt=0, description="how long in-flight requests may finish: on old weights after a swap, or after SIGTERM before the process stops"
    )
    drain_delay_s: float = Field(
        0.0, ge=0, le=300,
        description="after SIGTERM: seconds /ready answers 503 while the service still listens and serves, before it "
        "closes the listener and drains (behind HAProxy: above its check inter x fall; Kubernetes: 0, the pod's preStop sleep does it)",
    )  # fmt: skip
    pause_timeout_s: float = Field(300.0, gt=0, description="how long a request waits while an in-place swap pauses the engine")
    warmup_max_tokens: int = Field(4, ge=1, description="tokens the warm-up generation asks for")
    engine_start_timeout_s: float = Field(900.0, gt=0, description="engine start until /health answers 200")
    engine_stop_grace_s: float = Field(15.0, gt=0, description="SIGTERM to SIGKILL")
    request_timeout_s: float = Field(300.0, gt=0, description="one generation at most")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest request body; 413 above")
    health_interval_s: float = Field(2.0, gt=0, description="engine health probe period")
    health_failures: int = Field(3, ge=1, description="failed probes in a row before the engine counts as dead")
    restart_backoff_s: float = Field(1.0, ge=0, description="first restart delay; doubles up to 30 s")
    retry_after_s: int = Field(5, ge=1, description="Retry-After before any engine start time is known")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field("info", description="log level (debug shows the engine's output)")

    @field_validator("max_lora_rank")
    @classmethod
    def _lora_rank(cls, rank: int | None) -> int | None:
        if rank is not None and rank not in MAX_LORA_RANKS:
            choices = ", ".join(map(str, MAX_LORA_RANKS))
            raise ValueError(f"UMI_MAX_LORA_RANK (--max-lora-rank) is {rank}; vLLM accepts only {choices}")
        return rank

    @model_validator(mode="after")
    def _consistent(self) -> ServiceSettings:
        if self.engine == "url" and not self.engine_url:
            raise ValueError("the url engine needs UMI_ENGINE_URL (--engine-url)")
        if self.engine in ("vllm", "transformers", "auto") and not self.model:
            raise ValueError("UMI_MODEL (--model) is required: a local model directory or a hub id")
        if self.engine == "url" and not (self.model or self.tokenizer):
            raise ValueError("the url engine needs UMI_MODEL or UMI_TOKENIZER to count tokens")
        if self.swap_strategy == "in_place" and not (self.engine in ("vllm", "auto") and self.enable_sleep_mode):
            raise ValueError("UMI_SWAP_STRATEGY=in_place needs the vllm engine and UMI_ENABLE_SLEEP_MODE=true")
        if self.swap_strategy == "in_place" and self.enable_lora:
            raise ValueError(
                "UMI_SWAP_STRATEGY=in_place does not work with UMI_ENABLE_LORA=true: vLLM's weight reload fails "
                "with LoRA enabled (vLLM #39934)"
            )
        try:
            shlex.split(self.engine_args)
            shlex.split(self.engine_command or "")
        except ValueError as exc:
            raise ValueError(f"UMI_ENGINE_ARGS / UMI_ENGINE_COMMAND: {exc}") from None
        return self

    # ------------------------------------------------------------ derived
    def engine_kind(self) -> EngineKind:
        return detect_engine_kind() if self.engine == "auto" else self.engine

    def constraint_mode(self, role: PromptRole) -> ConstraintMode:
        """``constrained_decoding`` for ``role``: ``auto`` is the role's default (ROLE_DEFAULT_MODES),
        or off with the ``url`` engine (a server started elsewhere: vLLM without the guidance
        backend refuses the grammar); the summarizer and the backbone are never constrained."""
        if role not in ("caller", "planner") or (self.constrained_decoding == "auto" and self.engine == "url"):
            return "off"
        return ROLE_DEFAULT_MODES[role] if self.constrained_decoding == "auto" else self.constrained_decoding

    def engine_argv(self) -> tuple[str, ...]:
        return tuple(shlex.split(self.engine_args))

    def engine_command_argv(self) -> tuple[str, ...] | None:
        return tuple(shlex.split(self.engine_command)) if self.engine_command else None

    def engine_options(self) -> EngineOptions:
        return EngineOptions(
            request_timeout_s=self.request_timeout_s,
            start_timeout_s=self.engine_start_timeout_s,
            stop_grace_s=self.engine_stop_grace_s,
            health_interval_s=self.health_interval_s,
            health_failures=self.health_failures,
            restart_backoff_s=self.restart_backoff_s,
            retry_after_s=self.retry_after_s,
        )

    def admin_token_value(self) -> str | None:
        return self.admin_token.get_secret_value() if self.admin_token else None


def gpu_visible() -> bool:
    try:
        import torch
    except ImportError:
        return shutil.which("nvidia-smi") is not None
    return bool(torch.cuda.is_available())


def detect_engine_kind() -> EngineKind:
    """vllm with a GPU and vLLM installed; otherwise the CPU engine."""
    return "vllm" if shutil.which("vllm") and gpu_visible() else "transformers"


def load_settings(args: Sequence[str] = (), prog: str = "umi serve ROLE") -> ServiceSettings:
    """Settings from the environment and ``args`` (flags). Raises :class:`SettingsProblem`."""
    parser = settings_parser(ServiceSettings, prog)
    return load(ServiceSettings, parser.given(parser.parse_args(list(args))))
