"""A small JSON Schema checker for `response_format: json_schema` gates (the subset models emit):
type, properties, required, additionalProperties=false, items, enum, const, anyOf, min/max items."""

from __future__ import annotations

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _type_ok(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES.get(kind, (object,)))


def errors(value: Any, schema: Any, path: str = "$") -> list[str]:
    """Every violation of `schema` by `value`, as 'path: message' strings (empty = valid)."""
    if not isinstance(schema, dict):
        return []
    out: list[str] = []
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    if kinds and not any(_type_ok(value, k) for k in kinds):
        return [f"{path}: expected {'/'.join(kinds)}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{path}: not one of {schema['enum']}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{path}: must be {schema['const']!r}")
    if "anyOf" in schema and all(errors(value, s, path) for s in schema["anyOf"]):
        out.append(f"{path}: matches none of anyOf")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                out.append(f"{path}: missing {name!r}")
        for name, sub in props.items():
            if name in value:
                out.extend(errors(value[name], sub, f"{path}.{name}"))
        if schema.get("additionalProperties") is False:
            out.extend(f"{path}: unexpected {k!r}" for k in value if k not in props)
    if isinstance(value, list):
        if "items" in schema:
            for i, item in enumerate(value):
                out.extend(errors(item, schema["items"], f"{path}[{i}]"))
        if len(value) < schema.get("minItems", 0):
            out.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{path}: more than {schema['maxItems']} items")
    return out
