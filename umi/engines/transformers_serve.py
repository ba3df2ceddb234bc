"""The CPU engine: ``transformers serve MODEL_DIR`` (transformers 5.x), supervised as a subprocess.

It preloads the model given on its command line and serves OpenAI ``/v1/completions`` (plain and
streamed) and ``/health``. Requests name the model by the same path it was started with.
With ``structured_outputs`` (constrained decoding on), the default command is
``python -m umi.engines.transformers_structured``: the same server, which also takes vLLM's
``structured_outputs`` request field (plain ``transformers serve`` refuses it with 422).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from umi.engines.base import EngineOptions
from umi.engines.http_engine import LaunchSpec, SupervisedEngine


def default_transformers_command() -> tuple[str, ...]:
    """The ``transformers`` CLI of this Python environment, else the one on PATH."""
    local = Path(sys.executable).parent / "transformers"
    if local.exists():
        return (str(local),)
    return (shutil.which("transformers") or "transformers",)


def structured_transformers_command() -> tuple[str, ...]:
    """``transformers`` with the ``structured_outputs`` request field (:mod:`umi.engines.transformers_structured`)."""
    return (sys.executable, "-m", "umi.engines.transformers_structured")


class TransformersEngine(SupervisedEngine):
    kind = "transformers"

    def __init__(self, model_path: str, options: EngineOptions, launch: LaunchSpec, structured_outputs: bool = False) -> None:
        super().__init__(model_path, options, launch)
        self.structured_outputs = structured_outputs

    @property
    def served_model(self) -> str:
        return self.model_path

    def command(self) -> list[str]:
        default = structured_transformers_command() if self.structured_outputs else default_transformers_command()
        argv = self._base_argv(default)
        if self.launch.dtype:
            argv += ["--dtype", self.launch.dtype]
        return argv + list(self.launch.extra_args)
