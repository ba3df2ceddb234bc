"""The weights manager in-process, on fake engines (tests/support/fake_engine.py): it picks the
strategy unit by name, refuses what the engine has no capability for before anything happens,
and rolls back through its history. The HTTP and real-engine paths are in test_swap.py and
tests/engines/test_vllm.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.support.fake_engine import CapableFakeEngine

from umi.engines import CompletionParams
from umi.service.deployment import Deployment
from umi.http_errors import HttpError
from umi.service.metrics import ServiceMetrics
from umi.service.settings import ServiceSettings
from umi.service.swap import WeightsManager
from umi.service.weights import WeightsRef

T = TypeVar("T")


class FakeFactory:
    """Builds CapableFakeEngines with the given capabilities switched on or off."""

    kind = "vllm"

    def __init__(self, lora: bool = True, in_place: bool = True) -> None:
        self.lora = lora
        self.in_place = in_place
        self.built: list[CapableFakeEngine] = []

    def __call__(self, weights: WeightsRef) -> CapableFakeEngine:
        engine = CapableFakeEngine(weights.path, lora=self.lora, in_place=self.in_place)
        self.built.append(engine)
        return engine


async def warm_up(deployment: Deployment) -> None:
    await deployment.engine.complete(deployment.served_model, "warm-up", CompletionParams(max_tokens=4, temperature=0.0))


def weights_dir(root: Path, name: str, marker: str = "config.json") -> str:
    path = root / name
    path.mkdir()
    (path / marker).write_text(json.dumps({}))
    return str(path)


def with_manager(tmp_path: Path, factory: FakeFactory, scenario: Callable[[WeightsManager], Awaitable[T]]) -> tuple[T, WeightsManager]:
    settings = ServiceSettings(engine="vllm", model=weights_dir(tmp_path, "v1"), model_version="v1")
    manager = WeightsManager("planner", settings, factory, warm_up, ServiceMetrics("planner"))  # type: ignore[arg-type]

    async def load_fitter(tokenizer_path: str, model_path: str) -> Any:
        return f"tokenizer of {tokenizer_path}"

    manager.load_fitter = load_fitter  # type: ignore[method-assign]

    async def main() -> T:
        manager.fitter = await load_fitter(settings.model or "", settings.model or "")
        await manager.run()
        try:
            return await scenario(manager)
        finally:
            await manager.close()

    return asyncio.run(main()), manager


def swaps_counted(manager: WeightsManager, strategy: str, outcome: str) -> float:
    labels = {"role": "planner", "strategy": strategy, "outcome": outcome}
    return manager.metrics.registry.get_sample_value("umi_swaps_total", labels) or 0.0


def test_the_manager_runs_the_unit_it_picks_and_rolls_back_through_its_history(tmp_path: Path) -> None:
    factory = FakeFactory()
    adapter = weights_dir(tmp_path, "a1", "adapter_config.json")
    v2 = weights_dir(tmp_path, "v2")

    async def scenario(manager: WeightsManager) -> list[Any]:
        lora = await manager.swap(adapter, kind="lora", version="a1")
        adapters = dict(factory.built[0].adapters)
        back = await manager.rollback()
        blue_green = await manager.swap(v2, version="v2")
        return [lora, adapters, back, blue_green]

    (lora, adapters, back, blue_green), manager = with_manager(tmp_path, factory, scenario)
    assert (lora.strategy, lora.model.version, adapters) == ("lora", "a1", {"planner-a1-1": adapter})
    assert (back.strategy, back.rollback, back.model.version) == ("reuse", True, "v1")
    assert (blue_green.strategy, blue_green.model.version, blue_green.drained) == ("blue_green", "v2", True)
    first, second = factory.built
    assert first.adapters == {} and ("stop",) in first.calls and second.model_path == v2
    assert [w.version for w in manager.history] == ["v1"]
    assert [swaps_counted(manager, s, "ok") for s in ("lora", "reuse", "blue_green")] == [1, 1, 1]


def test_the_manager_refuses_a_swap_the_engine_has_no_capability_for_before_anything_happens(tmp_path: Path) -> None:
    factory = FakeFactory(lora=False, in_place=False)
    adapter = weights_dir(tmp_path, "a1", "adapter_config.json")
    v2 = weights_dir(tmp_path, "v2")

    async def scenario(manager: WeightsManager) -> list[HttpError]:
        refused = []
        for kwargs in ({"path": adapter, "kind": "lora"}, {"path": v2, "strategy": "in_place"}):
            with pytest.raises(HttpError) as exc:
                await manager.swap(**kwargs)  # type: ignore[arg-type]
            refused.append(exc.value)
        return refused

    refused, manager = with_manager(tmp_path, factory, scenario)
    assert [(e.status, e.type, e.field) for e in refused] == [
        (422, "lora_unsupported", "kind"), (422, "in_place_unsupported", "strategy"),
    ]
    engine, = factory.built
    assert engine.calls == [("start", engine.model_path), ("complete", "planner"), ("stop",)]  # start, warm-up, close
    assert manager.current is not None and manager.current.weights.version == "v1" and manager.history == []
