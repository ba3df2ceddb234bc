"""Quality of the demo models on the held-out split, in process (no services): the step metrics
of :mod:`umi.eval` by the paper's protocol (the caller and summarizer asked where the planner
decided so, with its own turn) and task success of the whole loop with the real prompts,
parsers and tool functions. ``umi demo quality`` prints it; ``make models`` records it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from umi.demo.corpus import http_error_observation, observation_text
from umi.demo.stack import DEMO_MAX_NEW_TOKENS
from umi.demo.tool_data import ToolInputError
from umi.demo.tools_app import BY_NAME
from umi.demo.suite import task_from_trajectory
from umi.eval.chats import judge
from umi.eval.gold import gold_steps
from umi.eval.predictions import Prediction
from umi.eval.score import score
from umi.eval.steps import Ask, first_asks, follow_up_asks
from umi.format.observations import invalid_arguments_observation, unknown_tool_observation
from umi.service.weights import recorded_version
from umi.format.constraints import CONSTRAINT_MODES, ConstraintMode, role_grammar
from umi.format.templates import PromptRole
from umi.format.tools import ToolDoc
from umi.format import HALLUCINATED_NAME, Trajectory, caller_turn_content, Turn, parse_caller, parse_planner, parse_summarizer, render_prompt

MAX_NEW_TOKENS = DEMO_MAX_NEW_TOKENS  # as the demo's role services generate
PROTOCOL = "paper"  # the step metrics' protocol (umi.eval.steps); older reports are re-measured


@dataclass
class Generator:
    """Greedy batched generation from one model directory."""

    model: Any
    tokenizer: Any
    role: PromptRole = "planner"
    constrained: ConstraintMode = "off"  # as a role service with UMI_CONSTRAINED_DECODING generates

    @classmethod
    def load(cls, path: Path, role: PromptRole = "planner", constrained: ConstraintMode = "off") -> "Generator":
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        tok.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        return cls(model, tok, role, constrained)

    def _mask(self, tools: Sequence[Sequence[ToolDoc]] | None) -> Any:
        """The grammar mask of :mod:`umi.format.constraints` for these prompts' tools, or None."""
        if self.constrained == "off" or tools is None:
            return None
        from transformers import LogitsProcessorList

        from umi.engines.grammar_mask import GrammarLogitsProcessor

        grammars = [role_grammar(self.role, demo_schemas(t), self.constrained) for t in tools]
        if all(g is None for g in grammars):
            return None
        return LogitsProcessorList([GrammarLogitsProcessor(self.tokenizer, self.model.config.vocab_size, grammars)])

    def __call__(self, prompts: Sequence[str], batch_size: int = 32, tools: Sequence[Sequence[ToolDoc]] | None = None) -> list[str]:
        """Greedy completions of ``prompts``; ``tools[i]``: prompt i's tools (for the constraint)."""
        import torch

        out: list[str] = []
        for start in range(0, len(prompts), batch_size):
            enc = self.tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True)
            with torch.no_grad():
                gen = self.model.generate(
                    **enc, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                    eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
                    logits_processor=self._mask(tools[start : start + batch_size] if tools is not None else None),
                )
            for row in gen[:, enc["input_ids"].shape[1] :]:
                out.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return out


def _generate(models: dict[str, Generator], asks: Sequence[Ask]) -> list[Prediction]:
    preds: list[Prediction] = []
    for role in ("planner", "caller", "summarizer"):
        mine = [a for a in asks if a.role == role]
        if mine:
            texts = models[role]([render_prompt(role, a.tools, a.history, a.thought or "") for a in mine], tools=[a.tools for a in mine])
            preds += [Prediction(id=a.step_id, role=role, text=t, protocol="paper") for a, t in zip(mine, texts)]  # type: ignore[arg-type]
    return preds


def step_predictions(models: dict[str, Generator], trajectories: Sequence[Trajectory]) -> list[Prediction]:
    """What ``umi eval steps`` would record (paper protocol), generated in process."""
    steps = gold_steps(trajectories)
    planner = _generate(models, first_asks(steps, "multi"))
    return planner + _generate(models, follow_up_asks(steps, "paper", {p.id: p for p in planner}))


def _run_tool(name: str, args: dict[str, Any] | None) -> str:
    """The observation the orchestrator would record (see orchestrator/loop.py and tools.py)."""
    tool = BY_NAME.get(name)
    if tool is None:
        return unknown_tool_observation(name)
    if args is None:
        return invalid_arguments_observation(None)
    try:
        return observation_text(tool.run(args))
    except (ToolInputError, KeyError, TypeError, ValueError) as exc:
        return http_error_observation(400, f"{name}: {exc}")


def run_loops(models: dict[str, Generator], trajectories: Sequence[Trajectory], max_steps: int = 8) -> list[dict[str, Any]]:
    """The agent loop for every trajectory's question, all questions advancing together."""
    states = [{"traj": t, "history": [t.conversations[0]], "calls": [], "status": None, "answer": None, "steps": 0}
              for t in trajectories]
    for _ in range(max_steps):
        live = [s for s in states if s["status"] is None]
        if not live:
            break
        plans = models["planner"]([render_prompt("planner", s["traj"].tools, s["history"]) for s in live], tools=[s["traj"].tools for s in live])
        callers, finishers = [], []
        for s, text in zip(live, plans):
            plan = parse_planner(text)
            s["history"].append(Turn(role="planner", content=plan.text))
            s["steps"] += 1
            if plan.next == "give_up":
                s["status"] = "gave_up"
            elif plan.next == "conclusion":
                finishers.append(s)
            else:
                callers.append(s)
        calls = models["caller"]([render_prompt("caller", s["traj"].tools, s["history"], s["history"][-1].content) for s in callers],
                                 tools=[s["traj"].tools for s in callers])
        for s, text in zip(callers, calls):
            call = parse_caller(text, s["traj"].tool_names())
            # as the orchestrator records it: an unknown name enters the history as the reference's marker
            known = call.name in s["traj"].tool_names()
            turn = call.text if known else caller_turn_content(HALLUCINATED_NAME, call.arguments_raw)
            s["history"].append(Turn(role="caller", content=turn))
            observation = _run_tool(call.name, call.arguments) if known else unknown_tool_observation(call.name)
            s["history"].append(Turn(role="observation", content=observation))
            s["calls"].append((call.name, call.arguments))
        answers = models["summarizer"]([render_prompt("summarizer", s["traj"].tools, s["history"]) for s in finishers])
        for s, text in zip(finishers, answers):
            s["answer"] = parse_summarizer(text).answer
            s["status"] = "completed"
    return states


def loop_calls(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The calls the loops made: how many named a tool that is not listed, and how many named a
    listed demo tool with arguments its JSON Schema refuses (or that are not a JSON object)."""
    import jsonschema

    calls = [(s["traj"].tool_names(), name, args) for s in states for name, args in s["calls"]]
    unlisted = sum(1 for names, name, _ in calls if name not in names)
    invalid = 0
    for names, name, args in calls:
        if name in names:
            schema = BY_NAME[name].schema("")["function"]["parameters"] if name in BY_NAME else {"type": "object"}
            invalid += args is None or not jsonschema.Draft202012Validator(schema).is_valid(args)
    pct = (lambda n: round(100 * n / len(calls), 2) if calls else None)
    return {"calls": len(calls), "unlisted_names": pct(unlisted), "invalid_arguments": pct(invalid)}


def task_success(state: dict[str, Any]) -> bool:
    """Judged as ``umi eval chats`` judges a chat, against the task the gold trajectory solves."""
    task = task_from_trajectory(state["traj"], "quality")
    steps = [{"role": "caller", "name": name, "arguments": args} for name, args in state["calls"]]
    ok, _, _ = judge(task, {"status": state["status"], "steps": steps, "answer": state["answer"]})
    return ok


def _versions(model_dir: Path, caller: str) -> dict[str, str | None]:
    return {role: recorded_version(str(model_dir / name)) for role, name in (("planner", "planner"), ("caller", caller), ("summarizer", "summarizer"))}


def is_current(report: Path, model_dir: Path, caller: str = "caller", constrained: ConstraintMode = "off") -> bool:
    """``report`` was measured on the models now in ``model_dir`` (by their recorded versions),
    by today's protocol (:data:`PROTOCOL`), with the same constrained decoding."""
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    current = _versions(model_dir, caller)
    return (doc.get("versions") == current and None not in current.values() and doc.get("protocol") == PROTOCOL
            and doc.get("constrained", "off") == constrained)


def demo_schemas(tools: Sequence[ToolDoc]) -> list[ToolDoc]:
    """The trajectories' ToolDocs with the demo tools' JSON Schemas, as the role services get them
    from the tools server's OpenAI tools (a name that is not a demo tool keeps none)."""
    return [t.with_parameters(BY_NAME[t.Name].schema("")["function"]["parameters"]) if t.Name in BY_NAME else t for t in tools]


def load_role_models(model_dir: Path, caller: str = "caller", constrained: ConstraintMode = "off") -> dict[str, Generator]:
    """The planner, ``caller`` (a directory name: caller or caller-v2) and summarizer of
    ``model_dir``, each generating as its role service does with ``constrained``."""
    return {role: Generator.load(model_dir / name, role, constrained)
            for role, name in (("planner", "planner"), ("caller", caller), ("summarizer", "summarizer"))}  # fmt: skip


def measure(
    model_dir: Path, test_file: Path, caller: str = "caller", limit: int = 0, progress: bool = True,
    constrained: ConstraintMode = "off",
) -> dict[str, Any]:
    from umi.format import load_trajectories

    trajectories = load_trajectories(test_file)
    if limit:
        trajectories = trajectories[:limit]
    models = load_role_models(model_dir, caller, constrained)
    with tqdm(total=2, desc="quality", disable=not progress) as bar:
        result = score(gold_steps(trajectories), step_predictions(models, trajectories), "multi")
        bar.update(1)
        loops = run_loops(models, trajectories)
        bar.update(1)
    calls = [s for s in result.steps if s.gold_name is not None]
    exact = sum(1 for s in calls if s.pred_name == s.gold_name and s.arg_f1 == 1.0)
    failures = [{"query": s["traj"].conversations[0].content, "status": s["status"], "calls": s["calls"], "answer": s["answer"]}
                for s in loops if not task_success(s)]
    return {
        "test_file": str(test_file), "caller": caller, "trajectories": len(trajectories),
        "versions": _versions(model_dir, caller),
        "protocol": PROTOCOL,
        "constrained": constrained,
        "metrics": result.metrics.model_dump(),
        "arguments_exact": round(100 * exact / len(calls), 2) if calls else None,
        "task_success": round(100 * sum(task_success(s) for s in loops) / len(loops), 2),
        "loop_calls": loop_calls(loops),
        "failures": failures[:20],
    }


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("model_dir", type=Path)
    p.add_argument("test_file", type=Path)
    p.add_argument("--caller", default="caller")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--constrained", choices=CONSTRAINT_MODES, default="off", help="constrained decoding, as UMI_CONSTRAINED_DECODING")
    a = p.parse_args(argv)
    print(json.dumps(measure(a.model_dir, a.test_file, a.caller, a.limit, constrained=a.constrained), indent=2))


if __name__ == "__main__":
    main()
