"""Grammar-constrained generation with transformers: an llguidance matcher per sequence masks the
logits of every token the grammar does not allow at that step (a ``LogitsProcessor``).

The CPU engine's launcher (:mod:`umi.engines.transformers_structured`) and ``umi demo quality``
use it; the grammars come from :mod:`umi.format.constraints`. It reads the request field that
vLLM reads, ``structured_outputs``, with vLLM's rules (``vllm/sampling_params.py``
``StructuredOutputsParams``: exactly one of ``json``, ``regex``, ``choice``, ``grammar``,
``json_object``, ``structural_tag``) and compiles it as vLLM's guidance backend does
(``vllm/v1/structured_output/backend_guidance.py`` ``serialize_guidance_grammar``:
``llguidance.grammar_from``); ``structural_tag`` is not supported here.

Greedy decoding under a mask picks the best allowed token: when the model's own best token is
allowed at every step, the output is exactly the unconstrained one. transformers applies custom
logits processors before its sampling warpers (``GenerationMixin._get_logits_processor`` merges
them first), so with sampling, temperature, top-k and top-p act on the allowed tokens only.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import llguidance
import llguidance.hf
import torch
from llguidance.torch import allocate_token_bitmask, fill_next_token_bitmask
from transformers import LogitsProcessor, PreTrainedTokenizerBase

# llguidance builds a matcher recursively: a chain of a few thousand rules (60 KB) overflows the
# native stack and kills the process (found by probing; 1,000 rules are fine). Grammars past these
# bounds are refused up front; the role services' own grammars have 2 rules per tool.
MAX_GRAMMAR_CHARS = 256 * 1024
MAX_GRAMMAR_RULES = 1000
STRUCTURED_OUTPUT_KINDS = ("json", "regex", "choice", "grammar", "json_object", "structural_tag")
SUPPORTED_KINDS = ("json", "regex", "choice", "grammar", "json_object")


_RULE = re.compile(r"\s*[?!]?[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?(\.\-?\d+)?\s*:")  # a Lark (or GBNF ::=) rule or terminal
log = logging.getLogger("umi.engines")


class StructuredOutputsError(ValueError):
    """A ``structured_outputs`` field that cannot be used; the message names the problem (HTTP 400)."""


def grammar_of(structured_outputs: Any) -> str:
    """The llguidance grammar of a ``structured_outputs`` request field.

    Raises :class:`StructuredOutputsError` for a value that is not an object, zero or several
    kinds given (vLLM's messages), an unsupported kind, a value of the wrong type, or one that
    does not compile (``structured_outputs.<kind>: Grammar error: <llguidance's message>``).
    """
    if not isinstance(structured_outputs, Mapping):
        raise StructuredOutputsError("structured_outputs: must be an object")
    given = [k for k in STRUCTURED_OUTPUT_KINDS if structured_outputs.get(k) is not None]
    if len(given) > 1:
        raise StructuredOutputsError(
            f"structured_outputs: You can only use one kind of structured outputs constraint but multiple are specified: {given}"
        )
    if not given:
        raise StructuredOutputsError("structured_outputs: You must use one kind of structured outputs constraint but none are specified")
    kind = given[0]
    value = structured_outputs[kind]
    if kind not in SUPPORTED_KINDS:
        raise StructuredOutputsError(f"structured_outputs.{kind}: not supported by this engine (supported: {', '.join(SUPPORTED_KINDS)})")
    if kind == "json_object":
        return llguidance.LLMatcher.grammar_from_json_schema('{"type": "object"}')
    if kind == "choice":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
            # an empty list would compile to a grammar that ends every generation at once
            raise StructuredOutputsError("structured_outputs.choice: must be a non-empty list of strings")
        value = json.dumps(value)
    elif kind == "json":
        value = value if isinstance(value, str) else json.dumps(value)
    elif not isinstance(value, str):
        raise StructuredOutputsError(f"structured_outputs.{kind}: must be a string")
    if len(value) > MAX_GRAMMAR_CHARS:
        raise StructuredOutputsError(f"structured_outputs.{kind}: {len(value)} characters, more than this engine takes ({MAX_GRAMMAR_CHARS})")
    rules = sum(1 for line in value.splitlines() if _RULE.match(line)) if kind == "grammar" else 0
    if rules > MAX_GRAMMAR_RULES:
        raise StructuredOutputsError(f"structured_outputs.grammar: {rules} rules, more than this engine takes ({MAX_GRAMMAR_RULES})")
    try:
        grammar = llguidance.grammar_from(kind, value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise StructuredOutputsError(f"structured_outputs.{kind}: {exc}") from None
    error = _grammar_error(grammar)
    if error:
        raise StructuredOutputsError(f"structured_outputs.{kind}: Grammar error: {error.strip()}")
    return grammar


@functools.lru_cache(maxsize=64)
def _grammar_error(grammar: str) -> str:
    """llguidance's message when ``grammar`` does not compile, else ``""``. Compiled here, without
    the tokenizer, so that the error names the kind (vLLM's guidance backend validates the same way
    at request time: "Grammar error: ..."); cached, since a role service sends the same grammar
    with every request of a tool list (1.3 ms a compile for the demo caller's nine tools)."""
    return llguidance.LLMatcher.validate_grammar(grammar)


@functools.lru_cache(maxsize=8)
def ll_tokenizer(tokenizer: PreTrainedTokenizerBase, n_vocab: int) -> llguidance.LLTokenizer:
    """The llguidance view of a fast HF tokenizer with ``n_vocab`` logits (about a second: cached)."""
    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=n_vocab)


def matcher(tokenizer: llguidance.LLTokenizer, grammar: str) -> llguidance.LLMatcher:
    """A matcher for ``grammar``; raises :class:`StructuredOutputsError` when it does not compile."""
    m = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
    if m.is_error():
        raise StructuredOutputsError(f"structured_outputs: Grammar error: {m.get_error()}")
    return m


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks, for each sequence of a batch, the tokens its grammar does not allow next.

    ``grammars[i]`` is the llguidance grammar of row ``i`` (None: that row is not constrained).
    One instance serves one ``generate`` call: the first call sees the prompt, each later one the
    token chosen last. A row whose grammar is complete allows only the end-of-sequence token.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, n_vocab: int, grammars: Sequence[str | None]) -> None:
        self.ll = ll_tokenizer(tokenizer, n_vocab)
        self.matchers = [matcher(self.ll, g) if g is not None else None for g in grammars]
        self.n_vocab = n_vocab
        self._started = False
        self._shifts = torch.arange(32, dtype=torch.int32)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._started:
            last = input_ids[:, -1].tolist()
            for m, token in zip(self.matchers, last, strict=True):
                if m is not None and not m.is_stopped():
                    m.consume_token(token)  # a refused token (never chosen under the mask) leaves it in error: EOS only
                    if m.is_error():  # e.g. a lexer limit met mid-way: the output ends here
                        log.warning("structured outputs: the grammar stopped the generation: %s", m.get_error())
        self._started = True
        rows = [i for i, m in enumerate(self.matchers) if m is not None]
        if not rows:
            return scores
        bitmask = allocate_token_bitmask(len(rows), self.n_vocab)
        for j, i in enumerate(rows):
            m = self.matchers[i]
            assert m is not None
            fill_next_token_bitmask(m, bitmask, j)  # stopped or in error: EOS only
        # Not llguidance.torch.apply_token_bitmask_inplace: its kernel is torch.compile'd, which on
        # CPU compiles C++ at the first request (seconds, and a compiler in the image).
        allowed = ((bitmask.unsqueeze(-1) >> self._shifts) & 1).bool().view(len(rows), -1)[:, : scores.shape[-1]]
        if allowed.shape[-1] < scores.shape[-1]:  # logits past the tokenizer's vocabulary are never allowed
            allowed = torch.nn.functional.pad(allowed, (0, scores.shape[-1] - allowed.shape[-1]), value=False)
        index = torch.tensor(rows, device=scores.device)
        scores[index] = scores[index].masked_fill(~allowed.to(scores.device), float("-inf"))
        return scores
