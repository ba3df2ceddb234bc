"""The paper's metrics on hand-computed cases, R-L as the rouge package 1.0.1 computes it."""

from __future__ import annotations

import pytest
from rouge import Rouge

from umi.eval.metrics import argument_f1, is_hallucinated, rouge_l, rouge_words

# The package's F: 2PR / (P + R + 1e-8), so a perfect match is 1 - 5e-9, not 1.
PERFECT = 2 / (2 + 1e-8)


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 2}', 1.0),
        ('{"a": 1, "b": 2}', '{"a": 1, "b": 3}', 0.75),  # half credit for b
        ('{"a": 1}', '{"a": 1, "c": 5}', 2 / 3),  # precision 1/2, recall 1
        ('{"a": 1, "b": 2}', '{"a": 9}', 2 * 0.25 * 0.5 / 0.75),  # recall .5/2, precision .5/1
        ("{}", "{}", 1.0),  # both empty
        ("{}", '{"a": 1}', 0.0),
        ("{}", "not json", 0.0),
        ('{"a": 1, "b": 2}', "{}", 0.0),
        ('{"a": 1}', '{"a": 1', 0.0),  # unparseable prediction
        ('{"a": 1}', "[1]", 0.0),  # not an object
        ('{"a": 1}', '{"b": 1}', 0.0),  # no shared key
        ("[1, 2]", "[1, 2]", 0.0),  # gold JSON that is no object: counted, 0 (as the reference)
    ],
)
def test_argument_f1(gold: str, pred: str, expected: float) -> None:
    assert argument_f1(gold, pred) == pytest.approx(expected)


def test_unparseable_gold_arguments_leave_the_step_out_only_when_the_names_match() -> None:
    assert argument_f1("not json", '{"a": 1}') is None
    assert argument_f1("not json", '{"a": 1}', names_match=False) == 0.0  # the reference counts it
    assert argument_f1('{"a": 1}', '{"a": 1}', names_match=False) == 0.0


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        # case and punctuation are kept: "The"/"the" and "Paris"/"paris" differ; LCS "capital is"
        ("the capital is paris", "The capital is Paris.", 2 * 0.25 / (1 + 1e-8)),
        ("The capital is Paris.", "The capital is Paris.", PERFECT),
        ("The capital is Paris", "The capital is Paris.", PERFECT),  # the final period ends a sentence
        # a word repeated counts once: hyp {a, b} (2 words), ref {a, b}; LCS "a b"
        ("a b a b", "a b", PERFECT),
        # sentences split at periods, union LCS: ref "x y. z" vs hyp "z. x y" matches all 3 words
        ("z. x y", "x y. z", PERFECT),
        # "Zürich," keeps its comma: hyp 5 words, ref 5 words, 4 shared in order -> P = R = 4/5
        ("It is 3 in Zürich,", "It is 3 in Zürich", 2 * 0.64 / (1.6 + 1e-8)),
        ("none", "none", PERFECT),
        ("x y", "z", 0.0),
    ],
)
def test_rouge_l_is_the_rouge_package(pred: str, gold: str, expected: float) -> None:
    assert rouge_l(pred, gold) == pytest.approx(expected, abs=1e-12)
    assert rouge_l(pred, gold) == Rouge().get_scores([pred], [gold], avg=True)["rouge-l"]["f"]


def test_whitespace_after_a_period_is_an_empty_word_as_in_the_reference() -> None:
    # "Sunny. " has a third sentence " " -> word "": hyp 6 distinct words, ref 5, all 5 shared
    expected = 2 * (5 / 6) / (1 + 5 / 6 + 1e-8)
    assert rouge_l("It is 3 degrees. Sunny. ", "It is 3 degrees. Sunny.") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("pred", "gold", "expected"), [("...", "x", 0.0), ("", "x", 0.0), ("x", "..", 0.0), ("", "...", 1.0)])
def test_texts_the_rouge_package_refuses_score_0_or_1_where_the_reference_crashes(pred: str, gold: str, expected: float) -> None:
    with pytest.raises(ValueError):
        Rouge().get_scores([pred], [gold], avg=True)
    assert rouge_l(pred, gold) == expected


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
def test_umis_word_token_variant(pred: str, gold: str, expected: float) -> None:
    assert rouge_words(pred, gold) == pytest.approx(expected)


def test_hallucination() -> None:
    assert is_hallucinated("book", ["a", "b"]) is True
    assert is_hallucinated("", ["a", "b"]) is True  # an empty name is no tool (as the reference counts it)
    assert is_hallucinated("a", ["a", "b"]) is False
    assert is_hallucinated("none", ["a"]) is False
    assert is_hallucinated(None, ["a"]) is False  # no call made
