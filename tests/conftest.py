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
