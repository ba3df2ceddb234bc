"""How much of real tool schemas reaches the models: converts every tool found under a directory
and counts the schemas for which an enum value, a nested field, a type or the name is lost.

    .venv/bin/python bench/tool_schemas.py DIR [--max-tools-per-api 40] [--out results.json]

DIR is searched for (the schemas are for measuring only; nothing here is committed):
- OpenAPI 3.x / Swagger 2 documents (``*.json``, ``*.yml``, ``*.yaml`` with ``paths``): each
  operation is a tool: its path/query/header parameters and the properties of its JSON request
  body are the arguments, with the document's ``components``/``definitions`` beside them so
  that ``#/components/schemas/...`` references resolve;
- Google API discovery documents (``discoveryVersion``): each method is a tool: its parameters,
  and its request body as the argument ``body`` (the documents' bare ``$ref: Name`` rewritten to
  ``#/definitions/Name``, the discovery format's meaning of it);
- JSON lists of OpenAI function tools (``{"type": "function", "function": ...}``) or MCP tools
  (``{"name", "description", "inputSchema"}``), alone or under a ``tools`` key.

Every tool is converted with ``umi.format.to_tooldocs`` (per document, so names are made
distinct as a request's would be). Checks per tool:
- name: the Name parses back to itself through the caller parser (``Action: <Name>``) and is
  not hallucinated; the doc line is one JSON object that decodes to the ToolDoc;
- for each argument: every ``enum``/``const`` value, every property name and every type found in
  its schema at any depth (through ``$ref``, ``allOf``, ``anyOf``, ``oneOf``, ``items``,
  ``prefixItems``, ``additionalProperties``; a reference already being walked is not walked
  again) appears in the argument's rendered text.
Prints the counts and writes them (and the first lost items) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from umi.format import caller_turn_content, parse_caller, to_tooldocs

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


# ------------------------------------------------------------------ reading sources


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix in (".yml", ".yaml"):
        return yaml.safe_load(text)
    return json.loads(text)


def _openapi_tools(doc: Mapping[str, Any], limit: int) -> Iterator[dict[str, Any]]:
    extras = {k: doc[k] for k in ("components", "definitions") if k in doc}
    count = 0
    for route, item in (doc.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        shared = item.get("parameters") or []
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, Mapping):
                continue
            props: dict[str, Any] = {}
            required: list[str] = []
            for param in [*shared, *(op.get("parameters") or [])]:
                if not isinstance(param, Mapping) or "name" not in param:
                    continue
                if param.get("in") == "body":  # Swagger 2
                    props["body"] = param.get("schema") or {}
                    continue
                schema = dict(param.get("schema") or {k: v for k, v in param.items() if k in ("type", "enum", "items", "format")})
                if param.get("description") and "description" not in schema:
                    schema["description"] = param["description"]
                props[str(param["name"])] = schema
                if param.get("required"):
                    required.append(str(param["name"]))
            body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get("schema")
            parameters: dict[str, Any] = {"type": "object", "properties": props, **extras}
            if isinstance(body, Mapping):
                parameters = {"allOf": [{"type": "object", "properties": props}, body], **extras}
            name = op.get("operationId") or f"{method}_{route}"
            description = op.get("summary") or op.get("description") or ""
            yield {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}
            count += 1
            if count >= limit:
                return


def _discovery_refs(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: (f"#/definitions/{v}" if k == "$ref" and isinstance(v, str) else _discovery_refs(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_discovery_refs(v) for v in node]
    return node


def _discovery_tools(doc: Mapping[str, Any], limit: int) -> Iterator[dict[str, Any]]:
    definitions = _discovery_refs(doc.get("schemas") or {})
    count = 0

    def methods(resource: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        yield from (resource.get("methods") or {}).values()
        for sub in (resource.get("resources") or {}).values():
            yield from methods(sub)

    for method in methods(doc):
        props = {str(k): _discovery_refs(v) for k, v in (method.get("parameters") or {}).items()}
        if isinstance(method.get("request"), Mapping):
            props["body"] = _discovery_refs(method["request"])
        parameters = {"type": "object", "properties": props, "definitions": definitions}
        yield {"type": "function", "function": {"name": method.get("id", "method"), "description": method.get("description", ""),
                                                "parameters": parameters}}  # fmt: skip
        count += 1
        if count >= limit:
            return


def _listed_tools(doc: Any) -> list[dict[str, Any]]:
    items = doc.get("tools") if isinstance(doc, Mapping) else doc
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping) and item.get("type") == "function" and isinstance(item.get("function"), Mapping):
            out.append(dict(item))
        elif isinstance(item, Mapping) and "name" in item and isinstance(item.get("inputSchema"), Mapping):
            fn = {"name": item["name"], "description": item.get("description") or "", "parameters": item["inputSchema"]}
            out.append({"type": "function", "function": fn})
    return out


def tool_sets(root: Path, limit: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(source file, its tools) for every file under ``root`` that holds tools."""
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".json", ".yml", ".yaml") or not path.is_file():
            continue
        try:
            doc = _load(path)
        except Exception:
            continue
        if isinstance(doc, Mapping) and "paths" in doc and ("openapi" in doc or "swagger" in doc):
            tools = list(_openapi_tools(doc, limit))
        elif isinstance(doc, Mapping) and "discoveryVersion" in doc:
            tools = list(_discovery_tools(doc, limit))
        else:
            tools = _listed_tools(doc)
        if tools:
            yield str(path.relative_to(root)), tools


# ------------------------------------------------------------------ what must reach the model


class Expected:
    """Walks one argument's schema and collects what its rendering must mention."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.resolver = Registry().resolver_with_root(DRAFT202012.create_resource(root))
        self.values: list[str] = []
        self.fields: list[str] = []
        self.types: set[str] = set()
        self.features: Counter[str] = Counter()

    def walk(self, schema: Any, resolver: Any, active: tuple[int, ...] = ()) -> None:
        if not isinstance(schema, Mapping):
            return
        ref = schema.get("$ref")
        if isinstance(ref, str):
            self.features["$ref"] += 1
            try:
                resolved = resolver.lookup(ref)
            except Exception:
                self.features["unresolvable $ref"] += 1
            else:
                key = id(resolved.contents)
                if key not in active:
                    self.walk(resolved.contents, resolved.resolver, (*active, key))
        kind = schema.get("type")
        for k in kind if isinstance(kind, list) else [kind]:
            if isinstance(k, str) and k != "null":
                self.types.add(k)
        if "enum" in schema and isinstance(schema["enum"], list):
            self.features["enum"] += 1
            self.values += [json.dumps(v, ensure_ascii=False) for v in schema["enum"] if v is not None]
        if "const" in schema and schema["const"] is not None:
            self.values.append(json.dumps(schema["const"], ensure_ascii=False))
        props = schema.get("properties")
        if isinstance(props, Mapping):
            for name, sub in props.items():
                self.fields.append(str(name))
                self.walk(sub, resolver, active)
        for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            if isinstance(schema.get(key), list):
                self.features[key] += 1
                for sub in schema[key]:
                    self.walk(sub, resolver, active)
        items = schema.get("items")
        if isinstance(items, list):
            for sub in items:
                self.walk(sub, resolver, active)
        elif isinstance(items, Mapping):
            self.walk(items, resolver, active)
        if isinstance(schema.get("additionalProperties"), Mapping):
            self.walk(schema["additionalProperties"], resolver, active)


def check(tool: dict[str, Any], doc_line: str, name: str, all_names: list[str]) -> tuple[list[str], Counter[str]]:
    """What the rendering lost, and the schema features met."""
    lost: list[str] = []
    decoded = json.loads(doc_line)
    if "\n" in doc_line or decoded.get("Name") != name:
        lost.append("doc: not one JSON object per line")
    parsed = parse_caller(caller_turn_content(name, "{}"), all_names)
    if parsed.name != name or parsed.hallucinated:
        lost.append(f"name: {name!r} parses as {parsed.name!r}")
    parameters = tool["function"].get("parameters") or {}
    expected = Expected(parameters)
    expected.walk(parameters, expected.resolver)
    features = expected.features
    args: dict[str, str] = decoded["input"]
    whole = " ".join([*args.keys(), *args.values()])
    for value in expected.values:
        if value not in whole:
            lost.append(f"enum value {value[:40]}")
    for field in expected.fields:
        if field not in args and f"{field} (" not in whole:
            lost.append(f"field {field}")
    for kind in expected.types:
        if kind not in whole and kind != "object":
            lost.append(f"type {kind}")
    return lost, features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a directory of OpenAPI, discovery or tool-list files")
    parser.add_argument("--max-tools-per-api", type=int, default=40, help="tools taken from one document at most")
    parser.add_argument("--out", type=Path, default=None, help="write the counts and the first losses here (JSON)")
    args = parser.parse_args(argv)

    totals: Counter[str] = Counter()
    features: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    sources = 0
    convert_s = 0.0
    for source, tools in tool_sets(args.root, args.max_tools_per_api):
        sources += 1
        started = time.perf_counter()
        try:
            docs = to_tooldocs(tools)
        except Exception as exc:  # a refused tool set (non-object parameters) counts as lost whole
            totals["schemas"] += len(tools)
            totals["refused sets"] += 1
            examples.append({"source": source, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        convert_s += time.perf_counter() - started
        names = [d.Name for d in docs]
        totals["deduplicated"] += len(tools) - len(docs)
        for tool, doc in zip(tools, docs, strict=False):
            totals["schemas"] += 1
            lost, met = check(tool, doc.render(), doc.Name, names)
            features.update({k: 1 for k in met})
            for item in lost:
                kinds[item.split(" ")[0]] += 1
            if lost:
                totals["lost"] += 1
                if len(examples) < 20:
                    examples.append({"source": source, "tool": tool["function"]["name"], "lost": lost[:5]})
    report = {
        "sources": sources, "schemas": totals["schemas"], "schemas_with_a_loss": totals["lost"],
        "losses_by_kind": dict(kinds), "schemas_using": dict(features), "deduplicated": totals["deduplicated"],
        "refused_sets": totals["refused sets"], "convert_ms_per_schema": round(1000 * convert_s / max(1, totals["schemas"]), 3),
        "examples": examples,
    }  # fmt: skip
    print(f"sources: {sources}; schemas: {report['schemas']}; schemas with a loss: {report['schemas_with_a_loss']}")
    print(f"losses by kind: {report['losses_by_kind']}")
    print(f"schemas using: {report['schemas_using']}")
    print(f"conversion: {report['convert_ms_per_schema']} ms per schema")
    for example in examples[:5]:
        print("  e.g.", json.dumps(example)[:300])
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
