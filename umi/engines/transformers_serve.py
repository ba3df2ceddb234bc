"""The CPU engine: ``transformers serve MODEL_DIR`` (transformers 5.x), supervised as a subprocess.

It preloads the model given on its command line and serves OpenAI ``/v1/completions`` (plain and
streamed) and ``/health``. Requests name the model by the same path it was started with.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from umi.engines.http_engine import SupervisedEngine


def default_transformers_command() -> tuple[str, ...]:
    """The ``transformers`` CLI of this Python environment, else the one on PATH."""
    local = Path(sys.executable).parent / "transformers"
    if local.exists():
        return (str(local),)
    return (shutil.which("transformers") or "transformers",)


class TransformersEngine(SupervisedEngine):
    kind = "transformers"

    @property
    def served_model(self) -> str:
        return self.model_path

    def command(self) -> list[str]:
        argv = self._base_argv(default_transformers_command())
        if self.launch.dtype:
            argv += ["--dtype", self.launch.dtype]
        return argv + list(self.launch.extra_args)
