"""Each swap strategy on its own, in-process: a fake host (the weights manager as a strategy sees
it) and fake engines (tests/support/fake_engine.py). For each: the swap that works, a failure
before the switch (refused, nothing changed), a failure after the engine changed (undone), and an
engine without the capability (refused, naming it).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from tests.support.fake_engine import CapableFakeEngine, FakeEngine

from umi.engines import CompletionParams, Engine, EngineState, EngineUnavailable
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.strategies import STRATEGIES, BlueGreen, InPlace, Lora, Reuse, Strategy, SwapJob, Switched
from umi.service.weights import WeightsRef

T = TypeVar("T")
V1 = WeightsRef(path="/models/v1", name="v1", version="1")
V2 = WeightsRef(path="/models/v2", name="v2", version="2")
A1 = WeightsRef(path="/adapters/a1", name="a1", version="a1", kind="lora")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


class FakeHost:
    """Records, in order, the phases and actions a strategy asks for."""

    role = "planner"

    def __init__(self, broken: set[str] | None = None, bad_output: set[str] | None = None,
                 bad_tokenizers: set[str] | None = None) -> None:
        self.broken = broken or set()
        self.bad_output = bad_output or set()
        self.bad_tokenizers = bad_tokenizers or set()
        self.log: list[str] = []
        self.built: list[CapableFakeEngine] = []
        self.switched: list[Deployment] = []
        self.paused = False
        self._seq = itertools.count(1)

    def engine(self, path: str = V1.path) -> CapableFakeEngine:
        return CapableFakeEngine(path, broken=self.broken, bad_output=self.bad_output)

    def phase(self, phase: str) -> None:
        self.log.append(phase)

    async def load_fitter(self, tokenizer_path: str, model_path: str) -> Any:
        if tokenizer_path in self.bad_tokenizers:
            raise OSError(f"{tokenizer_path}: no tokenizer.json")
        return f"tokenizer of {tokenizer_path}"

    async def warm_up(self, deployment: Deployment) -> None:
        self.log.append(f"warm up {deployment.served_model}")
        await deployment.engine.complete(deployment.served_model, "warm-up", CompletionParams(max_tokens=4, temperature=0.0))

    def new_engine(self, weights: WeightsRef) -> Engine:
        engine = self.engine(weights.path)
        self.built.append(engine)
        return engine

    async def stop_engine(self, engine: Engine) -> None:
        self.log.append("stop engine")
        await engine.stop()

    def switch(self, deployment: Deployment) -> None:
        self.log.append("switch (paused)" if self.paused else "switch")
        self.switched.append(deployment)

    @contextmanager
    def pause(self) -> Iterator[None]:
        self.log.append("pause")
        self.paused = True
        try:
            yield
        finally:
            self.paused = False
            self.log.append("resume")

    def adapter_name(self, version: str) -> str:
        return f"planner-{version}-{next(self._seq)}"


async def serving(engine: FakeEngine) -> Deployment:
    await engine.start()
    engine.calls.clear()
    return Deployment(engine, V1, V1, "tokenizer of v1", engine.served_model)  # type: ignore[arg-type]


async def serving_adapter(engine: CapableFakeEngine) -> Deployment:
    """``engine`` serving the adapter A1 on the base V1."""
    await engine.start()
    await engine.load_lora("planner-a1-1", A1.path)
    engine.calls.clear()
    return Deployment(engine, A1, V1, "tokenizer of v1", "planner-a1-1", adapter="planner-a1-1")  # type: ignore[arg-type]


def job(current: Deployment, target: WeightsRef, tokenizer: str | None = None, drain_timeout_s: float = 5.0) -> SwapJob:
    return SwapJob(current, target, tokenizer, drain_timeout_s)


def refusal(exc: pytest.ExceptionInfo[HttpError]) -> tuple[int, str, str | None]:
    return exc.value.status, exc.value.type, exc.value.field


def refused_swap(unit: Strategy, host: FakeHost, engine: FakeEngine, target: WeightsRef, *, adapter: bool = False,
                 tokenizer: str | None = None) -> pytest.ExceptionInfo[HttpError]:
    """Run ``unit`` from ``engine`` serving V1 (or the adapter A1 on it) to ``target``; it must refuse."""

    async def scenario() -> None:
        current = await (serving_adapter(engine) if adapter else serving(engine))  # type: ignore[arg-type]
        await unit.run(host, job(current, target, tokenizer))

    with pytest.raises(HttpError) as exc:
        run(scenario())
    return exc


def test_the_registry_holds_one_unit_per_strategy() -> None:
    assert set(STRATEGIES) == {"blue_green", "in_place", "lora", "reuse"}


# ----------------------------------------------------------------------------- blue/green


def test_blue_green_switches_to_a_second_engine_after_its_warm_up_and_stops_the_old_one_on_release() -> None:
    async def scenario() -> tuple[FakeHost, FakeEngine, Switched]:
        host = FakeHost()
        old = host.engine()
        current = await serving(old)
        switched = await BlueGreen().run(host, job(current, V2))
        assert old.state is EngineState.READY and old.calls == []  # untouched until released
        await BlueGreen().release(host, current, switched.new)
        return host, old, switched

    host, old, switched = run(scenario())
    new = switched.new
    assert host.built == [new.engine] and new.engine.model_path == V2.path and new.engine.state is EngineState.READY
    assert (new.weights, new.base, new.fitter, new.adapter) == (V2, V2, "tokenizer of /models/v2", None)
    assert host.log == ["loading tokenizer", "starting engine", "warming up", "warm up planner", "switch", "stopping the old engine", "stop engine"]
    assert host.switched == [new]
    assert old.state is EngineState.STOPPED


def test_blue_green_refuses_weights_whose_engine_does_not_start_and_stops_that_engine() -> None:
    host = FakeHost(broken={V2.path})
    old = host.engine()
    exc = refused_swap(BlueGreen(), host, old, V2)
    assert refusal(exc) == (422, "weights_load_failed", "path") and "did not start on /models/v2" in exc.value.message
    assert host.switched == [] and host.log[-1] == "stop engine" and host.built[0].state is EngineState.STOPPED
    assert old.state is EngineState.READY and old.calls == []


def test_blue_green_stops_the_new_engine_when_its_warm_up_fails() -> None:
    host = FakeHost(bad_output={V2.path})
    old = host.engine()
    exc = refused_swap(BlueGreen(), host, old, V2)
    assert refusal(exc) == (422, "warmup_failed", None) and "injected failure" in exc.value.message
    assert host.switched == [] and host.built[0].state is EngineState.STOPPED
    assert old.state is EngineState.READY and old.calls == []


def test_a_tokenizer_that_does_not_load_refuses_the_swap_before_any_engine_starts() -> None:
    host = FakeHost(bad_tokenizers={V2.path, "/tokenizers/other"})

    for tokenizer, field in ((None, "path"), ("/tokenizers/other", "tokenizer")):
        exc = refused_swap(BlueGreen(), host, host.engine(), V2, tokenizer=tokenizer)
        assert refusal(exc) == (422, "weights_load_failed", field) and "does not load" in exc.value.message
    assert host.built == [] and host.switched == []


def test_blue_green_and_reuse_need_no_capability() -> None:
    plain = FakeEngine(V1.path)
    BlueGreen().check(plain)
    Reuse().check(plain)


# ----------------------------------------------------------------------------- in place


def test_in_place_reloads_the_same_engine_while_requests_queue_and_switches_before_resuming() -> None:
    async def scenario() -> tuple[FakeHost, CapableFakeEngine, Switched]:
        host = FakeHost()
        engine = host.engine()
        switched = await InPlace().run(host, job(await serving(engine), V2))
        return host, engine, switched

    host, engine, switched = run(scenario())
    new = switched.new
    assert new.engine is engine and engine.model_path == V2.path and host.built == []
    assert (new.weights, new.base, new.served_model) == (V2, V2, "planner")
    assert engine.calls == [("reload_weights", V2.path), ("complete", "planner")]
    assert host.log == [
        "loading tokenizer", "pausing", "pause", "reloading weights", "warming up", "warm up planner", "switch (paused)", "resume",
    ]


def test_in_place_refuses_with_409_when_requests_do_not_drain_and_changes_nothing() -> None:
    host = FakeHost()
    engine = host.engine()

    async def scenario() -> Deployment:
        current = await serving(engine)
        current.enter()  # a request that runs past the drain timeout
        with pytest.raises(HttpError) as exc:
            await InPlace().run(host, job(current, V2, drain_timeout_s=0.01))
        assert refusal(exc) == (409, "drain_timeout", None) and "1 requests were still running" in exc.value.message
        return current

    current = run(scenario())
    assert current.in_flight == 1 and engine.calls == [] and engine.model_path == V1.path
    assert host.switched == [] and not host.paused and host.log[-1] == "resume"


def test_in_place_reloads_the_old_weights_when_the_new_ones_do_not_load() -> None:
    host = FakeHost(broken={V2.path})
    engine = host.engine()
    exc = refused_swap(InPlace(), host, engine, V2)
    assert refusal(exc) == (422, "weights_load_failed", "path") and "did not reload /models/v2" in exc.value.message
    assert engine.calls == [("reload_weights", V2.path), ("reload_weights", V1.path), ("complete", "planner")]
    assert engine.model_path == V1.path and engine.state is EngineState.READY
    assert host.switched == [] and not host.paused
    assert host.log == [
        "loading tokenizer", "pausing", "pause", "reloading weights", "restoring the old weights", "warm up planner", "resume",
    ]


def test_in_place_reloads_the_old_weights_when_the_new_ones_fail_the_warm_up() -> None:
    host = FakeHost(bad_output={V2.path})
    engine = host.engine()
    exc = refused_swap(InPlace(), host, engine, V2)
    assert refusal(exc) == (422, "warmup_failed", None)
    assert [c for c in engine.calls if c[0] == "reload_weights"] == [("reload_weights", V2.path), ("reload_weights", V1.path)]
    assert engine.model_path == V1.path and host.switched == [] and not host.paused


def test_in_place_restarts_the_engine_on_the_old_weights_when_reloading_them_fails_too() -> None:
    host = FakeHost(broken={V2.path})
    engine = host.engine()

    async def scenario() -> None:
        current = await serving(engine)
        host.broken.add(V1.path)  # the old weights do not load again either
        await InPlace().run(host, job(current, V2))

    with pytest.raises(HttpError) as exc:
        run(scenario())
    assert refusal(exc) == (422, "weights_load_failed", "path")
    assert engine.calls == [("reload_weights", V2.path), ("reload_weights", V1.path), ("restart_on", V1.path)]
    assert engine.model_path == V1.path and engine.state is EngineState.RESTARTING and host.switched == []


# ----------------------------------------------------------------------------- LoRA


def test_lora_loads_the_adapter_under_a_new_name_switches_the_alias_and_unloads_the_old_adapter_on_release() -> None:
    a2 = WeightsRef(path="/adapters/a2", name="a2", version="a2", kind="lora")

    async def scenario() -> tuple[FakeHost, CapableFakeEngine, Switched, Switched]:
        host = FakeHost()
        engine = host.engine()
        base = await serving(engine)
        first = await Lora().run(host, job(base, A1))
        await Lora().release(host, base, first.new)  # nothing to unload: the base served
        second = await Lora().run(host, job(first.new, a2))
        await Lora().release(host, first.new, second.new)
        return host, engine, first, second

    host, engine, first, second = run(scenario())
    assert (first.new.adapter, first.new.served_model, first.new.base) == ("planner-a1-1", "planner-a1-1", V1)
    assert first.new.fitter == "tokenizer of v1"  # an adapter keeps the base tokenizer
    assert second.new.adapter == "planner-a2-2" and second.new.engine is engine and host.built == []
    assert engine.calls == [
        ("load_lora", "planner-a1-1", A1.path), ("complete", "planner-a1-1"),
        ("load_lora", "planner-a2-2", a2.path), ("complete", "planner-a2-2"), ("unload_lora", "planner-a1-1"),
    ]
    assert engine.adapters == {"planner-a2-2": a2.path} and host.switched == [first.new, second.new]
    assert host.log[-1] == "unloading adapter planner-a1-1"


def test_lora_refuses_an_adapter_the_engine_does_not_load() -> None:
    host = FakeHost(broken={A1.path})
    engine = host.engine()
    exc = refused_swap(Lora(), host, engine, A1)
    assert refusal(exc) == (422, "weights_load_failed", "path") and "injected failure" in exc.value.message
    assert engine.adapters == {} and host.switched == []


def test_lora_unloads_an_adapter_that_fails_its_warm_up() -> None:
    host = FakeHost(bad_output={A1.path})
    engine = host.engine()
    exc = refused_swap(Lora(), host, engine, A1)
    assert refusal(exc) == (422, "warmup_failed", None)
    assert engine.calls[-1] == ("unload_lora", "planner-a1-1") and engine.adapters == {} and host.switched == []


def test_lora_on_an_engine_that_is_not_ready_loads_nothing() -> None:
    host = FakeHost()
    engine = host.engine()

    async def scenario() -> None:
        current = await serving(engine)
        await engine.stop()
        await Lora().run(host, job(current, A1))

    with pytest.raises(EngineUnavailable):
        run(scenario())
    assert engine.adapters == {} and host.switched == []


# ----------------------------------------------------------------------------- capabilities

IN_PLACE_REFUSED = ("in_place_unsupported", "strategy", "in-place swaps need")
LORA_REFUSED = ("lora_unsupported", "kind", "LoRA swaps need")


@pytest.mark.parametrize(
    ("unit", "target", "engine", "refused"),
    [
        (InPlace(), V2, FakeEngine(V1.path), IN_PLACE_REFUSED),
        (InPlace(), V2, CapableFakeEngine(V1.path, in_place=False), IN_PLACE_REFUSED),
        (Lora(), A1, FakeEngine(V1.path), LORA_REFUSED),
        (Lora(), A1, CapableFakeEngine(V1.path, lora=False), LORA_REFUSED),
    ],
    ids=["in_place-lacking", "in_place-disabled", "lora-lacking", "lora-disabled"],
)
def test_a_strategy_is_refused_on_an_engine_without_its_capability_before_anything_happens(
    unit: Strategy, target: WeightsRef, engine: FakeEngine, refused: tuple[str, str, str]
) -> None:
    error_type, field, message = refused
    with pytest.raises(HttpError) as exc:
        unit.check(engine)
    assert refusal(exc) == (422, error_type, field) and exc.value.message.startswith(message)

    host = FakeHost()

    exc = refused_swap(unit, host, engine, target)
    assert refusal(exc) == (422, error_type, field) and host.log == [] and engine.calls == [] and host.switched == []


# ----------------------------------------------------------------------------- reuse


def test_reuse_goes_back_to_the_base_weights_on_the_same_engine_and_unloads_the_adapter_on_release() -> None:
    async def scenario() -> tuple[FakeHost, CapableFakeEngine, Switched]:
        host = FakeHost()
        engine = host.engine()
        with_adapter = await serving_adapter(engine)
        switched = await Reuse().run(host, job(with_adapter, V1))
        await Reuse().release(host, with_adapter, switched.new)
        return host, engine, switched

    host, engine, switched = run(scenario())
    new = switched.new
    assert new.engine is engine and host.built == []
    assert (new.weights, new.base, new.served_model, new.adapter) == (V1, V1, "planner", None)
    assert engine.calls == [("complete", "planner"), ("unload_lora", "planner-a1-1")] and engine.adapters == {}
    assert host.log == ["loading tokenizer", "warming up", "warm up planner", "switch", "unloading adapter planner-a1-1"]


def test_reuse_refuses_when_the_warm_up_fails_and_keeps_the_adapter() -> None:
    host = FakeHost(bad_output={V1.path})
    engine = host.engine()
    exc = refused_swap(Reuse(), host, engine, V1, adapter=True)
    assert refusal(exc) == (422, "warmup_failed", None) and "injected failure" in exc.value.message
    assert host.switched == [] and engine.adapters == {"planner-a1-1": A1.path} and engine.state is EngineState.READY
