"""The definition format as one JSON Schema (draft 2020-12), for editors.

Published at ``/api/v1/schema/definition.json``: the browser editor completes
keys, task types, transformation functions and parameters from it, and any
JSON Schema aware editor (VS Code's YAML extension, for one) can use it too.
It describes shapes only; the checker (``pipelines.definition.checker``)
stays the judge, with the paths and messages users see. It cannot drift
from the checker: its top-level keys are the checker's (a test compares
them), each task is ``task_schema`` of a registered type (built from the
type's own ``keys``), and tests validate every valid example against it.
"""

from __future__ import annotations

from typing import Any

from core.checker import NAME_SCHEMA
from pipelines.definition import assets, fields
from pipelines.definition.checker import PIPELINE_REQUIRED, task_schema
from pipelines.tasktypes.registry import TASK_TYPES

SCHEMA_ID = "/api/v1/schema/definition.json"

_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_URL = {"type": "string", "format": "uri", "pattern": "^https?://"}

# One entry per top-level key of the checker's ``PIPELINE_FIELDS``.
TOP_LEVEL: dict[str, dict[str, Any]] = {
    "name": {**NAME_SCHEMA, "description": "Unique pipeline name"},
    "description": {"type": "string"},
    "schedule": {
        "description": "A 5-field cron expression (or @hourly, @daily, ...), "
        "or {assets: [...]}: run when every listed asset has a new event",
        "oneOf": [
            {"type": "null"},
            {
                "type": "string",
                "examples": ["0 2 * * *", "@hourly", *sorted(fields.CRON_ALIASES)],
            },
            {
                "type": "object",
                "properties": {
                    "assets": {**assets.OUTLETS_SCHEMA, "minItems": 1},
                },
                "required": ["assets"],
                "additionalProperties": False,
            },
        ],
    },
    "timezone": {"type": "string", "default": "UTC", "examples": ["UTC", "Europe/Paris"]},
    "catchup": {"type": "boolean", "default": False},
    "enabled": {"type": "boolean", "default": True},
    "tags": {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 100},
        "uniqueItems": True,
    },
    "max_active_runs": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 16},
    "parameters": {
        "type": "object",
        "description": "Defaults a run may override; built-ins: "
        + ", ".join(sorted(fields.BUILTIN_PARAMETERS)),
        "propertyNames": NAME_SCHEMA,
        "additionalProperties": {"oneOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
    },
    "on_failure": {
        "oneOf": [
            {"type": "null"},
            {
                "type": "object",
                "properties": {
                    "webhook": _URL,
                    "email": {
                        "oneOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        ]
                    },
                },
                "minProperties": 1,
                "additionalProperties": False,
            },
        ]
    },
    "tasks": {
        "type": "array",
        "minItems": 1,
        "items": {"$ref": "#/$defs/task"},
    },
}


def definition_schema() -> dict[str, Any]:
    """The whole definition format: the top-level keys and one branch per task type."""
    types = sorted(TASK_TYPES)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "DataDog Platform pipeline definition",
        "type": "object",
        "properties": TOP_LEVEL,
        "required": list(PIPELINE_REQUIRED),
        "additionalProperties": False,
        "$defs": {
            "task": {
                "type": "object",
                "properties": {"type": {"enum": types}},
                "required": ["name", "type"],
                # One branch per type, chosen by ``type`` (editors complete its keys).
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": name}}},
                        "then": {"$ref": f"#/$defs/task_{name}"},
                    }
                    for name in types
                ],
            },
            **{f"task_{name}": task_schema(name) for name in types},
        },
    }
