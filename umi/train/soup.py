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


def _weights(model_dir: Path) -> dict[str, Any]:
    """Every tensor of a model saved by ``save_pretrained``: ``model.safetensors``, or the shards
    ``model-0000K-of-0000N.safetensors`` a large model is split into."""
    from safetensors.torch import load_file

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{model_dir}: no *.safetensors weights to average")
    return {key: tensor for f in files for key, tensor in load_file(f).items()}


def uniform_soup(model_dirs: Sequence[Path]) -> dict[str, Any]:
    """``{parameter name: float32 tensor}``: the mean of the models' weights (safetensors, one
    file or shards) over the directories. Holds the sum in float32 plus one model at a time
    (a 7B model in bfloat16: about 28 GB + 14 GB of CPU memory). Raises ValueError when there are no
    directories, a directory has no weights, or the parameter names or shapes differ (models
    of different architectures cannot be averaged)."""
    if not model_dirs:
        raise ValueError("a soup needs at least one model")
    total: dict[str, Any] = {}
    for path in model_dirs:
        weights = _weights(path)
        if total and (weights.keys() != total.keys() or any(weights[k].shape != total[k].shape for k in total)):
            raise ValueError(f"{path}: its parameters differ from {model_dirs[0]}'s; a soup needs one architecture")
        for key, tensor in weights.items():
            total[key] = total[key] + tensor.float() if key in total else tensor.float().clone()
        del weights
    for tensor in total.values():
        tensor.div_(len(model_dirs))  # in place: no second float32 copy of the model
    return total
