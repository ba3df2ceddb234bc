"""JSON Schema -> the ``input`` of a ToolDoc: ``{arg: "<type>, <description and notes>"}``.

The released checkpoints were trained on ToolBench tools, whose arguments the reference turned
into ``"<type>, <description>"`` (GLPFT ``prepro_raw_stage_1.py``: the type, ``", "``, the
description's last 256 characters). Real tool schemas carry more than ToolBench's flat
string/integer/boolean arguments; everything else reaches the models as plain-text notes after
the description, and a property that has none of it renders exactly as ToolBench's did.

For each property of the parameters (in schema order; required ones are not marked, as in
training), and recursively for nested fields:

- type: ``type`` (``"string"``; a list reads ``"string or integer"``, ``null`` left out); without
  ``type`` it is inferred: ``enum``/``const`` -> the first value's JSON type, ``properties`` ->
  ``object``, ``items`` -> ``array``, nothing -> ``string`` (the reference's default type).
  Arrays read ``array of <item type>`` at any depth (``array of array of string``).
- ``$ref`` (``#/$defs/...``, ``#/definitions/...``, ``#/components/schemas/...``, and any other
  reference the ``referencing`` library resolves inside the parameters, ``$id`` included) is
  replaced by its target; the property's own keywords (its description) win over the target's.
  A reference met again inside its own expansion is not expanded again: it reads
  ``Recursive: same fields as <path>.`` where ``<path>`` is the dotted path first expanded.
  A reference whose target renders longer than ``REPEAT_AFTER_CHARS`` is written out once per
  tool; later references to it read ``Same fields as <path>.`` (shared definitions would otherwise
  multiply a doc's size: one real API's tool rendered 1.7 MB). A reference that does not resolve
  (another document) reads as an empty schema.
- ``allOf`` members are merged into one schema (first value wins, properties and required united).
- ``anyOf``/``oneOf``: ``null`` members are dropped (a nullable union reads as its other member,
  pydantic's ``Optional``); members that are all constants merge into one ``One of:`` list
  (``"a" (Apple), "b"`` when a member has a description); one member left reads as that member;
  otherwise the types join with `` or `` and the members' notes are attached when only one member
  has notes, else listed as ``Options: (1) <type>, <notes> (2) ...``. Under an object with its own
  properties, the members' properties are added to its fields.
- notes, in this order after the description: ``One of: "a", "b".`` (``enum``/``const``, values as
  JSON), ``Format: date-time.``, ``Each item: <description>.`` (an array's item description),
  ``Fields: name (<type>[, <notes>]); ....`` (an object's properties), ``Values: <type>[, <notes>].``
  (``additionalProperties``), ``Options: ...`` (above).
- descriptions keep their last 256 characters (the reference's cut of argument descriptions);
  defaults, examples and numeric/length bounds are not rendered: the released checkpoints never
  saw them (the reference's ToolDoc dropped ToolBench's ``example_value``), and a default is what
  the tool uses when the argument is left out.
- nesting deeper than ``MAX_DEPTH`` renders the type alone.

Pure and deterministic: the same schema always renders the same text; it never raises on a
schema-shaped value (anything that is not a mapping reads as an empty schema).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

MAX_ARG_DESCRIPTION_CHARS = 256
MAX_DEPTH = 16
REPEAT_AFTER_CHARS = 512
_UNKNOWN_TYPE = "string"
_OPTIONS = ("anyOf", "oneOf")
_Resolver = Any  # a referencing Resolver (the package exports no public name for it), or None
_TYPED = ("type", "properties", "enum", "const", "items", "prefixItems", "additionalProperties")


@dataclass
class Shape:
    """One schema as the models read it: a type and the text after ``"<type>, "``."""

    type: str
    description: str = ""
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return " ".join(p for p in (self.description, *self.notes) if p)

    def as_field(self, name: str) -> str:
        text = self.text()
        return f"{name} ({self.type}{', ' + text if text else ''})"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return "string"


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _description(schema: Mapping[str, Any]) -> str:
    value = schema.get("description")
    if value is None:
        return ""
    return str(value).strip()[-MAX_ARG_DESCRIPTION_CHARS:]


def _is_null(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and kind and all(k == "null" for k in kind)):
        return True
    if "const" in schema and schema["const"] is None:
        return True
    enum = schema.get("enum")
    return isinstance(enum, list) and bool(enum) and all(v is None for v in enum)


def _constants(schema: Mapping[str, Any]) -> list[Any] | None:
    """The allowed values of an ``enum``/``const`` schema (None when it allows more)."""
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return list(enum)
    return None


def _merge(schemas: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``allOf`` (and a ``$ref`` with its siblings): first value wins; properties and required unite."""
    out: dict[str, Any] = {}
    for schema in schemas:
        if not isinstance(schema, Mapping):  # a boolean schema adds nothing to read
            continue
        for key, value in schema.items():
            if key == "properties" and isinstance(value, Mapping):
                props = dict(out.get("properties") or {})
                for name, sub in value.items():
                    props.setdefault(name, sub)
                out["properties"] = props
            elif key == "required" and isinstance(value, list):
                out["required"] = list(dict.fromkeys([*(out.get("required") or []), *value]))
            else:
                out.setdefault(key, value)
    return out


class _Converter:
    """Walks one tool's parameters; holds the reference resolver and the references being expanded."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.resolver: _Resolver
        try:
            dialect = root.get("$schema")
            spec = specification_with(dialect if isinstance(dialect, str) else "", default=DRAFT202012)
            self.resolver = Registry().resolver_with_root(spec.create_resource(root))
            self.spec = spec
        except Exception:  # a root that is not a resource (a non-string $id): no references resolve
            self.resolver = None
        self.expanding: dict[int, str] = {}  # id of a reference's target -> the path that expands it
        self.rendered: dict[int, tuple[str, Shape]] = {}  # long targets written out: where, and how
        self.cut_deep = 0  # schemas rendered as their type alone for the depth limit

    # ---------------------------------------------------------------- resolution
    def _sub(self, resolver: _Resolver, schema: Mapping[str, Any]) -> _Resolver:
        if resolver is None:
            return None
        try:
            return resolver.in_subresource(self.spec.create_resource(schema))
        except Exception:
            return resolver

    def flatten(
        self, schema: Any, resolver: _Resolver, path: str, entered: list[int]
    ) -> tuple[dict[str, Any], _Resolver, str | None]:
        """The schema with its ``$ref`` replaced and ``allOf`` merged.

        Returns (schema, its resolver, the path of a recursive reference or None). The ids of the
        references entered are appended to ``entered`` (the caller leaves them when done).
        """
        if not isinstance(schema, Mapping):
            return {}, resolver, None
        resolver = self._sub(resolver, schema)
        parts: list[Mapping[str, Any]] = [{k: v for k, v in schema.items() if k not in ("$ref", "allOf")}]
        # The fields of a followed reference are read in the target's document (its own $id).
        result_resolver = resolver
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self._lookup(ref, resolver)
            if target is not None:
                contents, target_resolver = target
                key = id(contents)
                if key in self.expanding:
                    return _merge([parts[0], contents]), resolver, self.expanding[key]
                self.expanding[key] = path or "the arguments"
                entered.append(key)
                inner, result_resolver, recursive = self.flatten(contents, target_resolver, path, entered)
                if recursive is not None:
                    return _merge([parts[0], inner]), resolver, recursive
                parts.append(inner)
        members = schema.get("allOf")
        if isinstance(members, list):
            for member in members:
                inner, _, recursive = self.flatten(member, resolver, path, entered)
                if recursive is not None:
                    return _merge([*parts, inner]), resolver, recursive
                parts.append(inner)
        return _merge(parts), result_resolver, None

    def _lookup(self, ref: str, resolver: _Resolver) -> tuple[Any, _Resolver] | None:
        if resolver is None:
            return None
        try:
            resolved = resolver.lookup(ref)
        except (Unresolvable, Exception):  # unresolvable, or a malformed pointer
            return None
        return resolved.contents, resolved.resolver

    # ------------------------------------------------------------------- shapes
    def shape(self, schema: Any, resolver: _Resolver, path: str, depth: int) -> Shape:
        entered: list[int] = []
        try:
            flat, resolver, recursive = self.flatten(schema, resolver, path, entered)
            if recursive is not None:
                return Shape(self._type_only(flat), _description(flat), [f"Recursive: same fields as {recursive}."])
            if depth > MAX_DEPTH:
                self.cut_deep += 1
                return Shape(self._type_only(flat), _description(flat))
            target = entered[0] if entered else None
            if target in self.rendered:  # a long definition already written out once in this tool
                first, shape = self.rendered[target]
                return Shape(shape.type, _description(flat), [f"Same fields as {first}."])
            cut_before = self.cut_deep
            shape = self._shape(flat, resolver, path, depth)
            # Only a whole rendering is referred to (one cut by the depth limit is not).
            if target is not None and self.cut_deep == cut_before and len(shape.text()) > REPEAT_AFTER_CHARS:
                self.rendered[target] = (path or "the arguments", shape)
            return shape
        finally:
            for key in entered:
                self.expanding.pop(key, None)

    @staticmethod
    def _type_only(flat: Mapping[str, Any]) -> str:
        kind = flat.get("type")
        if isinstance(kind, str):
            return kind
        if isinstance(kind, list):
            names = [str(k) for k in kind if k != "null"]
            return " or ".join(dict.fromkeys(names)) or "null"
        if "properties" in flat:
            return "object"
        if "items" in flat:
            return "array"
        return _UNKNOWN_TYPE

    def _options(self, flat: Mapping[str, Any]) -> list[Any]:
        members: list[Any] = []
        for key in _OPTIONS:
            value = flat.get(key)
            if isinstance(value, list):
                members.extend(value)
        return members

    def _shape(self, flat: dict[str, Any], resolver: _Resolver, path: str, depth: int) -> Shape:
        options = self._options(flat)
        own = {k: v for k, v in flat.items() if k not in _OPTIONS}
        if options and (not any(k in own for k in _TYPED) or (own.get("type") == "object" and "properties" not in own)):
            return self._union(own, options, resolver, path, depth)
        shape = self._typed(own, resolver, path, depth)
        if options and shape.type == "object":  # its own fields, then what its variants add
            variants = self._union({}, options, resolver, path, depth)
            shape.notes.extend(variants.notes)
        return shape

    def _typed(self, own: dict[str, Any], resolver: _Resolver, path: str, depth: int) -> Shape:
        kind = own.get("type")
        if isinstance(kind, list):
            kinds = [str(k) for k in kind if k != "null"]
            if len(kinds) > 1 and _constants(own) is not None:  # the values say which types
                shape = self._single({k: v for k, v in own.items() if k != "type"}, resolver, path, depth)
                shape.type = " or ".join(dict.fromkeys(kinds))
                return shape
            if len(kinds) > 1:
                members = [{**own, "type": k} for k in kinds]
                return self._union({"description": own.get("description")}, members, resolver, path, depth)
            own["type"] = kinds[0] if kinds else "null"
        return self._single(own, resolver, path, depth)

    def shape_source(self, member: Any, resolver: _Resolver, path: str) -> dict[str, Any]:
        """A union member flattened (its properties are read, not rendered, here)."""
        entered: list[int] = []
        try:
            flat, _, _ = self.flatten(member, resolver, path, entered)
        finally:
            for key in entered:
                self.expanding.pop(key, None)
        return flat

    def _union(
        self, own: Mapping[str, Any], members: list[Any], resolver: _Resolver, path: str, depth: int
    ) -> Shape:
        description = _description(own)
        flats = [self.shape_source(m, resolver, path) for m in members]
        kept = [(m, f) for m, f in zip(members, flats, strict=True) if not _is_null(f)]
        if not kept:
            return Shape("null", description)
        constants = [_constants(f) for _, f in kept]
        if len(kept) > 1 and all(c is not None and not self._options(f) for c, (_, f) in zip(constants, kept, strict=True)):
            values: list[str] = []
            types: list[str] = []
            for (_, f), consts in zip(kept, constants, strict=True):
                said = _description(f) if len(consts or []) == 1 else ""
                for v in consts or []:
                    if v is None:
                        continue
                    types.append(f["type"] if isinstance(f.get("type"), str) else _json_type(v))
                    values.append(_value(v) + (f" ({said})" if said else ""))
            kind = " or ".join(dict.fromkeys(types)) or _UNKNOWN_TYPE
            return Shape(kind, description, ["One of: " + ", ".join(values) + "."])
        shapes = [self.shape(m, resolver, path, depth + 1) for m, _ in kept]
        if len(shapes) == 1:
            only = shapes[0]
            return Shape(only.type, description or only.description, only.notes)
        kind = " or ".join(dict.fromkeys(s.type for s in shapes))
        rich = [s for s in shapes if s.notes or s.description]
        distinct = {json.dumps([s.description, s.notes]) for s in rich}
        if len(distinct) <= 1:
            notes = rich[0].notes if rich else []
            said = rich[0].description if rich else ""
            return Shape(kind, description or said, list(notes))
        listed = " ".join(f"({i}) {s.type}{', ' + s.text() if s.text() else ''}" for i, s in enumerate(shapes, 1))
        return Shape(kind, description, [f"Options: {listed}"])

    def _single(self, own: dict[str, Any], resolver: _Resolver, path: str, depth: int) -> Shape:
        kind = own.get("type")
        constants = _constants(own)
        if not isinstance(kind, str):
            if constants is not None:
                kind = _json_type(constants[0])
            elif "properties" in own or isinstance(own.get("additionalProperties"), Mapping):
                kind = "object"
            elif "items" in own or "prefixItems" in own:
                kind = "array"
            else:
                kind = _UNKNOWN_TYPE
        shape = Shape(kind, _description(own))
        if constants is not None:
            shape.notes.append("One of: " + ", ".join(_value(v) for v in constants) + ".")
        fmt = own.get("format")
        if isinstance(fmt, str) and fmt:
            shape.notes.append(f"Format: {fmt}.")
        if kind == "array":
            self._array(own, shape, resolver, path, depth)
        elif kind == "object":
            self._object(own, shape, resolver, path, depth)
        return shape

    def _array(self, own: Mapping[str, Any], shape: Shape, resolver: _Resolver, path: str, depth: int) -> None:
        items = own.get("items")
        prefix = own.get("prefixItems")
        if isinstance(items, list):  # the old tuple form
            prefix, items = items, own.get("additionalItems")
        if isinstance(prefix, list) and prefix:
            members = [*prefix, *([items] if isinstance(items, Mapping) and items else [])]
            item = self._union({}, members, resolver, path, depth) if len(members) > 1 else self.shape(members[0], resolver, path, depth + 1)
        elif isinstance(items, Mapping):
            item = self.shape(items, resolver, path, depth + 1)
        else:
            return
        shape.type = f"array of {item.type}"
        if item.description:
            shape.notes.append(f"Each item: {item.description.rstrip('.')}.")
        shape.notes.extend(item.notes)

    def _object(self, own: Mapping[str, Any], shape: Shape, resolver: _Resolver, path: str, depth: int) -> None:
        props = own.get("properties")
        if isinstance(props, Mapping) and props:
            fields = [self.shape(sub, resolver, f"{path}.{name}", depth + 1).as_field(str(name)) for name, sub in props.items()]
            shape.notes.append("Fields: " + "; ".join(fields) + ".")
        extra = own.get("additionalProperties")
        if isinstance(extra, Mapping) and extra:
            values = self.shape(extra, resolver, f"{path}.*", depth + 1)
            text = values.text()
            shape.notes.append(f"Values: {values.type}{', ' + text if text else ''}.")



def schema_input(parameters: Mapping[str, Any]) -> dict[str, str]:
    """The ToolDoc ``input`` of a function's parameters (a JSON Schema of an object)."""
    converter = _Converter(parameters)
    entered: list[int] = []
    root, resolver, _ = converter.flatten(parameters, converter.resolver, "", entered)
    props: dict[str, Any] = dict(root.get("properties") or {}) if isinstance(root.get("properties"), Mapping) else {}
    # The arguments of every variant of a root union; one named in several variants differently
    # reads as the union of its schemas.
    for member in converter._options(root):
        inner = converter.shape_source(member, resolver, "")
        for name, sub in (inner.get("properties") or {}).items():
            if name not in props:
                props[name] = sub
            elif props[name] != sub:
                known = props[name].get("anyOf") if isinstance(props[name], Mapping) and set(props[name]) == {"anyOf"} else None
                props[name] = {"anyOf": [*(known or [props[name]]), sub]}
    inputs: dict[str, str] = {}
    for arg, schema in props.items():
        shape = converter.shape(schema, resolver, str(arg), 0)
        inputs[str(arg)] = f"{shape.type}, {shape.text()}"
    return inputs
