"""Slot-value pools of the synthetic corpus, each split into train and test parts.

One fifth of every open pool (cities, currency codes, tickers, words, numbers, dates) is kept
for the test split only, so a model that passes the test split copies values from the question
and the observations instead of remembering them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Generic, TypeVar

from umi.demo.tool_data import CURRENCY_PER_USD, LANGUAGES

T = TypeVar("T")

CITIES = (
    "Oslo Paris Tokyo Lima Rome Berlin Madrid Lisbon Vienna Prague Warsaw Dublin London Athens Cairo Nairobi "
    "Lagos Accra Dakar Tunis Algiers Casablanca Johannesburg Cape Town Durban Mumbai Delhi Chennai Kolkata "
    "Bangalore Karachi Lahore Dhaka Kathmandu Colombo Bangkok Hanoi Manila Jakarta Singapore Seoul Busan "
    "Osaka Kyoto Beijing Shanghai Shenzhen Taipei Sydney Melbourne Perth Brisbane Auckland Wellington Toronto "
    "Montreal Vancouver Calgary Chicago Boston Seattle Denver Austin Dallas Houston Miami Atlanta Phoenix "
    "San Diego Los Angeles New York Mexico City Bogota Quito Santiago Buenos Aires Montevideo Caracas Havana "
    "Reykjavik Helsinki Stockholm Copenhagen Tallinn Riga Vilnius Minsk Kyiv Bucharest Sofia Belgrade Zagreb "
    "Budapest Bratislava Ljubljana Zurich Geneva Munich Hamburg Cologne Frankfurt Amsterdam Rotterdam Brussels "
    "Antwerp Lyon Marseille Nice Porto Seville Valencia Barcelona Milan Naples Turin Florence Venice Istanbul "
    "Ankara Tehran Baghdad Riyadh Jeddah Doha Dubai Muscat Amman Beirut Tbilisi Yerevan Baku Tashkent Almaty "
    # names with diacritics, as their people write them
    "Kraków São Paulo Zürich Malmö Bogotá Reykjavík Düsseldorf Córdoba Łódź Gdańsk Wrocław Poznań Göteborg "
    "Köln München Genève Montréal Québec Medellín Mérida Brasília Málaga Tromsø Ålesund Jyväskylä Plzeň "
    "Nîmes Besançon Cancún Asunción Iași Timișoara Székesfehérvár Brașov Győr Pécs İzmir Niš"
)
_TWO_WORD = ("Cape Town", "San Diego", "Los Angeles", "New York", "Mexico City", "Buenos Aires", "São Paulo")
# Letters with diacritics that made-up training names take (one in four names has one or two), so
# the models learn to copy any letter, not only the ones of the real cities.
ACCENTED = "áàâäãåéèêëíìîïóòôöõøúùûüñçšžčćłńśźżőűăşţğıæßýÿ"
WORDS = (
    "house tree river book window garden bread water apple chair table street mountain cloud friend school "
    "music light night morning letter market bridge forest island summer winter flower bottle mirror pencil "
    "kitchen doctor teacher village castle candle silver golden yellow orange purple ocean desert valley "
    "harbor engine ticket guitar camera pillow blanket button carpet basket rocket planet spider rabbit turtle "
    "dragon tiger monkey eagle shadow thunder breeze meadow pepper butter cheese honey sugar coffee lemon cherry"
).split()
STOCK_TICKERS_SEEDED = 160
AMOUNTS = 400
# Made-up values that only the train split uses, so many (and so varied: syllables and random
# letters) that no value is seen often enough to be remembered: the models must copy values from
# the question and the observations, letter by letter.
GENERATED_PER_POOL = 20000
_SYLLABLES = ("ba", "ko", "ri", "ten", "sa", "mo", "lu", "vin", "da", "pe", "gor", "na", "ti", "zel", "fa",
              "ru", "men", "lo", "kai", "bre", "sun", "tor", "vel", "mi", "dor", "an", "es", "ol", "ur", "quin")


def _cities() -> list[str]:
    text = CITIES
    out = list(_TWO_WORD)
    for name in _TWO_WORD:
        text = text.replace(name, "")
    out += text.split()
    return sorted(set(out))


@dataclass(frozen=True)
class Pool(Generic[T]):
    train: tuple[T, ...]
    test: tuple[T, ...]

    def pick(self, rng: random.Random, split: str) -> T:
        return rng.choice(self.train if split == "train" else self.test)

    def pick_two(self, rng: random.Random, split: str) -> tuple[T, T]:
        a, b = rng.sample(self.train if split == "train" else self.test, 2)
        return a, b


def split_pool(values: list[T], seed: int, test_fraction: float = 0.2, train_extra: list[T] | None = None) -> Pool[T]:
    """One fifth of ``values`` for the test split; the rest, plus ``train_extra`` (minus anything in
    the test split), for training."""
    values = sorted(set(values), key=str)
    random.Random(seed).shuffle(values)
    cut = max(2, int(len(values) * test_fraction))
    test = values[:cut]
    held = set(test)
    train = values[cut:] + sorted({v for v in (train_extra or []) if v not in held} - set(values[cut:]), key=str)
    return Pool(train=tuple(train), test=tuple(test))


def _made_up_word(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3, 4))))
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))


def _accented(rng: random.Random, word: str) -> str:
    for _ in range(rng.choice((1, 1, 2))):
        i = rng.randrange(len(word))
        word = word[:i] + rng.choice(ACCENTED) + word[i + 1 :]
    return word


def _made_up_words(rng: random.Random, count: int, capitalize: bool) -> list[str]:
    out: set[str] = set()
    while len(out) < count:
        word = _made_up_word(rng)
        if capitalize:
            if rng.random() < 0.25:
                word = _accented(rng, word)
            word = word.capitalize()
            if rng.random() < 0.1:
                word += " " + _made_up_word(rng).capitalize()
        out.add(word)
    return sorted(out)


def _tickers(rng: random.Random) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out: set[str] = set()
    while len(out) < STOCK_TICKERS_SEEDED:
        out.add("".join(rng.choice(letters) for _ in range(rng.choice((3, 4)))))
    return sorted(out)


def _numbers(rng: random.Random) -> list[int]:
    out: set[int] = set()
    while len(out) < AMOUNTS:
        out.add(rng.choice((rng.randint(2, 99), rng.randint(100, 999), rng.randint(1000, 9999))))
    return sorted(out)


def _dates(rng: random.Random) -> list[str]:
    return sorted({f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" for _ in range(220)})


@dataclass(frozen=True)
class Pools:
    cities: Pool[str]
    currencies: Pool[str]
    tickers: Pool[str]
    words: Pool[str]
    numbers: Pool[int]
    dates: Pool[str]
    languages: tuple[str, ...] = LANGUAGES


def make_pools(seed: int) -> Pools:
    rng = random.Random(seed)
    extra = random.Random(seed + 100)
    tickers = _tickers(rng)
    numbers = _numbers(rng)
    return Pools(
        cities=split_pool(_cities(), seed + 1, train_extra=_made_up_words(extra, GENERATED_PER_POOL, True)),
        # Made-up codes too: the tools take any three capital letters as a currency of the demo world.
        currencies=split_pool(list(CURRENCY_PER_USD), seed + 2, train_extra=[
            "".join(extra.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) for _ in range(GENERATED_PER_POOL // 4)
        ]),
        tickers=split_pool(tickers, seed + 3, train_extra=[
            "".join(extra.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(extra.choice((3, 4))))
            for _ in range(GENERATED_PER_POOL)
        ]),
        words=split_pool(WORDS, seed + 4, train_extra=_made_up_words(extra, GENERATED_PER_POOL, False)),
        numbers=split_pool(numbers, seed + 5, train_extra=[
            extra.choice((extra.randint(2, 99), extra.randint(100, 999), extra.randint(1000, 9999)))
            for _ in range(GENERATED_PER_POOL)
        ]),
        # Dates of other years for training only.
        dates=split_pool(_dates(rng), seed + 6, train_extra=[
            f"{extra.choice((2024, 2025, 2027, 2028))}-{extra.randint(1, 12):02d}-{extra.randint(1, 28):02d}"
            for _ in range(GENERATED_PER_POOL // 10)
        ]),
    )
