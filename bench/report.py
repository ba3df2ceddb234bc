"""How a benchmark records its run: the machine it ran on and the figures, printed one line per
figure and written as JSON to ``bench/results/<name>.json`` (gitignored)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    """CPUs, the 1-minute load average before (``os.getloadavg()`` at the start) and now, Python."""
    return {
        "cpus": os.cpu_count(),
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_figures(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` (with its ``figures`` mapping) to ``bench/results/<name>.json`` and print
    ``<name>.<figure>: <value>`` lines; returns the path."""
    path = RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result["figures"].items():
        print(f"{name}.{key}: {value}")
    print(f"{name}.results: {path.relative_to(RESULTS_DIR.parent.parent)}")
    return path


def write_json(path: Path, result: dict[str, Any]) -> None:
    """Write ``result`` as indented JSON to ``path`` (its folder made) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
