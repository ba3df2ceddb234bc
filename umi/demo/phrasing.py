"""How people write a question: the surface of the corpus's questions, from a seed.

A question is a template (``"how hot is it in {city}"``) and its values. :func:`ask` writes it
as people do: sometimes with a greeting or a thanks around it, a typo, no final punctuation, all
in lower or upper case. Typos touch only the template's words, never a value (a city, a number,
a code): the call must carry what the user asked for, and a misspelt value is another value.
Casing applies to the whole question, values included; :class:`Asked` says how a value was
written, so that a call copies a city as the user wrote it (the demo tools read names in any
case), while codes (currencies, tickers, units, languages) are written in their canonical form.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Literal

Casing = Literal["as_is", "lower", "upper"]

# Names people use for currencies and units, with the code the tools take (umi.demo.tool_data).
CURRENCY_NAMES: dict[str, str] = {
    "dollars": "USD", "US dollars": "USD", "euros": "EUR", "euro": "EUR", "yen": "JPY", "Japanese yen": "JPY",
    "pounds": "GBP", "British pounds": "GBP", "francs": "CHF", "Swiss francs": "CHF",
    "Canadian dollars": "CAD", "Australian dollars": "AUD",
}
# Names the models do not map: the agent first calls with the name as written, reads the tool's
# error and calls again with the code (the corpus's recovery questions). No name of three
# letters: written in capitals, the tools would take it for a code of the demo world.
CURRENCY_NAMES_TO_LEARN: dict[str, str] = {
    "rupees": "INR", "rand": "ZAR", "yuan": "CNY", "pesos": "MXN", "reais": "BRL",
    "zlotys": "PLN", "forints": "HUF", "shekels": "ILS", "baht": "THB", "dirhams": "AED", "riyals": "SAR",
}
UNIT_NAMES: dict[str, tuple[str, ...]] = {
    "km": ("km", "kilometers", "kilometres"), "m": ("m", "meters", "metres"), "cm": ("cm", "centimeters"),
    "mi": ("mi", "miles"), "ft": ("ft", "feet"), "in": ("in", "inches"), "kg": ("kg", "kilograms", "kilos"),
    "g": ("g", "grams"), "lb": ("lb", "pounds", "lbs"), "oz": ("oz", "ounces"), "l": ("l", "liters", "litres"),
    "ml": ("ml", "milliliters"), "gal": ("gal", "gallons"), "c": ("c", "celsius", "degrees Celsius"),
    "f": ("f", "fahrenheit", "degrees Fahrenheit"), "k": ("k", "kelvin"),
}
PREFIXES = ("Hi, ", "Hello! ", "Hey, ", "Quick question: ", "Please tell me: ", "I was wondering, ",
            "Can you help? ", "Excuse me, ", "Hola, ", "Bonjour, ")
SUFFIXES = (" Thanks!", " thx", " Thank you.", " please", " Cheers.")
TYPO_RATE, LOWER_RATE, UPPER_RATE, NO_PUNCT_RATE, PREFIX_RATE, SUFFIX_RATE = 0.15, 0.12, 0.06, 0.2, 0.12, 0.06


@dataclass(frozen=True)
class Asked:
    query: str
    casing: Casing

    def written(self, value: str) -> str:
        """``value`` as it stands in the question."""
        return value.lower() if self.casing == "lower" else value.upper() if self.casing == "upper" else value


def typo(rng: random.Random, word: str) -> str:
    """One common typo in ``word``: two letters swapped, one dropped or one doubled."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _typos(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    for i in rng.sample(candidates, 1 if len(candidates) < 4 or rng.random() < 0.7 else 2):
        words[i] = typo(rng, words[i])
    return " ".join(words)


def ask(rng: random.Random, template: str, noisy: bool = True, **values: object) -> Asked:
    """``template`` filled with ``values``, written as people write (see the module's doc);
    ``noisy=False``: the template exactly."""
    if not noisy:
        return Asked(template.format(**values), "as_is")
    typos = rng.random() < TYPO_RATE
    parts: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(_typos(rng, literal) if typos and literal else literal)
        if field is not None:
            parts.append(str(values[field]))
    query = "".join(parts)
    if rng.random() < PREFIX_RATE:
        first = query[:1].lower() if not template.startswith("{") else query[:1]  # a value keeps its case
        query = rng.choice(PREFIXES) + first + query[1:]
    if rng.random() < SUFFIX_RATE:
        query += rng.choice(SUFFIXES)
    if rng.random() < NO_PUNCT_RATE:
        query = query.rstrip("?.!¿ ").lstrip("¿¡")
    r = rng.random()
    casing: Casing = "lower" if r < LOWER_RATE else "upper" if r < LOWER_RATE + UPPER_RATE else "as_is"
    query = query.lower() if casing == "lower" else query.upper() if casing == "upper" else query
    return Asked(query, casing)
