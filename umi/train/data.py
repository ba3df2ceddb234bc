"""GLPFT samples as token ids, the loss on target tokens only, and length-bucketed batches.

As the reference trained: the input is ``system: `` + sample input (with BOS), the target is the
sample target + ``</s>`` (no BOS), and an over-long sequence keeps its last ``max_length`` tokens.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from umi.format import DEFAULT_SYSTEM_PREFIX, Sample

IGNORE = -100
END_OF_TURN = "</s>"


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def target_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def encode_sample(tokenizer: Any, sample: Sample, max_length: int) -> Encoded:
    prompt = tokenizer(DEFAULT_SYSTEM_PREFIX + sample.input, add_special_tokens=True)["input_ids"]
    target = tokenizer(sample.target + END_OF_TURN, add_special_tokens=False)["input_ids"]
    ids = list(prompt) + list(target)
    labels = [IGNORE] * len(prompt) + list(target)
    if len(ids) > max_length:
        ids, labels = ids[-max_length:], labels[-max_length:]
    return Encoded(ids, labels)


def batch_order(lengths: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of similar length (little padding), in a random order fixed by seed and epoch."""
    rng = random.Random(f"{seed}:{epoch}")
    index = list(range(len(lengths)))
    rng.shuffle(index)
    chunk = batch_size * 32
    batches: list[list[int]] = []
    for start in range(0, len(index), chunk):
        part = sorted(index[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(items: Sequence[Encoded], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(x.input_ids) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.input_ids)
        ids[row, :n] = torch.tensor(item.input_ids)
        labels[row, :n] = torch.tensor(item.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def epochs_of_batches(lengths: Sequence[int], batch_size: int, seed: int) -> Iterator[list[int]]:
    """Batches epoch after epoch, without end; ValueError for no samples (it would never yield)."""
    if not lengths:
        raise ValueError("no samples to make batches of")
    epoch = 0
    while True:
        yield from batch_order(lengths, batch_size, seed, epoch)
        epoch += 1
