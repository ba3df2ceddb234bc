"""The paper's metrics on hand-computed cases."""

from __future__ import annotations

import pytest

from umi.eval.metrics import argument_f1, is_hallucinated, rouge_l_f1


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 2}', 1.0),
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 3}', 0.75),  # half credit for b
        ('{"a": 1}', '{"a": 1, "c": 5}', 2 / 3),  # precision 1/2, recall 1
        ('{"a": 1, "b": 2}', '{"a": 9}', 2 * 0.25 * 0.5 / 0.75),  # recall .5/2, precision .5/1
        ("{}", "{}", 1.0),  # both empty
        ("{}", '{"a": 1}', 0.0),
        ('{"a": 1, "b": 2}', "{}", 0.0),
        ('{"a": 1}', '{"a": 1', 0.0),  # unparseable prediction
        ('{"a": 1}', "[1]", 0.0),  # not an object
        ('{"a": 1}', '{"b": 1}', 0.0),  # no shared key
    ],
)
def test_argument_f1(gold: str, pred: str, expected: float) -> None:
    assert argument_f1(gold, pred) == pytest.approx(expected)


def test_argument_f1_is_zero_when_names_differ_and_none_when_gold_unparseable() -> None:
    assert argument_f1('{"a": 1}', '{"a": 1}', names_match=False) == 0.0
    assert argument_f1("not json", '{"a": 1}') is None


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("the cat sat on the mat", "the cat is on the mat", 5 / 6),
        ("A B C", "c b a", 1 / 3),
        ("It is 3 degrees", "It is 3 degrees in Zürich.", 0.8),
        ("Paris.", "paris", 1.0),
        ("", "", 1.0),
        ("", "something", 0.0),
        ("x y", "z", 0.0),
    ],
)
def test_rouge_l_f1(pred: str, gold: str, expected: float) -> None:
    assert rouge_l_f1(pred, gold) == pytest.approx(expected)


def test_hallucination() -> None:
    assert is_hallucinated("book", ["a", "b"]) is True
    assert is_hallucinated("a", ["a", "b"]) is False
    assert is_hallucinated("none", ["a"]) is False
    assert is_hallucinated(None, ["a"]) is False
