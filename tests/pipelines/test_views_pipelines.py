"""Pipeline pages: list, page, run, enable, share, delete, diff, editor, validation."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest

from accounts.actor import Actor
from accounts.permissions import Level
from pipelines.models import Execution, Pipeline
from pipelines.services import pipeline_update
from pipelines.views import line_of
from tests.factories import make_execution, share
from tests.http import HTMX

pytestmark = pytest.mark.django_db


def sql_task(name: str, deps: list[str] | None = None) -> dict[str, Any]:
    task: dict[str, Any] = {"name": name, "type": "sql", "connection": "wh", "sql": "SELECT 1"}
    if deps:
        task["depends_on"] = deps
    return task


# ------------------------------------------------------------------ list


def test_it_lists_visible_pipelines_only(
    owned: Any, developer: Any, other_developer: Any, client_for: Any
) -> None:
    assert b">p1<" in client_for(developer).get("/pipelines").content
    response = client_for(other_developer).get("/pipelines")
    assert response.status_code == 200  # an empty list, never 403
    assert b">p1<" not in response.content
    assert b"No pipelines match" in response.content


def test_it_filters_pipelines(
    owned: Any, developer: Any, make_pipeline: Any, client_for: Any
) -> None:
    make_pipeline("other", user=developer, tags=["crm"], enabled=False)
    make_execution(owned, "failed", tasks={"t1": "failed"})
    client = client_for(developer)

    def names(**query: str) -> set[str]:
        content = client.get("/pipelines", query).content.decode()
        return {n for n in ("p1", "other") if f">{n}<" in content}

    assert names() == {"p1", "other"}
    assert names(q="oth") == {"other"}
    assert names(tag="sales") == {"p1"}
    assert names(status="failed") == {"p1"}
    assert names(status="never") == {"other"}
    assert names(enabled="no") == {"other"}
    assert names(enabled="yes") == {"p1"}


def test_it_shows_last_run_and_next_run(owned: Any, developer: Any, client_for: Any) -> None:
    make_execution(owned, "success")
    content = client_for(developer).get("/pipelines").content.decode()
    assert 'class="badge s-success"' in content
    assert "daily at 02:00" in content
    assert "in " in content  # next scheduled run, "in N hours"


def test_it_paginates_pipelines(developer: Any, make_pipeline: Any, client_for: Any) -> None:
    for i in range(30):
        make_pipeline(f"p{i:02d}", user=developer)
    client = client_for(developer)
    first = client.get("/pipelines").content.decode()
    assert ">p00<" in first and ">p29<" not in first
    assert 'rel="next"' in first
    second = client.get("/pipelines", {"page": 2}).content.decode()
    assert ">p29<" in second and ">p00<" not in second


def test_it_answers_htmx_list_requests_with_the_results_fragment(
    owned: Any, developer: Any, client_for: Any
) -> None:
    response = client_for(developer).get("/pipelines", {"q": "p"}, **HTMX)
    content = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in content and 'id="pipeline-results"' in content


def test_it_lists_pipelines_in_bounded_queries(
    many_executions: Any,
    developer: Any,
    make_pipeline: Any,
    client_for: Any,
    django_assert_max_num_queries: Any,
) -> None:
    for i in range(20):
        make_pipeline(f"q{i:02d}", user=developer)
    client = client_for(developer)
    with django_assert_max_num_queries(12):
        response = client.get("/pipelines")
    assert response.status_code == 200


# ------------------------------------------------------------------ page


def test_it_shows_the_pipeline_page_to_its_owner(
    owned: Any, developer: Any, client_for: Any
) -> None:
    make_execution(owned, "failed", tasks={"t1": "success", "t2": "failed"})
    content = client_for(developer).get(f"/pipelines/{owned.pk}").content.decode()
    assert "<svg" in content and 'data-task="t2"' in content
    assert 'class="node s-failed"' in content  # coloured by the last run
    assert "daily at 02:00" in content
    assert 'name="param_min_amount"' in content and 'value="100"' in content
    assert "Edit definition" in content and "Delete…" in content and 'id="share-form"' in content


def test_it_shows_a_shared_pipeline_without_the_buttons_of_other_roles(
    owned: Any, viewer: Any, operator: Any, client_for: Any
) -> None:
    share(owned, viewer, Level.VIEW)
    content = client_for(viewer).get(f"/pipelines/{owned.pk}").content.decode()
    assert "p1" in content
    assert 'id="run-form"' not in content
    assert "Edit definition" not in content and "Delete…" not in content
    assert 'id="share-form"' not in content

    share(owned, operator, Level.OPERATE)
    content = client_for(operator).get(f"/pipelines/{owned.pk}").content.decode()
    assert 'id="run-form"' in content and "Edit definition" not in content


def test_it_hides_pipelines_from_outsiders(
    owned: Any, other_developer: Any, client_for: Any
) -> None:
    client = client_for(other_developer)
    for url in ["", "/edit", "/delete", "/diff?a=1&b=1"]:
        assert client.get(f"/pipelines/{owned.pk}{url}").status_code == 404, url
    for url in ["/run", "/enabled", "/share", "/delete"]:
        assert client.post(f"/pipelines/{owned.pk}{url}").status_code == 404, url


def test_it_answers_404_for_unknown_pipelines(developer: Any, client_for: Any) -> None:
    response = client_for(developer).get("/pipelines/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert b"Not found" in response.content


def test_it_polls_the_pipeline_graph_while_its_last_run_is_active(
    owned: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    make_execution(owned, "running", tasks={"t1": "running"})
    fragment = client.get(f"/pipelines/{owned.pk}", **HTMX).content.decode()
    assert "<html" not in fragment and 'id="pipeline-live"' in fragment
    assert 'hx-trigger="every' in fragment
    make_execution(owned, "success", ago=1)
    assert 'hx-trigger="every' not in client.get(f"/pipelines/{owned.pk}", **HTMX).content.decode()


# ------------------------------------------------------------------ run


def test_it_runs_a_pipeline_with_parameters(owned: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).post(f"/pipelines/{owned.pk}/run", {"param_min_amount": "250"})
    execution = Execution.objects.get(pipeline=owned)
    assert response.status_code == 302
    assert response["Location"] == f"/runs/{execution.pk}"
    assert execution.parameters["min_amount"] == 250
    assert execution.trigger == "manual"


def test_it_lets_shared_operators_run(owned: Any, operator: Any, client_for: Any) -> None:
    share(owned, operator, Level.OPERATE)
    response = client_for(operator).post(f"/pipelines/{owned.pk}/run", {"param_min_amount": "100"})
    assert response.status_code == 302
    assert Execution.objects.filter(pipeline=owned, created_by=operator).exists()


def test_it_refuses_to_run_for_read_only_users(owned: Any, viewer: Any, client_for: Any) -> None:
    share(owned, viewer, Level.VIEW)
    response = client_for(viewer).post(f"/pipelines/{owned.pk}/run", {"param_min_amount": "1"})
    assert response.status_code == 403
    assert not Execution.objects.exists()


def test_it_shows_bad_parameters_inline(owned: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).post(
        f"/pipelines/{owned.pk}/run", {"param_min_amount": "lots"}
    )
    assert response.status_code == 400
    assert b"Enter a whole number" in response.content
    assert not Execution.objects.exists()


# ------------------------------------------------------------------ enable, share, delete


def test_it_disables_and_enables_a_pipeline(owned: Any, developer: Any, client_for: Any) -> None:
    client = client_for(developer)
    assert client.post(f"/pipelines/{owned.pk}/enabled", {"enabled": "false"}).status_code == 302
    owned.refresh_from_db()
    assert owned.enabled is False and owned.version == 2
    client.post(f"/pipelines/{owned.pk}/enabled", {"enabled": "true"})
    owned.refresh_from_db()
    assert owned.enabled is True


def test_it_refuses_enable_to_users_who_may_not_change(
    owned: Any, operator: Any, client_for: Any
) -> None:
    share(owned, operator, Level.OPERATE)
    assert (
        client_for(operator)
        .post(f"/pipelines/{owned.pk}/enabled", {"enabled": "false"})
        .status_code
        == 403
    )


def test_it_shares_and_unshares_a_pipeline(
    owned: Any, developer: Any, viewer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    response = client.post(
        f"/pipelines/{owned.pk}/share",
        {"principal_type": "user", "name": "view1", "level": "operate"},
    )
    assert response.status_code == 302
    assert client_for(viewer).get(f"/pipelines/{owned.pk}").status_code == 200
    content = client.get(f"/pipelines/{owned.pk}").content.decode()
    assert "view1" in content and "operate" in content

    client.post(f"/pipelines/{owned.pk}/share", {"remove_user": "view1"})
    assert client_for(viewer).get(f"/pipelines/{owned.pk}").status_code == 404


def test_it_shares_with_a_group(owned: Any, developer: Any, operator: Any, client_for: Any) -> None:
    response = client_for(developer).post(
        f"/pipelines/{owned.pk}/share",
        {"principal_type": "group", "name": "operator", "level": "operate"},
    )
    assert response.status_code == 302
    assert (
        client_for(operator)
        .post(f"/pipelines/{owned.pk}/run", {"param_min_amount": "1"})
        .status_code
        == 302
    )


def test_it_shows_sharing_errors_inline(owned: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).post(
        f"/pipelines/{owned.pk}/share",
        {"principal_type": "user", "name": "nobody", "level": "view"},
    )
    assert response.status_code == 400
    message = "cannot share with &#x27;nobody&#x27;: no active user with a role has this name"
    assert message.encode() in response.content


def test_it_lets_only_owners_share(owned: Any, other_developer: Any, client_for: Any) -> None:
    share(owned, other_developer, Level.EDIT)
    client = client_for(other_developer)
    assert 'id="share-form"' not in client.get(f"/pipelines/{owned.pk}").content.decode()
    response = client.post(
        f"/pipelines/{owned.pk}/share", {"principal_type": "user", "name": "dev2", "level": "edit"}
    )
    assert response.status_code == 403


def test_it_deletes_a_pipeline_after_confirmation(
    owned: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    confirm = client.get(f"/pipelines/{owned.pk}/delete")
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content
    assert Pipeline.objects.filter(pk=owned.pk).exists()
    response = client.post(f"/pipelines/{owned.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/pipelines"
    assert not Pipeline.objects.filter(pk=owned.pk).exists()


def test_it_refuses_delete_to_read_only_users(owned: Any, viewer: Any, client_for: Any) -> None:
    share(owned, viewer, Level.VIEW)
    client = client_for(viewer)
    assert client.get(f"/pipelines/{owned.pk}/delete").status_code == 403
    assert client.post(f"/pipelines/{owned.pk}/delete").status_code == 403
    assert Pipeline.objects.filter(pk=owned.pk).exists()


# ------------------------------------------------------------------ versions


def test_it_diffs_two_versions(owned: Any, developer: Any, client_for: Any) -> None:
    data = {**owned.definition, "description": "now with a description"}
    pipeline_update(pipeline=owned, data=data, actor=Actor.of(developer))
    client = client_for(developer)
    page = client.get(f"/pipelines/{owned.pk}").content.decode()
    assert "Compare" in page and "v2" in page
    response = client.get(f"/pipelines/{owned.pk}/diff", {"a": 1, "b": 2})
    content = response.content.decode()
    assert response.status_code == 200
    assert '<span class="add">+description: now with a description</span>' in content
    fragment = client.get(f"/pipelines/{owned.pk}/diff", {"a": 1, "b": 2}, **HTMX).content.decode()
    assert "<html" not in fragment and 'class="diff"' in fragment
    same = client.get(f"/pipelines/{owned.pk}/diff", {"a": 2, "b": 2}).content.decode()
    assert "are the same" in same


def test_it_refuses_a_diff_of_unknown_versions(owned: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).get(f"/pipelines/{owned.pk}/diff", {"a": 1, "b": 9})
    assert response.status_code == 400


# ------------------------------------------------------------------ editor

GOOD = """\
name: fresh
tasks:
  - name: a
    type: sql
    connection: wh
    sql: SELECT 1
  - name: b
    type: sql
    connection: wh
    sql: SELECT 2
    depends_on: [a]
"""


def test_it_opens_the_editor_for_developers_only(
    developer: Any, operator: Any, viewer: Any, client_for: Any
) -> None:
    response = client_for(developer).get("/pipelines/new")
    assert response.status_code == 200
    assert b'hx-trigger="keyup changed delay:500ms' in response.content
    assert client_for(operator).get("/pipelines/new").status_code == 403
    assert client_for(viewer).get("/pipelines/new").status_code == 403
    assert client_for(viewer).post("/pipelines/new", {"definition": GOOD}).status_code == 403
    assert b"New pipeline" not in client_for(viewer).get("/pipelines").content


def test_it_creates_a_pipeline_from_yaml(owned: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).post("/pipelines/new", {"definition": GOOD, "format": ""})
    pipeline = Pipeline.objects.get(name="fresh")
    assert response.status_code == 302 and response["Location"] == f"/pipelines/{pipeline.pk}"
    assert pipeline.version == 1 and pipeline.created_by == developer


def test_it_creates_a_pipeline_from_json(owned: Any, developer: Any, client_for: Any) -> None:
    text = json.dumps({"name": "as_json", "tasks": [sql_task("a")]})
    response = client_for(developer).post("/pipelines/new", {"definition": text, "format": "json"})
    assert response.status_code == 302
    assert Pipeline.objects.filter(name="as_json").exists()


def test_it_lists_problems_at_their_path_and_line_on_save(
    owned: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    bad = GOOD.replace("depends_on: [a]", "depends_on: [x]")
    response = client.post("/pipelines/new", {"definition": bad})
    content = response.content.decode()
    assert response.status_code == 400
    assert 'data-path="tasks[1].depends_on[0]"' in content and "(line 11)" in content
    assert "name: fresh" in content  # the text is kept
    # Connections are checked once the definition itself is valid.
    unknown = GOOD.replace(
        "connection: wh\n    sql: SELECT 1", "connection: nope\n    sql: SELECT 1"
    )
    content = client.post("/pipelines/new", {"definition": unknown}).content.decode()
    assert 'data-path="tasks[0].connection"' in content and "unknown connection" in content
    assert "(line 5)" in content
    assert not Pipeline.objects.filter(name="fresh").exists()


def test_it_reports_syntax_errors(owned: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).post("/pipelines/new", {"definition": "name: [unclosed"})
    assert response.status_code == 400
    assert b"invalid YAML" in response.content


def test_it_refuses_a_taken_name(owned: Any, developer: Any, client_for: Any) -> None:
    response = client_for(developer).post(
        "/pipelines/new", {"definition": GOOD.replace("fresh", "p1")}
    )
    assert response.status_code == 400
    assert b"already exists" in response.content


def test_it_edits_a_pipeline_into_a_new_version(
    owned: Any, developer: Any, client_for: Any
) -> None:
    client = client_for(developer)
    page = client.get(f"/pipelines/{owned.pk}/edit").content.decode()
    assert "name: p1" in page and "depends_on: [t1]" in page
    text = page.split('hx-sync="this:replace">\n', 1)[1].split("</textarea>", 1)[0]
    text = html.unescape(text).replace("SELECT 2", "SELECT 3")
    response = client.post(f"/pipelines/{owned.pk}/edit", {"definition": text, "format": "yaml"})
    assert response.status_code == 302
    owned.refresh_from_db()
    assert owned.version == 2 and owned.definition["tasks"][1]["sql"] == "SELECT 3"
    # Saving the same text again makes no new version.
    client.post(f"/pipelines/{owned.pk}/edit", {"definition": text, "format": "yaml"})
    owned.refresh_from_db()
    assert owned.version == 2


def test_it_refuses_the_editor_to_users_who_may_not_change(
    owned: Any, operator: Any, other_developer: Any, client_for: Any
) -> None:
    share(owned, operator, Level.OPERATE)
    assert client_for(operator).get(f"/pipelines/{owned.pk}/edit").status_code == 403
    share(owned, other_developer, Level.EDIT)
    assert client_for(other_developer).get(f"/pipelines/{owned.pk}/edit").status_code == 200


def test_it_lets_an_edit_share_save_a_pipeline_on_the_owners_connections(
    owned: Any, developer: Any, other_developer: Any, client_for: Any
) -> None:
    # dev2 may not use dev1's ``wh``; the pipeline already binds it, so a
    # change that keeps it is valid in the live check and saves.
    share(owned, other_developer, Level.EDIT)
    client = client_for(other_developer)
    page = client.get(f"/pipelines/{owned.pk}/edit").content.decode()
    text = page.split('hx-sync="this:replace">\n', 1)[1].split("</textarea>", 1)[0]
    text = html.unescape(text).replace("SELECT 2", "SELECT 3")
    form = {"definition": text, "format": "yaml", "pipeline_id": str(owned.pk)}
    assert "Valid definition" in client.post("/pipelines/validate", form, **HTMX).content.decode()
    assert client.post(f"/pipelines/{owned.pk}/edit", form).status_code == 302
    owned.refresh_from_db()
    assert owned.version == 2 and owned.definition["tasks"][1]["sql"] == "SELECT 3"
    # Without the pipeline, the same text adds ``wh``, which dev2 cannot see.
    del form["pipeline_id"]
    content = client.post("/pipelines/validate", form, **HTMX).content
    assert b"unknown connection &#x27;wh&#x27;" in content


def test_it_validates_as_the_user_types(owned: Any, developer: Any, client_for: Any) -> None:
    client = client_for(developer)
    bad = GOOD.replace("depends_on: [a]", "depends_on: [a, b]")
    response = client.post("/pipelines/validate", {"definition": bad}, **HTMX)
    content = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in content and 'id="feedback"' in content
    assert 'data-path="tasks[1].depends_on' in content
    good = client.post("/pipelines/validate", {"definition": GOOD}, **HTMX).content.decode()
    assert "Valid definition" in good
    assert 'data-task="a"' in good and 'data-task="b"' in good and 'class="edge"' in good


def test_it_hides_connections_the_user_may_not_use_from_validation(
    owned: Any, other_developer: Any, client_for: Any
) -> None:
    content = client_for(other_developer).post("/pipelines/validate", {"definition": GOOD}, **HTMX)
    assert b"unknown connection &#x27;wh&#x27;" in content.content


def test_it_refuses_validation_to_read_only_roles(viewer: Any, client_for: Any) -> None:
    assert (
        client_for(viewer).post("/pipelines/validate", {"definition": GOOD}, **HTMX).status_code
        == 403
    )


COPY_FIELDS = {
    "copy-task_name": "copy_orders",
    "copy-source_connection": "wh",
    "copy-source_table": "orders",
    "copy-destination_connection": "wh",
    "copy-destination_table": "orders_clean",
    "copy-mode": "upsert",
    "copy-keys": "id",
    "copy-not_null": "email",
    "copy-select": "id, email, amount",
    "copy-rename": "amount=total",
    "copy-depends_on": "a",
}


def test_it_appends_a_copy_task_from_the_helper(
    owned: Any, developer: Any, client_for: Any
) -> None:
    response = client_for(developer).post(
        "/pipelines/copy-task", {"definition": GOOD, "format": "", **COPY_FIELDS}, **HTMX
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert response["HX-Trigger-After-Settle"] == "definition-changed"
    assert "<html" not in content and 'id="editor-form"' in content
    from pipelines.definition import parse_text, validate

    text = content.split('hx-sync="this:replace">\n', 1)[1].split("</textarea>", 1)[0]
    data = parse_text(html.unescape(text))
    task = data["tasks"][-1]
    assert task["name"] == "copy_orders" and task["depends_on"] == ["a"]
    assert task["destination"] == {
        "connection": "wh",
        "table": "orders_clean",
        "mode": "upsert",
        "keys": ["id"],
    }
    assert [t["function"] for t in task["transformations"]] == ["filter", "select", "rename"]
    normalized, problems = validate(data)
    assert problems == [] and normalized is not None


def test_it_keeps_json_definitions_json(owned: Any, developer: Any, client_for: Any) -> None:
    text = json.dumps({"name": "j", "tasks": [sql_task("a")]})
    content = (
        client_for(developer)
        .post("/pipelines/copy-task", {"definition": text, "format": "json", **COPY_FIELDS}, **HTMX)
        .content.decode()
    )
    assert "&quot;copy_orders&quot;" in content


def test_it_shows_helper_errors_inline(owned: Any, developer: Any, client_for: Any) -> None:
    fields = {**COPY_FIELDS, "copy-keys": "", "copy-task_name": "9bad"}
    response = client_for(developer).post(
        "/pipelines/copy-task", {"definition": GOOD, **fields}, **HTMX
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "upsert needs keys" in content and "starting with a letter" in content
    assert '<details id="copy-helper" open>' in content
    broken = (
        client_for(developer)
        .post("/pipelines/copy-task", {"definition": "tasks: [", **COPY_FIELDS}, **HTMX)
        .content.decode()
    )
    assert "fix the definition first" in broken


def test_it_works_without_javascript_for_the_helper(
    owned: Any, developer: Any, client_for: Any
) -> None:
    response = client_for(developer).post(
        "/pipelines/copy-task", {"definition": GOOD, **COPY_FIELDS}
    )
    assert response.status_code == 200
    assert b"<html" in response.content and b"copy_orders" in response.content


# ------------------------------------------------------------------ helpers


def test_it_finds_the_line_of_a_path() -> None:
    text = GOOD
    assert line_of(text, "tasks[1].depends_on[0]") == 11
    assert line_of(text, "tasks[0].connection") == 5
    assert line_of(text, "tasks[1]") == 7
    assert line_of(text, "tasks[5].name") == 2  # deepest existing node: the list
    assert line_of(text, "") is None
    assert line_of("{: bad", "name") is None
    as_json = json.dumps({"name": "x", "tasks": [sql_task("a")]}, indent=2)
    assert line_of(as_json, "tasks[0].sql") == 8


def test_it_lets_admins_see_and_change_everything(
    owned: Any, admin_user: Any, client_for: Any
) -> None:
    client = client_for(admin_user)
    content = client.get(f"/pipelines/{owned.pk}").content.decode()
    assert (
        'id="run-form"' in content and "Edit definition" in content and 'id="share-form"' in content
    )


def test_it_never_answers_500_to_a_definition_that_is_not_an_object(
    owned: Any, developer: Any, client_for: Any
) -> None:
    for text in ["[]", "42", "null", "- a\n- b"]:
        response = client_for(developer).post("/pipelines/new", {"definition": text})
        assert response.status_code == 400, text
    response = client_for(developer).post(
        "/pipelines/copy-task", {"definition": "[1]", **COPY_FIELDS}
    )
    assert response.status_code == 200
