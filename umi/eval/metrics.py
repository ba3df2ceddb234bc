"""The static metrics of the alpha-UMi paper, per step, with the rules of the paper's evaluation
scripts (GLPFT ``inference_utils/toolbench/evaluate-multi_agent.py`` and ``evaluate-backbone.py``).
Where those scripts are buggy umi keeps the correct rule; every difference, with its effect, is
listed in docs/evaluation.md. Which steps each metric is taken over is score.py's business.

Plan ACC  predicted decision (caller / conclusion / give up) equals the gold one
Act. EM   predicted tool name equals the gold one (``none`` when no call was made)
Hallu.    a call was made and its name is neither a tool of the step nor ``none`` (an empty
          name counts, as in the reference)
Arg. F1   0 when the names differ; else, when the gold arguments parse as JSON: gold and
          predicted both ``{}`` 1, gold ``{}`` and anything else 0; per gold key 1 for an equal
          value and 0.5 for a present key with another value, precision over predicted keys,
          recall over gold keys; predicted arguments that are not a JSON object 0; gold arguments
          that are JSON but not an object 0. Gold arguments that are not JSON leave the step out
          when the names match (as the reference does)
R-L       ROUGE-L F of the answer, computed by the ``rouge`` package 1.0.1 exactly as the paper's
          numbers were (``Rouge().get_scores(...)["rouge-l"]["f"]``: sentences split at ``.``,
          words split at spaces with punctuation kept and case kept, each distinct word counted
          once, summary-level union LCS, F with a 1e-8 term in the denominator). A text with no
          sentence for the package (empty, or nothing but periods, e.g. ``...``) makes the package
          raise ValueError and the reference crash; umi scores it 0, or 1 when both texts have
          none. ``rouge_words`` is umi's earlier variant (lower-cased ``\\w+`` tokens, plain LCS
          F1), kept as an option (``--rouge words``) whose numbers are not the paper's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from rouge import Rouge

RougeVariant = Literal["paper", "words"]
_TOKEN = re.compile(r"\w+", re.UNICODE)
_ROUGE_L = Rouge(metrics=["rouge-l"], stats=["f"])


def _json(raw: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw)
    except (ValueError, RecursionError):
        return False, None


def argument_f1(gold_raw: str, pred_raw: str, names_match: bool = True) -> float | None:
    """Arg. F1 of one call step, in [0, 1]; None when the step is left out (names match and the
    gold arguments are not JSON)."""
    if not names_match:
        return 0.0
    gold_ok, gold = _json(gold_raw)
    if not gold_ok:
        return None
    pred_ok, pred = _json(pred_raw)
    if not pred_ok or not isinstance(pred, dict) or not isinstance(gold, dict):
        return 0.0
    if not gold:
        return 1.0 if not pred else 0.0
    full = sum(1 for k, v in gold.items() if k in pred and pred[k] == v)
    half = sum(1 for k, v in gold.items() if k in pred and pred[k] != v)
    credit = full + 0.5 * half
    if credit == 0:
        return 0.0
    recall = credit / len(gold)
    precision = credit / len(pred)
    return 2 * recall * precision / (recall + precision)


def _has_sentence(text: str) -> bool:
    """The rouge package keeps the non-empty pieces of ``text.split(".")``; none: it raises."""
    return any(text.split("."))


def rouge_l(prediction: str, gold: str) -> float:
    """R-L of one answer in [0, 1], by the ``rouge`` package 1.0.1 (the paper's numbers).

    Texts are passed as they are (whitespace next to a period makes an empty word there, as in
    the reference). With no sentence in a text (see the module docstring) it returns 0.0, or 1.0
    when neither text has one, where the package would raise ValueError.
    """
    p, g = _has_sentence(prediction), _has_sentence(gold)
    if not (p and g):
        return 1.0 if not (p or g) else 0.0
    return float(_ROUGE_L.get_scores(prediction, gold)[0]["rouge-l"]["f"])


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _lcs(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_words(prediction: str, gold: str) -> float:
    """umi's earlier R-L (``--rouge words``): F1 of the LCS of lower-cased ``\\w+`` tokens; two
    texts without tokens score 1, one 0. Not the paper's metric (docs/evaluation.md)."""
    p, g = tokens(prediction), tokens(gold)
    if not p and not g:
        return 1.0
    if not p or not g:
        return 0.0
    lcs = _lcs(p, g)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(g)
    return 2 * precision * recall / (precision + recall)


ROUGE: dict[RougeVariant, Callable[[str, str], float]] = {"paper": rouge_l, "words": rouge_words}


def is_hallucinated(name: str | None, tool_names: list[str]) -> bool:
    """A call was made (``name`` is not None) with a name that is no tool and not ``none``."""
    return name is not None and name != "none" and name not in tool_names


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
