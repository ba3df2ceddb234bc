"""Which corpus the demo models are trained on: ``umi demo corpus``'s defaults, kept apart from
the corpus builder so that the ``umi`` command can show them without importing the tools."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusSpec:
    seed: int = 7
    train: int = 24000  # trajectories per training file
    test: int = 200  # trajectories per held-out file


DEMO_CORPUS = CorpusSpec()  # what `make models` trains the demo models on (the shipped ones included)
