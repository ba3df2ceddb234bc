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
    "Canadian dollars": "CAD", "Australian dollars": "AUD", "New Zealand dollars": "NZD",
    "Singapore dollars": "SGD", "Hong Kong dollars": "HKD", "Swedish kronor": "SEK", "Norwegian kroner": "NOK",
    "Danish kroner": "DKK", "Indian rupees": "INR", "Mexican pesos": "MXN", "Brazilian reais": "BRL",
    "Chinese yuan": "CNY", "South African rand": "ZAR", "Polish zlotys": "PLN", "Czech korunas": "CZK",
    "Hungarian forints": "HUF", "Turkish lira": "TRY", "Korean won": "KRW", "Thai baht": "THB",
    "Israeli shekels": "ILS", "Egyptian pounds": "EGP", "Argentine pesos": "ARS", "Saudi riyals": "SAR",
    "UAE dirhams": "AED", "Indonesian rupiah": "IDR",
    # as Spanish, French, German and Portuguese speakers write them
    "dólares": "USD", "libras": "GBP", "libras esterlinas": "GBP", "francos suizos": "CHF", "yenes": "JPY",
    "pesos mexicanos": "MXN", "coronas suecas": "SEK", "dollars américains": "USD", "livres sterling": "GBP",
    "francs suisses": "CHF", "couronnes suédoises": "SEK", "Dollar": "USD", "Pfund": "GBP", "Franken": "CHF",
    "Schweizer Franken": "CHF", "schwedische Kronen": "SEK", "dólares americanos": "USD", "reais brasileiros": "BRL",
}
# Names the models do not map: the agent first calls with the name as written, reads the tool's
# error and calls again with the code (the corpus's recovery questions). No name of three
# letters: written in capitals, the tools would take it for a code of the demo world.
CURRENCY_NAMES_TO_LEARN: dict[str, str] = {
    "rupees": "INR", "rand": "ZAR", "yuan": "CNY", "pesos": "MXN", "reais": "BRL",
    "zlotys": "PLN", "forints": "HUF", "shekels": "ILS", "baht": "THB", "dirhams": "AED", "riyals": "SAR",
}
UNIT_NAMES: dict[str, tuple[str, ...]] = {
    "km": ("km", "kilometers", "kilometres", "kilómetros", "Kilometer"),
    "m": ("m", "meters", "metres", "metros", "Meter", "mètres"),
    "cm": ("cm", "centimeters", "centimetres", "centímetros", "Zentimeter"),
    "mi": ("mi", "miles", "millas", "Meilen", "milles"), "ft": ("ft", "feet", "pies", "Fuß", "pieds"),
    "in": ("in", "inches", "pulgadas", "Zoll", "pouces"),
    "kg": ("kg", "kilograms", "kilos", "kilogramos", "Kilogramm"), "g": ("g", "grams", "gramos", "Gramm"),
    "lb": ("lb", "pounds", "lbs", "libras", "livres", "Pfund"), "oz": ("oz", "ounces", "onzas", "Unzen"),
    "l": ("l", "liters", "litres", "litros", "Liter"), "ml": ("ml", "milliliters", "millilitres", "mililitros"),
    "gal": ("gal", "gallons", "galones", "Gallonen"),
    "c": ("c", "celsius", "degrees Celsius", "°C", "grados Celsius", "degrés Celsius", "Grad Celsius"),
    "f": ("f", "fahrenheit", "degrees Fahrenheit", "°F", "grados Fahrenheit", "degrés Fahrenheit", "Grad Fahrenheit"),
    "k": ("k", "kelvin"),
}
# Language names as Spanish, French, German and Portuguese speakers write them (the call takes the
# English name: umi.demo.tool_data.LANGUAGES).
LANGUAGE_NAMES: dict[str, dict[str, str]] = {
    "es": {"French": "francés", "German": "alemán", "Spanish": "español", "Italian": "italiano",
           "Dutch": "neerlandés", "Swedish": "sueco"},
    "fr": {"French": "français", "German": "allemand", "Spanish": "espagnol", "Italian": "italien",
           "Dutch": "néerlandais", "Swedish": "suédois"},
    "de": {"French": "Französisch", "German": "Deutsch", "Spanish": "Spanisch", "Italian": "Italienisch",
           "Dutch": "Niederländisch", "Swedish": "Schwedisch"},
    "pt": {"French": "francês", "German": "alemão", "Spanish": "espanhol", "Italian": "italiano",
           "Dutch": "holandês", "Swedish": "sueco"},
}
PREFIXES = ("Hi, ", "Hello! ", "Hey, ", "Quick question: ", "Please tell me: ", "I was wondering, ",
            "Can you help? ", "Excuse me, ", "Hola, ", "Bonjour, ")
SUFFIXES = (" Thanks!", " thx", " Thank you.", " please", " Cheers.", " asap", " rn", " if you can.")
# A sentence of context before the question, with words (days, places, numbers of people) that are
# not values of the call: the models learn to pick the question out of the message.
CONTEXTS = (
    "I'm planning a trip next week. ", "My flight leaves tomorrow morning. ", "For a report I'm writing: ",
    "Before I head out, ", "My boss asked me this and I have no idea. ", "We are three friends travelling in May. ",
    "Sorry to bother you again. ", "Just landed after a long night. ", "Random question from my kid: ",
    "I have a call with a client later today. ", "Settling a bet with my brother: ", "Ok so ",
)
TYPO_RATE, LOWER_RATE, UPPER_RATE, NO_PUNCT_RATE, PREFIX_RATE, SUFFIX_RATE = 0.15, 0.14, 0.08, 0.22, 0.12, 0.06
CONTEXT_RATE = 0.08


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
    elif rng.random() < CONTEXT_RATE:
        context = rng.choice(CONTEXTS)
        first = query[:1].lower() if context.endswith((": ", ", ", "so ")) and not template.startswith("{") else query[:1]
        query = context + first + query[1:]
    if rng.random() < SUFFIX_RATE:
        query += rng.choice(SUFFIXES)
    if rng.random() < NO_PUNCT_RATE:
        query = query.rstrip("?.!¿ ").lstrip("¿¡")
    r = rng.random()
    casing: Casing = "lower" if r < LOWER_RATE else "upper" if r < LOWER_RATE + UPPER_RATE else "as_is"
    query = query.lower() if casing == "lower" else query.upper() if casing == "upper" else query
    return Asked(query, casing)
