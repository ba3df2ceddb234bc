"""Weights references: which weights a deployment serves, under which name and version.

A version is given by the operator, or recorded by `umi train` (`training.json`), or is a fingerprint of the weight files (names, sizes and
modification times), so that new files in the same directory get a new version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from umi.roleapi import ModelInfo

WeightsKind = Literal["full", "lora"]

# The file each kind of weights directory must hold.
MARKER_FILE: dict[WeightsKind, str] = {"full": "config.json", "lora": "adapter_config.json"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FINGERPRINT_MAX_FILES = 10_000


class WeightsRef(BaseModel):
    """Weights a deployment serves."""

    model_config = ConfigDict(frozen=True)

    path: str  # a model directory or hub id (full), or an adapter directory (lora)
    name: str
    version: str
    kind: WeightsKind = "full"
    engine_url: str | None = None  # url engine: the server that serves these weights

    def model_info(self) -> ModelInfo:
        return ModelInfo(name=self.name, version=self.version)


class WeightsProblem(Exception):
    """Weights that cannot be served: a missing path or a directory of the wrong kind."""


def is_hub_id(path: str) -> bool:
    return not Path(path).exists() and bool(_HUB_ID.match(path)) and not path.startswith((".", "/"))


def check_weights_path(path: str, kind: WeightsKind) -> None:
    """Refuse at once what cannot load: a missing directory, or one without its marker file."""
    if kind == "full" and is_hub_id(path):
        return
    p = Path(path)
    if not p.exists():
        raise WeightsProblem(f"{path}: no such directory")
    if not p.is_dir():
        raise WeightsProblem(f"{path}: not a directory")
    marker = MARKER_FILE[kind]
    if not (p / marker).is_file():
        raise WeightsProblem(f"{path}: no {marker}; not a {'LoRA adapter' if kind == 'lora' else 'model'} directory")


def fingerprint(path: str) -> str:
    """12 hex digits over the files' names, sizes and modification times (or over a hub id)."""
    digest = hashlib.sha256()
    root = Path(path)
    if not root.is_dir():
        digest.update(path.encode())
        return digest.hexdigest()[:12]
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            try:
                st = full.stat()
            except OSError:
                continue
            digest.update(f"{full.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
            if count >= _FINGERPRINT_MAX_FILES:
                return digest.hexdigest()[:12]
    return digest.hexdigest()[:12]


def recorded_version(path: str) -> str | None:
    """The version ``umi train`` recorded in the model directory (``training.json``), if any."""
    try:
        record = json.loads((Path(path) / "training.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = record.get("version") if isinstance(record, dict) else None
    return version if isinstance(version, str) and version else None


def default_name(path: str) -> str:
    return Path(path.rstrip("/")).name or path


def weights_ref(
    path: str, kind: WeightsKind = "full", name: str | None = None, version: str | None = None, engine_url: str | None = None
) -> WeightsRef:
    return WeightsRef(
        path=path,
        name=name or default_name(path),
        version=version or recorded_version(path) or fingerprint(path),
        kind=kind,
        engine_url=engine_url,
    )
