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
from umi.demo.phrasing import CURRENCY_NAMES, CURRENCY_NAMES_TO_LEARN, LANGUAGE_NAMES, UNIT_NAMES, ask, typo
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
# Each tool's question forms: English paraphrases, word orders and questions inside a sentence,
# then a few in Spanish, French, German and Portuguese (OTHER_LANGUAGE_RATE of the questions).
# umi.demo.phrasing writes them as people do (typos, casing, punctuation, greetings).

OTHER_LANGUAGE_RATE = 0.12
WEATHER = (
    "What is the weather in {c}?", "How is the weather in {c} today?", "Weather in {c}?", "{c} weather",
    "Tell me the current weather in {c}.", "Is it cold in {c} right now?", "How hot is it in {c}?",
    "How cold is it in {c} today?", "Is it raining in {c}?", "Is it raining in {c} at the moment?",
    "What's the forecast for {c}?", "What's the temperature in {c}?", "Temperature in {c} right now?",
    "Do I need an umbrella in {c} today?", "Is it sunny in {c}?", "How warm is it in {c}?",
    "What's it like outside in {c}?", "weather {c} now", "Is it snowing in {c}?", "Current conditions in {c}?",
    "I'm flying to {c} tomorrow, what's the weather like there?", "Heading to {c} later. Is it cold there?",
    "My sister lives in {c}; how's the weather there today?", "Going for a run in {c}, is it raining?",
    "What should I wear in {c} today? How's the weather?", "In {c}, what's the weather like?",
)
WEATHER_OTHER = (
    "¿Qué tiempo hace en {c}?", "¿Cómo está el clima en {c}?", "¿Llueve en {c}?", "¿Hace frío en {c}?",
    "Quel temps fait-il à {c} ?", "Il fait chaud à {c} ?", "Météo à {c} ?", "Il pleut à {c} ?",
    "Wie ist das Wetter in {c}?", "Regnet es in {c}?", "Wetter in {c}", "Wie warm ist es in {c}?",
    "Como está o tempo em {c}?", "Está chovendo em {c}?", "Previsão do tempo em {c}",
)
TIME = (
    "What time is it in {c}?", "Local time in {c}?", "Tell me the time in {c}.", "What is the current time in {c}?",
    "What's the local time in {c}?", "Time in {c}?", "{c} time now", "What time is it right now in {c}?",
    "What does the clock say in {c}?", "What's the time over in {c}?", "Current time {c}", "What hour is it in {c}?",
    "I need to call a friend in {c}, what time is it there?", "My meeting is with someone in {c}. What's their local time?",
    "Is it late in {c} now? What time is it?", "In {c}, what time is it?", "clock in {c}",
    "Could you check the time in {c}?", "What's the hour in {c} right now?", "Is it morning or evening in {c}?",
    "{c}: what time is it there?", "time {c}", "Is it too early to phone someone in {c}?", "What time do they have in {c}?",
    "Is it the middle of the night in {c}?", "Do you know what time it is in {c}?", "current local time {c} pls",
)
TIME_OTHER = (
    "¿Qué hora es en {c}?", "¿Qué hora tienen en {c}?", "Quelle heure est-il à {c} ?", "L'heure à {c} ?",
    "Wie spät ist es in {c}?", "Uhrzeit in {c}?", "Que horas são em {c}?", "Que horas são agora em {c}?",
    "¿Me dices la hora en {c}?", "Il est quelle heure à {c} ?", "Wie viel Uhr ist es in {c}?", "Horário em {c}?",
)
POPULATION = (
    "What is the population of {c}?", "How many people live in {c}?", "Population of {c}?", "How big is {c}?",
    "How many inhabitants does {c} have?", "{c} population", "What's the population of {c} these days?",
    "How populous is {c}?", "Number of people in {c}?", "How large is the population of {c}?",
    "I'm writing about {c}: how many people live there?", "In {c}, how many people are there?",
)
POPULATION_OTHER = (
    "¿Cuántos habitantes tiene {c}?", "¿Cuánta gente vive en {c}?", "Combien d'habitants à {c} ?",
    "Quelle est la population de {c} ?", "Wie viele Einwohner hat {c}?", "Quantos habitantes tem {c}?",
    "Qual é a população de {c}?",
)
CURRENCY = (
    "Convert {n} {a} to {b}.", "How much is {n} {a} in {b}?", "What is {n} {a} in {b}?", "Change {n} {a} into {b}, please.",
    "{n} {a} to {b}", "Exchange {n} {a} for {b}.", "What's {n} {a} worth in {b}?", "How many {b} do I get for {n} {a}?",
    "{n} {a} in {b}?", "I'm going abroad with {n} {a}; how much is that in {b}?", "What do {n} {a} make in {b}?",
    "Exchange rate: {n} {a} into {b}?", "How many {b} is {n} {a}?", "Turn {n} {a} into {b}", "{n} {a} = ? {b}",
    "I have {n} {a}, what's that in {b}?", "If I pay {n} {a}, how much is it in {b}?", "{n} {a} -> {b}",
)
CURRENCY_OTHER = (
    "¿Cuánto son {n} {a} en {b}?", "Combien font {n} {a} en {b} ?", "Wie viel sind {n} {a} in {b}?",
    "Quanto é {n} {a} em {b}?", "{n} {a}, ¿cuánto es en {b}?", "Cambia {n} {a} a {b}.", "Convertis {n} {a} en {b}.",
    "{n} {a} in {b} umrechnen", "Quantos {b} são {n} {a}?",
)
CALCULATE = (
    "What is {e}?", "Calculate {e}.", "Compute {e} for me.", "How much is {e}?", "What's {e}?", "{e} = ?", "{e}?",
    "What does {e} come to?", "Can you work out {e}?", "Quick maths: {e}", "Solve {e}.", "{e}", "what's {e} equal to",
    "Help me with some math: {e}", "I need {e} worked out.", "What do you get for {e}?",
)
# Other-language forms, each with its language's operator words.
CALCULATE_OTHER = (("es", "¿Cuánto es {e}?"), ("fr", "Combien font {e} ?"), ("de", "Was ist {e}?"),
                   ("pt", "Quanto é {e}?"), ("fr", "Calcule {e}."), ("de", "Rechne {e}."), ("es", "Calcula {e}."))
OPERATOR_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"+": ("plus", "and"), "-": ("minus", "take away"), "*": ("times", "multiplied by", "x"),
           "/": ("divided by", "over", "split by")},
    "es": {"+": ("más",), "-": ("menos",), "*": ("por",), "/": ("dividido por", "entre")},
    "fr": {"+": ("plus",), "-": ("moins",), "*": ("fois",), "/": ("divisé par",)},
    "de": {"+": ("plus",), "-": ("minus",), "*": ("mal",), "/": ("geteilt durch",)},
    "pt": {"+": ("mais",), "-": ("menos",), "*": ("vezes",), "/": ("dividido por",)},
}
# Percentages and powers as people write them, with the expression the call takes.
PERCENT_OF = {"en": "{p}% of {x}", "es": "el {p}% de {x}", "fr": "{p} % de {x}", "de": "{p} % von {x}", "pt": "{p}% de {x}"}
SQUARED = {"en": ("{x} squared", "{x} to the power of 2"), "es": ("{x} al cuadrado",), "fr": ("{x} au carré",),
           "de": ("{x} hoch 2", "{x} zum Quadrat"), "pt": ("{x} ao quadrado",)}
UNITS_FORMS = (
    "Convert {v} {a} to {b}.", "How many {b} is {v} {a}?", "What is {v} {a} in {b}?", "{v} {a} in {b}?",
    "{v} {a} to {b}", "How much is {v} {a} in {b}?", "Change {v} {a} into {b}.", "What's {v} {a} in {b}?",
    "How many {b} are in {v} {a}?", "{v} {a} is how many {b}?", "I have {v} {a}. How many {b} is that?",
    "Can you turn {v} {a} into {b}?", "what is {v} {a} in {b} please", "My recipe says {v} {a}; how much is that in {b}?",
    "The sign said {v} {a}. What's that in {b}?", "{v} {a} equals how many {b}?",
)
UNITS_OTHER = ("Convierte {v} {a} a {b}.", "Convertis {v} {a} en {b}.", "Rechne {v} {a} in {b} um.", "Converta {v} {a} para {b}.",
               "¿Cuántos {b} hay en {v} {a}?", "{v} {a}, c'est combien en {b} ?", "Wie viele {b} sind {v} {a}?",
               "Quantos {b} são {v} {a}?")
STOCK = (
    "What is the stock price of {s}?", "How much does {s} stock cost?", "Price of {s} shares?",
    "Give me the latest {s} stock price.", "Where is {s} trading today?", "How is {s} doing today?",
    "{s} stock price", "{s} share price?", "What's {s} trading at?", "Quote for {s}?", "How much is a share of {s}?",
    "Check {s} stock.", "What is {s} worth today?", "I own some {s} shares, what is the price now?", "{s}?",
    "{s} quote", "Quote {s} please", "What's the latest on {s} stock?", "Is {s} up today?",
    "How much are {s} shares going for?", "Current {s} price?", "How's {s} stock doing right now?",
    "Thinking of buying {s}. What does it cost now?",
)
STOCK_OTHER = (
    "¿Cuál es el precio de la acción de {s}?", "Quel est le cours de {s} ?", "Wie steht die Aktie {s}?",
    "Aktienkurs von {s}?", "Qual é o preço da ação {s}?", "¿A cuánto está la acción de {s}?", "¿Cuánto vale {s} hoy?",
    "Combien vaut l'action {s} ?", "Was kostet die {s}-Aktie?", "Wie viel kostet {s} gerade?", "Quanto vale a ação da {s}?",
)
FLIGHTS = (
    "Find flights from {a} to {b} on {d}.", "Are there flights from {a} to {b} on {d}?",
    "I need a flight from {a} to {b} on {d}.", "Flights {a} to {b} {d}", "I want to fly from {a} to {b} on {d}.",
    "Any flights {a} -> {b} on {d}?", "Show me flights to {b} from {a} on {d}.", "On {d}, flights from {a} to {b}?",
    "I have to be in {b} on {d}, any flights from {a}?", "Flying {a} to {b} on {d}, what are my options?",
)
FLIGHTS_OTHER = (
    "Vuelos de {a} a {b} el {d}", "Vols de {a} à {b} le {d} ?", "Flüge von {a} nach {b} am {d}",
    "Voos de {a} para {b} em {d}",
)
TRANSLATE = (
    "Translate {w} to {l}.", "How do you say {w} in {l}?", "What is {w} in {l}?", "{w} in {l}?",
    "What's the {l} word for {w}?", "Translate {w} into {l}.", "How would I say {w} in {l}?",
    "Translate the word {w} to {l}.", "What does {w} mean in {l}?", "{l} for {w}?", "How do {l} people say {w}?",
    "Give me {w} in {l}.", "What is the word for {w} in {l}?", "translate {w} {l}", "{w} -> {l}",
)
# Other-language forms: (language of the question, form); {l} is the language's name in it.
TRANSLATE_OTHER = (("es", "¿Cuál es la traducción de {w} al {l}?"), ("es", "Traduce {w} al {l}."), ("fr", "Comment dit-on {w} en {l} ?"),
                   ("fr", "Traduis {w} en {l}."), ("de", "Was heißt {w} auf {l}?"), ("de", "Übersetze {w} ins {l}e."),
                   ("pt", "Como se diz {w} em {l}?"), ("pt", "Traduza {w} para o {l}."))


def _form(rng: random.Random, forms: tuple[str, ...], other: tuple[str, ...] = ()) -> str:
    return rng.choice(other if other and rng.random() < OTHER_LANGUAGE_RATE else forms)


def _city_scenario(tool: str, forms: tuple[str, ...], other: tuple[str, ...], answer: Callable[[JSON], str]) -> Callable[[random.Random, Pools, Split], Scenario]:
    def make(rng: random.Random, p: Pools, split: Split) -> Scenario:
        city = p.cities.pick(rng, split)
        asked = ask(rng, _form(rng, forms, other), c=city)
        return Scenario(asked.query, [Call(tool, {"city": asked.written(city)}, f"I will use {tool}.")], lambda o: answer(o[0]))

    return make


_weather = _city_scenario("get_weather", WEATHER, WEATHER_OTHER,
                          lambda o: f"In {o['city']} it is {o['temperature_c']} C and {o['condition']}.")
_time = _city_scenario("get_time", TIME, TIME_OTHER, lambda o: f"It is {o['time']} in {o['city']} (UTC{o['utc_offset']}).")
_population = _city_scenario("get_population", POPULATION, POPULATION_OTHER,
                             lambda o: f"{o['city']} has {o['population']} inhabitants.")


NAMED_CURRENCY_RATE = 0.35


def _currency_side(rng: random.Random, code: str) -> tuple[str, str]:
    """How one currency of a question is written and the code the call takes: the pool's code,
    or (NAMED_CURRENCY_RATE) a name people use, such as ``euros`` for EUR. The names are a closed
    vocabulary, the same in both splits: mapping one is not copying a value."""
    if rng.random() < NAMED_CURRENCY_RATE:
        name = rng.choice(sorted(CURRENCY_NAMES))
        return name, CURRENCY_NAMES[name]
    return code, code


DECIMAL_RATE = 0.2


def _amount(rng: random.Random, p: Pools, split: Split) -> int | float:
    """A number of the split's pool, or (DECIMAL_RATE) that number with one or two decimals
    (``26.2``, ``12.75``): the call copies it as written."""
    n = p.numbers.pick(rng, split)
    if rng.random() >= DECIMAL_RATE:
        return n
    return float(f"{n % 1000}.{rng.randint(1, 9)}" if rng.random() < 0.6 else f"{n % 1000}.{rng.randint(1, 99):02d}".rstrip("0"))


def _currency(rng: random.Random, p: Pools, split: Split) -> Scenario:
    amount = _amount(rng, p, split)
    a, b = p.currencies.pick_two(rng, split)
    (wa, a), (wb, b) = _currency_side(rng, a), _currency_side(rng, b)
    while b == a:
        wb, b = _currency_side(rng, p.currencies.pick(rng, split))
    asked = ask(rng, _form(rng, CURRENCY, CURRENCY_OTHER), n=amount, a=wa, b=wb)
    call = Call("convert_currency", {"amount": amount, "from_currency": a, "to_currency": b},
                "I will use convert_currency.")
    return Scenario(asked.query, [call], lambda o: f"{amount} {a} is {_num(o[0]['result'])} {b}.")


def _calculate(rng: random.Random, p: Pools, split: Split) -> Scenario:
    """Arithmetic as people write it: symbols or operator words (in the question's language),
    two or three operands, decimals, a percentage of a number, a square."""
    lang, form = ("en", rng.choice(CALCULATE))
    if rng.random() < OTHER_LANGUAGE_RATE:
        lang, form = rng.choice(CALCULATE_OTHER)
    x, y = _amount(rng, p, split), p.numbers.pick(rng, split)
    r = rng.random()
    if r < 0.1:
        pct = rng.choice((5, 10, 12, 15, 18, 20, 25, 30, 40, 50, 75)) if rng.random() < 0.5 else rng.randint(1, 99)
        expr, written = f"{y} * {pct} / 100", PERCENT_OF[lang].format(p=pct, x=y)
    elif r < 0.17:
        expr, written = f"{y % 100} ** 2", rng.choice(SQUARED[lang]).format(x=y % 100)
    else:
        ops = [rng.choice(["+", "-", "*", "/"])]
        if r > 0.85:
            ops.append(rng.choice(["+", "-", "*"]))
        nums = [x, y] + [p.numbers.pick(rng, split) % 100 for _ in ops[1:]]
        expr = " ".join([_num(nums[0])] + [f"{op} {_num(n)}" for op, n in zip(ops, nums[1:])])
        if rng.random() < 0.3:
            written = " ".join([_num(nums[0])] + [f"{rng.choice(OPERATOR_WORDS[lang][op])} {_num(n)}" for op, n in zip(ops, nums[1:])])
        else:
            written = expr if rng.random() < 0.7 else expr.replace(" ", "")
    asked = ask(rng, form, e=written)
    return Scenario(asked.query, [Call("calculate", {"expression": expr}, "I will use calculate.")],
                    lambda o: f"{expr} = {_num(o[0]['result'])}.")


_UNIT_PAIRS = (("km", "mi"), ("mi", "km"), ("kg", "lb"), ("lb", "kg"), ("c", "f"), ("f", "c"), ("m", "ft"),
               ("ft", "m"), ("l", "gal"), ("gal", "l"), ("cm", "in"), ("in", "cm"), ("g", "oz"), ("oz", "g"),
               ("ml", "l"), ("l", "ml"), ("c", "k"), ("k", "c"), ("km", "m"), ("m", "km"), ("kg", "g"), ("g", "kg"))


def _units(rng: random.Random, p: Pools, split: Split) -> Scenario:
    value = _amount(rng, p, split)
    a, b = rng.choice(_UNIT_PAIRS)
    asked = ask(rng, _form(rng, UNITS_FORMS, UNITS_OTHER), v=value, a=rng.choice(UNIT_NAMES[a]), b=rng.choice(UNIT_NAMES[b]))
    call = Call("convert_units", {"value": value, "from_unit": a, "to_unit": b}, "I will use convert_units.")
    return Scenario(asked.query, [call], lambda o: f"{value} {a} is {_num(o[0]['result'])} {b}.")


def _stock(rng: random.Random, p: Pools, split: Split) -> Scenario:
    sym = p.tickers.pick(rng, split)
    asked = ask(rng, _form(rng, STOCK, STOCK_OTHER), s=sym)
    return Scenario(asked.query, [Call("get_stock_price", {"symbol": sym}, "I will use get_stock_price.")],
                    lambda o: f"{sym} trades at {_num(o[0]['price'])} USD.")


def _flights(rng: random.Random, p: Pools, split: Split) -> Scenario:
    a, b = p.cities.pick_two(rng, split)
    day = p.dates.pick(rng, split)
    asked = ask(rng, _form(rng, FLIGHTS, FLIGHTS_OTHER), a=a, b=b, d=day)
    args = {"origin": asked.written(a), "destination": asked.written(b), "date": day}
    return Scenario(asked.query, [Call("search_flights", args, "I will use search_flights.")],
                    lambda o: "Flights from {a} to {b} on {d}: {f}.".format(
        a=o[0]["origin"], b=o[0]["destination"], d=day,
        f=", ".join(f"{x['flight']} at {x['departure']} for {x['price_usd']} USD" for x in o[0]["flights"])))


LANGUAGE_TYPO_RATE = 0.08


def _translate(rng: random.Random, p: Pools, split: Split) -> Scenario:
    """A word to translate; the language's name as the question's language writes it (the call
    takes the English name), sometimes misspelt: the names are a closed list, so a typo in one
    does not change the value."""
    word = p.words.pick(rng, split)
    lang = rng.choice(p.languages)
    if rng.random() < OTHER_LANGUAGE_RATE:
        asked_in, form = rng.choice(TRANSLATE_OTHER)
        name = LANGUAGE_NAMES[asked_in][lang]
    else:
        form, name = rng.choice(TRANSLATE), lang
    if rng.random() < LANGUAGE_TYPO_RATE and len(name) >= 5:
        name = typo(rng, name)
    asked = ask(rng, form, w=word, l=name)
    call = Call("translate_word", {"word": word, "language": lang}, "I will use translate_word.")
    return Scenario(asked.query, [call], lambda o: f"{word} in {lang} is {o[0]['translation']}.")


ONE_CALL: dict[str, Callable[[random.Random, Pools, Split], Scenario]] = {
    "get_weather": _weather, "get_time": _time, "convert_currency": _currency, "calculate": _calculate,
    "convert_units": _units, "get_stock_price": _stock, "search_flights": _flights, "translate_word": _translate,
    "get_population": _population,
}

# ----------------------------------------------------------------------------- two calls, give-ups, errors


TWO_CITIES = (
    "What is the {w} in {a} and in {b}?", "Compare the {w} in {a} and {b}.", "{w} in {a} and {b}?",
    "What's the {w} like in {a} and in {b}?", "{a} vs {b}: {w}?", "Tell me the {w} for {a} and {b}.",
    "Compare the {w} of {a} with {b}.",
)


# Comparisons that need the weather of both cities.
WARMER = (
    "Which city is warmer, {a} or {b}?", "Which is colder right now, {a} or {b}?", "Where is it hotter today: {a} or {b}?",
    "Is {a} warmer than {b} at the moment?", "{a} or {b}, where is the weather better?", "Colder in {a} or {b}?",
    "¿Hace más calor en {a} o en {b}?", "Fait-il plus chaud à {a} ou à {b} ?", "Ist es in {a} oder in {b} wärmer?",
)


def _two_cities(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    tool = rng.choice([t for t in ("get_weather", "get_time", "get_population") if t in tools])
    a, b = p.cities.pick_two(rng, split)
    what = {"get_weather": "weather", "get_time": "time", "get_population": "population"}[tool]
    form = rng.choice(WARMER) if tool == "get_weather" and rng.random() < 0.35 else rng.choice(TWO_CITIES)
    asked = ask(rng, form, w=what, a=a, b=b)
    a, b = asked.written(a), asked.written(b)
    calls = [Call(tool, {"city": a}, f"I will use {tool} for {a}."), Call(tool, {"city": b}, f"Now I will use {tool} for {b}.")]
    key = {"get_weather": "temperature_c", "get_time": "time", "get_population": "population"}[tool]
    unit = {"get_weather": " C", "get_time": "", "get_population": " people"}[tool]
    return Scenario(asked.query, calls, lambda o: f"{a}: {o[0][key]}{unit}; {b}: {o[1][key]}{unit}.")


_JOINERS = (" and ", ", and ", "? And ", ". Also, ", " & ", "; ")


def _two_questions(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    """Two questions for two tools in one message ("weather in Oslo and the time in Lima?")."""
    first, second = rng.sample([t for t in tools if t in ONE_CALL], 2)
    s1, s2 = ONE_CALL[first](rng, p, split), ONE_CALL[second](rng, p, split)
    q1, q2 = s1.query.rstrip("?.! "), s2.query
    joiner = rng.choice(_JOINERS)
    if q2[:1].isupper() and not q2[:2].isupper() and joiner in (" and ", ", and ", " & ", "; "):
        # lower-case the second question's first word unless it is a value (a city, a code)
        value_first = s2.calls[0].args and any(q2.startswith(str(v)) for v in s2.calls[0].args.values())
        q2 = q2 if value_first else q2[:1].lower() + q2[1:]
    (c1,), (c2,) = s1.calls, s2.calls
    calls = [Call(c1.tool, c1.args, f"I will use {c1.tool}."), Call(c2.tool, c2.args, f"Now I will use {c2.tool}.")]
    a1, a2 = s1.answer, s2.answer
    assert a1 is not None and a2 is not None
    return Scenario(q1 + joiner + q2, calls, lambda o: a1(o[:1]) + " " + a2(o[1:]))


# (form, the tool the question asks of first)
SAME_CITY = (
    ("How is the weather in {c}, and what's the local time?", "get_weather"), ("Weather and local time in {c}?", "get_weather"),
    ("Tell me the time and the weather in {c}.", "get_time"), ("How's the weather in {c}, and what's the time there?", "get_weather"),
    ("In {c}: weather and time please", "get_weather"), ("What time is it in {c}, and is it raining there?", "get_time"),
    ("¿Qué hora es en {c} y qué tiempo hace?", "get_time"), ("Quelle heure est-il à {c} et quel temps fait-il ?", "get_time"),
    ("Wie ist das Wetter in {c} und wie spät ist es dort?", "get_weather"),
)
TWO_LANGUAGES = (
    "Translate {w} to {l1} and {l2}.", "How do you say {w} in {l1} and in {l2}?", "{w} in {l1} and {l2}?",
    "What's {w} in {l1}, and in {l2}?", "translate {w} into {l1} and also {l2}",
)


def _same_city(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    """Two tools for one city in one message: the weather and the time (order as asked)."""
    city = p.cities.pick(rng, split)
    form, first = rng.choice(SAME_CITY)
    asked = ask(rng, form, c=city)
    c = asked.written(city)
    second = "get_time" if first == "get_weather" else "get_weather"
    calls = [Call(first, {"city": c}, f"I will use {first}."), Call(second, {"city": c}, f"Now I will use {second}.")]

    def answer(o: list[JSON]) -> str:
        w, tm = (o[0], o[1]) if first == "get_weather" else (o[1], o[0])
        return f"In {c} it is {w['temperature_c']} C and {w['condition']}, and the time is {tm['time']}."

    return Scenario(asked.query, calls, answer)


def _two_languages(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    word = p.words.pick(rng, split)
    l1, l2 = rng.sample(list(p.languages), 2)
    asked = ask(rng, rng.choice(TWO_LANGUAGES), w=word, l1=l1, l2=l2)
    calls = [Call("translate_word", {"word": word, "language": l1}, "I will use translate_word."),
             Call("translate_word", {"word": word, "language": l2}, f"Now I will use translate_word for {l2}.")]
    return Scenario(asked.query, calls,
                    lambda o: f"{word} in {l1} is {o[0]['translation']}; in {l2} it is {o[1]['translation']}.")


STOCK_IN_CURRENCY = (
    "What is the price of {s} stock in {c}?", "How much is one {s} share in {c}?", "{s} price in {c}?",
    "What does a {s} share cost in {c}?", "How much is {s} in {c}?", "Give me the {s} stock price in {c}.",
)


def _stock_in_currency(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    sym = p.tickers.pick(rng, split)
    cur = p.currencies.pick(rng, split)
    written, cur = _currency_side(rng, p.currencies.pick(rng, split))
    while cur == "USD":
        written, cur = _currency_side(rng, p.currencies.pick(rng, split))
    asked = ask(rng, rng.choice(STOCK_IN_CURRENCY), s=sym, c=written)
    first = Call("get_stock_price", {"symbol": sym}, "I will use get_stock_price.")
    price = data.stock_price(sym)["price"]
    second = Call("convert_currency", {"amount": price, "from_currency": "USD", "to_currency": cur},
                  f"The price is {_num(price)} USD. Now I will use convert_currency for {_num(price)} USD to {cur}.")
    return Scenario(asked.query, [first, second], lambda o: f"One {sym} share costs {_num(o[1]['result'])} {cur}.")


_NO_TOOL = (
    ("Book me a hotel room in {c} for tonight.", "book hotels"),
    ("Can you book a hotel in {c}?", "book hotels"),
    ("Reserva un hotel en {c}.", "book hotels"),
    ("Send an email to my boss saying I am late.", "send emails"),
    ("Email my team that the meeting moved.", "send emails"),
    ("Order a pizza to my home in {c}.", "order food"),
    ("Get me some sushi delivered in {c}.", "order food"),
    ("Play some jazz music.", "play music"),
    ("Put on my workout playlist.", "play music"),
    ("Set an alarm for 7 am.", "set alarms"),
    ("Wake me up at 6 tomorrow.", "set alarms"),
    ("Call a taxi to the airport in {c}.", "call taxis"),
    ("I need an Uber in {c} right now.", "call taxis"),
    ("Buy 10 shares of {s} for me.", "buy shares"),
    ("Sell my {s} stock.", "buy shares"),
    ("Reserve a table for two in {c}.", "reserve tables"),
    ("Remind me to call mom at 5.", "set reminders"),
    ("Turn off the lights in the kitchen.", "control lights"),
    ("What's in the news today?", "read the news"),
    ("Who won the football match last night?", "read the news"),
    ("Stell einen Wecker für 7 Uhr.", "set alarms"),
    ("Réserve une table à {c}.", "reserve tables"),
)
_DIRECT = (
    ("Hello!", "Hello! I can check weather, time, currencies, stocks, flights, units, sums and translations."),
    ("hi", "Hello! I can check weather, time, currencies, stocks, flights, units, sums and translations."),
    ("Hola", "Hello! I can check weather, time, currencies, stocks, flights, units, sums and translations."),
    ("Bonjour !", "Hello! I can check weather, time, currencies, stocks, flights, units, sums and translations."),
    ("What can you do?", "I can check weather, time, currencies, stocks, flights, units, sums and translations."),
    ("Who are you?", "I am an assistant that answers questions with tools."),
    ("Thank you!", "You are welcome."),
    ("thanks a lot", "You are welcome."),
    ("Danke!", "You are welcome."),
)


def _give_up(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    text, what = rng.choice(_NO_TOOL)
    if "get_population" not in tools and rng.random() < 0.3:
        city = p.cities.pick(rng, split)
        asked = ask(rng, _form(rng, POPULATION, POPULATION_OTHER), c=city)
        return Scenario(asked.query, give_up="None of the tools can give populations.")
    asked = ask(rng, text, c=p.cities.pick(rng, split), s=p.tickers.pick(rng, split))
    return Scenario(asked.query, give_up=f"None of the tools can {what}.")


def _direct(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    q, a = rng.choice(_DIRECT)
    return Scenario(q, direct_answer=a)


def _recover(rng: random.Random, p: Pools, split: Split, tools: list[str]) -> Scenario:
    """A currency name the models do not map: called as written, the tool's error says to use
    a code, the second call has it."""
    amount = p.numbers.pick(rng, split)
    na, nb = rng.sample(sorted(CURRENCY_NAMES_TO_LEARN), 2)
    a, b = CURRENCY_NAMES_TO_LEARN[na], CURRENCY_NAMES_TO_LEARN[nb]
    asked = ask(rng, rng.choice(CURRENCY[:4]), n=amount, a=na, b=nb)
    na, nb = asked.written(na), asked.written(nb)
    bad = Call("convert_currency", {"amount": amount, "from_currency": na, "to_currency": nb},
               "I will use convert_currency.",
               fails_with=f"convert_currency: from_currency: unknown currency code {na!r}; use a 3-letter code such as EUR, USD or JPY")
    good = Call("convert_currency", {"amount": amount, "from_currency": a, "to_currency": b},
                f"The tool needs currency codes. I will use convert_currency for {amount} {a} to {b}.")
    return Scenario(asked.query, [bad, good], lambda o: f"{amount} {na} ({a}) is {_num(o[0]['result'])} {b}.")


MIX: tuple[tuple[float, str], ...] = (
    (0.50, "one"), (0.09, "two_cities"), (0.09, "two_questions"), (0.04, "same_city"), (0.02, "two_languages"),
    (0.07, "stock_in_currency"), (0.08, "give_up"), (0.04, "direct"), (0.07, "recover"),
)
_OTHERS = {"two_cities": _two_cities, "two_questions": _two_questions, "stock_in_currency": _stock_in_currency,
           "give_up": _give_up, "direct": _direct, "recover": _recover, "same_city": _same_city,
           "two_languages": _two_languages}


def scenario(rng: random.Random, pools: Pools, split: Split, tools: list[str]) -> Scenario:
    r, acc = rng.random(), 0.0
    for weight, kind in MIX:
        acc += weight
        if r < acc:
            break
    if kind == "one":
        return ONE_CALL[rng.choice([t for t in tools if t in ONE_CALL])](rng, pools, split)
    return _OTHERS[kind](rng, pools, split, tools)


def question_forms() -> list[str]:
    """Every question form of the corpus, with its ``{slot}`` placeholders: the one-call forms in
    every language, the two-call forms, the give-ups and the direct answers (a message of two
    joined questions is made of these). :func:`umi.demo.own_words.corpus_form` matches a question
    against them."""
    plain = (WEATHER, WEATHER_OTHER, TIME, TIME_OTHER, POPULATION, POPULATION_OTHER, CURRENCY, CURRENCY_OTHER,
             CALCULATE, UNITS_FORMS, UNITS_OTHER, STOCK, STOCK_OTHER, FLIGHTS, FLIGHTS_OTHER, TRANSLATE,
             TWO_CITIES, WARMER, TWO_LANGUAGES, STOCK_IN_CURRENCY)
    paired = (CALCULATE_OTHER, TRANSLATE_OTHER)
    forms = [f for group in plain for f in group] + [f for group in paired for _, f in group]
    forms += [f for f, _ in SAME_CITY] + [f for f, _ in _NO_TOOL] + [q for q, _ in _DIRECT]
    return forms


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
