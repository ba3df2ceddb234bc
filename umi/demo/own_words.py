"""The own-words suite: questions about the demo tools as people write them (``umi demo quality
--suite own-words``), written by hand, independently of the corpus generator.

The questions are in ``own_words.json``, one object each::

    {"id": "weather-krakow", "question": "What's the weather like in Kraków today?",
     "forms": ["diacritics", "phrasing"],
     "calls": [{"name": "get_weather", "arguments": {"city": "Kraków"}}]}

``calls`` are the calls a right answer makes, with the values the tools need (``euros`` ->
``EUR``, ``pounds`` -> ``lb``); an empty list means no tool answers it (the agent should give up
or answer directly, without a call). The values the final answer must contain are computed when
the file is loaded, from the same deterministic data the tools server answers with
(:mod:`umi.demo.tool_data`): one key value per call (:data:`KEY_VALUE`).

Judging (:func:`judge`): an expected call is made when a call has its tool name and every
argument matches by the argument's kind (:data:`ARGUMENT_KINDS`): place names letter for letter
after Unicode NFC, in any case (the tools read them in any case: ``tool_data`` seeds a place's data
with its lower-cased name), codes (currencies, units, tickers, words, languages) case-insensitively, numbers as
numbers, an arithmetic expression by its value, a date exactly. *Calls right*: every expected
call was made (for a question no tool answers: no call at all). *Fully right*: calls right, and
the chat completed with an answer stating every expected value (:func:`states`), or, for a
question no tool answers, it gave up or answered directly.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, model_validator
from tqdm import tqdm

from umi.demo import tool_data as data
from umi.demo.suite import number_text
from umi.demo.tools_app import BY_NAME, tool_set
from umi.eval.chats import ExpectedCall
from umi.format import Trajectory, Turn, to_tooldocs
from umi.format.constraints import ConstraintMode

FIXTURE = Path(__file__).with_name("own_words.json")
SUITES = {"own-words": FIXTURE}  # the suites of `umi demo quality --suite`

Form = Literal[
    "phrasing",  # other words than "What is the weather in X?": synonyms, word order, slang
    "casing",  # all lower case or all capitals
    "no-punctuation",
    "typo",  # typos in the words around the values
    "embedded",  # the question inside a longer sentence
    "diacritics",  # place names with accents: Kraków, São Paulo
    "language",  # Spanish, French, German or Portuguese
    "names",  # currency and unit names instead of codes
    "two-in-one",  # two questions, two calls
    "no-tool",  # no tool answers it
]
ArgumentKind = Literal["place", "code", "number", "expression", "exact"]
ARGUMENT_KINDS: dict[str, ArgumentKind] = {
    "city": "place", "origin": "place", "destination": "place",
    "amount": "number", "value": "number",
    "expression": "expression",
    "date": "exact",
    "from_currency": "code", "to_currency": "code", "from_unit": "code", "to_unit": "code",
    "symbol": "code", "word": "code", "language": "code",
}  # fmt: skip
# The value of a tool's result that a right answer must state.
KEY_VALUE: dict[str, Callable[[dict[str, Any]], Any]] = {
    "get_weather": lambda r: r["temperature_c"],
    "get_time": lambda r: r["time"],
    "convert_currency": lambda r: r["result"],
    "calculate": lambda r: r["result"],
    "convert_units": lambda r: r["result"],
    "get_stock_price": lambda r: r["price"],
    "search_flights": lambda r: r["flights"][0]["flight"],
    "translate_word": lambda r: r["translation"],
}
NO_TOOL_STATUSES = ("gave_up", "completed")  # a give-up, or a direct answer


class OwnWordsQuestion(BaseModel):
    id: str
    question: str
    forms: list[Form] = Field(min_length=1)
    calls: list[ExpectedCall]

    @model_validator(mode="after")
    def _known_tools(self) -> "OwnWordsQuestion":
        for call in self.calls:
            if call.name not in KEY_VALUE:
                raise ValueError(f"{self.id}: calls: {call.name!r} is not a v1 demo tool ({', '.join(KEY_VALUE)})")
            missing = sorted(set(BY_NAME[call.name].properties) - set(call.arguments))
            if missing:
                raise ValueError(f"{self.id}: calls: {call.name} lacks argument(s) {', '.join(missing)}")
        if ("no-tool" in self.forms) != (not self.calls):
            raise ValueError(f"{self.id}: a question has the form 'no-tool' exactly when it expects no call")
        return self

    def tools(self) -> list[str]:
        return [c.name for c in self.calls] or ["none"]

    def expected_values(self) -> list[str]:
        """The values the answer must contain: each call's key value, from the tools' own data
        (raises :class:`umi.demo.tool_data.ToolInputError` for arguments the tool refuses)."""
        return [number_text(KEY_VALUE[c.name](BY_NAME[c.name].run(c.arguments))) for c in self.calls]


def load_questions(path: Path = FIXTURE) -> list[OwnWordsQuestion]:
    """The suite's questions; raises ``ValueError`` naming the question and field that is wrong
    (an unknown tool or form, a missing argument, a repeated id)."""
    questions = TypeAdapter(list[OwnWordsQuestion]).validate_python(json.loads(path.read_text(encoding="utf-8")))
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise ValueError(f"{path}: id {q.id!r} is repeated")
        seen.add(q.id)
    return questions


# ----------------------------------------------------------------------------- judging


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def _value(expression: str) -> float | None:
    try:
        result = data.calculate(expression)["result"]
    except data.ToolInputError:
        return None
    return float(result)  # type: ignore[arg-type]


def argument_matches(key: str, expected: Any, actual: Any) -> bool:
    """Whether a call's argument ``actual`` is the expected one, by the argument's kind
    (:data:`ARGUMENT_KINDS`; any other argument: equal JSON values)."""
    kind = ARGUMENT_KINDS.get(key)
    if kind == "number":
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and abs(float(actual) - float(expected)) < 1e-9
    if not isinstance(actual, str):
        return kind is None and bool(expected == actual)
    if kind == "place":
        return _nfc(actual).casefold() == _nfc(expected).casefold()
    if kind == "code":
        return actual.strip().casefold() == expected.strip().casefold()
    if kind == "expression":
        got, want = _value(actual), _value(expected)
        return got is not None and want is not None and abs(got - want) < 1e-9
    return bool(actual.strip() == expected.strip()) if kind == "exact" else bool(expected == actual)


def states(answer: str, value: str) -> bool:
    """Whether ``answer`` states ``value`` as a whole (case-insensitive): ``12`` is not stated by
    ``120``, ``3.12`` or ``-12``; a whole number is stated with zero decimals too (``184`` by
    ``184.0``, as the tools write a float result)."""
    zeros = r"(?:\.0+)?" if re.fullmatch(r"-?\d+", value) else ""
    pattern = rf"(?<![\w.-]){re.escape(value.casefold())}{zeros}(?!\w|[.,]\d)"
    return re.search(pattern, answer.casefold()) is not None


def call_matches(expected: ExpectedCall, name: str, arguments: dict[str, Any] | None) -> bool:
    args = arguments or {}
    return name == expected.name and all(k in args and argument_matches(k, v, args[k]) for k, v in expected.arguments.items())


@dataclass(frozen=True)
class Verdict:
    calls_right: bool
    fully_right: bool
    reasons: list[str]  # why not fully right; empty when it is


def judge(
    question: OwnWordsQuestion, values: Sequence[str], status: str | None,
    calls: Sequence[tuple[str, dict[str, Any] | None]], answer: str | None,
) -> Verdict:
    """Judge one finished chat: its ``status`` (``None``: ran out of steps), the ``calls`` it made
    as (tool name, arguments or ``None`` when they were not JSON), its ``answer``; ``values``
    are :meth:`OwnWordsQuestion.expected_values`."""
    reasons: list[str] = []
    if not question.calls:
        if calls:
            reasons.append(f"made {len(calls)} call(s), expected none")
        calls_right = not reasons
        if status not in NO_TOOL_STATUSES:
            reasons.append(f"status {status or 'max_steps'}, expected gave_up or completed")
        return Verdict(calls_right, not reasons, reasons)
    for exp in question.calls:
        if not any(call_matches(exp, name, args) for name, args in calls):
            reasons.append(f"no call {exp.name}({json.dumps(exp.arguments, ensure_ascii=False)})")
    calls_right = not reasons
    if status != "completed":
        reasons.append(f"status {status or 'max_steps'}, expected completed")
    reasons += [f"answer lacks {v!r}" for v in values if not states(answer or "", v)]
    return Verdict(calls_right, not reasons, reasons)


# ----------------------------------------------------------------------------- measuring


# What each placeholder of a corpus form stands for, to match it against a question.
_SLOT_PATTERNS = {
    "c": r"[^\W\d_][^\W\d_.'-]*(?: [^\W\d_]+){0,2}",  # a place: one to three words
    "a": r"[^\W\d_]+(?: [^\W\d_]+){0,2}|°\w", "b": r"[^\W\d_]+(?: [^\W\d_]+){0,2}|°\w",  # a place, currency or unit
    "n": r"\d+(?:\.\d+)?", "v": r"\d+(?:\.\d+)?", "s": r"[^\W\d_]{1,5}", "w": r"[^\W\d_]+",
    "l": r"[^\W\d_]+", "l1": r"[^\W\d_]+", "l2": r"[^\W\d_]+", "e": r"[\d\s.+\-*/x%]+", "d": r"\d{4}-\d\d-\d\d",
}  # fmt: skip


def _bare(text: str) -> str:
    return _nfc(text).rstrip("?.! ").lstrip("¿¡").casefold()


def corpus_form(question: str, forms: Sequence[str] | None = None) -> str | None:
    """The corpus question form (:func:`umi.demo.corpus.question_forms`) that writes ``question``
    with values in its placeholders, in any case and with or without its final punctuation; None
    when no form does. The suite's questions were written without the generator, but a plain
    question ("what time is it in Tokyo") can still be one of its forms: the report counts them
    apart (``by_corpus_form``)."""
    if forms is None:
        from umi.demo.corpus import question_forms

        forms = question_forms()
    bare = _bare(question)
    return next((form for form in forms if _form_pattern(form).fullmatch(bare)), None)


@functools.lru_cache(maxsize=1024)
def _form_pattern(form: str) -> re.Pattern[str]:
    """A corpus form as a regular expression: its text as written, each placeholder a value."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?:{_SLOT_PATTERNS[m.group(1)]})", re.escape(_bare(form))))


def v1_tool_docs() -> list[Any]:
    """The v1 tools as the orchestrator hands them to the roles (OpenAI tools -> ToolDocs)."""
    return to_tooldocs(t.schema("http://tools") for t in tool_set("v1"))


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def _breakdown(results: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        for name in dict.fromkeys(r[key]):
            groups.setdefault(name, []).append(r)
    return {
        name: {"questions": len(rs), "fully_right": sum(r["fully_right"] for r in rs), "calls_right": sum(r["calls_right"] for r in rs)}
        for name, rs in sorted(groups.items())
    }


def measure_suite(
    model_dir: Path, suite: str = "own-words", caller: str = "caller", limit: int = 0, progress: bool = True,
    max_steps: int = 8, constrained: ConstraintMode = "off",
) -> dict[str, Any]:
    """Run the whole loop in process (:func:`umi.demo.quality.run_loops`: the real prompts,
    parsers and tool functions, greedy decoding) for each question of ``suite`` with the v1
    tools, with ``constrained`` decoding (as ``umi demo quality --constrained``), and judge it. Returns the report: rates in percent, counts by tool and by form, every
    result and the failures (question, status, calls made, answer, reasons)."""
    from umi.demo.quality import _versions, load_role_models, run_loops

    questions = load_questions(SUITES[suite])
    if limit:
        questions = questions[:limit]
    values = [q.expected_values() for q in questions]  # before the long part: a refused argument fails at once
    docs = v1_tool_docs()
    trajectories = [Trajectory(tools=docs, conversations=[Turn(role="user", content=q.question)]) for q in questions]
    models = load_role_models(model_dir, caller, constrained)
    with tqdm(total=1, desc=suite, disable=not progress) as bar:
        states = run_loops(models, trajectories, max_steps=max_steps)
        bar.update(1)
    from umi.demo.corpus import question_forms

    forms = question_forms()
    results = []
    for q, v, s in zip(questions, values, states, strict=True):
        verdict = judge(q, v, s["status"], s["calls"], s["answer"])
        results.append({
            "id": q.id, "question": q.question, "tools": q.tools(), "forms": q.forms,
            "fully_right": verdict.fully_right, "calls_right": verdict.calls_right,
            "status": s["status"] or "max_steps",
            "calls": [{"name": name, "arguments": args} for name, args in s["calls"]],
            "answer": s["answer"], "reasons": verdict.reasons,
            "corpus_form": ["a corpus form" if corpus_form(q.question, forms) else "no corpus form"],
        })  # fmt: skip
    fully = sum(r["fully_right"] for r in results)
    calls = sum(r["calls_right"] for r in results)
    return {
        "suite": suite, "caller": caller, "constrained": constrained, "questions": len(results), "versions": _versions(model_dir, caller),
        "fully_right": _rate(fully, len(results)), "calls_right": _rate(calls, len(results)),
        "fully_right_count": fully, "calls_right_count": calls,
        "by_tool": _breakdown(results, "tools"), "by_form": _breakdown(results, "forms"),
        "by_corpus_form": _breakdown(results, "corpus_form"),
        "failures": [r for r in results if not r["fully_right"]],
        "results": results,
    }  # fmt: skip


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as a table (by tool, by form, in all) followed by the failures."""
    n = report["questions"]
    lines = [f"{report['suite']}: {n} questions, caller {report['caller']}, constrained decoding {report['constrained']}", "",
             f"{'':<20}{'questions':>10}{'fully right':>13}{'calls right':>13}"]  # fmt: skip
    for title, key in (("by tool", "by_tool"), ("by form", "by_form"), ("written by", "by_corpus_form")):
        lines.append(title)
        for name, row in report[key].items():
            lines.append(f"  {name:<18}{row['questions']:>10}{row['fully_right']:>13}{row['calls_right']:>13}")
    lines.append(f"{'in all':<20}{n:>10}{report['fully_right_count']:>13}{report['calls_right_count']:>13}")
    lines.append(f"{'':<20}{'':>10}{str(report['fully_right']) + '%':>13}{str(report['calls_right']) + '%':>13}")
    if report["failures"]:
        lines += ["", f"not fully right ({len(report['failures'])}):"]
    for r in report["failures"]:
        made = "; ".join(f"{c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})" for c in r["calls"]) or "no call"
        lines += [f"  [{r['id']}] {r['question']}", f"      calls: {made}",
                  f"      {r['status']}: {r['answer'] or ''}", f"      why: {'; '.join(r['reasons'])}"]  # fmt: skip
    return lines
