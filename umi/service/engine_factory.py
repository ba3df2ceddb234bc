"""Builds the configured kind of engine for given weights (the first one, and each blue/green one)."""

from __future__ import annotations

from umi.engines import Engine, LaunchSpec, VllmFlags, build_engine
from umi.service.settings import EngineKind, ServiceSettings
from umi.service.weights import WeightsRef


class EngineFactory:
    def __init__(self, settings: ServiceSettings, role: str) -> None:
        self.settings = settings
        self.role = role
        self.kind: EngineKind = settings.engine_kind()
        self._built = 0
        self.constrained = settings.constraint_mode(role) != "off"  # type: ignore[arg-type]

    def _launch(self) -> LaunchSpec:
        s = self.settings
        # The first engine may have a fixed port; blue/green replicas take free ones.
        port = s.engine_port if self._built == 0 else 0
        return LaunchSpec(
            command=s.engine_command_argv(), host=s.engine_host, port=port, extra_args=s.engine_argv(), dtype=s.dtype
        )

    def vllm_flags(self) -> VllmFlags:
        s = self.settings
        return VllmFlags(
            served_model_name=self.role,
            tensor_parallel_size=s.tensor_parallel_size,
            gpu_memory_utilization=s.gpu_memory_utilization,
            max_model_len=s.max_model_len,
            enable_lora=s.enable_lora,
            max_loras=s.max_loras,
            max_lora_rank=s.max_lora_rank,
            enable_sleep_mode=s.enable_sleep_mode,
            structured_outputs_backend="guidance" if self.constrained else None,
        )

    def __call__(self, weights: WeightsRef) -> Engine:
        s = self.settings
        engine = build_engine(
            self.kind, weights.path, s.engine_options(), self._launch(), self.vllm_flags(),
            url=weights.engine_url or s.engine_url, served_model=s.engine_model or weights.path,
            structured_outputs=self.constrained,
        )
        self._built += 1
        return engine
