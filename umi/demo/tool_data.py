"""Synthetic but consistent data behind the demo tools.

Every answer is a pure function of the arguments (a SHA-256 of them seeds the values), so the
same question always gets the same observation, on any machine, for any city, symbol or word.
"""

from __future__ import annotations

import ast
import hashlib
import math
import operator
import re
from datetime import date

CURRENCY_PER_USD: dict[str, float] = {
    "USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.2, "CHF": 0.88, "CAD": 1.36, "AUD": 1.52,
    "NZD": 1.65, "CNY": 7.21, "INR": 83.1, "BRL": 5.02, "MXN": 16.9, "SEK": 10.6, "NOK": 10.8,
    "DKK": 6.87, "PLN": 3.97, "CZK": 23.1, "HUF": 361.0, "ZAR": 18.6, "TRY": 32.2, "KRW": 1342.0,
    "SGD": 1.35, "HKD": 7.82, "THB": 36.4, "IDR": 15800.0, "ILS": 3.71, "AED": 3.67, "SAR": 3.75,
    "EGP": 47.3, "ARS": 870.0,
}
CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "snowy", "foggy", "stormy", "clear")
# Unit -> (dimension, factor to the dimension's base unit); temperatures are handled apart.
UNITS: dict[str, tuple[str, float]] = {
    "km": ("length", 1000.0), "m": ("length", 1.0), "cm": ("length", 0.01), "mi": ("length", 1609.344),
    "ft": ("length", 0.3048), "in": ("length", 0.0254), "kg": ("mass", 1.0), "g": ("mass", 0.001),
    "lb": ("mass", 0.45359237), "oz": ("mass", 0.028349523125), "l": ("volume", 1.0), "ml": ("volume", 0.001),
    "gal": ("volume", 3.785411784), "c": ("temperature", 1.0), "f": ("temperature", 1.0), "k": ("temperature", 1.0),
}
LANGUAGES = ("French", "German", "Spanish", "Italian", "Dutch", "Swedish")
_SYLLABLES = ("ka", "lo", "mi", "ren", "ta", "vo", "shi", "pe", "dun", "ra", "el", "os", "tu", "zan", "bi", "no")
# A place name: letters of any alphabet (Kraków, Łódź, São Paulo), spaces, dots, apostrophes, hyphens.
NAME_RE = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ .'\-]){0,39}$")
SYMBOL_RE = re.compile(r"^[A-Z]{1,5}$")
WORD_RE = re.compile(r"^[a-z]{2,20}$")


class ToolInputError(ValueError):
    """Arguments a tool cannot use; the message is written for the agent to read."""


def _seed(*parts: object) -> int:
    text = "\x1f".join(str(p).strip().lower() for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not NAME_RE.match(value):
        raise ToolInputError(f"{what} must be a place name of letters (got {value!r})")
    return value


def weather(city: str) -> dict[str, object]:
    city = _name(city, "city")
    s = _seed("weather", city)
    return {"city": city, "temperature_c": s % 41 - 8, "condition": CONDITIONS[(s >> 8) % len(CONDITIONS)],
            "humidity": 30 + (s >> 16) % 66}


def utc_offset_hours(city: str) -> int:
    return _seed("tz", _name(city, "city")) % 25 - 12


def local_time(city: str) -> dict[str, object]:
    city = _name(city, "city")
    offset = utc_offset_hours(city)
    hour = (12 + offset) % 24  # the demo world's clock stands at 12:00 UTC
    return {"city": city, "time": f"{hour:02d}:00", "utc_offset": f"{offset:+03d}:00"}


def population(city: str) -> dict[str, object]:
    city = _name(city, "city")
    s = _seed("population", city)
    return {"city": city, "population": 50_000 + s % 9_950_000}


CODE_RE = re.compile(r"^[A-Z]{3}$")


def _currency(code: str, field: str) -> str:
    """A known code in any case, or any other code of three capital letters: a currency of the
    synthetic world (see :func:`per_usd`). Names like ``euros`` or ``yen`` are refused."""
    up = code.strip().upper()
    if up not in CURRENCY_PER_USD and not CODE_RE.match(code.strip()):
        raise ToolInputError(f"{field}: unknown currency code {code!r}; use a 3-letter code such as EUR, USD or JPY")
    return up


def per_usd(code: str) -> float:
    """Units of ``code`` per US dollar: the table's rate, else one fixed by the code's hash."""
    known = CURRENCY_PER_USD.get(code)
    return known if known is not None else round(0.05 + (_seed("currency", code) % 200000) / 100, 2)


def convert_currency(amount: float, from_currency: str, to_currency: str) -> dict[str, object]:
    if not math.isfinite(amount) or amount < 0:
        raise ToolInputError("amount must be a non-negative number")
    src, dst = _currency(from_currency, "from_currency"), _currency(to_currency, "to_currency")
    rate = per_usd(dst) / per_usd(src)
    return {"amount": amount, "from": src, "to": dst, "rate": round(rate, 4), "result": round(amount * rate, 2)}


def stock_price(symbol: str) -> dict[str, object]:
    up = symbol.strip().upper()
    if not SYMBOL_RE.match(up):
        raise ToolInputError(f"symbol must be 1 to 5 letters (got {symbol!r})")
    s = _seed("stock", up)
    return {"symbol": up, "price": round(5 + (s % 99500) / 100, 2), "currency": "USD"}


def convert_units(value: float, from_unit: str, to_unit: str) -> dict[str, object]:
    a, b = from_unit.strip().lower(), to_unit.strip().lower()
    for field, unit in (("from_unit", a), ("to_unit", b)):
        if unit not in UNITS:
            raise ToolInputError(f"{field}: unknown unit {unit!r}; known units: {', '.join(UNITS)}")
    if UNITS[a][0] != UNITS[b][0]:
        raise ToolInputError(f"cannot convert {UNITS[a][0]} ({a}) to {UNITS[b][0]} ({b})")
    if UNITS[a][0] == "temperature":
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[a]
        result = {"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[b]
    else:
        result = value * UNITS[a][1] / UNITS[b][1]
    return {"value": value, "from_unit": a, "to_unit": b, "result": round(result, 2)}


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Mod: operator.mod, ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos}


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 12:
            raise ToolInputError("exponents above 12 are not supported")
        return _OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.operand))
    raise ToolInputError("expression may hold only numbers, + - * / % ** and parentheses")


def calculate(expression: str) -> dict[str, object]:
    if len(expression) > 200:
        raise ToolInputError("expression is longer than 200 characters")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
        value = _eval(tree.body)
    except SyntaxError:
        raise ToolInputError(f"cannot parse expression {expression!r}") from None
    except ZeroDivisionError:
        raise ToolInputError("division by zero") from None
    result = round(value, 4)
    return {"expression": expression, "result": int(result) if float(result).is_integer() else result}


def search_flights(origin: str, destination: str, day: str) -> dict[str, object]:
    a, b = _name(origin, "origin"), _name(destination, "destination")
    if a.lower() == b.lower():
        raise ToolInputError("origin and destination must differ")
    try:
        when = date.fromisoformat(day.strip())
    except ValueError:
        raise ToolInputError(f"date must be YYYY-MM-DD (got {day!r})") from None
    s = _seed("flight", a, b, when.isoformat())
    flights = []
    for i in range(2):
        x = s >> (16 * i)
        flights.append({"flight": f"UM{100 + x % 900}", "departure": f"{6 + x % 14:02d}:{(x >> 4) % 4 * 15:02d}",
                        "price_usd": 80 + (x >> 8) % 900})
    flights.sort(key=lambda f: f["departure"])
    return {"origin": a, "destination": b, "date": when.isoformat(), "flights": flights}


def translate_word(word: str, language: str) -> dict[str, object]:
    w = word.strip().lower()
    if not WORD_RE.match(w):
        raise ToolInputError(f"word must be one lower-case word of letters (got {word!r})")
    lang = language.strip().capitalize()
    if lang not in LANGUAGES:
        raise ToolInputError(f"language: unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    s = _seed("translate", w, lang)
    n = 2 + s % 2
    translation = "".join(_SYLLABLES[(s >> (4 * i + 2)) % len(_SYLLABLES)] for i in range(n))
    return {"word": w, "language": lang, "translation": translation}
