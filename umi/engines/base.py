"""The engine interface: an OpenAI-compatible completions server that a role service drives.

Every engine is reached over HTTP at ``base_url`` and generates with ``POST /v1/completions``
on the raw rendered prompt (the alpha-UMi format is not a chat template).

Beyond :class:`Engine`, an engine may have capabilities that weight swaps use, each a protocol
checked with ``isinstance`` (and, where the engine has it only when configured so, its
``supports_*`` property):

    LoraAdapters    loads and unloads LoRA adapters at runtime (LoRA swaps)
    InPlaceReload   replaces its base weights without a new process (in-place swaps)
    Restartable     restarts its server on other weights (the last resort of a failed in-place swap)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field


class EngineState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    UNAVAILABLE = "unavailable"
    STOPPED = "stopped"


ENGINE_STATES: tuple[str, ...] = tuple(s.value for s in EngineState)


@dataclass(frozen=True)
class CompletionParams:
    """Sampling for one ``/v1/completions`` call."""

    max_tokens: int
    temperature: float
    stop: tuple[str, ...] = ()
    top_p: float | None = None
    seed: int | None = None
    logprobs: int | None = None  # log-probabilities of the chosen token (and this many alternatives)
    # vLLM's structured outputs field, e.g. {"grammar": <llguidance Lark>} (umi.format.constraints)
    structured_outputs: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.stop:
            out["stop"] = list(self.stop)
        if self.top_p is not None:
            out["top_p"] = self.top_p
        if self.seed is not None:
            out["seed"] = self.seed
        if self.logprobs is not None:
            out["logprobs"] = self.logprobs
        if self.structured_outputs is not None:
            out["structured_outputs"] = self.structured_outputs
        return out


@dataclass(frozen=True)
class Completion:
    """A finished generation. Token counts are the engine's, ``None`` when it gave none."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    token_logprobs: tuple[float | None, ...] | None = None  # per generated token, when requested


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed text."""

    text: str


StreamEvent = TextDelta | Completion


class EngineError(Exception):
    """Every error an engine raises (a role service answers it with ``umi.http_errors.ErrorBody``)."""


class EngineUnavailable(EngineError):
    """The engine cannot take the request now (starting, restarting, unreachable): retry later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)


class EngineTimeout(EngineUnavailable):
    """The engine did not answer within the request timeout (a hung engine whose ``/health`` may still say 200)."""


class EngineRequestError(EngineError):
    """The engine answered the request with an error (a bad model name, an internal error)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ContextTooLong(EngineRequestError):
    """The engine refused the request: prompt tokens plus ``max_tokens`` are over its context length."""


class EngineStartError(EngineError):
    """The engine did not come up healthy; the message carries the tail of its log."""


class EngineConfigError(EngineStartError):
    """The engine exited at once with a usage error (a flag it does not accept): retrying cannot help."""


StateListener = Callable[["EngineState"], None]
RestartListener = Callable[[], None]


@dataclass(frozen=True)
class EngineOptions:
    """Timeouts and supervision shared by every engine kind."""

    request_timeout_s: float = 300.0  # one generation, at most
    start_timeout_s: float = 900.0  # process start until /health answers 200
    stop_grace_s: float = 15.0  # SIGTERM, then SIGKILL after this
    health_interval_s: float = 2.0
    health_failures: int = 3  # consecutive failed probes before the engine counts as dead
    restart_backoff_s: float = 1.0  # first restart delay; doubles up to RESTART_BACKOFF_MAX_S
    retry_after_s: int = 5  # Retry-After before any start duration is known


RESTART_BACKOFF_MAX_S = 30.0


class EngineInfo(BaseModel):
    """What ``GET /admin/weights`` shows about an engine."""

    kind: str
    url: str
    state: str
    model: str
    pid: int | None = None
    restarts: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)


class Engine(ABC):
    """One OpenAI-compatible server, started (or reached) and watched by the role service."""

    kind: str = "engine"

    def __init__(self, model_path: str, options: EngineOptions) -> None:
        self.model_path = model_path
        self.options = options
        self._state = EngineState.STOPPED
        self._listeners: list[StateListener] = []
        self._restart_listeners: list[RestartListener] = []
        self.last_start_seconds: float | None = None
        self.restarts = 0

    # ------------------------------------------------------------------ state
    @property
    def state(self) -> EngineState:
        return self._state

    def _set_state(self, state: EngineState) -> None:
        if state is self._state:
            return
        self._state = state
        for listener in list(self._listeners):
            listener(state)

    def add_state_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def add_restart_listener(self, listener: RestartListener) -> None:
        self._restart_listeners.append(listener)

    def _restarting(self) -> None:
        self.restarts += 1
        for listener in list(self._restart_listeners):
            listener()

    def retry_after_s(self) -> int:
        """A Retry-After for clients: how long the last start took, else the configured default."""
        if self.last_start_seconds is None:
            return self.options.retry_after_s
        return max(1, min(120, math.ceil(self.last_start_seconds)))

    def check_ready(self) -> None:
        if self._state is not EngineState.READY:
            raise EngineUnavailable(f"engine is {self._state.value}", self.retry_after_s())

    def second_copy_problem(self) -> str | None:
        """Why a second engine like this one could not start now (blue/green), or None when it could."""
        return None

    # --------------------------------------------------------------- contract
    @property
    @abstractmethod
    def base_url(self) -> str: ...

    @property
    @abstractmethod
    def served_model(self) -> str:
        """The ``model`` field that selects the base weights in ``/v1/completions``."""

    @abstractmethod
    async def start(self) -> None:
        """Bring the engine up and wait until it is healthy; raise :class:`EngineStartError`."""

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def complete(self, model: str, prompt: str, params: CompletionParams) -> Completion: ...

    @abstractmethod
    def stream(self, model: str, prompt: str, params: CompletionParams) -> AsyncIterator[StreamEvent]:
        """Text deltas, then one :class:`Completion` with the whole text and the usage."""

    @abstractmethod
    def info(self) -> EngineInfo: ...


# ------------------------------------------------------------------ capabilities
@runtime_checkable
class LoraAdapters(Protocol):
    """Loads LoRA adapters at runtime; a request selects one by its name in ``model``.

    A name is loaded once: load a new version under a new name. Both calls raise
    :class:`EngineRequestError` when the engine refuses, :class:`EngineUnavailable` when it is down.
    """

    @property
    def supports_lora(self) -> bool:
        """False when this engine was started without runtime LoRA loading (the calls would fail)."""

    async def load_lora(self, name: str, path: str) -> None:
        """Load the adapter directory ``path`` under ``name``."""

    async def unload_lora(self, name: str) -> None: ...


@runtime_checkable
class InPlaceReload(Protocol):
    """Replaces the base weights inside the running engine: same process, same ``served_model``.

    The new weights must have the architecture and tokenizer the engine was started with.
    Raises :class:`EngineRequestError` or :class:`EngineUnavailable`; the engine may then hold
    neither the old nor the new weights (reload the old ones, or restart it).
    """

    @property
    def supports_in_place(self) -> bool:
        """False when this engine was started without the reload endpoints (the call would fail)."""

    async def reload_weights(self, model_path: str) -> None:
        """Load ``model_path`` in place; a later restart starts on it too."""


@runtime_checkable
class Restartable(Protocol):
    """An engine whose server this service runs and can restart."""

    async def restart_on(self, model_path: str) -> None:
        """Stop the server; its supervisor starts it again on ``model_path`` (with the usual backoff).

        Returns once the old server has exited, before the new one is up.
        """
