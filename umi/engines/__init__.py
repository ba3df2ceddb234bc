"""Engines: the OpenAI-compatible servers that generate for a role service.

    vllm          ``vllm serve``, supervised subprocess (GPU); LoRA and in-place reload
    transformers  ``transformers serve``, supervised subprocess (CPU default); with constrained
                  decoding, ``python -m umi.engines.transformers_structured`` (the same server,
                  plus vLLM's ``structured_outputs`` request field)
    url           an already running OpenAI-compatible server

``build_engine`` (kinds.py) builds one by kind; the capabilities that weight swaps use
(``LoraAdapters``, ``InPlaceReload``, ``Restartable``) are protocols next to ``Engine`` (base.py).
"""

from umi.engines.base import (
    ENGINE_STATES,
    Completion,
    CompletionParams,
    ContextTooLong,
    Engine,
    EngineConfigError,
    EngineError,
    EngineInfo,
    EngineOptions,
    EngineRequestError,
    EngineStartError,
    EngineState,
    EngineTimeout,
    EngineUnavailable,
    InPlaceReload,
    LoraAdapters,
    Restartable,
    StreamEvent,
    TextDelta,
)
from umi.engines.http_engine import LaunchSpec, SupervisedEngine, UrlEngine
from umi.engines.kinds import build_engine
from umi.engines.transformers_serve import TransformersEngine
from umi.engines.vllm_serve import VLLM_VERSION, VllmEngine, VllmFlags

__all__ = [
    "ENGINE_STATES", "Completion", "CompletionParams", "ContextTooLong", "Engine", "EngineConfigError", "EngineError",
    "EngineInfo", "EngineOptions", "EngineRequestError", "EngineStartError", "EngineState", "EngineTimeout",
    "EngineUnavailable", "InPlaceReload", "LaunchSpec",
    "LoraAdapters", "Restartable", "StreamEvent", "SupervisedEngine", "TextDelta", "TransformersEngine", "UrlEngine",
    "VLLM_VERSION", "VllmEngine", "VllmFlags", "build_engine",
]
