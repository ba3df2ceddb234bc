"""Fitting a prompt into the model's context, counted with the model's own tokenizer.

The budget is ``context length - max new tokens - margin`` tokens (BOS included). A prompt
rendered from a request that is over it is made to fit by one of two policies
(``UMI_CONTEXT_POLICY``):

``fit`` (the default), in this order, each step only as far as needed:

a. ``shorten_observations``: observations other than the latest are cut to their first
   ``SHORT_OBSERVATION_CHARS`` characters + ``...`` (the reference's way of cutting observations),
   the oldest first.
b. ``drop_steps``: the oldest rounds of the history (a planner turn and the caller turn and
   observation after it) are left out, keeping the turns before the first planner turn (the
   user's query) and the latest ``KEEP_LATEST_ROUNDS`` rounds.
c. ``select_tools``: the tools most relevant to the user's turns, the planner's turns and the
   thought are kept, ranked by BM25 (``rank_bm25.BM25Okapi`` over each ToolDoc's name, function
   and input; ties keep the request's order; the reference's ToolBench pipeline also retrieved
   its APIs). Tools already called in the history are always kept, and at least one tool. The
   kept tools keep the request's order, whole: the tool list is never cut in a doc. When no
   number of tools makes the prompt fit (the history alone is too long), the history keeps up to
   half the budget and the tools as many as fit in the rest (then even called tools may be left
   out, the least relevant first, down to one).
d. ``cut_history``: the history text is cut from the left at a token boundary (the reference's
   left cut, applied to the history only): the template's header and the tool list stay whole.
   Only when the header, tools and the rest do not fit without any history is the whole prompt
   cut from the left (``cut_left``).

``reference``: the whole prompt is cut from the left at a token boundary, as the reference
inference did (``cut_left``), so the end of the prompt (the latest history and the generation
cue) always survives and the header may not.

What was done is returned as a ``umi.roleapi.PromptFit`` (None when the prompt fit whole). The
tokenizer is loaded once, at start-up (and when a swap brings new weights), never per request.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from umi.format.observations import cut_observation
from umi.format.parsers import NO_NAME, parse_caller
from umi.format.render import fill_template, role_history
from umi.format.templates import DEFAULT_SYSTEM_PREFIX, PromptRole, PromptVariant
from umi.format.tools import ToolDoc
from umi.format.turns import Turn
from umi.roleapi import ContextPolicy, PromptFit

log = logging.getLogger("umi.service")

REFERENCE_CONTEXT = 4096  # the reference's context when the model says nothing usable
_UNBOUNDED = 1_000_000  # tokenizers say model_max_length = 1e30 when they do not know
SHORT_OBSERVATION_CHARS = 256
KEEP_LATEST_ROUNDS = 2


class PromptTooLong(Exception):
    """No room for a prompt: ``max new tokens`` (+ margin) fills the whole context."""


@dataclass(frozen=True)
class FittedPrompt:
    text: str
    tokens: int  # including the special tokens the tokenizer adds (BOS)
    truncated: bool  # the text is not the whole rendering of the request
    fit: PromptFit | None = None  # what was done; None when the prompt fit whole


@dataclass(frozen=True)
class PromptParts:
    """What a role prompt is made of (``umi.format.render.render_prompt``'s arguments)."""

    role: PromptRole
    tools: Sequence[ToolDoc]
    history: Sequence[Turn]
    thought: str = ""
    variant: PromptVariant = "toolbench"
    system_prefix: str = DEFAULT_SYSTEM_PREFIX

    def render(self, history_text: str | None = None) -> str:
        """The prompt; ``history_text`` replaces the rendered history (a cut one)."""
        text = role_history(self.role, self.history) if history_text is None else history_text
        return self.system_prefix + fill_template(self.role, self.tools, text, self.thought, self.variant)


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


# ------------------------------------------------------------------ tool ranking

_WORD = re.compile(r"[^\W_]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def terms(text: str) -> list[str]:
    """BM25 terms: words in lower case; ``getWeather``/``get_weather`` also give ``get``, ``weather``."""
    out: list[str] = []
    for word in _WORD.findall(text):
        parts = _CAMEL.findall(word)
        out.append(word.lower())
        if len(parts) > 1:
            out.extend(p.lower() for p in parts)
    return out


def rank_tools(tools: Sequence[ToolDoc], query: str) -> list[int]:
    """Indices of ``tools``, most relevant to ``query`` first (BM25; ties in the given order)."""
    from rank_bm25 import BM25Okapi

    corpus = [terms(" ".join([t.Name, t.function, *map(str, t.input.keys()), *map(str, t.input.values())])) for t in tools]
    words = terms(query)
    if not words or not any(corpus):
        return list(range(len(tools)))
    scores = BM25Okapi(corpus).get_scores(words)
    return sorted(range(len(tools)), key=lambda i: (-float(scores[i]), i))


def called_tools(history: Sequence[Turn]) -> set[str]:
    """Names the caller turns of ``history`` called."""
    names = {parse_caller(t.content).name for t in history if t.role == "caller"}
    names.discard(NO_NAME)
    return names


def _rounds(history: Sequence[Turn]) -> tuple[list[Turn], list[list[Turn]]]:
    """(the turns before the first planner turn, the rounds that each start at a planner turn)."""
    lead: list[Turn] = []
    rounds: list[list[Turn]] = []
    for turn in history:
        if turn.role == "planner":
            rounds.append([turn])
        elif rounds:
            rounds[-1].append(turn)
        else:
            lead.append(turn)
    return lead, rounds


def _smallest(lo: int, hi: int, fits: Callable[[int], bool]) -> int | None:
    """The smallest k in [lo, hi] with fits(k), for a fits that stays true once true; else None."""
    if lo > hi or not fits(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass
class _Fitting:
    """One prompt being fitted: the parts as they are now and the record of what was done."""

    parts: PromptParts
    budget: int
    count: Callable[[str], int]
    called: set[str] = field(default_factory=set)  # tools called anywhere in the request's history
    record: dict[str, Any] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)

    def fits(self, parts: PromptParts) -> bool:
        return self.count(parts.render()) <= self.budget


class PromptFitter:
    """Counts tokens and fits prompts into the context (the policies of this module's docstring)."""

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

    def _checked_budget(self, max_new_tokens: int) -> int:
        budget = self.budget(max_new_tokens)
        if budget <= self._specials:
            raise PromptTooLong(
                f"max new tokens {max_new_tokens} + margin {self.margin} leave no room for a prompt "
                f"in a context of {self.context_tokens} tokens"
            )
        return budget

    def _left_cut(self, text: str, keep_tokens: int, fits: Callable[[str], bool]) -> str | None:
        """The longest tail of ``text`` of at most ``keep_tokens`` tokens, cut at a token boundary,
        for which ``fits`` holds (None when not even an empty tail does)."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets: list[tuple[int, int]] = encoded["offset_mapping"]
        n = len(offsets)
        keep = min(keep_tokens, n)

        def tail(k: int) -> str:
            return text[offsets[n - k][0] :] if k > 0 else ""

        # Re-tokenizing the cut text can merge differently at the new start: drop one more token until it fits.
        while keep > 0:
            candidate = tail(keep)
            if fits(candidate):
                return candidate
            keep -= 1
        return "" if fits("") else None

    # ------------------------------------------------------------ reference
    def fit(self, prompt: str, max_new_tokens: int) -> FittedPrompt:
        """The reference's policy: the whole prompt cut from the left to the budget."""
        budget = self._checked_budget(max_new_tokens)
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        before = len(ids) + self._specials
        if before <= budget:
            return FittedPrompt(prompt, before, False)
        text = self._left_cut(prompt, budget - self._specials, lambda t: self.count(t) <= budget)
        if not text:
            raise PromptTooLong(f"cannot fit any of the prompt into {budget} tokens")
        tokens = self.count(text)
        record = PromptFit(
            policy="reference", actions=["cut_left"], budget_tokens=budget, tokens_before=before, tokens_after=tokens,
            chars_cut=len(prompt) - len(text),
        )  # fmt: skip
        return FittedPrompt(text, tokens, True, record)

    # ------------------------------------------------------------------ fit
    def fit_parts(self, parts: PromptParts, max_new_tokens: int, policy: ContextPolicy = "fit") -> FittedPrompt:
        """Fit the prompt of ``parts`` with ``policy`` (this module's docstring). Raises
        PromptTooLong when max new tokens leave no room, or nothing of the prompt fits."""
        if policy == "reference":
            return self.fit(parts.render(), max_new_tokens)
        budget = self._checked_budget(max_new_tokens)
        whole = parts.render()
        before = self.count(whole)
        if before <= budget:
            return FittedPrompt(whole, before, False)
        job = _Fitting(parts, budget, self.count, called_tools(parts.history))
        job.record = {"tools_total": len(parts.tools), "tools_kept": len(parts.tools)}
        for step in (self._shorten_observations, self._drop_steps, self._select_tools):
            step(job)
            if job.fits(job.parts):
                break
        text = job.parts.render()
        if self.count(text) > budget:
            text = self._cut_history(job)
        tokens = self.count(text)
        record = PromptFit(policy="fit", actions=job.actions, budget_tokens=budget, tokens_before=before, tokens_after=tokens, **job.record)  # type: ignore[arg-type]
        return FittedPrompt(text, tokens, True, record)

    def _shorten_observations(self, job: _Fitting) -> None:
        history = list(job.parts.history)
        observations = [i for i, t in enumerate(history) if t.role == "observation"][:-1]
        longer = [i for i in observations if len(history[i].content) > SHORT_OBSERVATION_CHARS]
        if not longer:
            return

        def shortened(k: int) -> PromptParts:
            turns = list(history)
            for i in longer[:k]:
                turns[i] = Turn(role="observation", content=cut_observation(turns[i].content, SHORT_OBSERVATION_CHARS))
            return replace(job.parts, history=turns)

        k = _smallest(1, len(longer), lambda k: job.fits(shortened(k)))
        k = len(longer) if k is None else k
        job.parts = shortened(k)
        job.actions.append("shorten_observations")
        job.record["observations_shortened"] = k

    def _drop_steps(self, job: _Fitting) -> None:
        lead, rounds = _rounds(job.parts.history)
        droppable = len(rounds) - KEEP_LATEST_ROUNDS
        if droppable <= 0:
            return

        def dropped(k: int) -> PromptParts:
            return replace(job.parts, history=[*lead, *(t for r in rounds[k:] for t in r)])

        k = _smallest(1, droppable, lambda k: job.fits(dropped(k)))
        k = droppable if k is None else k
        job.parts = dropped(k)
        job.actions.append("drop_steps")
        job.record["steps_dropped"] = sum(len(r) for r in rounds[:k])

    def _select_tools(self, job: _Fitting) -> None:
        parts = job.parts
        tools = list(parts.tools)
        if len(tools) <= 1:
            return
        called = job.called
        query = " ".join([*(t.content for t in parts.history if t.role in ("user", "planner")), parts.thought])
        ranked = rank_tools(tools, query)
        order = [i for i in ranked if tools[i].Name in called] + [i for i in ranked if tools[i].Name not in called]
        floor = max(1, sum(1 for t in tools if t.Name in called))

        def kept(n: int) -> PromptParts:
            chosen = sorted(order[:n])
            return replace(parts, tools=[tools[i] for i in chosen])

        # The most tools that fit: the smallest number of tools left out.
        out = _smallest(0, len(tools) - floor, lambda m: job.fits(kept(len(tools) - m)))
        if out is None:  # the history will be cut: it keeps up to half the budget, the tools the rest
            reserve = min(self.count(role_history(parts.role, parts.history), False), job.budget // 2)
            # Called tools too many for that: the header and the tool list stay whole, with fewer of them.
            out = _smallest(0, len(tools) - 1, lambda m: self.count(kept(len(tools) - m).render("")) + reserve <= job.budget)
            floor = 1
        n = floor if out is None else len(tools) - out
        if n == len(tools):
            return
        job.parts = kept(n)
        job.actions.append("select_tools")
        job.record["tools_kept"] = n
        job.record["kept_tools"] = [t.Name for t in job.parts.tools]

    def _cut_history(self, job: _Fitting) -> str:
        parts = job.parts
        history = role_history(parts.role, parts.history)
        fixed = self.count(parts.render(""))
        text = None
        if fixed <= job.budget:
            kept = self._left_cut(history, job.budget - fixed + 1, lambda h: self.count(parts.render(h)) <= job.budget)
            if kept is not None:
                text = parts.render(kept)
                job.actions.append("cut_history")
                job.record["chars_cut"] = len(history) - len(kept)
        if text is None:  # the header, tools and the rest alone are over the budget
            whole = parts.render()
            text = self._left_cut(whole, job.budget - self._specials, lambda t: self.count(t) <= job.budget)
            if not text:
                raise PromptTooLong(f"cannot fit any of the prompt into {job.budget} tokens")
            job.actions.append("cut_left")
            job.record["chars_cut"] = len(whole) - len(text)
        return text
