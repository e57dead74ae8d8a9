"""core.errors: one error type per answer, carrying every problem with its path."""

from __future__ import annotations

import pytest

from core.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError


@pytest.mark.parametrize(
    ("error", "status"),
    [(ServiceError, 400), (InvalidInput, 400), (NotFound, 404), (Forbidden, 403), (Conflict, 409)],
)
def test_it_gives_each_error_its_status_code(error: type[ServiceError], status: int) -> None:
    exc = error("nope")
    assert exc.status_code == status
    assert isinstance(exc, ServiceError)


def test_it_keeps_each_problem_with_its_path() -> None:
    exc = InvalidInput("invalid definition", [("tasks[0].name", "required"), ("", "empty")])
    assert exc.detail == "invalid definition"
    assert exc.errors == [
        {"path": "tasks[0].name", "message": "required"},
        {"path": "", "message": "empty"},
    ]
    assert exc.args == ("invalid definition",)


def test_it_reads_as_the_detail_then_one_line_a_problem() -> None:
    assert str(NotFound("not found")) == "not found"
    exc = Conflict("in use", iter([("pipelines", "p1 uses it"), ("", "and 2 more")]))
    assert str(exc) == "in use\npipelines: p1 uses it\nand 2 more"
