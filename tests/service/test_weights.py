"""Weights references: path checks and fingerprints (the default version)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from umi.service.weights import WeightsProblem, check_weights_path, fingerprint, weights_ref


def test_fingerprint_changes_with_the_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"1234")
    first = fingerprint(str(tmp_path))
    assert fingerprint(str(tmp_path)) == first and len(first) == 12
    weights.write_bytes(b"12345")
    assert fingerprint(str(tmp_path)) != first
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert len({first, fingerprint(str(tmp_path))}) == 2


def test_weights_ref_defaults(tmp_path: Path) -> None:
    model = tmp_path / "caller-v3"
    model.mkdir()
    (model / "config.json").write_text("{}")
    ref = weights_ref(str(model) + "/")
    assert ref.name == "caller-v3" and ref.version == fingerprint(str(model) + "/") and ref.kind == "full"
    assert weights_ref(str(model), name="caller", version="v3").model_info().model_dump() == {"name": "caller", "version": "v3"}


def test_check_weights_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsProblem, match="no such directory"):
        check_weights_path(str(tmp_path / "missing"), "full")
    with pytest.raises(WeightsProblem, match="no config.json"):
        check_weights_path(str(tmp_path), "full")
    with pytest.raises(WeightsProblem, match="no adapter_config.json"):
        check_weights_path(str(tmp_path), "lora")
    (tmp_path / "adapter_config.json").write_text("{}")
    check_weights_path(str(tmp_path), "lora")
    check_weights_path("shenwzh3/alpha-umi-caller-7b", "full")  # a hub id: the engine resolves it
    with pytest.raises(WeightsProblem):
        check_weights_path("shenwzh3/alpha-umi-caller-7b", "lora")


def test_version_recorded_by_umi_train_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "training.json").write_text('{"version": "demo-1-abcdef12", "role": "caller"}')
    assert weights_ref(str(tmp_path)).version == "demo-1-abcdef12"
    assert weights_ref(str(tmp_path), version="ops-7").version == "ops-7"
    (tmp_path / "training.json").write_text("not json")
    assert weights_ref(str(tmp_path)).version == fingerprint(str(tmp_path))
