"""The budget of the property tests and the API fuzzing: ``UMI_FUZZ_EXAMPLES`` examples per
test (default 40: `make test`), ``make fuzz`` sets it high and runs for ``UMI_FUZZ_SECONDS``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("UMI_FUZZ_EXAMPLES", "40"))
"""Examples per property or fuzzed operation."""

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)  # fmt: skip
"""The hypothesis settings of every property and fuzz test."""
