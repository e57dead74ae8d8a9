"""core.parsers: JSON no database can store is a 400 with its path, not a 500 later."""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.exceptions import ParseError

from core.errors import InvalidInput
from core.parsers import JSONParser, text_problems


def test_it_finds_nothing_in_storable_data() -> None:
    assert text_problems({"name": "p1", "tasks": [{"sql": "SELECT 'é'"}], "n": 1}) == []
    assert text_problems("plain") == []
    assert text_problems(None) == []


def test_it_names_the_path_of_a_nul_or_a_lone_surrogate() -> None:
    data = {"tasks": [{"name": "ok"}, {"sql": "SELECT 1\x00"}], "description": "\ud800"}
    assert sorted(text_problems(data)) == [
        ("description", "invalid Unicode (lone surrogate)"),
        ("tasks[1].sql", "NUL characters are not allowed"),
    ]
    assert text_problems(["a", "b\x00"]) == [("[1]", "NUL characters are not allowed")]


def test_it_refuses_a_bad_key_at_its_parent_path_without_looking_inside() -> None:
    data = {"tasks": [{"bad\x00key": {"deeper": "\x00"}}]}
    assert text_problems(data) == [("tasks[0]", "key: NUL characters are not allowed")]


def test_it_stops_after_twenty_problems() -> None:
    assert len(text_problems(["\x00"] * 100)) == 20


def test_it_walks_any_depth_without_recursion() -> None:
    data: object = "\x00"
    for _ in range(5000):
        data = [data]
    assert text_problems(data) == [("[0]" * 5000, "NUL characters are not allowed")]


def parse(body: str) -> object:
    return JSONParser().parse(io.BytesIO(body.encode()), "application/json", {})


def test_it_parses_json_like_drf() -> None:
    assert parse('{"name": "p1", "tags": ["a"]}') == {"name": "p1", "tags": ["a"]}


def test_it_answers_invalid_input_with_the_paths_of_unstorable_text() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(json.dumps({"name": "p\u0000", "tags": ["\ud800"]}))
    assert caught.value.detail == "invalid input"
    assert sorted(e["path"] for e in caught.value.errors) == ["name", "tags[0]"]


def test_it_answers_a_parse_error_for_nesting_too_deep_to_decode() -> None:
    with pytest.raises(ParseError) as caught:
        parse("[" * 100_000 + "]" * 100_000)
    assert "nested too deeply" in str(caught.value.detail)
