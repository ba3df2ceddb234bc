"""In-process engines for unit tests: no server, no process, every call recorded.

``FakeEngine`` holds to the :class:`~umi.engines.Engine` contract (``start`` raises
:class:`EngineStartError`, requests on an engine that is not ready raise :class:`EngineUnavailable`,
an unknown ``model`` is an :class:`EngineRequestError` 404 as in vLLM); ``CapableFakeEngine`` adds
the swap capabilities (``LoraAdapters``, ``InPlaceReload``, ``Restartable``) as the vllm engine
has them. Failures are injected by weights path: ``broken`` paths do not load (start, adapter load,
reload), ``bad_output`` paths load but fail every generation (the warm-up).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from umi.engines import (
    Completion,
    CompletionParams,
    Engine,
    EngineInfo,
    EngineOptions,
    EngineRequestError,
    EngineStartError,
    EngineState,
    StreamEvent,
)


class FakeEngine(Engine):
    kind = "fake"

    def __init__(self, model_path: str, served_model: str = "planner", broken: set[str] | None = None,
                 bad_output: set[str] | None = None) -> None:
        super().__init__(model_path, EngineOptions())
        self._served_model = served_model
        self.broken = broken if broken is not None else set()
        self.bad_output = bad_output if bad_output is not None else set()
        self.adapters: dict[str, str] = {}  # name -> path (only CapableFakeEngine loads any)
        self.calls: list[tuple[str, ...]] = []

    @property
    def base_url(self) -> str:
        return "fake://engine"

    @property
    def served_model(self) -> str:
        return self._served_model

    def _refuse_broken(self, call: str, path: str) -> None:
        if path in self.broken:
            raise EngineRequestError(f"{call} {path}: injected failure", 400)

    async def start(self) -> None:
        self.calls.append(("start", self.model_path))
        self._set_state(EngineState.STARTING)
        if self.model_path in self.broken:
            self._set_state(EngineState.STOPPED)
            raise EngineStartError(f"engine exited with status 1 before it was healthy: {self.model_path}: injected failure")
        self._set_state(EngineState.READY)

    async def stop(self) -> None:
        self.calls.append(("stop",))
        self._set_state(EngineState.STOPPED)

    async def complete(self, model: str, prompt: str, params: CompletionParams) -> Completion:
        self.check_ready()
        self.calls.append(("complete", model))
        if model == self.served_model:
            weights = self.model_path
        elif model in self.adapters:
            weights = self.adapters[model]
        else:
            raise EngineRequestError(f"The model `{model}` does not exist.", 404)
        if weights in self.bad_output:
            raise EngineRequestError(f"generation on {weights}: injected failure", 500)
        return Completion(f"from {weights}", 1, 1, "length")

    async def stream(self, model: str, prompt: str, params: CompletionParams) -> AsyncIterator[StreamEvent]:
        yield await self.complete(model, prompt, params)

    def info(self) -> EngineInfo:
        return EngineInfo(kind=self.kind, url=self.base_url, state=self.state.value, model=self.model_path,
                          extra={"adapters": dict(self.adapters)})


class CapableFakeEngine(FakeEngine):
    """A FakeEngine that loads LoRA adapters, reloads in place and restarts (each can be switched off)."""

    def __init__(self, model_path: str, served_model: str = "planner", broken: set[str] | None = None,
                 bad_output: set[str] | None = None, *, lora: bool = True, in_place: bool = True) -> None:
        super().__init__(model_path, served_model, broken, bad_output)
        self.lora = lora
        self.in_place = in_place

    @property
    def supports_lora(self) -> bool:
        return self.lora

    @property
    def supports_in_place(self) -> bool:
        return self.in_place

    async def load_lora(self, name: str, path: str) -> None:
        self.check_ready()
        self.calls.append(("load_lora", name, path))
        self._refuse_broken("load_lora", path)
        self.adapters[name] = path

    async def unload_lora(self, name: str) -> None:
        self.calls.append(("unload_lora", name))
        self.adapters.pop(name, None)

    async def reload_weights(self, model_path: str) -> None:
        self.check_ready()
        self.calls.append(("reload_weights", model_path))
        self._refuse_broken("reload_weights", model_path)
        self.model_path = model_path

    async def restart_on(self, model_path: str) -> None:
        self.calls.append(("restart_on", model_path))
        self.model_path = model_path
        self._set_state(EngineState.RESTARTING)
