"""Swap strategies: one unit per way of replacing a role service's weights, behind one interface
(:class:`Strategy`, base.py), picked by name from :data:`STRATEGIES`.

    blue_green.py   BlueGreen   full weights on a second engine, then stop the old one
    in_place.py     InPlace     full weights reloaded inside the one engine, requests paused
    lora.py         Lora        a LoRA adapter loaded beside the base weights, the alias switched
    reuse.py        Reuse       what the engine already holds: warm up and switch
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from umi.service.strategies.base import Strategy, StrategyName, SwapHost, SwapJob, Switched
from umi.service.strategies.blue_green import BlueGreen
from umi.service.strategies.in_place import InPlace
from umi.service.strategies.lora import Lora
from umi.service.strategies.reuse import Reuse

STRATEGIES: Mapping[StrategyName, Strategy] = MappingProxyType(
    {unit.name: unit for unit in (BlueGreen(), InPlace(), Lora(), Reuse())}
)

__all__ = [
    "STRATEGIES", "BlueGreen", "InPlace", "Lora", "Reuse", "Strategy", "StrategyName", "SwapHost", "SwapJob", "Switched",
]
