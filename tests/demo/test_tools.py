"""The demo tools server: schemas with endpoints, deterministic answers, readable 4xx errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from umi.demo.tools_app import create_app
from umi.format import to_tooldocs


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(public_url="http://tools:8300"))


def test_tools_list_publishes_openai_schemas_with_endpoints(client: TestClient) -> None:
    v1 = client.get("/tools").json()["tools"]
    v2 = client.get("/tools", params={"set": "v2"}).json()["tools"]
    names = [t["function"]["name"] for t in v1]
    assert len(names) == 8 and "get_population" not in names
    assert [t["function"]["name"] for t in v2] == names + ["get_population"]
    weather = v1[0]
    assert weather["endpoint"] == {"url": "http://tools:8300/tools/get_weather", "method": "POST", "timeout_s": 10.0}
    docs = to_tooldocs([{k: v for k, v in t.items() if k != "endpoint"} for t in v1])
    assert docs[0].render() == '{"Name": "get_weather", "function": "Current weather in a city", "input": {"city": "string, City name"}}'


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("convert_currency", {"amount": 100, "from_currency": "usd", "to_currency": "EUR"},
         {"amount": 100.0, "from": "USD", "to": "EUR", "rate": 0.92, "result": 92.0}),
        ("calculate", {"expression": "12 * (3 + 4) - 2^3"}, {"expression": "12 * (3 + 4) - 2^3", "result": 76}),
        ("convert_units", {"value": 100, "from_unit": "c", "to_unit": "F"},
         {"value": 100.0, "from_unit": "c", "to_unit": "f", "result": 212.0}),
        ("convert_units", {"value": 5, "from_unit": "km", "to_unit": "m"},
         {"value": 5.0, "from_unit": "km", "to_unit": "m", "result": 5000.0}),
    ],
)
def test_exact_answers(client: TestClient, name: str, args: dict, expected: dict) -> None:
    response = client.post(f"/tools/{name}", json=args)
    assert response.status_code == 200
    assert response.json() == expected


def test_answers_are_deterministic_for_any_city(client: TestClient) -> None:
    first = client.post("/tools/get_weather", json={"city": "Ouagadougou"}).json()
    again = client.post("/tools/get_weather", json={"city": "Ouagadougou"}).json()
    other = client.post("/tools/get_weather", json={"city": "Reykjavik"}).json()
    assert first == again and first["city"] == "Ouagadougou"
    assert -8 <= first["temperature_c"] <= 32
    assert first != other
    flights = client.post("/tools/search_flights", json={"origin": "Oslo", "destination": "Rome", "date": "2026-05-01"}).json()
    assert len(flights["flights"]) == 2 and flights["date"] == "2026-05-01"
    t = client.post("/tools/get_time", json={"city": "Lima"}).json()
    assert t["time"].endswith(":00") and t["utc_offset"][0] in "+-"


def test_any_three_capital_letters_are_a_currency_of_the_demo_world(client: TestClient) -> None:
    def convert(src: str, dst: str, amount: float = 100) -> dict:
        r = client.post("/tools/convert_currency", json={"amount": amount, "from_currency": src, "to_currency": dst})
        assert r.status_code == 200, r.text
        return r.json()

    made_up = convert("USD", "QZV")
    assert made_up == convert("USD", "QZV") and made_up["to"] == "QZV" and made_up["rate"] > 0
    assert convert("USD", "QZW")["rate"] != made_up["rate"]
    back = convert("QZV", "USD", made_up["result"])
    assert back["result"] == pytest.approx(100, rel=1e-3)
    assert convert("usd", "EUR")["rate"] == 0.92  # the real codes keep their table rates, in any case


@pytest.mark.parametrize(
    ("name", "args", "status", "needle"),
    [
        ("convert_currency", {"amount": 5, "from_currency": "EURO", "to_currency": "USD"}, 400, "unknown currency code 'EURO'"),
        ("convert_currency", {"amount": 5, "from_currency": "yen", "to_currency": "USD"}, 400, "unknown currency code 'yen'"),
        ("convert_currency", {"amount": "five", "from_currency": "EUR", "to_currency": "USD"}, 422, "amount must be a number"),
        ("get_weather", {}, 422, "missing argument(s): city"),
        ("get_weather", {"city": "Oslo", "unit": "c"}, 422, "unknown argument(s): unit"),
        ("get_weather", {"city": "12345"}, 400, "city must be a place name"),
        ("calculate", {"expression": "__import__('os')"}, 400, "only numbers"),
        ("calculate", {"expression": "1/0"}, 400, "division by zero"),
        ("convert_units", {"value": 1, "from_unit": "kg", "to_unit": "km"}, 400, "cannot convert mass"),
        ("search_flights", {"origin": "Oslo", "destination": "Rome", "date": "May 1"}, 400, "YYYY-MM-DD"),
        ("translate_word", {"word": "house", "language": "Klingon"}, 400, "unknown language"),
        ("book_hotel", {}, 404, "no tool named"),
    ],
)
def test_bad_arguments_get_a_readable_4xx(client: TestClient, name: str, args: dict, status: int, needle: str) -> None:
    response = client.post(f"/tools/{name}", json=args)
    assert response.status_code == status
    assert needle in response.json()["error"]
