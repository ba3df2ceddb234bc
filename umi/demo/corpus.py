"""The synthetic corpus: alpha-UMi trajectories over the demo tools, from a seed.

Questions need zero, one or two calls (two independent calls, or a second call that copies a
value out of the first observation); some ask for what no tool does (give up); some first call a
tool with a value it rejects and recover from the error. Values come from :mod:`umi.demo.pools`:
the ``test`` split uses only values that never occur in ``train``.

Observations are the tools' JSON answers exactly as the tools server sends them (compact JSON),
and an error observation is what the orchestrator records for a 4xx answer, so the models see
at serving time the text they were trained on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from umi.demo import tool_data as data
from umi.demo.corpus_spec import DEMO_CORPUS, CorpusSpec
from umi.demo.pools import Pools, make_pools
from umi.demo.tools_app import TOOLS, tool_set
from umi.format import caller_turn_content, tooldoc_from_openai
from umi.format.observations import error_observation

Split = Literal["train", "test"]
ToolSetName = Literal["v1", "v2"]
JSON = dict[str, Any]

def observation_text(result: JSON) -> str:
    """A tool's JSON answer as the tools server sends it (Starlette's compact JSON)."""
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))


def http_error_observation(status: int, tool_message: str) -> str:
    """What the orchestrator records when a tool answers 4xx ``{"error": tool_message}``."""
    return error_observation(f"HTTP {status}", observation_text({"error": tool_message}))


@dataclass
class Call:
    tool: str
    args: JSON
    thought: str
    fails_with: str | None = None  # the tool's 4xx message when this call is a mistake


@dataclass
class Scenario:
    query: str
    calls: list[Call] = field(default_factory=list)
    answer: Callable[[list[JSON]], str] | None = None
    give_up: str | None = None  # the thought of a give-up
    direct_answer: str | None = None  # answered with no call


def _run(call: Call) -> JSON:
    runners: dict[str, Callable[[JSON], JSON]] = {t.name: t.run for t in TOOLS}
    return runners[call.tool](call.args)


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ----------------------------------------------------------------------------- one-call scenarios


def _weather(rng: random.Random, p: Pools, split: Split) -> Scenario:
    city = p.cities.pick(rng, split)
    q = rng.choice(["What is the weather in {c}?", "How is the weather in {c} today?", "Weather in {c}?",
                    "Tell me the current weather in {c}.", "Is it cold in {c} right now?"]).format(c=city)
    return Scenario(q, [Call("get_weather", {"city": city}, "I will use get_weather.")],
                    lambda o: f"In {o[0]['city']} it is {o[0]['temperature_c']} C and {o[0]['condition']}.")


def _time(rng: random.Random, p: Pools, split: Split) -> Scenario:
    city = p.cities.pick(rng, split)
    q = rng.choice(["What time is it in {c}?", "Local time in {c}?", "Tell me the time in {c}.",
                    "What is the current time in {c}?"]).format(c=city)
    return Scenario(q, [Call("get_time", {"city": city}, "I will use get_time.")],
                    lambda o: f"It is {o[0]['time']} in {o[0]['city']} (UTC{o[0]['utc_offset']}).")


def _population(rng: random.Random, p: Pools, split: Split) -> Scenario:
    city = p.cities.pick(rng, split)
    q = rng.choice(["What is the population of {c}?", "How many people live in {c}?",
                    "Population of {c}?"]).format(c=city)
    return Scenario(q, [Call("get_population", {"city": city}, "I will use get_population.")],
                    lambda o: f"{o[0]['city']} has {o[0]['population']} inhabitants.")


def _currency(rng: random.Random, p: Pools, split: Split) -> Scenario:
    amount = p.numbers.pick(rng, split)
    a, b = p.currencies.pick_two(rng, split)
    q = rng.choice(["Convert {n} {a} to {b}.", "How much is {n} {a} in {b}?", "What is {n} {a} in {b}?",
                    "Change {n} {a} into {b}, please."]).format(n=amount, a=a, b=b)
    call = Call("convert_currency", {"amount": amount, "from_currency": a, "to_currency": b},
                "I will use convert_currency.")
    return Scenario(q, [call], lambda o: f"{amount} {a} is {_num(o[0]['result'])} {b}.")


def _calculate(rng: random.Random, p: Pools, split: Split) -> Scenario:
    x, y = p.numbers.pick(rng, split), p.numbers.pick(rng, split)
    op = rng.choice(["+", "-", "*"])
    expr = f"{x} {op} {y}"
    q = rng.choice(["What is {e}?", "Calculate {e}.", "Compute {e} for me.", "How much is {e}?"]).format(e=expr)
    return Scenario(q, [Call("calculate", {"expression": expr}, "I will use calculate.")],
                    lambda o: f"{expr} = {_num(o[0]['result'])}.")


_UNIT_PAIRS = (("km", "mi"), ("mi", "km"), ("kg", "lb"), ("lb", "kg"), ("c", "f"), ("f", "c"), ("m", "ft"),
               ("ft", "m"), ("l", "gal"), ("gal", "l"), ("cm", "in"), ("in", "cm"), ("g", "oz"), ("oz", "g"))


def _units(rng: random.Random, p: Pools, split: Split) -> Scenario:
    value = p.numbers.pick(rng, split)
    a, b = rng.choice(_UNIT_PAIRS)
    q = rng.choice(["Convert {v} {a} to {b}.", "How many {b} is {v} {a}?", "What is {v} {a} in {b}?"]).format(v=value, a=a, b=b)
    call = Call("convert_units", {"value": value, "from_unit": a, "to_unit": b}, "I will use convert_units.")
    return Scenario(q, [call], lambda o: f"{value} {a} is {_num(o[0]['result'])} {b}.")


def _stock(rng: random.Random, p: Pools, split: Split) -> Scenario:
    sym = p.tickers.pick(rng, split)
    q = rng.choice(["What is the stock price of {s}?", "How much does {s} stock cost?", "Price of {s} shares?",
                    "Give me the latest {s} stock price."]).format(s=sym)
    return Scenario(q, [Call("get_stock_price", {"symbol": sym}, "I will use get_stock_price.")],
                    lambda o: f"{sym} trades at {_num(o[0]['price'])} USD.")


def _flights(rng: random.Random, p: Pools, split: Split) -> Scenario:
    a, b = p.cities.pick_two(rng, split)
    day = p.dates.pick(rng, split)
    q = rng.choice(["Find flights from {a} to {b} on {d}.", "Are there flights from {a} to {b} on {d}?",
                    "I need a flight from {a} to {b} on {d}."]).format(a=a, b=b, d=day)
    call = Call("search_flights", {"origin": a, "destination": b, "date": day}, "I will use search_flights.")
    return Scenario(q, [call], lambda o: "Flights from {a} to {b} on {d}: {f}.".format(
        a=a, b=b, d=day, f=", ".join(f"{x['flight']} at {x['departure']} for {x['price_usd']} USD" for x in o[0]["flights"])))


def _translate(rng: random.Random, p: Pools, split: Split) -> Scenario:
    word = p.words.pick(rng, split)
    lang = rng.choice(p.languages)
    q = rng.choice(["Translate {w} to {l}.", "How do you say {w} in {l}?", "What is {w} in {l}?"]).format(w=word, l=lang)
    call = Call("translate_word", {"word": word, "language": lang}, "I will use translate_word.")
    return Scenario(q, [call], lambda o: f"{word} in {lang} is {o[0]['translation']}.")


ONE_CALL: dict[str, Callable[[random.Random, Pools, Split], Scenario]] = {
    "get_weather": _weather, "get_time": _time, "convert_currency": _currency, "calculate": _calculate,
    "convert_units": _units, "get_stock_price": _stock, "search_flights": _flights, "translate_word": _translate,
    "get_population": _population,
}

# ----------------------------------------------------------------------------- two calls, give-ups, errors


def _two_cities(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    tool = rng.choice([t for t in ("get_weather", "get_time", "get_population") if t in tools])
    a, b = p.cities.pick_two(rng, split)
    what = {"get_weather": "weather", "get_time": "time", "get_population": "population"}[tool]
    q = rng.choice(["What is the {w} in {a} and in {b}?", "Compare the {w} in {a} and {b}."]).format(w=what, a=a, b=b)
    calls = [Call(tool, {"city": a}, f"I will use {tool} for {a}."), Call(tool, {"city": b}, f"Now I will use {tool} for {b}.")]
    key = {"get_weather": "temperature_c", "get_time": "time", "get_population": "population"}[tool]
    unit = {"get_weather": " C", "get_time": "", "get_population": " people"}[tool]
    return Scenario(q, calls, lambda o: f"{a}: {o[0][key]}{unit}; {b}: {o[1][key]}{unit}.")


def _stock_in_currency(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    sym = p.tickers.pick(rng, split)
    cur = p.currencies.pick(rng, split)
    while cur == "USD":
        cur = p.currencies.pick(rng, split)
    q = rng.choice(["What is the price of {s} stock in {c}?", "How much is one {s} share in {c}?"]).format(s=sym, c=cur)
    first = Call("get_stock_price", {"symbol": sym}, "I will use get_stock_price.")
    price = data.stock_price(sym)["price"]
    second = Call("convert_currency", {"amount": price, "from_currency": "USD", "to_currency": cur},
                  f"The price is {_num(price)} USD. Now I will use convert_currency for {_num(price)} USD to {cur}.")
    return Scenario(q, [first, second], lambda o: f"One {sym} share costs {_num(o[1]['result'])} {cur}.")


_NO_TOOL = (
    ("Book me a hotel room in {c} for tonight.", "book hotels"),
    ("Send an email to my boss saying I am late.", "send emails"),
    ("Order a pizza to my home in {c}.", "order food"),
    ("Play some jazz music.", "play music"),
    ("Set an alarm for 7 am.", "set alarms"),
    ("Call a taxi to the airport in {c}.", "call taxis"),
    ("Buy 10 shares of {s} for me.", "buy shares"),
    ("Reserve a table for two in {c}.", "reserve tables"),
)
_DIRECT = (
    ("Hello!", "Hello! I can check weather, time, currencies, stocks, flights, units, sums and translations."),
    ("Who are you?", "I am an assistant that answers questions with tools."),
    ("Thank you!", "You are welcome."),
)
_CURRENCY_NAMES = {"dollars": "USD", "euros": "EUR", "yen": "JPY", "pounds": "GBP", "francs": "CHF"}


def _give_up(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    text, what = rng.choice(_NO_TOOL)
    if "get_population" not in tools and rng.random() < 0.3:
        city = p.cities.pick(rng, split)
        return Scenario(f"What is the population of {city}?", give_up="None of the tools can give populations.")
    return Scenario(text.format(c=p.cities.pick(rng, split), s=p.tickers.pick(rng, split)),
                    give_up=f"None of the tools can {what}.")


def _direct(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    q, a = rng.choice(_DIRECT)
    return Scenario(q, direct_answer=a)


def _recover(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    amount = p.numbers.pick(rng, split)
    na, nb = rng.sample(sorted(_CURRENCY_NAMES), 2)
    a, b = _CURRENCY_NAMES[na], _CURRENCY_NAMES[nb]
    q = f"Convert {amount} {na} to {nb}."
    bad = Call("convert_currency", {"amount": amount, "from_currency": na, "to_currency": nb},
               "I will use convert_currency.",
               fails_with=f"convert_currency: from_currency: unknown currency code {na!r}; use a 3-letter code such as EUR, USD or JPY")
    good = Call("convert_currency", {"amount": amount, "from_currency": a, "to_currency": b},
                f"The tool needs currency codes. I will use convert_currency for {amount} {a} to {b}.")
    return Scenario(q, [bad, good], lambda o: f"{amount} {na} ({a}) is {_num(o[0]['result'])} {b}.")


MIX: tuple[tuple[float, str], ...] = (
    (0.50, "one"), (0.12, "two_cities"), (0.12, "stock_in_currency"), (0.08, "give_up"),
    (0.03, "direct"), (0.15, "recover"),
)
_OTHERS = {"two_cities": _two_cities, "stock_in_currency": _stock_in_currency, "give_up": _give_up,
           "direct": _direct, "recover": _recover}


def scenario(rng: random.Random, pools: Pools, split: Split, tools: list[str]) -> Scenario:
    r, acc = rng.random(), 0.0
    for weight, kind in MIX:
        acc += weight
        if r < acc:
            break
    if kind == "one":
        return ONE_CALL[rng.choice([t for t in tools if t in ONE_CALL])](rng, pools, split)
    return _OTHERS[kind](rng, pools, split, tools)


# ----------------------------------------------------------------------------- trajectories


def trajectory(s: Scenario, tool_docs: list[JSON]) -> JSON:
    turns: list[JSON] = [{"from": "user", "value": s.query}]
    if s.give_up is not None:
        turns.append({"from": "assistant", "value": s.give_up + "\n Next: give up."})
    elif s.direct_answer is not None:
        turns.append({"from": "assistant", "value": "I can answer this directly.\n Next: conclusion."})
        turns.append({"from": "conclusion", "value": s.direct_answer})
    else:
        results: list[JSON] = []
        for call in s.calls:
            turns.append({"from": "assistant", "value": call.thought + "\n Next: caller."})
            turns.append({"from": "caller", "value": caller_turn_content(call.tool, call.args)})
            if call.fails_with is not None:
                turns.append({"from": "observation", "value": http_error_observation(400, call.fails_with)})
                continue
            result = _run(call)
            results.append(result)
            turns.append({"from": "observation", "value": observation_text(result)})
        assert s.answer is not None
        turns.append({"from": "assistant", "value": "I have the answer.\n Next: conclusion."})
        turns.append({"from": "conclusion", "value": s.answer(results)})
    return {"tools": tool_docs, "instruction": s.query, "conversations": turns}


def tool_docs(version: ToolSetName) -> list[JSON]:
    schemas = [t.schema("http://tools") for t in tool_set(version)]
    return [tooldoc_from_openai({k: v for k, v in s.items() if k != "endpoint"}).doc_dict() for s in schemas]


def build_corpus(seed: int, count: int, split: Split, version: ToolSetName = "v1") -> list[JSON]:
    """``count`` trajectories of one split over the ``version`` tool set, reproducible from ``seed``."""
    rng = random.Random(f"{seed}:{split}:{version}")
    pools = make_pools(seed)
    docs = tool_docs(version)
    names = [d["Name"] for d in docs]
    return [trajectory(scenario(rng, pools, split, names), docs) for _ in range(count)]


def write_corpus(out: Path, spec: CorpusSpec = DEMO_CORPUS) -> list[str]:
    """``train-{v1,v2}.json``, ``test-{v1,v2}.json`` and the held-out chat suites into ``out``;
    returns a line per file written."""
    from umi.demo.suite import suite_from_trajectories
    from umi.format import load_trajectories

    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    splits: tuple[tuple[Split, int], ...] = (("train", spec.train), ("test", spec.test))
    versions: tuple[ToolSetName, ...] = ("v1", "v2")
    for split, count in splits:
        for version in versions:
            path = out / f"{split}-{version}.json"
            path.write_text(json.dumps(build_corpus(spec.seed, count, split, version), indent=1) + "\n", encoding="utf-8")
            lines.append(f"wrote {path} ({count} trajectories)")
    for version in versions:
        path = out / f"suite-test-{version}.json"
        suite = suite_from_trajectories(load_trajectories(out / f"test-{version}.json"), f"heldout-{version}")
        path.write_text(suite.model_dump_json(indent=1) + "\n", encoding="utf-8")
        lines.append(f"wrote {path} (a chat suite of the held-out split: umi eval chats --suite {path})")
    return lines
