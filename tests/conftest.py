"""Shared fixtures: paths, and the Redis server that `make test` starts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def trajectories_path() -> Path:
    return FIXTURES / "trajectories.json"


@pytest.fixture(scope="session")
def trajectories_data(trajectories_path: Path) -> list[dict]:
    return json.loads(trajectories_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis server of `make test` (scripts/with-redis.sh). Under CI it must be there."""
    url = os.environ.get("UMI_TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("UMI_TEST_REDIS_URL is not set: run the suite with `make test`")
        pytest.skip("no test Redis: run the suite with `make test`")
    return url


# --------------------------------------------------------------------------- role services


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random Llamas made by the product's maker: v1 and v2 (other weights), and a copy of
    v1 whose weight file is cut short, so it fails to load."""
    import shutil

    from umi.models.tiny import TinyModelSpec, make_tiny_model

    root = tmp_path_factory.mktemp("models")
    v1 = make_tiny_model(root / "tiny-v1", spec=TinyModelSpec(seed=0))
    v2 = make_tiny_model(root / "tiny-v2", spec=TinyModelSpec(seed=1))
    broken = root / "tiny-broken"
    shutil.copytree(v1, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return {"v1": v1, "v2": v2, "broken": broken}
