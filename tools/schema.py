"""Checks on what admins type for a tool: its name and the JSON Schema of its arguments.

Pure functions: the admin form uses them to explain a mistake, the runner to check what the
model sends before anything is called.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import exceptions as js_exceptions
from jsonschema import validators

# OpenAI's rule for function names.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BUILTIN_NAMES = frozenset({"end_call", "transfer_call", "current_datetime"})
HEADER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class SchemaProblem(ValueError):
    """What is wrong with a tool's settings, in words an admin can act on."""


def check_name(name: str) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise SchemaProblem(
            "Use only letters a–z, digits, _ and - (no spaces), at most 64 characters, e.g. submit_order."
        )
    if name in BUILTIN_NAMES:
        raise SchemaProblem(f"{name} is the name of a built-in action; choose another name.")


def check_header_name(name: str) -> None:
    if name and not HEADER_NAME_PATTERN.match(name):
        raise SchemaProblem("A header name has no spaces or colons, e.g. X-Api-Key or Authorization.")


def check_parameters_schema(schema: Any) -> None:
    """The schema must be a valid JSON Schema describing a JSON object (OpenAI requires one)."""
    if not isinstance(schema, dict):
        raise SchemaProblem('The arguments must be described by a JSON object, e.g. {"type": "object", …}.')
    if schema.get("type") != "object":
        raise SchemaProblem('The top level must be {"type": "object", "properties": {…}}: the model sends an object.')
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise SchemaProblem('"properties" must be an object mapping each argument name to its schema.')
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise SchemaProblem('"required" must be a list of argument names, e.g. ["size"].')
    missing = [r for r in required if r not in properties]
    if missing:
        raise SchemaProblem(f'"required" names arguments that are not in "properties": {", ".join(missing)}.')
    try:
        validators.validator_for(schema).check_schema(schema)
    except js_exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise SchemaProblem(f"Not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}") from None


def compile_validator(schema: dict[str, Any]):
    """A validator for the arguments the model sends (the schema was checked when saved)."""
    return validators.validator_for(schema)(schema)


def argument_errors(validator, arguments: Any) -> list[str]:
    """Every way `arguments` breaks the schema, as short sentences (empty when they are fine)."""
    problems = []
    for error in sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"{where}: {error.message}" if where else error.message)
    return problems[:5]
