"""The prompt-fitting policy (umi.service.prompt_fit) on a 120-tool set and a 40-step chat.

    .venv/bin/python bench/prompt_fit.py [--tokenizer models/demo/tokenizer] [--context 4096 1024]

The tools and the chat are generated here (deterministic): 120 tools over 12 topics (weather,
flights, hotels, stocks, ...), each with a few typed arguments; a chat whose user asks about two
topics, then 13 rounds of planner -> caller -> observation (observations of about 1,000
characters, as the orchestrator cuts them to 1,024) and a last planner turn: 40 steps after the query.
For each context length, each role and each policy it prints the tokens before and after, what
was done and which tools were kept (counted with the given tokenizer).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from umi.format import Turn, to_tooldocs  # noqa: E402
from umi.service.prompt_fit import PromptFitter, PromptParts  # noqa: E402

TOPICS = {
    "weather": ("forecast", "temperature", "city"), "flight": ("departure", "airport", "date"),
    "hotel": ("room", "check-in", "city"), "stock": ("ticker", "price", "exchange"),
    "museum": ("opening hours", "exhibition", "town"), "recipe": ("ingredient", "cuisine", "servings"),
    "movie": ("showtime", "cinema", "title"), "translate": ("language", "text", "glossary"),
    "currency": ("rate", "amount", "currency"), "news": ("headline", "topic", "source"),
    "train": ("station", "timetable", "platform"), "restaurant": ("table", "cuisine", "booking"),
}  # fmt: skip
VERBS = ("get", "search", "list", "find", "check", "book", "cancel", "compare", "track", "describe")


def tools() -> list[dict]:
    out = []
    for topic, (a, b, c) in TOPICS.items():
        for verb in VERBS:
            props = {
                a.replace(" ", "_"): {"type": "string", "description": f"The {a} to {verb}"},
                b.replace(" ", "_"): {"type": "string", "enum": [f"{b} {i}" for i in range(3)]},
                c.replace(" ", "_"): {"type": "integer", "description": f"Which {c}"},
            }
            out.append({"type": "function", "function": {
                "name": f"{verb}_{topic}", "description": f"{verb.capitalize()} {topic} information: {a}, {b} and {c}.",
                "parameters": {"type": "object", "properties": props, "required": [a.replace(" ", "_")]},
            }})  # fmt: skip
    return out


def chat() -> list[Turn]:
    rng = random.Random(7)
    turns = [Turn(role="user", content="What is the weather forecast in Oslo tomorrow, and which museum opening hours fit it?")]
    called = ["get_weather", "check_weather", "search_museum", "get_museum", "list_museum"]
    for i in range(13):
        name = called[i % len(called)]
        turns.append(Turn(role="planner", content=f"Step {i}: I should use {name} for the next detail.\n Next: caller."))
        turns.append(Turn(role="caller", content=f'Action: {name}\nAction Input: {{"city": "Oslo", "n": {i}}}'))
        words = " ".join(rng.choice(["sun", "rain", "wind", "10:00", "18:00", "gallery", "closed", "open"]) for _ in range(170))
        turns.append(Turn(role="observation", content=json.dumps({"response": words})[:1024]))
    turns.append(Turn(role="planner", content="I know the weather; now the museum opening hours.\n Next: caller."))
    return turns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", default=str(ROOT / "models/demo/tokenizer"))
    parser.add_argument("--context", type=int, nargs="+", default=[4096, 1024])
    parser.add_argument("--max-new-tokens", type=int, default=512)
    args = parser.parse_args(argv)

    docs = to_tooldocs(tools())
    history = chat()
    assert len(docs) == 120 and len(history) == 41  # the query and 40 steps
    for context in args.context:
        fitter = PromptFitter.load(args.tokenizer, args.tokenizer, context, margin=16)
        for role in ("planner", "caller"):
            thought = history[-1].content if role == "caller" else ""
            parts = PromptParts(role, docs, history, thought)
            for policy in ("fit", "reference"):
                started = time.perf_counter()
                fitted = fitter.fit_parts(parts, args.max_new_tokens, policy)  # type: ignore[arg-type]
                took_ms = (time.perf_counter() - started) * 1000
                fit = fitted.fit
                header = fitted.text.startswith(parts.system_prefix + "You have assess")
                print(f"context {context} {role:7s} {policy:9s}: tokens {fit.tokens_before if fit else fitted.tokens} -> "
                      f"{fitted.tokens} (budget {fitter.budget(args.max_new_tokens)}); header kept: {header}; "
                      f"{took_ms:.0f} ms")  # fmt: skip
                if fit is not None and policy == "fit":
                    print(f"    actions {fit.actions}; observations shortened {fit.observations_shortened}; "
                          f"steps dropped {fit.steps_dropped}; tools kept {fit.tools_kept}/{fit.tools_total}")  # fmt: skip
                    print(f"    kept: {', '.join(fit.kept_tools or ['all'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
