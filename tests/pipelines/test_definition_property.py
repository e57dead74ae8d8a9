"""Property tests of the definition validator: whatever comes in, it answers.

``validate`` must never raise, must return either ``(dict, [])`` or
``(None, [problems...])``, and a normalized definition must validate to
itself and survive a YAML round trip. Inputs: random JSON-like data, and
random mutations of the SPEC example (dropped keys, changed types, added
keys). The budget is kept small enough for the whole file to run in seconds.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.definition import (
    DefinitionError,
    Problem,
    dump_yaml,
    load_text,
    parse_text,
    validate,
)
from tests.pipelines.definition_examples import EXAMPLE_YAML

FAST = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Words the validator knows, so random data often reaches deep code paths.
VOCABULARY = [
    "name", "tasks", "type", "copy", "sql", "check", "source", "destination", "connection",
    "table", "query", "transformations", "function", "params", "columns", "where", "mapping",
    "keys", "mode", "upsert", "metrics", "group_by", "method", "checks", "row_count", "min",
    "max", "not_null", "unique", "depends_on", "retries", "timeout", "schedule", "timezone",
    "parameters", "param", "on_failure", "webhook", "email", "incremental", "partition",
    "chunks", "column", "filter", "select", "rename", "cast", "dedupe", "mask", "aggregate",
    "in", "is_null", "=", "count", "*", "tags", "a", "a.b", "", "0 2 * * *", "UTC",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(VOCABULARY)
)
keys = st.sampled_from(VOCABULARY) | st.text(max_size=8) | st.integers(-3, 3)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


def example() -> dict[str, Any]:
    data = parse_text(EXAMPLE_YAML)
    assert isinstance(data, dict)
    return data


def containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths (key/index tuples) of every dict and list inside ``value``."""
    found = [path] if isinstance(value, dict | list) else []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, child in items:
        found.extend(containers(child, (*path, key)))
    return found


def at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def mutated_examples(draw: st.DrawFn) -> dict[str, Any]:
    """The SPEC example after 1-3 random edits somewhere inside it."""
    data = example()
    for _ in range(draw(st.integers(1, 3))):
        target = at(data, draw(st.sampled_from(containers(data))))
        operation = draw(st.sampled_from(["drop", "change", "add", "duplicate"]))
        if not target:
            operation = "add"
        if isinstance(target, dict):
            key = draw(st.sampled_from(sorted(target, key=str))) if target else None
            if operation == "drop" and key is not None:
                del target[key]
            elif operation in ("change", "duplicate") and key is not None:
                target[key] = draw(json_like) if operation == "change" else copy.deepcopy(target)
            else:
                target[draw(keys)] = draw(json_like)
        else:
            index = draw(st.integers(0, max(len(target) - 1, 0)))
            if operation == "drop" and target:
                del target[index]
            elif operation == "change" and target:
                target[index] = draw(json_like)
            elif operation == "duplicate" and target:
                target.append(copy.deepcopy(target[index]))
            else:
                target.insert(index, draw(json_like))
    return data


texts = st.text(max_size=30)


def is_finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


@st.composite
def valid_variants(draw: st.DrawFn) -> dict[str, Any]:
    """The SPEC example with random but valid free text, names and options."""
    data = example()
    data["description"] = draw(texts)
    data["parameters"] = {"min_amount": draw(scalars.filter(is_finite)), "note": draw(texts)}
    data["tags"] = draw(st.lists(texts.filter(str.strip), unique=True, max_size=3))
    data["schedule"] = draw(st.sampled_from([None, "0 2 * * *", "@hourly", "*/5 1-3 * jan MON"]))
    data["timezone"] = draw(st.sampled_from(["UTC", "Europe/Paris", "America/New_York"]))
    data["tasks"][1]["sql"] = draw(
        st.sampled_from(["SELECT 1", "SELECT 1;\nSELECT 2\n", ["A", "B"]])
    )
    data["tasks"][0]["destination"]["table"] = draw(
        st.text(min_size=1, max_size=15).filter(
            lambda t: not any(c in t for c in './\\"`%\x00') and t.isprintable()
        )
    )
    for key in draw(
        st.lists(st.sampled_from(["incremental", "partition", "retries"]), unique=True)
    ):
        del data["tasks"][0][key]
    return data


def assert_well_formed(data: Any) -> dict[str, Any] | None:
    """validate's contract, checked on one input; returns the normalized result."""
    result = validate(data)
    assert isinstance(result, tuple) and len(result) == 2
    normalized, problems = result
    if normalized is None:
        assert problems, "invalid without a problem"
        assert all(isinstance(p, Problem) for p in problems)
        assert all(isinstance(p.path, str) and p.message for p in problems)
        assert not any(p.message.startswith("could not validate") for p in problems), problems
        return None
    assert isinstance(normalized, dict)
    assert problems == []
    # Idempotent: a normalized definition is valid and normalizes to itself.
    assert validate(normalized) == (normalized, [])
    # Plain JSON (no NaN, no tuples, no dates) that survives a YAML round trip.
    assert json.loads(json.dumps(normalized, allow_nan=False)) == normalized
    assert load_text(dump_yaml(normalized)) == normalized
    return normalized


@FAST
@given(json_like)
def test_it_answers_any_json_like_value(data: Any) -> None:
    assert_well_formed(data)


@FAST
@given(st.dictionaries(keys, json_like, max_size=8).map(lambda d: {"name": "p", **d}))
def test_it_answers_any_document_shaped_value(data: Any) -> None:
    assert_well_formed(data)


@FAST
@given(mutated_examples())
def test_it_answers_any_mutation_of_the_example(data: dict[str, Any]) -> None:
    assert_well_formed(data)


@FAST
@given(valid_variants())
def test_it_accepts_and_round_trips_valid_variants(data: dict[str, Any]) -> None:
    assert assert_well_formed(data) is not None


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200) | st.sampled_from([EXAMPLE_YAML[:n] for n in range(0, 1500, 37)]))
def test_it_parses_any_text_or_raises_definition_error(text: str) -> None:
    try:
        data = parse_text(text)
    except DefinitionError as error:
        assert error.problems and all(p.path == "" for p in error.problems)
        return
    assert_well_formed(data)
