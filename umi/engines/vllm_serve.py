"""The GPU engine: ``vllm serve``, supervised as a subprocess, plus the vLLM endpoints that
weight swaps use (the :class:`~umi.engines.base.LoraAdapters` and
:class:`~umi.engines.base.InPlaceReload` capabilities).

- LoRA at runtime (``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``):
  ``POST /v1/load_lora_adapter {lora_name, lora_path}`` and ``/v1/unload_lora_adapter``; a request
  selects an adapter by its name in ``model``. Adapters are loaded under new names only; this
  engine never sends ``load_inplace`` (sticky in vLLM). After a restart the adapters that were
  loaded are loaded again, so the names the service uses keep working.
- In-place full-weight reload (``--enable-sleep-mode`` and ``VLLM_SERVER_DEV_MODE=1``):
  ``/sleep?level=2``, ``/wake_up?tags=weights``, ``/collective_rpc`` (``update_config`` with the
  new model path, then ``reload_weights``), ``/wake_up?tags=kv_cache``, ``/reset_prefix_cache``
  (cached prefixes were computed with the old weights).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from umi.engines.base import EngineInfo, EngineOptions
from umi.engines.http_engine import LaunchSpec, SupervisedEngine

log = logging.getLogger("umi.engine")


@dataclass(frozen=True)
class VllmFlags:
    """The ``vllm serve`` flags a role service sets from its settings (None: vLLM's default)."""

    served_model_name: str
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    enable_lora: bool = False
    max_loras: int | None = None
    max_lora_rank: int | None = None
    enable_sleep_mode: bool = False

    def argv(self) -> list[str]:
        out = ["--served-model-name", self.served_model_name]
        for flag, value in (
            ("--tensor-parallel-size", self.tensor_parallel_size),
            ("--gpu-memory-utilization", self.gpu_memory_utilization),
            ("--max-model-len", self.max_model_len),
        ):
            if value is not None:
                out += [flag, str(value)]
        if self.enable_lora:
            out.append("--enable-lora")
            if self.max_loras is not None:
                out += ["--max-loras", str(self.max_loras)]
            if self.max_lora_rank is not None:
                out += ["--max-lora-rank", str(self.max_lora_rank)]
        if self.enable_sleep_mode:
            out.append("--enable-sleep-mode")
        return out

    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.enable_lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        if self.enable_sleep_mode:
            env["VLLM_SERVER_DEV_MODE"] = "1"
        return env


class VllmEngine(SupervisedEngine):
    kind = "vllm"

    def __init__(self, model_path: str, options: EngineOptions, launch: LaunchSpec, flags: VllmFlags) -> None:
        super().__init__(model_path, options, launch)
        self.flags = flags
        self.adapters: dict[str, str] = {}  # loaded LoRA adapters: name -> path

    @property
    def served_model(self) -> str:
        return self.flags.served_model_name

    @property
    def supports_lora(self) -> bool:
        return self.flags.enable_lora

    @property
    def supports_in_place(self) -> bool:
        return self.flags.enable_sleep_mode

    def command(self) -> list[str]:
        argv = self._base_argv(("vllm",))
        if self.launch.dtype:
            argv += ["--dtype", self.launch.dtype]
        return argv + self.flags.argv() + list(self.launch.extra_args)

    def environment(self) -> dict[str, str]:
        return self.flags.environment()

    def info(self) -> EngineInfo:
        return super().info().model_copy(update={"extra": {"adapters": dict(self.adapters), "served_model_name": self.served_model}})

    # ------------------------------------------------------------------ LoRA
    async def _post(self, path: str, json: Any = None, params: Any = None) -> None:
        await self.client.request("POST", path, json=json, params=params)

    async def load_lora(self, name: str, path: str) -> None:
        await self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
        self.adapters[name] = path

    async def unload_lora(self, name: str) -> None:
        self.adapters.pop(name, None)
        await self._post("/v1/unload_lora_adapter", {"lora_name": name})

    async def _after_launch(self) -> None:
        for name, path in self.adapters.items():
            log.info("vllm: loading adapter %s again after a restart", name)
            await self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})

    # ------------------------------------------------------ in-place reload
    async def reload_weights(self, model_path: str) -> None:
        """Replace the base weights inside the running engine (sleep level 2, reload, wake)."""
        await self._post("/sleep", params={"level": 2})
        await self._post("/wake_up", params={"tags": "weights"})
        await self._post(
            "/collective_rpc", {"method": "update_config", "args": [{"model_config": {"model": model_path}}]}
        )
        await self._post("/collective_rpc", {"method": "reload_weights"})
        await self._post("/wake_up", params={"tags": "kv_cache"})
        await self._post("/reset_prefix_cache")
        self.model_path = model_path  # a restart loads these weights

    async def is_sleeping(self) -> bool:
        response = await self.client.request("GET", "/is_sleeping")
        return bool(response.json().get("is_sleeping"))
