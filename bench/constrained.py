"""What constrained decoding costs per step on the CPU engine: greedy ``/v1/completions`` on the
demo planner and caller (``python -m umi.engines.transformers_structured serve``), each prompt
with and without the role's grammar (``umi.format.constraints``: caller ``schema``, planner
``names``), requests alternating. Also the time to build a grammar in the role service.

    .venv/bin/python bench/constrained.py [--models models/demo] [--rounds 3]

Prints one line per figure and writes bench/results/constrained.json: per role, mean and p50
latency of a step (ms) with and without, the difference, the completion tokens, and whether the
texts were identical (they are when the unconstrained output is already valid).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from umi.demo.tools_app import tool_set  # noqa: E402
from umi.engines import CompletionParams, EngineOptions, LaunchSpec, TransformersEngine  # noqa: E402
from umi.format import Turn, render_prompt, to_tooldocs  # noqa: E402
from umi.format.constraints import role_grammar, structured_outputs  # noqa: E402

QUESTIONS = [
    ("Weather in Oslo?", "get_weather"), ("What time is it in Lima?", "get_time"),
    ("Convert 120 USD to EUR.", "convert_currency"), ("What is 17 * (4 + 9)?", "calculate"),
    ("How many miles is 42 km?", "convert_units"), ("Price of AAPL?", "get_stock_price"),
    ("Flights from Paris to Rome on 2026-05-04?", "search_flights"), ("Translate 'house' to German.", "translate_word"),
]
MODES = {"planner": "names", "caller": "schema"}


def prompts(role: str) -> list[str]:
    tools = to_tooldocs([{"type": "function", "function": t.schema("")["function"]} for t in tool_set("v1")])
    out = []
    for question, tool in QUESTIONS:
        history = [Turn(role="user", content=question)]
        if role == "caller":
            thought = f"I will use {tool}.\n Next: caller."
            out.append(render_prompt("caller", tools, [*history, Turn(role="planner", content=thought)], thought))
        else:
            out.append(render_prompt("planner", tools, history))
    return out


def grammar_build_ms(role: str, repeat: int = 200) -> float:
    tools = to_tooldocs([{"type": "function", "function": t.schema("")["function"]} for t in tool_set("v1")])
    role_grammar(role, tools, MODES[role])  # schemas checked once (cached)
    started = time.perf_counter()
    for _ in range(repeat):
        role_grammar(role, tools, MODES[role])
    return (time.perf_counter() - started) * 1000 / repeat


async def measure(role: str, model: Path, rounds: int) -> dict[str, Any]:
    tools = to_tooldocs([{"type": "function", "function": t.schema("")["function"]} for t in tool_set("v1")])
    grammar = structured_outputs(role_grammar(role, tools, MODES[role]))
    plain = CompletionParams(max_tokens=128, temperature=0.0, stop=("</s>",))
    held = CompletionParams(max_tokens=128, temperature=0.0, stop=("</s>",), structured_outputs=grammar)
    engine = TransformersEngine(str(model), EngineOptions(start_timeout_s=300), LaunchSpec(extra_args=("--device", "cpu")), structured_outputs=True)
    await engine.start()
    times: dict[str, list[float]] = {"off": [], "on": []}
    tokens: dict[str, list[int]] = {"off": [], "on": []}
    identical = 0
    try:
        for p in prompts(role):  # warm both paths (the first constrained request loads llguidance's tokenizer)
            await engine.complete(engine.served_model, p, plain)
            await engine.complete(engine.served_model, p, held)
        for _ in range(rounds):
            for p in prompts(role):
                texts = {}
                for key, params in (("off", plain), ("on", held)):
                    started = time.perf_counter()
                    done = await engine.complete(engine.served_model, p, params)
                    times[key].append((time.perf_counter() - started) * 1000)
                    tokens[key].append(done.completion_tokens or 0)
                    texts[key] = done.text
                identical += texts["off"] == texts["on"]
    finally:
        await engine.stop()
    off, on = statistics.mean(times["off"]), statistics.mean(times["on"])
    per_token = lambda key: sum(times[key]) / max(1, sum(tokens[key]))  # noqa: E731
    return {
        "mode": MODES[role], "steps": len(times["off"]),
        "mean_ms_off": round(off, 1), "mean_ms_on": round(on, 1), "p50_ms_off": round(statistics.median(times["off"]), 1),
        "p50_ms_on": round(statistics.median(times["on"]), 1), "cost_ms": round(on - off, 1), "cost_pct": round(100 * (on - off) / off, 1),
        "ms_per_token_off": round(per_token("off"), 2), "ms_per_token_on": round(per_token("on"), 2),
        "tokens_off": sum(tokens["off"]), "tokens_on": sum(tokens["on"]), "identical_texts": identical,
        "grammar_build_ms": round(grammar_build_ms(role), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models" / "demo")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {role: asyncio.run(measure(role, args.models / role, args.rounds)) for role in ("planner", "caller")}
    for role, r in results.items():
        print(f"{role} ({r['mode']}): {r['mean_ms_off']} ms -> {r['mean_ms_on']} ms per step (+{r['cost_ms']} ms, {r['cost_pct']}%), "
              f"p50 {r['p50_ms_off']} -> {r['p50_ms_on']} ms, {r['ms_per_token_off']} -> {r['ms_per_token_on']} ms per token, "
              f"{r['identical_texts']}/{r['steps']} texts identical, grammar built in {r['grammar_build_ms']} ms")
    out = ROOT / "bench" / "results" / "constrained.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "bench/constrained.py", "rounds": args.rounds, "roles": results}, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
