"""Prompt fitting with the model's own tokenizer: the budget, the policy (observations, steps,
tools, then a cut of the history), the reference's cut from the left, the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from umi.format import ToolDoc, Turn
from umi.service.prompt_fit import (
    KEEP_LATEST_ROUNDS,
    SHORT_OBSERVATION_CHARS,
    PromptFitter,
    PromptParts,
    PromptTooLong,
    context_length,
    load_tokenizer,
    rank_tools,
    terms,
)

_PLANNER_TAIL = (
    "\nYou are the assistant to plan what to do next and whether is caller's or conclusion's turn to answer.\n"
    "Answer with a following format:\nThe thought of the next step, followed by Next: caller or conclusion or give up."
)


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


# ------------------------------------------------------------------ the fit policy

DOC_START = "system: You have assess to the following apis:\n"
CUE = " assistant: "


def weather_tool(i: int, topic: str = "weather") -> ToolDoc:
    return ToolDoc(Name=f"{topic}_{i}", function=f"Gives the {topic} of a city, variant {i}", input={"city": "string, City"})


def rounds(n: int, observation: str = "ok") -> list[Turn]:
    turns = [Turn(role="user", content="What is the weather in Oslo?")]
    for i in range(n):
        turns += [
            Turn(role="planner", content=f"Step {i}: ask the tool.\n Next: caller."),
            Turn(role="caller", content=f'Action: weather_{i % 3}\nAction Input: {{"city": "Oslo"}}'),
            Turn(role="observation", content=f"[{i}] " + observation),
        ]
    return turns


def doc_lines(prompt: str) -> list[dict]:
    """The ToolDocs a planner prompt lists (each one line of JSON, whole)."""
    body = prompt[len(DOC_START) : prompt.index("\n\nThe conversation history is:\n")]
    return [json.loads(line) for line in body.split("\n")]


def max_new_for(fitter: PromptFitter, budget: int) -> int:
    return fitter.context_tokens - fitter.margin - budget


def test_a_prompt_that_fits_is_sent_whole_without_a_record(fitter: PromptFitter) -> None:
    parts = PromptParts("planner", [weather_tool(0)], rounds(1))
    fitted = fitter.fit_parts(parts, 512)
    assert (fitted.text, fitted.truncated, fitted.fit) == (parts.render(), False, None)
    assert fitted.tokens == fitter.count(parts.render())


def test_older_observations_are_shortened_first_and_the_latest_kept_whole(fitter: PromptFitter) -> None:
    parts = PromptParts("planner", [weather_tool(0)], rounds(2, "x" * 1000))
    whole = fitter.count(parts.render())
    fitted = fitter.fit_parts(parts, max_new_for(fitter, whole - 50))
    assert fitted.fit is not None and fitted.fit.actions == ["shorten_observations"]
    assert fitted.fit.observations_shortened == 1 and fitted.fit.steps_dropped == 0
    assert f"observation: [0] {'x' * (SHORT_OBSERVATION_CHARS - 4)}...assistant:" in fitted.text
    assert f"observation: [1] {'x' * 1000}" in fitted.text and fitted.text.startswith(DOC_START)
    assert fitted.fit.tokens_before == whole and fitted.fit.tokens_after == fitted.tokens <= fitted.fit.budget_tokens


def test_the_oldest_steps_are_dropped_keeping_the_query_and_the_latest_rounds(fitter: PromptFitter) -> None:
    history = rounds(12)
    parts = PromptParts("planner", [weather_tool(0)], history)
    fitted = fitter.fit_parts(parts, max_new_for(fitter, fitter.count(parts.render()) - 60))
    assert fitted.fit is not None and fitted.fit.actions == ["drop_steps"]
    dropped = fitted.fit.steps_dropped
    assert dropped % 3 == 0 and 0 < dropped <= 3 * (12 - KEEP_LATEST_ROUNDS)
    kept = [history[0], *history[1 + dropped :]]
    assert fitted.text == PromptParts("planner", parts.tools, kept).render()
    assert "user: What is the weather in Oslo?</s>assistant: Step " + str(dropped // 3) in fitted.text


def test_tools_are_selected_by_relevance_keeping_those_already_called(fitter: PromptFitter) -> None:
    tools = [weather_tool(i, topic) for i in range(20) for topic in ("stock", "flight", "hotel")]
    tools += [weather_tool(0), weather_tool(1)]  # weather_0 is called in the history, weather_1 is relevant
    history = [*rounds(1)[:3], Turn(role="observation", content="3 degrees"), Turn(role="planner", content="Now the weather forecast.\n Next: caller.")]
    history[2] = Turn(role="caller", content='Action: stock_7\nAction Input: {"city": "Oslo"}')
    parts = PromptParts("caller", tools, history, thought=history[-1].content)
    fitted = fitter.fit_parts(parts, max_new_for(fitter, 400))
    assert fitted.fit is not None and fitted.fit.actions[-1] == "select_tools"
    kept = [d["Name"] for d in doc_lines(fitted.text)]
    assert "stock_7" in kept and "weather_0" in kept and "weather_1" in kept  # called, called, relevant
    assert kept == [t.Name for t in tools if t.Name in kept]  # in the request's order
    assert (fitted.fit.tools_kept, fitted.fit.tools_total, fitted.fit.kept_tools) == (len(kept), len(tools), kept)
    assert f"should be exactly in [{', '.join(kept)}]" in fitted.text and fitted.tokens <= 400


def test_a_history_too_long_alone_is_cut_after_the_header_and_the_tools(fitter: PromptFitter) -> None:
    history = [Turn(role="user", content="Tell me about the weather. " * 300), Turn(role="planner", content="Look.\n Next: caller.")]
    parts = PromptParts("planner", [weather_tool(0), weather_tool(1)], history)
    fitted = fitter.fit_parts(parts, 512)
    assert fitted.fit is not None and fitted.fit.actions == ["cut_history"]
    assert fitted.text.startswith(DOC_START) and fitted.text.endswith("Look.\n Next: caller.</s>" + _PLANNER_TAIL + CUE)
    assert [d["Name"] for d in doc_lines(fitted.text)] == ["weather_0", "weather_1"]
    assert fitted.fit.chars_cut > 0 and fitted.tokens <= fitter.budget(512)


def test_the_whole_prompt_is_cut_only_when_header_and_tools_do_not_fit_without_history(fitter: PromptFitter) -> None:
    huge = ToolDoc(Name="huge", function="f", input={f"a{i}": "string, words and more words" for i in range(200)})
    parts = PromptParts("planner", [huge], rounds(1))
    fitted = fitter.fit_parts(parts, 512)
    assert fitted.fit is not None and fitted.fit.actions == ["cut_left"]
    assert parts.render().endswith(fitted.text) and fitted.text.endswith(CUE)
    assert fitted.tokens <= fitter.budget(512)


def test_the_reference_policy_cuts_the_whole_prompt_from_the_left(fitter: PromptFitter) -> None:
    history = [Turn(role="user", content="Tell me about the weather. " * 300)]
    parts = PromptParts("planner", [weather_tool(0)], history)
    fitted = fitter.fit_parts(parts, 512, "reference")
    assert fitted == fitter.fit(parts.render(), 512)
    assert fitted.fit is not None and fitted.fit.policy == "reference" and fitted.fit.actions == ["cut_left"]
    assert parts.render().endswith(fitted.text) and not fitted.text.startswith("system: ")


def test_fitting_is_deterministic(fitter: PromptFitter) -> None:
    tools = [weather_tool(i, topic) for i in range(10) for topic in ("stock", "weather", "hotel")]
    parts = PromptParts("planner", tools, rounds(8, "y" * 600))
    assert len({fitter.fit_parts(parts, 700).text for _ in range(3)}) == 1


def test_bm25_ranks_tools_by_the_words_they_share_with_the_query() -> None:
    tools = [weather_tool(0, "stock"), ToolDoc(Name="getMuseumHours", function="Opening hours"), weather_tool(1)]
    assert rank_tools(tools, "When does the museum open? hours please") == [1, 0, 2]
    assert rank_tools(tools, "") == [0, 1, 2]
    assert terms("getMuseumHours get_weather") == ["getmuseumhours", "get", "museum", "hours", "get", "weather"]
