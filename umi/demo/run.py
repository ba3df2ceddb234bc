"""``make demo`` (``umi demo run``): the scripted demo on a stack of its own.

1. Start the stack (:mod:`umi.demo.stack`) on free loopback ports and wait until it is ready.
2. Ask held-out questions with the v1 tools (:mod:`umi.demo.tasks`) and print each trajectory;
   then a few questions of the own-words suite, judged by its rules but not counted in the verdict.
3. Swap the caller to ``caller-v2`` (blue/green, the role service's admin API) while a few
   clients keep sending chats with the v2 tools; count the failed requests.
4. Ask a population question: only ``caller-v2`` knows the new tool ``get_population``.
5. Stop everything; exit 0 only if every held-out chat reached its expected status and no
   request failed (an own-words question counts only if its request failed).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from umi.demo.own_words import OwnWordsQuestion, Verdict, judge as judge_own_words
from umi.demo.show import chat_lines
from umi.demo.stack import Stack, StackConfig, StackError, keep_logs, running_stack
from umi.demo.tasks import NEW_TOOL, demo_tasks
from umi.eval.chats import CHAT_ERRORS, Task, judge, run_chat

Say = Callable[[str], None]
JSON = dict[str, Any]
CHAT_TIMEOUT_S = 300.0
SWAP_TIMEOUT_S = 900.0
LOAD_CLIENTS = 2  # "a light load": clients sending chats one after the other during the swap


# ----------------------------------------------------------------------------- one chat


@dataclass
class ChatOutcome:
    task: Task
    chat: JSON | None  # None when the request failed
    error: str | None
    seconds: float

    @property
    def status(self) -> str | None:
        return None if self.chat is None else self.chat.get("status")

    @property
    def reached_expected_status(self) -> bool:
        return self.status == self.task.expected_status

    @property
    def request_failed(self) -> bool:
        """The request did not get a chat, or the chat failed (a role service kept failing)."""
        return self.chat is None or self.status == "failed"

    def verdict(self) -> tuple[bool, list[str]]:
        """Whether every expected call and answer value is there, and what is missing."""
        if self.chat is None:
            return False, [f"request failed: {self.error}"]
        ok, reasons, _ = judge(self.task, self.chat)
        return ok, reasons

    def versions(self, role: str) -> set[str]:
        steps = [] if self.chat is None else self.chat.get("steps", [])
        return {s["model_version"] for s in steps if s.get("role") == role and s.get("model_version")}


async def ask(client: httpx.AsyncClient, orchestrator: str, task: Task, tools: list[JSON]) -> ChatOutcome:
    started = time.perf_counter()
    try:
        chat = await run_chat(client, orchestrator, task, tools)
    except CHAT_ERRORS as exc:
        return ChatOutcome(task, None, f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
    return ChatOutcome(task, chat, None, time.perf_counter() - started)


def outcome_lines(number: int, outcome: ChatOutcome) -> list[str]:
    lines = [f"[{number}] {outcome.task.query}"]
    if outcome.chat is not None:
        lines += chat_lines(outcome.chat)
    expected = outcome.task.expected_status
    if outcome.reached_expected_status:
        ok, reasons = outcome.verdict()
        if ok:
            lines.append(f"    ok: {outcome.status} as expected, {outcome.seconds:.1f} s; calls and answer as expected")
        else:
            # The status is what the exit code counts; the calls and the answer are reported only.
            lines.append(f"    partly right: {outcome.status} as expected, {outcome.seconds:.1f} s; but " + "; ".join(reasons))
    else:
        got = outcome.status if outcome.chat is not None else f"no chat ({outcome.error})"
        lines.append(f"    NOT OK: {got}, expected {expected} ({outcome.seconds:.1f} s)")
    return lines


@dataclass
class OwnWordsOutcome:
    """An own-words question asked through the stack, judged by the suite's rules."""

    question: OwnWordsQuestion
    outcome: ChatOutcome

    def verdict(self) -> Verdict:
        chat = self.outcome.chat or {}
        calls = [(s.get("name", ""), s.get("arguments")) for s in chat.get("steps", []) if s.get("role") == "caller"]
        return judge_own_words(self.question, self.question.expected_values(), chat.get("status"), calls, chat.get("answer"))


def own_words_lines(number: int, item: OwnWordsOutcome) -> list[str]:
    outcome = item.outcome
    lines = [f"[{number}] {outcome.task.query}"]
    if outcome.chat is None:
        return lines + [f"    NOT OK: no chat ({outcome.error})"]
    verdict = item.verdict()
    detail = "fully right" if verdict.fully_right else "not right: " + "; ".join(verdict.reasons)
    return lines + chat_lines(outcome.chat) + [f"    own words: {detail} ({outcome.seconds:.1f} s)"]


async def tool_list(client: httpx.AsyncClient, tools_url: str, version: str) -> list[JSON]:
    response = await client.get(f"{tools_url}/tools", params={"set": version})
    response.raise_for_status()
    tools: list[JSON] = response.json()["tools"]
    return tools


async def ask_all(
    client: httpx.AsyncClient, orchestrator: str, tasks: list[Task], tools: list[JSON], concurrency: int
) -> list[ChatOutcome]:
    limit = asyncio.Semaphore(concurrency)

    async def one(task: Task) -> ChatOutcome:
        async with limit:
            return await ask(client, orchestrator, task, tools)

    return list(await asyncio.gather(*(one(t) for t in tasks)))


# ----------------------------------------------------------------------------- the swap


def error_responses(metrics_text: str, endpoint: str) -> tuple[int, int]:
    """(requests, non-200 answers) of a role service's ``endpoint`` from its /metrics."""
    total = errors = 0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "umi_requests_total" and sample.labels.get("endpoint") == endpoint:
                total += int(sample.value)
                errors += 0 if sample.labels.get("code") == "200" else int(sample.value)
    return total, errors


@dataclass
class SwapOutcome:
    status_code: int
    report: JSON
    chats: list[ChatOutcome] = field(default_factory=list)
    caller_requests: int = 0
    caller_errors: int = 0
    seconds: float = 0.0

    @property
    def swapped(self) -> bool:
        return self.status_code == 200

    @property
    def failed_requests(self) -> int:
        """Chats without an answer or failed, plus the caller's non-200 answers (the orchestrator
        would have retried them: they are failures of the swap even when the chat went on)."""
        return sum(1 for c in self.chats if c.request_failed) + self.caller_errors


async def swap_under_load(
    orchestrator: str, caller: str, admin_token: str, new_weights: Path, tasks: list[Task], tools: list[JSON],
    clients: int = LOAD_CLIENTS, after_switch: int = 2, max_chats: int = 40,
) -> SwapOutcome:
    """Swap the caller to ``new_weights`` while ``clients`` clients send chats one after the other
    (questions from ``tasks``, in turn). The load goes on until the swap returned and each client
    started ``after_switch`` chats after it; at most ``max_chats`` before the swap returns (then
    the clients wait for it), so that chats reach the new caller however long the swap takes."""
    chats: list[ChatOutcome] = []
    swap_done = asyncio.Event()
    sent = 0
    async with httpx.AsyncClient(timeout=CHAT_TIMEOUT_S) as client:
        before = error_responses((await client.get(f"{caller}/metrics")).text, "/v1/call")

        async def load() -> None:
            nonlocal sent
            after = 0
            while after < after_switch:
                if sent >= max_chats and not swap_done.is_set():
                    await swap_done.wait()
                task = tasks[sent % len(tasks)]
                sent += 1
                after += swap_done.is_set()
                chats.append(await ask(client, orchestrator, task, tools))

        workers = [asyncio.create_task(load()) for _ in range(clients)]
        await asyncio.sleep(1.0)  # the load is running before the swap starts
        started = time.perf_counter()
        try:
            response = await client.post(
                f"{caller}/admin/weights", json={"path": str(new_weights)},
                headers={"Authorization": f"Bearer {admin_token}"}, timeout=SWAP_TIMEOUT_S,
            )  # fmt: skip
        finally:
            swap_done.set()
        seconds = time.perf_counter() - started
        await asyncio.gather(*workers)
        after = error_responses((await client.get(f"{caller}/metrics")).text, "/v1/call")
    return SwapOutcome(
        status_code=response.status_code, report=response.json(), chats=chats,
        caller_requests=after[0] - before[0], caller_errors=after[1] - before[1], seconds=seconds,
    )  # fmt: skip


def swap_lines(outcome: SwapOutcome) -> list[str]:
    r = outcome.report
    if not outcome.swapped:
        error = r.get("error", {})
        return [f"  swap REFUSED ({outcome.status_code}): {error.get('type')}: {error.get('message')}"]
    old, new = r["previous"], r["model"]
    timings = r.get("timings", {})
    if old["version"] != new["version"]:
        on_old = sum(1 for c in outcome.chats if old["version"] in c.versions("caller"))
        on_new = sum(1 for c in outcome.chats if new["version"] in c.versions("caller"))
        served = f"{on_old} called the old caller, {on_new} the new one"
    else:
        served = f"both callers report version {new['version']}"
    not_expected = [c for c in outcome.chats if not c.request_failed and not c.reached_expected_status]
    lines = [
        f"  swapped caller {old['name']}@{old['version']} -> {new['name']}@{new['version']} ({r.get('strategy')}) "
        f"in {outcome.seconds:.1f} s: new engine ready after {timings.get('prepare_ms', 0) / 1000:.1f} s, "
        f"switch {timings.get('ready_to_switch_ms', 0):.1f} ms, drained: {r.get('drained')}",
        f"  chats sent during the swap: {len(outcome.chats)} ({served})",
        f"  caller service: {outcome.caller_requests} requests, {outcome.caller_errors} answered with an error",
        f"  FAILED REQUESTS DURING THE SWAP: {outcome.failed_requests}",
    ]
    for c in not_expected:
        lines.append(f"  (a chat under load ended {c.status}, expected {c.task.expected_status}: {c.task.query})")
    return lines


# ----------------------------------------------------------------------------- the demo


@dataclass
class DemoEndpoints:
    orchestrator: str
    caller: str
    tools: str
    admin_token: str
    caller_v2: Path


@dataclass
class DemoResult:
    examples: list[ChatOutcome]
    swap: SwapOutcome | None
    new_tool: ChatOutcome | None
    own_words: list[OwnWordsOutcome] = field(default_factory=list)

    def problems(self, strict: bool = False) -> list[str]:
        """What makes the demo fail: a chat that did not end as its task expects, a failed request
        (an own-words question's too: whether it is answered right is the models' accuracy, which
        ``umi demo quality --suite own-words`` measures, not the system's), a failed request during
        the swap, a new-tool question answered without the new tool; ``strict``: also a
        held-out chat whose calls or answer values are not the expected ones."""
        out = [f"example [{i}] ended {o.status or 'without a chat'}, expected {o.task.expected_status}"
               for i, o in enumerate(self.examples, 1) if not o.reached_expected_status]  # fmt: skip
        out += [f"own-words question {o.question.id}: the request failed ({o.outcome.error or o.outcome.status})"
                for o in self.own_words if o.outcome.request_failed]  # fmt: skip
        if self.swap is None or not self.swap.swapped:
            out.append("the caller was not swapped")
        else:
            if self.swap.failed_requests:
                out.append(f"{self.swap.failed_requests} request(s) failed during the swap")
            out += [f"a chat under load ended {c.status}, expected {c.task.expected_status}"
                    for c in self.swap.chats if not c.request_failed and not c.reached_expected_status]  # fmt: skip
        if self.new_tool is None or not self.new_tool.reached_expected_status:
            out.append(f"the {NEW_TOOL} question did not complete")
        elif not any(s.get("name") == NEW_TOOL for s in (self.new_tool.chat or {}).get("steps", [])):
            out.append(f"the {NEW_TOOL} question was answered without {NEW_TOOL}")
        if strict:
            new_tool_number = len(self.examples) + len(self.own_words) + 1
            answered = [*enumerate(self.examples, 1)] + ([(new_tool_number, self.new_tool)] if self.new_tool else [])
            out += [f"chat [{i}]: {'; '.join(o.verdict()[1])}" for i, o in answered
                    if o.reached_expected_status and not o.verdict()[0]]  # fmt: skip
        return out


async def scripted_demo(endpoints: DemoEndpoints, say: Say = print, concurrency: int = 3, seed: int = 7) -> DemoResult:
    """Steps 2 to 4 against a running stack."""
    tasks = demo_tasks(seed)
    e = endpoints
    async with httpx.AsyncClient(timeout=CHAT_TIMEOUT_S) as client:
        v1, v2 = await tool_list(client, e.tools, "v1"), await tool_list(client, e.tools, "v2")
        say("")
        say(f"== held-out questions (values never seen in training), with the {len(v1)} tools of v1")
        examples = await ask_all(client, e.orchestrator, tasks.examples, v1, concurrency)
        for i, outcome in enumerate(examples, 1):
            say("\n".join(outcome_lines(i, outcome)))

        say("")
        say(f"== in people's own words (the own-words suite, {len(tasks.own_words)} of its questions; "
            "judged, but not part of the exit status)")  # fmt: skip
        asked = await ask_all(client, e.orchestrator, [Task(id=q.id, query=q.question) for q in tasks.own_words], v1, concurrency)
        own_words = [OwnWordsOutcome(q, o) for q, o in zip(tasks.own_words, asked, strict=True)]
        for i, item in enumerate(own_words, len(examples) + 1):
            say("\n".join(own_words_lines(i, item)))

        say("")
        say(f"== the caller swapped to {e.caller_v2.name} (blue/green) while {LOAD_CLIENTS} clients send chats with the {len(v2)} tools of v2")
        swap = await swap_under_load(e.orchestrator, e.caller, e.admin_token, e.caller_v2, tasks.load, v2)
        say("\n".join(swap_lines(swap)))

        new_tool = None
        if swap.swapped:
            say("")
            say(f"== the new tool: {NEW_TOOL} (only the new caller knows it), with the tools of v2")
            new_tool = await ask(client, e.orchestrator, tasks.new_tool, v2)
            say("\n".join(outcome_lines(len(examples) + len(own_words) + 1, new_tool)))
    return DemoResult(examples, swap, new_tool, own_words)


def summary_lines(result: DemoResult) -> list[str]:
    reached = sum(o.reached_expected_status for o in result.examples)
    right = sum(o.verdict()[0] for o in result.examples)
    lines = [f"  example chats: {reached}/{len(result.examples)} reached the expected status, "
             f"{right}/{len(result.examples)} with every expected call and answer value"]  # fmt: skip
    if result.own_words:
        n = len(result.own_words)
        verdicts = [o.verdict() for o in result.own_words]
        lines.append(f"  own-words questions: {sum(v.fully_right for v in verdicts)}/{n} fully right, "
                     f"{sum(v.calls_right for v in verdicts)}/{n} with the right calls (the models' accuracy, not "
                     "the exit status; all of them: umi demo quality --suite own-words)")  # fmt: skip
    if result.swap is not None and result.swap.swapped:
        lines.append(f"  swap under load: {len(result.swap.chats)} chats, failed requests: {result.swap.failed_requests}")
    if result.new_tool is not None:
        used = any(s.get("name") == NEW_TOOL for s in (result.new_tool.chat or {}).get("steps", []))
        lines.append(f"  new tool: {NEW_TOOL} {'used' if used else 'NOT used'}; chat {result.new_tool.status}")
    return lines


def run_demo(config: StackConfig, say: Say = print, seed: int = 7, strict: bool = False) -> int:
    """The whole demo on a stack of its own (``config``: free ports). 0 only if all went right
    (see :meth:`DemoResult.problems`)."""
    started = time.monotonic()
    say("umi-serve demo: three tiny role models trained here, a real Redis, real tools, a live weights swap")
    m = config.models
    say(f"models: planner {m.planner}, caller {m.caller}, summarizer {m.summarizer}; swap to {m.caller_v2}")
    result: DemoResult | None = None
    error: str | None = None
    stack = Stack(config)
    try:
        with running_stack(stack, say):
            say(f"ready in {time.monotonic() - started:.1f} s")
            endpoints = DemoEndpoints(
                orchestrator=stack.url("orchestrator"), caller=stack.url("caller"), tools=stack.url("tools"),
                admin_token=config.admin_token, caller_v2=m.caller_v2,
            )  # fmt: skip
            result = asyncio.run(scripted_demo(endpoints, say, seed=seed))
            stack.check_running()
            say("")
    except KeyboardInterrupt:
        say("interrupted")
        keep_logs(config.work_dir, say)
        return 130
    except StackError as exc:
        error = f"the stack: {exc}"
    except httpx.HTTPError as exc:  # the tools list or the swap request itself failed
        error = f"a request to the stack failed: {type(exc).__name__}: {exc}"
    leftover = stack.leftover
    problems = ([error] if error else []) + (result.problems(strict) if result else [])
    if leftover:
        problems.append(f"processes still alive after the stop: {leftover}")
    say("")
    say("== summary")
    if result is not None:
        say("\n".join(summary_lines(result)))
    say(f"  {time.monotonic() - started:.0f} s in all")
    if problems:
        say("demo NOT OK:\n" + "\n".join(f"  - {p}" for p in problems))
        keep_logs(config.work_dir, say)
        return 1
    shutil.rmtree(config.work_dir, ignore_errors=True)
    say("demo OK")
    return 0


async def ask_one(question: str, orchestrator: str, tools_url: str, tool_set: str, max_steps: int = 10) -> ChatOutcome:
    """``umi demo ask``: one question through a running stack (e.g. ``make up``)."""
    async with httpx.AsyncClient(timeout=CHAT_TIMEOUT_S) as client:
        tools = await tool_list(client, tools_url, tool_set)
        return await ask(client, orchestrator.rstrip("/"), Task(id="ask", query=question, max_steps=max_steps), tools)
