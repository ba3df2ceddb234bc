"""The evaluation report: JSON for machines, a Markdown table for people, a PNG bar chart.

The paper's numbers are printed beside runs only when every run was measured as the paper
measured (``paper`` protocol, R-L by the rouge package); a teacher-forced run, or one with umi's
word-token R-L, is labelled so in its name and its table says it is not comparable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from umi.eval.score import Metrics, ScoreResult

COLUMNS: tuple[tuple[str, str], ...] = (
    ("plan_acc", "Plan ACC"),
    ("act_em", "Act. EM"),
    ("hallu", "Hallu."),
    ("arg_f1", "Arg. F1"),
    ("rouge_l", "R-L"),
)
# The paper's 7B in-domain numbers (alpha-UMi, Table 2), for context in reports.
PAPER_7B: dict[str, dict[str, float]] = {
    "alpha-UMi 7B (paper)": {"plan_acc": 88.92, "act_em": 58.94, "hallu": 0.57, "arg_f1": 52.24, "rouge_l": 43.17},
    "single-model 7B (paper)": {"plan_acc": 81.92, "act_em": 53.26, "hallu": 2.32, "arg_f1": 45.57, "rouge_l": 42.66},
}


def _cell(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}"


def run_name(result: ScoreResult) -> str:
    """``multi-model`` or ``single-model``, marked when not measured as the paper measured."""
    name = "multi-model" if result.mode == "multi" else "single-model"
    if result.protocol == "teacher-forcing":
        name += " (teacher forcing)"
    if result.rouge != "paper":
        name += f" (R-L: {result.rouge})"
    return name


def comparable_with_paper(result: ScoreResult) -> bool:
    return result.protocol == "paper" and result.rouge == "paper"


def markdown_table(runs: Mapping[str, ScoreResult]) -> str:
    """One row per run, side by side; then the paper's rows when every run is comparable with
    them, else a line saying why not."""
    header = "| run | " + " | ".join(title for _, title in COLUMNS) + " | steps |"
    rule = "|---|" + "---:|" * (len(COLUMNS) + 1)
    rows = [header, rule]
    for name, result in runs.items():
        values = result.metrics.model_dump()
        rows.append(f"| {name} | " + " | ".join(_cell(values.get(key)) for key, _ in COLUMNS) + f" | {values['steps']} |")
    if all(comparable_with_paper(r) for r in runs.values()):
        for name, values in PAPER_7B.items():
            rows.append(f"| {name} | " + " | ".join(_cell(values.get(key)) for key, _ in COLUMNS) + " | – |")
        return "\n".join(rows) + "\n"
    rows.append("")
    rows.append(
        "Not comparable with the paper's numbers: teacher forcing asks each role with the gold history and "
        "thought, and umi's word-token R-L is not the paper's ROUGE (docs/evaluation.md)."
    )
    return "\n".join(rows) + "\n"


def write_png(runs: Mapping[str, Metrics], path: str | Path, title: str = "umi-serve step-level evaluation") -> None:
    """A grouped bar chart of the five metrics, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=110)
    for i, name in enumerate(names):
        values = runs[name].model_dump()
        xs = [j + i * width for j in range(len(COLUMNS))]
        ys = [values.get(key) or 0.0 for key, _ in COLUMNS]
        bars = ax.bar(xs, ys, width=width, label=name)
        ax.bar_label(bars, labels=[_cell(values.get(key)) for key, _ in COLUMNS], fontsize=7, padding=2)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(COLUMNS))], [t for _, t in COLUMNS])
    ax.set_ylim(0, 112)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=max(1, len(names)), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(runs: Mapping[str, ScoreResult], out_json: str | Path, extra: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write ``out_json`` and, beside it, ``.md`` and ``.png``. ``runs`` maps a name to a ScoreResult."""
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    metrics = {name: result.metrics for name, result in runs.items()}
    doc = {**(extra or {}), "runs": {name: result.model_dump() for name, result in runs.items()}}
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    md = out.with_suffix(".md")
    md.write_text(markdown_table(runs), encoding="utf-8")
    png = out.with_suffix(".png")
    comparable = all(comparable_with_paper(r) for r in runs.values())
    write_png(metrics, png, "umi-serve step-level evaluation" + ("" if comparable else " (not comparable with the paper)"))
    return {"json": out, "markdown": md, "png": png}
