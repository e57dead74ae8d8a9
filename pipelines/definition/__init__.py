"""Pipeline definitions (SPEC §2): parse, validate, normalize, dump. Imports no Django.

A definition arrives as JSON (API) or YAML (files, the UI editor).

- ``text``: parsing within size and depth bounds, duplicate keys refused,
  YAML nodes for line numbers, ``dump_yaml``;
- ``checker``: ``validate`` / ``load``, the pipeline-level walk and the task
  graph; each task's own keys are checked by its type in
  ``pipelines.tasktypes.registry``, each copy step by its function in
  ``connectors.transform``, all with one ``core.checker.Checker``;
- ``fields``: the pipeline-level fields (schedule, time zone, tags,
  parameters, failure alerts);
- ``refs``: the connections a definition uses, renamed, and its secrets cut out.

What this package cannot know (whether a connection exists, whether a table
has a column) is left to the callers: ``connection_refs`` lists the
connections a definition uses so the Django side can check them.
"""

from core.checker import MAX_PROBLEMS, Problem, capped, no_cycle_collection
from pipelines.definition.checker import load, load_text, task_schema, validate
from pipelines.definition.errors import DefinitionError
from pipelines.definition.fields import BUILTIN_PARAMETERS
from pipelines.definition.refs import connection_refs, redacted, with_connections_renamed
from pipelines.definition.text import (
    MAX_TEXT_CHARS,
    compose_yaml,
    dump_yaml,
    parse_document,
    parse_text,
)

__all__ = [
    "BUILTIN_PARAMETERS",
    "MAX_PROBLEMS",
    "MAX_TEXT_CHARS",
    "DefinitionError",
    "Problem",
    "capped",
    "compose_yaml",
    "connection_refs",
    "dump_yaml",
    "load",
    "load_text",
    "no_cycle_collection",
    "parse_document",
    "parse_text",
    "redacted",
    "task_schema",
    "validate",
    "with_connections_renamed",
]
