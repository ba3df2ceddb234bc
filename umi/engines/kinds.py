"""Building an engine of a kind named in the settings (``vllm``, ``transformers``, ``url``): the
one place outside their modules that names the concrete engine classes.
"""

from __future__ import annotations

from umi.engines.base import Engine, EngineOptions
from umi.engines.http_engine import LaunchSpec, UrlEngine
from umi.engines.transformers_serve import TransformersEngine
from umi.engines.vllm_serve import VllmEngine, VllmFlags


def build_engine(
    kind: str,
    model_path: str,
    options: EngineOptions,
    launch: LaunchSpec,
    flags: VllmFlags,
    url: str | None = None,
    served_model: str | None = None,
    structured_outputs: bool = False,
) -> Engine:
    """An engine of ``kind`` on ``model_path``, not started.

    ``launch`` is for the supervised kinds, ``flags`` for ``vllm``; ``url`` (required) and
    ``served_model`` (default: ``model_path``) for ``url``; ``structured_outputs``: the
    ``transformers`` engine starts the server that takes that request field. Raises ``ValueError`` for an unknown kind.
    """
    if kind == "url":
        if url is None:
            raise ValueError("the url engine needs a URL")
        return UrlEngine(model_path, options, url, served_model=served_model)
    if kind == "vllm":
        return VllmEngine(model_path, options, launch, flags)
    if kind == "transformers":
        return TransformersEngine(model_path, options, launch, structured_outputs=structured_outputs)
    raise ValueError(f"unknown engine kind {kind!r}")
