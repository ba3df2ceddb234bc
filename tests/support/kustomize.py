"""Renders the kustomizations of deploy/k8s without the kustomize binary (none can be installed
here): the subset of kustomize the project's files use, and nothing else.

Supported fields: ``resources`` (files and directories holding a kustomization), ``patches``
with ``path`` (strategic merge patches: the target is the resource of the patch's kind and name;
maps merge, lists of maps with ``name`` merge by name, other lists are replaced; ``$patch: delete``
removes the resource), ``namespace`` (set on every namespaced resource) and ``labels`` with
``pairs`` (added to ``metadata.labels``). Any other field raises ``Unsupported``, so a
kustomization that uses more fails the tests instead of being rendered wrong. The rules are
kustomize's (https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "patches", "namespace", "labels"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}


class Unsupported(Exception):
    """The kustomization uses a field or form this renderer does not implement."""


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge of ``patch`` into ``base`` (the subset in the module docstring)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    named = lambda items: isinstance(items, list) and items and all(isinstance(i, dict) and "name" in i for i in items)  # noqa: E731
    if named(base) and named(patch):
        out = list(base)
        for item in patch:
            at = next((n for n, b in enumerate(out) if b["name"] == item["name"]), None)
            if at is None:
                out.append(copy.deepcopy(item))
            else:
                out[at] = merge(out[at], item)
        return out
    return copy.deepcopy(patch)


def build(directory: Path) -> list[dict[str, Any]]:
    """The resources ``kubectl apply -k directory`` would apply, in order.

    Raises ``FileNotFoundError`` for a resource or patch that does not exist, ``LookupError`` for
    a patch whose target is not among the resources, ``Unsupported`` as above."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = directory / entry
        docs += build(target) if target.is_dir() else load_docs(target)
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise Unsupported(f"{directory}: patch {patch_entry}")
        for patch in load_docs(directory / patch_entry["path"]):
            at = next((n for n, d in enumerate(docs) if key(d) == key(patch)), None)
            if at is None:
                raise LookupError(f"{directory / patch_entry['path']}: no {key(patch)} to patch")
            if patch.get("$patch") == "delete":
                del docs[at]
            else:
                docs[at] = merge(docs[at], patch)
    for labels in kustomization.get("labels", []):
        if set(labels) != {"pairs"}:
            raise Unsupported(f"{directory}: labels {labels}")
        for doc in docs:
            doc["metadata"]["labels"] = {**doc["metadata"].get("labels", {}), **labels["pairs"]}
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs
