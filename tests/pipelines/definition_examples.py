"""Definitions for the definition tests: the SPEC example and small builders.

Shared by tests/pipelines/test_definition*.py and test_tasktypes_*.py, which
check one definition through ``pipelines.definition.validate`` each.
"""

from __future__ import annotations

from typing import Any

from pipelines.definition import parse_text, validate

# SPEC §2, verbatim (comments included: the parser must cope with them).
EXAMPLE_YAML = """\
name: orders_daily            # unique, [a-z0-9_-], max 100
description: Clean orders into the warehouse
schedule: "0 2 * * *"         # cron, optional; timezone optional (default UTC)
catchup: false                # run missed intervals after downtime?
enabled: true
tags: [sales, nightly]
max_active_runs: 1
parameters: {min_amount: 100} # defaults; a run may override
on_failure: {webhook: "https://hooks.example.com/x"}   # optional
tasks:
  - name: copy_orders
    type: copy
    source: {connection: shop_pg, table: public.orders}     # or query: "SELECT ..."
    transformations:
      - {name: filter_nulls, function: filter, params: {columns: [email]}}
      - {name: big_only, function: filter, params: {where: [[amount, ">=", {param: min_amount}]]}}
      - {name: pick, function: select, params: {columns: [id, email, amount, created_at]}}
      - {name: rename, function: rename, params: {mapping: {amount: total}}}
    destination: {connection: dwh_pg, table: staging.orders, mode: upsert, keys: [id]}
    incremental: {column: created_at}        # optional: only rows past the last watermark
    partition: {column: id, chunks: 8}       # optional: parallel chunks across workers
    retries: 3
    retry_delay: 10          # seconds, doubled each attempt, capped
    timeout: 3600            # seconds
  - name: daily_totals
    type: sql
    connection: dwh_pg
    sql: "INSERT INTO marts.daily_totals SELECT ... WHERE day = %(logical_date)s"
    depends_on: [copy_orders]
  - name: orders_ok
    type: check
    connection: dwh_pg
    table: staging.orders
    checks: [{row_count: {min: 1}}, {not_null: [email]}, {unique: [id]}]
    depends_on: [daily_totals]
"""

# The same definition as an API client would send it.
EXAMPLE_JSON = """\
{
  "name": "orders_daily",
  "description": "Clean orders into the warehouse",
  "schedule": "0 2 * * *",
  "catchup": false,
  "enabled": true,
  "tags": ["sales", "nightly"],
  "max_active_runs": 1,
  "parameters": {"min_amount": 100},
  "on_failure": {"webhook": "https://hooks.example.com/x"},
  "tasks": [
    {
      "name": "copy_orders",
      "type": "copy",
      "source": {"connection": "shop_pg", "table": "public.orders"},
      "transformations": [
        {"name": "filter_nulls", "function": "filter", "params": {"columns": ["email"]}},
        {"name": "big_only", "function": "filter",
         "params": {"where": [["amount", ">=", {"param": "min_amount"}]]}},
        {"name": "pick", "function": "select",
         "params": {"columns": ["id", "email", "amount", "created_at"]}},
        {"name": "rename", "function": "rename", "params": {"mapping": {"amount": "total"}}}
      ],
      "destination": {"connection": "dwh_pg", "table": "staging.orders",
                      "mode": "upsert", "keys": ["id"]},
      "incremental": {"column": "created_at"},
      "partition": {"column": "id", "chunks": 8},
      "retries": 3,
      "retry_delay": 10,
      "timeout": 3600
    },
    {
      "name": "daily_totals",
      "type": "sql",
      "connection": "dwh_pg",
      "sql": "INSERT INTO marts.daily_totals SELECT ... WHERE day = %(logical_date)s",
      "depends_on": ["copy_orders"]
    },
    {
      "name": "orders_ok",
      "type": "check",
      "connection": "dwh_pg",
      "table": "staging.orders",
      "checks": [{"row_count": {"min": 1}}, {"not_null": ["email"]}, {"unique": ["id"]}],
      "depends_on": ["daily_totals"]
    }
  ]
}
"""


def example() -> dict[str, Any]:
    """A fresh, parsed (not yet validated) copy of the SPEC example."""
    data = parse_text(EXAMPLE_YAML)
    assert isinstance(data, dict)
    return data


def problems(data: Any) -> list[str]:
    """The problems of an invalid definition, as ``path: message`` strings."""
    normalized, found = validate(data)
    assert normalized is None
    assert found
    return [str(problem) for problem in found]


def copy_task(**changes: Any) -> dict[str, Any]:
    """A minimal valid copy task, with ``changes`` applied."""
    task: dict[str, Any] = {
        "name": "copy",
        "type": "copy",
        "source": {"connection": "src", "table": "orders"},
        "destination": {"connection": "dst", "table": "orders"},
    }
    task.update(changes)
    return task


def pipeline(*tasks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A minimal definition holding ``tasks`` (one copy task by default)."""
    return {"name": "p", "tasks": list(tasks) or [copy_task()], **fields}


def steps(*transformations: dict[str, Any]) -> dict[str, Any]:
    """A definition whose single copy task runs ``transformations``."""
    return pipeline(copy_task(transformations=list(transformations)))


def first_steps_problems(*transformations: dict[str, Any]) -> list[str]:
    return problems(steps(*transformations))
