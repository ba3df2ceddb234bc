"""``transformers serve`` that also takes vLLM's ``structured_outputs`` request field on
``/v1/completions``: the CPU engine's server when constrained decoding is on.

    python -m umi.engines.transformers_structured serve MODEL [any `transformers serve` flag]

``transformers serve`` has no structured outputs (it refuses unknown request fields with 422 and
ignores ``response_format``); this runs transformers' own CLI with one class replaced: the
completions handler accepts ``structured_outputs`` (:func:`umi.engines.grammar_mask.grammar_of`:
400 for a malformed one, as vLLM answers) and generates with a
:class:`~umi.engines.grammar_mask.GrammarLogitsProcessor` passed to ``model.generate``. Everything
else (routes, sampling fields, streaming, usage) is transformers' code.

Written against transformers :data:`WRITTEN_FOR` (``transformers/cli/serving/completion.py``
``CompletionHandler``: ``handle_request``, ``_streaming`` and ``_non_streaming`` take the tokenized
``inputs`` that ``GenerateManager`` spreads into ``model.generate(**inputs, ...)``, and
``transformers/cli/serve.py`` ``Serve`` imports ``CompletionHandler`` from that module when it
starts). With ``--continuous-batching`` generation does not go through ``model.generate``: a
constrained request is refused (400) there.
"""

from __future__ import annotations

import contextvars
import sys
from typing import Any

WRITTEN_FOR = "5.24.0"

_GRAMMAR: contextvars.ContextVar[str | None] = contextvars.ContextVar("structured_outputs_grammar", default=None)


def _handler_class() -> type:
    from fastapi import HTTPException
    from transformers.cli.serving import completion

    from umi.engines.grammar_mask import GrammarLogitsProcessor, StructuredOutputsError, grammar_of

    class StructuredCompletionParams(completion.TransformersTextCompletionCreateParams, total=False):
        structured_outputs: dict[str, Any]

    class StructuredCompletionHandler(completion.CompletionHandler):
        """transformers' completions handler, plus ``structured_outputs``."""

        _valid_params_class = StructuredCompletionParams

        async def handle_request(self, body: dict, request_id: str) -> Any:
            spec = body.pop("structured_outputs", None)
            if spec is None:
                return await super().handle_request(body, request_id)
            try:
                grammar = grammar_of(spec)
            except StructuredOutputsError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            if self.generation_state._continuous_batching:
                raise HTTPException(status_code=400, detail="structured_outputs: not supported with --continuous-batching")
            token = _GRAMMAR.set(grammar)
            try:
                return await super().handle_request(body, request_id)
            finally:
                _GRAMMAR.reset(token)

        def _constrained(self, inputs: Any, processor: Any, model: Any) -> Any:
            grammar = _GRAMMAR.get()
            if grammar is None:
                return inputs
            tokenizer = getattr(processor, "tokenizer", processor)
            try:
                mask = GrammarLogitsProcessor(tokenizer, model.config.get_text_config().vocab_size, [grammar])
            except StructuredOutputsError as exc:
                raise HTTPException(status_code=400, detail=str(exc)) from None
            from transformers import LogitsProcessorList

            return {**inputs, "logits_processor": LogitsProcessorList([mask])}

        def _streaming(self, request_id, model, processor, model_id, inputs, gen_config, gen_manager, suffix=None):  # type: ignore[no-untyped-def]
            inputs = self._constrained(inputs, processor, model)
            return super()._streaming(request_id, model, processor, model_id, inputs, gen_config, gen_manager, suffix)

        async def _non_streaming(self, request_id, model, processor, model_id, inputs, gen_config, gen_manager, suffix=None):  # type: ignore[no-untyped-def]
            inputs = self._constrained(inputs, processor, model)
            return await super()._non_streaming(request_id, model, processor, model_id, inputs, gen_config, gen_manager, suffix)

    return StructuredCompletionHandler


def main(argv: list[str] | None = None) -> None:
    """Run ``transformers <argv>`` with the structured completions handler in place."""
    import transformers
    from transformers.cli import transformers as cli
    from transformers.cli.serving import completion

    if transformers.__version__ != WRITTEN_FOR:
        print(f"umi: transformers_structured was written for transformers {WRITTEN_FOR}, this is "
              f"{transformers.__version__}; tests/engines/test_transformers_structured.py checks it still works", file=sys.stderr)
    completion.CompletionHandler = _handler_class()  # Serve imports it from this module when it starts
    sys.argv = ["transformers", *(sys.argv[1:] if argv is None else argv)]
    cli.app()


if __name__ == "__main__":
    main()
