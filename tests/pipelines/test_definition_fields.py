"""A definition's pipeline-level fields: pipelines.definition.fields.

Each rejection test asserts the exact path and message, since the API
returns them as-is and the editor places them by path; none needs the
database.
"""

from __future__ import annotations

from pipelines.definition import (
    load,
)
from tests.pipelines.definition_examples import (
    pipeline,
    problems,
)

# ---------------------------------------------------------------------------
# Schedule and timezone
# ---------------------------------------------------------------------------


def test_it_rejects_a_cron_with_the_wrong_number_of_fields() -> None:
    assert problems(pipeline(schedule="0 2 * * * *")) == [
        "schedule: invalid cron expression '0 2 * * * *': expected 5 fields "
        "(minute hour day-of-month month day-of-week) or "
        "@hourly/@daily/@weekly/@monthly/@yearly, got 6 fields"
    ]


def test_it_says_which_cron_field_is_wrong() -> None:
    assert problems(pipeline(schedule="0 25 * * *")) == [
        "schedule: invalid cron expression '0 25 * * *': hour field '25' is not valid "
        "(allowed: 0-23, *, lists, ranges, steps)"
    ]
    assert problems(pipeline(schedule="*/0 * * * *")) == [
        "schedule: invalid cron expression '*/0 * * * *': minute field '*/0' is not valid "
        "(allowed: 0-59, *, lists, ranges, steps)"
    ]


def test_it_rejects_a_cron_that_never_fires() -> None:
    assert problems(pipeline(schedule="0 0 30 2 *")) == [
        "schedule: invalid cron expression '0 0 30 2 *': never matches a date (e.g. February 30)"
    ]


def test_it_rejects_croniter_only_cron_extensions() -> None:
    assert problems(pipeline(schedule="R 2 * * *")) == [
        "schedule: invalid cron expression 'R 2 * * *': minute field 'R': "
        "H and R are not standard cron"
    ]


def test_it_rejects_a_non_string_schedule() -> None:
    assert problems(pipeline(schedule=5)) == ["schedule: expected a string, got integer"]


def test_it_accepts_cron_names_and_normalizes_them() -> None:
    assert load(pipeline(schedule="@daily"))["schedule"] == "0 0 * * *"
    assert load(pipeline(schedule="  0  2 * *   MON "))["schedule"] == "0 2 * * MON"
    assert load(pipeline(schedule=None))["schedule"] is None


def test_it_rejects_an_unknown_timezone() -> None:
    assert problems(pipeline(timezone="Mars/Olympus")) == [
        "timezone: unknown time zone 'Mars/Olympus' (use an IANA name such as 'Europe/Paris')"
    ]


def test_it_accepts_iana_timezones() -> None:
    assert load(pipeline(timezone="Europe/Paris"))["timezone"] == "Europe/Paris"


# ---------------------------------------------------------------------------
# Parameters and on_failure
# ---------------------------------------------------------------------------


def test_it_rejects_parameters_that_are_not_an_object() -> None:
    assert problems(pipeline(parameters=[1])) == ["parameters: expected an object, got list"]


def test_it_rejects_non_json_parameter_values() -> None:
    assert problems(pipeline(parameters={"a": {"b": 1}, "c": [1, [2]], "d": float("nan")})) == [
        "parameters.a: expected a string, number, boolean, null or a list, got object",
        "parameters.c[1]: expected a string, number, boolean or null, got list",
        "parameters.d: expected a string, number, boolean, null or a list, got number",
    ]


def test_it_accepts_scalar_and_list_parameters() -> None:
    params = {"a": 1, "b": "x", "c": None, "d": True, "e": 1.5, "f": [1, "x", None]}
    assert load(pipeline(parameters=params))["parameters"] == params


def test_it_rejects_bad_parameter_names() -> None:
    assert problems(pipeline(parameters={"a b": 1})) == [
        "parameters.a b: invalid name 'a b': use 1 to 100 letters, digits, '_' or '-', "
        "starting with a letter or '_'"
    ]


def test_it_rejects_redefining_a_builtin_parameter() -> None:
    assert problems(pipeline(parameters={"logical_date": "2024-01-01"})) == [
        "parameters.logical_date: 'logical_date' is a built-in parameter and cannot be redefined"
    ]


def test_it_rejects_a_non_http_webhook() -> None:
    assert problems(pipeline(on_failure={"webhook": "ftp://hooks.example.com/x"})) == [
        "on_failure.webhook: expected an http(s) URL, got 'ftp://hooks.example.com/x'"
    ]
    assert problems(pipeline(on_failure={"webhook": "https://"})) == [
        "on_failure.webhook: expected an http(s) URL, got 'https://'"
    ]


def test_it_rejects_unknown_on_failure_keys() -> None:
    assert problems(pipeline(on_failure={"slack": "#data"})) == [
        "on_failure.slack: unknown key 'slack' (expected one of: email, webhook)",
        "on_failure: needs webhook, email or both (or null for no notification)",
    ]


def test_it_rejects_a_bad_email() -> None:
    assert problems(pipeline(on_failure={"email": ["ops@example.com", "nobody"]})) == [
        "on_failure.email[1]: invalid email address 'nobody'"
    ]


def test_it_normalizes_on_failure_email_to_a_list() -> None:
    defn = load(pipeline(on_failure={"email": "ops@example.com", "webhook": "http://h/x"}))
    assert defn["on_failure"] == {"email": ["ops@example.com"], "webhook": "http://h/x"}
