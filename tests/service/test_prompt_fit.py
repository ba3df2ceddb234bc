"""Prompt fitting with the model's own tokenizer: the budget, the cut from the left, the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from umi.service.prompt_fit import PromptFitter, PromptTooLong, context_length, load_tokenizer


@pytest.fixture(scope="module")
def fitter(tiny_models: dict[str, Path]) -> PromptFitter:
    return PromptFitter.load(str(tiny_models["v1"]), str(tiny_models["v1"]), None, margin=16)


def test_the_context_comes_from_the_model_config_unless_set(tiny_models: dict[str, Path], fitter: PromptFitter) -> None:
    assert fitter.context_tokens == 1024  # the tiny model's max_position_embeddings
    tokenizer = load_tokenizer(str(tiny_models["v1"]))
    assert context_length(str(tiny_models["v1"]), tokenizer, 256) == 256


def test_a_short_prompt_is_kept_whole_and_counted_with_bos(fitter: PromptFitter) -> None:
    prompt = "system: Make a conclusion based on the conversation history:\nuser: hi</s> conclusion: "
    fitted = fitter.fit(prompt, max_new_tokens=512)
    assert fitted.text == prompt and not fitted.truncated
    ids = fitter.tokenizer(prompt)["input_ids"]
    assert fitted.tokens == len(ids) and ids[0] == fitter.tokenizer.bos_token_id


@pytest.mark.parametrize("max_new_tokens", [16, 512, 900])
def test_a_long_prompt_is_cut_from_the_left_to_the_budget(fitter: PromptFitter, max_new_tokens: int) -> None:
    prompt = "system: " + "".join(f"user: question number {i}</s>" for i in range(400)) + " assistant: "
    fitted = fitter.fit(prompt, max_new_tokens)
    budget = 1024 - max_new_tokens - 16
    assert fitted.truncated and prompt.endswith(fitted.text) and fitted.text.endswith("question number 399</s> assistant: ")
    assert fitted.tokens == fitter.count(fitted.text) and budget - 3 <= fitted.tokens <= budget


def test_no_room_for_a_prompt_is_refused(fitter: PromptFitter) -> None:
    with pytest.raises(PromptTooLong, match="max new tokens 1010"):
        fitter.fit("system: hi", max_new_tokens=1010)
