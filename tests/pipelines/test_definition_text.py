"""Definition text: pipelines.definition.text (JSON and YAML within bounds).

Each rejection test asserts the exact path and message, since the API
returns them as-is and the editor places them by path; none needs the
database.
"""

from __future__ import annotations

import pytest

from pipelines.definition import (
    DefinitionError,
    parse_text,
)
from tests.pipelines.definition_examples import (
    problems,
)

# ---------------------------------------------------------------------------
# parse_text
# ---------------------------------------------------------------------------


def test_it_reports_yaml_syntax_errors_with_line_and_column() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_text("name: x\ntasks:\n  - name: a\n   bad: [\n")
    (problem,) = caught.value.problems
    assert problem.path == ""
    assert problem.message.startswith("invalid YAML at line 4, column ")


def test_it_reports_json_syntax_errors_with_line_and_column() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_text('{"name": "x",\n "tasks": [}', "json")
    assert str(caught.value) == "invalid JSON at line 2, column 12: Expecting value"


def test_it_prefers_the_json_error_for_json_looking_text() -> None:
    with pytest.raises(DefinitionError, match=r"^invalid JSON at line 1, column 2: "):
        parse_text("{'name': 'x',")


def test_it_parses_yaml_when_json_fails() -> None:
    assert parse_text("name: x\n") == {"name": "x"}
    assert parse_text('{"name": "x"}') == {"name": "x"}


def test_it_forces_a_format() -> None:
    assert parse_text("name: x", "yaml") == {"name": "x"}
    with pytest.raises(DefinitionError, match="invalid JSON"):
        parse_text("name: x", "json")
    with pytest.raises(DefinitionError, match="unknown format 'xml'"):
        parse_text("<a/>", "xml")


def test_it_rejects_duplicate_keys_in_yaml() -> None:
    with pytest.raises(DefinitionError) as caught:
        parse_text("name: a\ntasks: []\nname: b\n")
    assert str(caught.value) == "invalid YAML at line 3, column 1: duplicate key 'name'"


def test_it_allows_yaml_merge_keys() -> None:
    text = "defaults: &d {retries: 3, timeout: 60}\ntask: {<<: *d, retries: 5}\n"
    assert parse_text(text)["task"] == {"retries": 5, "timeout": 60}


def test_it_rejects_duplicate_keys_in_json() -> None:
    with pytest.raises(DefinitionError, match="^invalid JSON: duplicate key 'name'$"):
        parse_text('{"name": "a", "name": "b"}', "json")


def test_it_rejects_nan_in_json() -> None:
    with pytest.raises(DefinitionError, match="NaN is not allowed"):
        parse_text('{"x": NaN}', "json")


def test_it_keeps_yaml_dates_as_strings() -> None:
    assert parse_text("start: 2024-01-01\nat: 2024-01-01T10:00:00Z\n") == {
        "start": "2024-01-01",
        "at": "2024-01-01T10:00:00Z",
    }


def test_it_rejects_a_yaml_alias_bomb() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]")
    with pytest.raises(DefinitionError, match="^document too large: more than 100000 values$"):
        parse_text("\n".join(lines))


def test_it_rejects_recursive_yaml_anchors() -> None:
    with pytest.raises(
        DefinitionError, match="^document too large: nested more than 64 levels deep$"
    ):
        parse_text("a: &a [*a]")


def test_it_rejects_deep_nesting() -> None:
    with pytest.raises(DefinitionError):
        parse_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DefinitionError):
        parse_text("[" * 100_000 + "]" * 100_000, "json")


def test_it_rejects_huge_texts() -> None:
    with pytest.raises(DefinitionError, match="^document longer than 1048576 characters$"):
        parse_text("#" * (1 << 20) + "#")


def test_it_rejects_non_text() -> None:
    with pytest.raises(DefinitionError, match="expected text, got bytes"):
        parse_text(b"name: x")  # type: ignore[arg-type]


def test_it_reports_an_empty_document() -> None:
    assert problems(parse_text("")) == ["expected an object, got null"]
