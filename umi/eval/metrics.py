"""The static metrics of the alpha-UMi paper, per step, as the reference evaluation computes them.

Plan ACC  predicted decision (caller / conclusion / give up) equals the gold one
Act. EM   on gold call steps, predicted tool name equals the gold one
Hallu.    predicted names not in the tool list (and not ``none``), over all steps
Arg. F1   on gold call steps: 0 when the name differs; else per gold key 1 for an equal value
          and 0.5 for a present key with another value; precision over predicted keys, recall
          over gold keys; both empty counts 1; unparseable predicted JSON counts 0; steps whose
          gold arguments do not parse are left out
R-L       ROUGE-L F1 of the answer on gold finish steps: longest common subsequence of
          lower-cased word tokens (``\\w+``)
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(r"\w+", re.UNICODE)


def _json_object(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def argument_f1(gold_raw: str, pred_raw: str, names_match: bool = True) -> float | None:
    """Arg. F1 of one call step; None when the gold arguments do not parse (step not counted)."""
    gold = _json_object(gold_raw)
    if gold is None:
        return None
    if not names_match:
        return 0.0
    pred = _json_object(pred_raw)
    if pred is None:
        return 0.0
    if not gold:
        return 1.0 if not pred else 0.0
    full = sum(1 for k, v in gold.items() if k in pred and pred[k] == v)
    half = sum(1 for k, v in gold.items() if k in pred and pred[k] != v)
    credit = full + 0.5 * half
    if credit == 0 or not pred:
        return 0.0
    recall = credit / len(gold)
    precision = credit / len(pred)
    return 2 * recall * precision / (recall + precision)


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


def rouge_l_f1(prediction: str, gold: str) -> float:
    """ROUGE-L F1 over lower-cased word tokens; two empty texts score 1, one empty 0."""
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


def is_hallucinated(name: str | None, tool_names: list[str]) -> bool:
    return name is not None and name != "none" and name not in tool_names


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
