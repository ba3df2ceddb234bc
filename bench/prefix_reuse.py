"""How much of each role prompt a replica's prefix cache can reuse: the share of a step's prompt
that is a prefix of the same role's previous prompt in the same chat (engine-independent: a
property of the rendered prompts). Chat affinity (X-Umi-Chat-Id, docs/scaling.md) is what lets
vLLM's automatic prefix caching see both prompts on one replica.

    .venv/bin/python bench/prefix_reuse.py [--corpus models/demo/corpus] [--tokenizer models/demo/tokenizer]

The chats are the demo corpus's held-out trajectories (``test-v1.json`` and ``test-v2.json`` of
``umi demo corpus``'s output when --corpus has them, else the same trajectories built here from
its seed). Each role's prompt at each of its steps is rendered as a role service sends it
(``umi.format.render_prompt``, the default system prefix and variant; the history up to the
step; the caller's thought is the planner turn before it). For every step after a role's first
in a chat it counts the longest common prefix with the previous prompt of that role, in
characters and in tokens of the demo tokenizer, and in tokens that vLLM can take from its cache
(whole 16-token blocks). The summarizer answers once per chat: nothing to reuse within a chat.
Prints a table; writes bench/results/prefix_reuse.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from umi.demo.corpus import build_corpus  # noqa: E402
from umi.demo.corpus_spec import DEMO_CORPUS  # noqa: E402
from umi.format import Trajectory, load_trajectories  # noqa: E402
from umi.format.render import render_prompt  # noqa: E402

BLOCK_TOKENS = 16  # vLLM's default KV-cache block size: prefix caching reuses whole blocks
ROLES = ("planner", "caller", "backbone")
OUT = ROOT / "bench" / "results" / "prefix_reuse.json"


def held_out(corpus: Path) -> tuple[list[Trajectory], str]:
    files = [corpus / f"test-{v}.json" for v in ("v1", "v2")]
    if all(f.is_file() for f in files):
        return [t for f in files for t in load_trajectories(f)], ", ".join(str(f) for f in files)
    built = [Trajectory.model_validate(t) for v in ("v1", "v2") for t in build_corpus(DEMO_CORPUS.seed, DEMO_CORPUS.test, "test", v)]
    return built, f"built here: umi.demo.corpus.build_corpus(seed {DEMO_CORPUS.seed}, {DEMO_CORPUS.test} per tool set, test split, v1 and v2)"


def role_prompts(traj: Trajectory, role: str) -> list[str]:
    """The role's prompts at its steps of the chat, in order."""
    turns = traj.conversations
    asked = "caller" if role == "caller" else "planner"
    return [
        render_prompt(role, traj.tools, turns[:i], thought=turns[i - 1].content if role == "caller" else "")  # type: ignore[arg-type]
        for i, turn in enumerate(turns)
        if turn.role == asked
    ]


def common_prefix(a: list[int] | str, b: list[int] | str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered), "p50": ordered[len(ordered) // 2],
        "p10": ordered[len(ordered) // 10], "min": ordered[0],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "models/demo/corpus")
    parser.add_argument("--tokenizer", default=str(ROOT / "models/demo/tokenizer"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    trajectories, source = held_out(args.corpus)
    print(f"{len(trajectories)} held-out chats ({source}); tokenizer {args.tokenizer}")
    results: dict[str, dict] = {}
    print(f"{'role':9s} {'steps':>6s} {'prompt tokens':>13s} {'new tokens':>10s}   share of the prompt reused, "
          "mean/p50/p10: in characters, in tokens, in cached 16-token blocks")  # fmt: skip
    for role in ROLES:
        chars, tokens, blocks, lengths, new = [], [], [], [], []
        for traj in trajectories:
            prompts = role_prompts(traj, role)
            ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
            for k in range(1, len(prompts)):
                shared_chars = common_prefix(prompts[k - 1], prompts[k])
                shared_tokens = common_prefix(ids[k - 1], ids[k])
                chars.append(shared_chars / len(prompts[k]))
                tokens.append(shared_tokens / len(ids[k]))
                blocks.append(shared_tokens // BLOCK_TOKENS * BLOCK_TOKENS / len(ids[k]))
                lengths.append(len(ids[k]))
                new.append(len(ids[k]) - shared_tokens)
        results[role] = {
            "steps": len(tokens), "prompt_tokens_mean": statistics.fmean(lengths), "new_tokens_mean": statistics.fmean(new),
            "chars": summary(chars), "tokens": summary(tokens), "cached_blocks": summary(blocks),
            "tokens_weighted": 1 - sum(new) / sum(lengths),
        }  # fmt: skip
        r = results[role]
        cols = [f"{r[k]['mean']:.3f}/{r[k]['p50']:.3f}/{r[k]['p10']:.3f}" for k in ("chars", "tokens", "cached_blocks")]
        print(f"{role:9s} {r['steps']:6d} {r['prompt_tokens_mean']:13.0f} {r['new_tokens_mean']:10.1f}   {'   '.join(cols)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"chats": len(trajectories), "source": source, "tokenizer": args.tokenizer, "block_tokens": BLOCK_TOKENS, "roles": results}
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
