"""Fitting a prompt into the model's context, counted with the model's own tokenizer.

The budget is ``context length - max new tokens - margin``; a longer prompt is cut from the
left (as the reference inference does), at a token boundary, so the end of the prompt (the
latest history and the generation cue) always survives. The tokenizer is loaded once, at
start-up (and when a swap brings new weights), never per request.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("umi.service")

REFERENCE_CONTEXT = 4096  # the reference's context when the model says nothing usable
_UNBOUNDED = 1_000_000  # tokenizers say model_max_length = 1e30 when they do not know


class PromptTooLong(Exception):
    """No room for a prompt: ``max new tokens`` (+ margin) fills the whole context."""


@dataclass(frozen=True)
class FittedPrompt:
    text: str
    tokens: int  # including the special tokens the tokenizer adds (BOS)
    truncated: bool


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def context_length(model_path: str, tokenizer: Any, override: int | None) -> int:
    """UMI_MAX_MODEL_LEN, else the model's ``max_position_embeddings``, else the tokenizer's limit."""
    if override:
        return override
    config = Path(model_path) / "config.json"
    if config.is_file():
        try:
            value = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
        except (OSError, ValueError):
            value = None
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _UNBOUNDED:
        return limit
    return REFERENCE_CONTEXT


class PromptFitter:
    """Counts tokens and cuts prompts from the left to fit."""

    def __init__(self, tokenizer: Any, context_tokens: int, margin: int) -> None:
        self.tokenizer = tokenizer
        self.context_tokens = context_tokens
        self.margin = margin
        self._specials = int(tokenizer.num_special_tokens_to_add(pair=False))

    @classmethod
    def load(cls, tokenizer_path: str, model_path: str, max_model_len: int | None, margin: int) -> PromptFitter:
        tokenizer = load_tokenizer(tokenizer_path)
        context = context_length(model_path, tokenizer, max_model_len)
        tokenizer.model_max_length = _UNBOUNDED  # long prompts are cut here, not warned about there
        return cls(tokenizer, context, margin)

    def budget(self, max_new_tokens: int) -> int:
        return self.context_tokens - max_new_tokens - self.margin

    def count(self, text: str, special_tokens: bool = True) -> int:
        return len(self.tokenizer(text, add_special_tokens=special_tokens)["input_ids"])

    def fit(self, prompt: str, max_new_tokens: int) -> FittedPrompt:
        budget = self.budget(max_new_tokens)
        if budget <= self._specials:
            raise PromptTooLong(
                f"max new tokens {max_new_tokens} + margin {self.margin} leave no room for a prompt "
                f"in a context of {self.context_tokens} tokens"
            )
        encoded = self.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        ids: list[int] = encoded["input_ids"]
        if len(ids) + self._specials <= budget:
            return FittedPrompt(prompt, len(ids) + self._specials, False)
        offsets: list[tuple[int, int]] = encoded["offset_mapping"]
        keep = budget - self._specials
        # Re-tokenizing the cut text can merge differently at the new start: drop one more token until it fits.
        while keep > 0:
            text = prompt[offsets[len(ids) - keep][0] :]
            tokens = self.count(text)
            if tokens <= budget:
                return FittedPrompt(text, tokens, True)
            keep -= 1
        raise PromptTooLong(f"cannot fit any of the prompt into {budget} tokens")
