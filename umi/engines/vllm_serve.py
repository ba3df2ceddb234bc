"""The GPU engine: ``vllm serve``, supervised as a subprocess, plus the vLLM endpoints that
weight swaps use (the :class:`~umi.engines.base.LoraAdapters` and
:class:`~umi.engines.base.InPlaceReload` capabilities).

Written against vLLM :data:`VLLM_VERSION` (pinned in pyproject's ``gpu`` extra and the
Dockerfile's image); docs/role-services.md "vLLM behaviours" lists what this module relies on and
the versions each behaviour holds for.

- ``--generation-config vllm`` always: with vLLM's default (``auto``) the checkpoint's
  ``generation_config.json`` fills every sampling field a request leaves out (top_p, top_k,
  repetition_penalty: ``ModelConfig.get_diff_sampling_param``), so the role's documented sampling
  would not be what runs.
- ``VLLM_API_KEY`` is not passed on: vLLM would answer 401 on every ``/v1`` route
  (``AuthenticationMiddleware``) and the service could not warm up.

- LoRA at runtime (``--enable-lora`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``):
  ``POST /v1/load_lora_adapter {lora_name, lora_path}`` and ``/v1/unload_lora_adapter``; a request
  selects an adapter by its name in ``model``. Adapters are loaded under new names only; this
  engine never sends ``load_inplace`` (sticky in vLLM). After a restart the adapters that were
  loaded are loaded again, so the names the service uses keep working.
- In-place full-weight reload (``--enable-sleep-mode`` and ``VLLM_SERVER_DEV_MODE=1``):
  ``/sleep?level=2``, ``/wake_up?tags=weights``, ``/collective_rpc``
  ``{"method": "reload_weights", "kwargs": {"weights_path": PATH}}`` (the documented form),
  ``/wake_up?tags=kv_cache``, ``/reset_prefix_cache`` (cached prefixes were computed with the old
  weights). A successful call does not prove the weights changed (vLLM #32718, #48312): a greedy
  probe generation with log-probabilities runs before and after, and a reload after which the
  probe answers exactly as before raises :class:`EngineRequestError`.
  Not with LoRA enabled: vLLM's ``reload_weights`` fails under ``--enable-lora`` (#39934), so
  ``supports_in_place`` is False then.
- Constrained decoding: the request field ``structured_outputs: {"grammar": <llguidance Lark>}``
  (vllm/sampling_params.py ``StructuredOutputsParams``; the ``guided_*`` fields were removed in
  0.12 and are ignored silently), and ``--structured-outputs-config.backend guidance``
  (vllm/config/structured_outputs.py ``StructuredOutputsConfig.backend``: auto, xgrammar,
  guidance, outlines, lm-format-enforcer): ``auto`` may pick xgrammar, which does not read the
  Lark extensions the grammars use (``%json``, ``&``/``~``); the guidance backend compiles a
  grammar with ``llguidance.grammar_from("grammar", ...)``
  (vllm/v1/structured_output/backend_guidance.py ``serialize_guidance_grammar``).
- Blue/green room (:meth:`VllmEngine.second_copy_problem`): vLLM refuses to start when the GPU's
  free memory is below ``--gpu-memory-utilization`` of its total (``Worker.init_device``); the
  free memory is read with ``nvidia-smi`` before a second engine is started.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from umi.engines.base import CompletionParams, EngineError, EngineInfo, EngineOptions, EngineRequestError
from umi.engines.http_engine import LaunchSpec, SupervisedEngine

log = logging.getLogger("umi.engine")

VLLM_VERSION = "0.33.0"  # the one vLLM this adapter is written against (pyproject `gpu` extra, Dockerfile image)
# vllm/config/lora.py MaxLoRARanks: the only --max-lora-rank values `vllm serve` accepts.
MAX_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# vllm/engine/arg_utils.py: --gpu-memory-utilization when not given.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
# vLLM #39934 (fixed by PR #39935): reload_weights raises KeyError when LoRA wraps the layers.
# Not known to be fixed at VLLM_VERSION until a GPU check proves it: in-place reload is off with LoRA.
LORA_RELOAD_FIXED = False
# The greedy generation that must change when the weights do (tokens and their log-probabilities).
RELOAD_PROBE_PROMPT = "The quick brown fox"
RELOAD_PROBE = CompletionParams(max_tokens=4, temperature=0.0, logprobs=0)
NVIDIA_SMI_TIMEOUT_S = 10.0


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
    structured_outputs_backend: str | None = None  # --structured-outputs-config.backend (guidance: the Lark grammars of umi.format.constraints)

    def argv(self) -> list[str]:
        out = ["--served-model-name", self.served_model_name, "--generation-config", "vllm"]
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
        if self.structured_outputs_backend is not None:
            out += ["--structured-outputs-config.backend", self.structured_outputs_backend]
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
        return self.flags.enable_sleep_mode and (LORA_RELOAD_FIXED or not self.flags.enable_lora)

    def command(self) -> list[str]:
        argv = self._base_argv(("vllm",))
        if self.launch.dtype:
            argv += ["--dtype", self.launch.dtype]
        return argv + self.flags.argv() + list(self.launch.extra_args)

    def environment(self) -> dict[str, str]:
        return self.flags.environment()

    def unset_environment(self) -> tuple[str, ...]:
        return ("VLLM_API_KEY",)

    def second_copy_problem(self) -> str | None:
        """Why a second ``vllm serve`` like this one would not start now: its share of a GPU is not free."""
        share = self.flags.gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION
        gpus = gpu_memory_mib()
        if not gpus:
            return None  # unknown: let vLLM decide
        for index, (free, total) in enumerate(gpus[: self.flags.tensor_parallel_size or 1]):
            if free < share * total:
                return (
                    f"a second vLLM engine needs {share:g} of the GPU ({share * total:.0f} MiB) free and GPU {index} "
                    f"has {free:.0f} MiB free; vLLM refuses to start below its share (Worker.init_device)"
                )
        return None

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
        """Replace the base weights inside the running engine (sleep level 2, reload, wake).

        Raises :class:`EngineRequestError` when a call fails, or when the probe generation answers
        exactly as before the reload (the engine kept its old weights). Reloading the weights the
        engine holds (restoring them after a failed swap) is not checked: its output need not change.
        """
        changing = model_path != self.model_path
        before = await self._probe() if changing else None
        await self._post("/sleep", params={"level": 2})
        await self._post("/wake_up", params={"tags": "weights"})
        await self._post("/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": model_path}})
        await self._post("/wake_up", params={"tags": "kv_cache"})
        await self._post("/reset_prefix_cache")
        if before is not None and await self._probe() == before:
            raise EngineRequestError(
                f"vLLM reported {model_path} reloaded, but the probe generation answers exactly as before: "
                "the old weights still serve (vLLM #32718, #48312)", 500,
            )
        self.model_path = model_path  # a restart loads these weights

    async def _probe(self) -> tuple[str, tuple[float | None, ...] | None] | None:
        """The greedy probe's text and log-probabilities; None when it fails (asleep, or weights already gone)."""
        try:
            done = await self.client.complete(self.served_model, RELOAD_PROBE_PROMPT, RELOAD_PROBE)
        except EngineError:
            return None
        return done.text, done.token_logprobs

    async def is_sleeping(self) -> bool:
        response = await self.client.request("GET", "/is_sleeping")
        return bool(response.json().get("is_sleeping"))


def gpu_memory_mib() -> list[tuple[float, float]] | None:
    """(free, total) MiB of each GPU this process may use (``CUDA_VISIBLE_DEVICES``), by ``nvidia-smi``;
    None when that is unknown (no ``nvidia-smi``, or it fails)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    argv = [smi, "--query-gpu=memory.free,memory.total", "--format=csv,noheader,nounits"]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        argv.append(f"--id={visible}")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
        return [(float(free), float(total)) for free, total in (line.split(",") for line in out.splitlines() if line.strip())]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
