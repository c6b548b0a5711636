"""The fields an assistant's after-call analysis extracts: a small table people edit, kept as strict JSON Schema.

Structured outputs (strict) accept only closed objects whose properties are all required, so an
optional field is a nullable type. Pure functions, no Django models: the admin's table editor,
the model's validation and the analysis runner share them.
"""

from __future__ import annotations

import re
from typing import Any

FIELD_TYPES = {
    "text": "Text",
    "number": "Number",
    "yes_no": "Yes / no",
    "date": "Date",
    "choice": "One of a list",
}
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED = {"summary", "outcome", "reason"}
MAX_FIELDS = 50
_JSON_TYPE = {"text": "string", "number": "number", "yes_no": "boolean", "date": "string", "choice": "string"}


class SchemaProblem(ValueError):
    """What is wrong with the fields, in one sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def fields_to_schema(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Table rows ({name, type, description, required, choices}) → strict JSON Schema ({} for no rows)."""
    problems: list[str] = []
    properties: dict[str, Any] = {}
    for i, row in enumerate(rows, start=1):
        name = str(row.get("name") or "").strip()
        kind = str(row.get("type") or "text")
        if not name:
            problems.append(f"Row {i}: give the field a name.")
            continue
        if not NAME_RE.match(name):
            problems.append(
                f"Field “{name}”: use letters, digits and _ only (e.g. booking_date), starting with a letter."
            )
            continue
        if name in properties or name in RESERVED:
            problems.append(f"Field “{name}”: the name is already used.")
            continue
        if kind not in FIELD_TYPES:
            problems.append(f"Field “{name}”: unknown type {kind!r}.")
            continue
        required = bool(row.get("required"))
        json_type = _JSON_TYPE[kind]
        prop: dict[str, Any] = {"type": json_type if required else [json_type, "null"]}
        description = str(row.get("description") or "").strip()
        if description:
            prop["description"] = description
        if kind == "date":
            prop["format"] = "date"
        if kind == "choice":
            raw = row.get("choices") or []
            choices = [c.strip() for c in (raw.split(",") if isinstance(raw, str) else raw) if str(c).strip()]
            if len(choices) < 2:
                problems.append(f"Field “{name}”: list at least two choices, separated by commas.")
                continue
            prop["enum"] = choices if required else [*choices, None]
        properties[name] = prop
    if len(properties) > MAX_FIELDS:
        problems.append(f"At most {MAX_FIELDS} fields.")
    if problems:
        raise SchemaProblem(problems)
    if not properties:
        return {}
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def field_order(schema: dict[str, Any] | None) -> list[str]:
    """The fields' names in the order people set them. PostgreSQL's jsonb does not keep the order of
    an object's keys, but keeps arrays: strict schemas list every property in "required", in order."""
    props = (schema or {}).get("properties") or {}
    ordered = [name for name in (schema or {}).get("required") or [] if name in props]
    return ordered + [name for name in props if name not in ordered]


def ordered_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its properties back in the order people set them (for the model and the table)."""
    if not schema or "properties" not in schema:
        return schema
    props = schema["properties"]
    return {**schema, "properties": {name: props[name] for name in field_order(schema)}}


def schema_to_fields(schema: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The table rows of a schema the table made; None if it uses more than the table can show."""
    if not schema:
        return []
    rows = []
    for name, prop in ordered_schema(schema).get("properties", {}).items():
        if not isinstance(prop, dict) or set(prop) - {"type", "description", "format", "enum"}:
            return None
        types = prop.get("type")
        types = types if isinstance(types, list) else [types]
        required = "null" not in types
        base = [t for t in types if t != "null"]
        if len(base) != 1:
            return None
        kind = {"string": "text", "number": "number", "boolean": "yes_no"}.get(base[0])
        if kind is None:
            return None
        if prop.get("format") == "date":
            kind = "date"
        elif "format" in prop:
            return None
        choices = [c for c in prop.get("enum") or [] if c is not None]
        if choices:
            kind = "choice"
        rows.append(
            {
                "name": name,
                "type": kind,
                "description": prop.get("description", ""),
                "required": required,
                "choices": ", ".join(map(str, choices)),
            }
        )
    return rows


def strict_problems(schema: Any, where: str = "the schema") -> list[str]:
    """Why `schema` is not a strict structured-output object schema (empty: it is)."""
    if schema in ({}, None):
        return []
    if not isinstance(schema, dict):
        return [f"{where} must be a JSON object."]
    problems: list[str] = []
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if where == "the schema" and types != ["object"]:
        return ['The schema must be an object: {"type": "object", "properties": {…}, …}.']
    if "object" in types:
        props = schema.get("properties")
        if not isinstance(props, dict):
            return [f"{where}: an object needs “properties”."]
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: set “additionalProperties”: false.")
        missing = [k for k in props if k not in (schema.get("required") or [])]
        if missing:
            problems.append(
                f"{where}: every property must be listed in “required” (make optional ones nullable, "
                f'e.g. "type": ["string", "null"]); missing: {", ".join(missing)}.'
            )
        if where == "the schema":
            clash = sorted(RESERVED & set(props))
            if clash:
                problems.append(f"the names {', '.join(clash)} are used by the analysis itself; rename them.")
        for key, sub in props.items():
            problems += strict_problems(sub, f"“{key}”") if isinstance(sub, dict) else [f"“{key}” must be an object."]
    if "array" in types and isinstance(schema.get("items"), dict):
        problems += strict_problems(schema["items"], f"{where} items")
    return problems
