"""A model soup: the uniform average of the weights of models fine-tuned from one base.

Wortsman et al., "Model soups: averaging weights of multiple fine-tuned models improves accuracy
without increasing inference time" (ICML 2022): copies fine-tuned from the same pre-trained
weights with different data orders lie in one basin of the loss, and their average is often
better than each copy, most of all out of distribution. The demo's planner and caller are soups
of three copies (docs/training.md has the measurements).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

WEIGHTS_FILE = "model.safetensors"


def uniform_soup(model_dirs: Sequence[Path]) -> dict[str, Any]:
    """``{parameter name: float32 tensor}``: the mean of ``<dir>/model.safetensors`` over the
    directories. Raises ValueError when there are none or when their parameter names or shapes
    differ (models of different architectures cannot be averaged)."""
    from safetensors.torch import load_file

    if not model_dirs:
        raise ValueError("a soup needs at least one model")
    total: dict[str, Any] = {}
    for path in model_dirs:
        weights = load_file(path / WEIGHTS_FILE)
        if total and (weights.keys() != total.keys() or any(weights[k].shape != total[k].shape for k in total)):
            raise ValueError(f"{path}: its parameters differ from {model_dirs[0]}'s; a soup needs one architecture")
        for key, tensor in weights.items():
            total[key] = total[key] + tensor.float() if key in total else tensor.float().clone()
    return {key: tensor / len(model_dirs) for key, tensor in total.items()}
