"""The OpenAPI document: valid, complete, and true to the real answers (schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.permissions import Level
from accounts.services import sharing_set
from accounts.tokens import token_pair
from connectors.models import Connection
from pipelines.services import execution_cancel, execution_create
from tests.http import url

SPEC_ENDPOINTS = {
    ("get", "/api/v1/pipelines"),
    ("post", "/api/v1/pipelines"),
    ("get", "/api/v1/pipelines/{pipeline_id}"),
    ("put", "/api/v1/pipelines/{pipeline_id}"),
    ("patch", "/api/v1/pipelines/{pipeline_id}"),
    ("delete", "/api/v1/pipelines/{pipeline_id}"),
    ("get", "/api/v1/pipelines/{pipeline_id}/versions"),
    ("post", "/api/v1/pipelines/{pipeline_id}/execute"),
    ("post", "/api/v1/pipelines/{pipeline_id}/backfill"),
    ("get", "/api/v1/pipelines/{pipeline_id}/permissions"),
    ("put", "/api/v1/pipelines/{pipeline_id}/permissions"),
    ("get", "/api/v1/pipelines/{pipeline_id}/watermarks"),
    ("delete", "/api/v1/pipelines/{pipeline_id}/watermarks/{task_name}"),
    ("get", "/api/v1/executions"),
    ("get", "/api/v1/executions/{execution_id}"),
    ("get", "/api/v1/executions/{execution_id}/status"),
    ("post", "/api/v1/executions/{execution_id}/cancel"),
    ("post", "/api/v1/executions/{execution_id}/rerun"),
    ("get", "/api/v1/executions/{execution_id}/tasks/{task_name}/logs"),
    ("get", "/api/v1/connections"),
    ("post", "/api/v1/connections"),
    ("get", "/api/v1/connections/{id}"),
    ("put", "/api/v1/connections/{id}"),
    ("patch", "/api/v1/connections/{id}"),
    ("delete", "/api/v1/connections/{id}"),
    ("get", "/api/v1/connections/{id}/permissions"),
    ("put", "/api/v1/connections/{id}/permissions"),
    ("post", "/api/v1/connections/{id}/test"),
    ("get", "/api/v1/audit-events"),
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/schema/definition.json"),
    ("get", "/api/v1/assets"),
    ("get", "/api/v1/assets/{name}/events"),
}

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.mark.django_db
def test_it_serves_a_valid_openapi_document_with_every_endpoint(
    api_client_for: Any, developer: Any
) -> None:
    response = api_client_for(developer).get(url("schema/"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    document = response.json()
    validate_schema(document)  # raises on an invalid OpenAPI 3 document
    assert document["openapi"].startswith("3.")
    operations = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert operations == SPEC_ENDPOINTS
    # Every operation documents the error format.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert {"400", "401", "403", "404"} <= set(operation["responses"]), (method, path)


@pytest.mark.django_db
def test_it_serves_yaml_on_request(api_client_for: Any, developer: Any) -> None:
    response = api_client_for(developer).get(url("schema?format=yaml"))
    assert response.status_code == 200 and b"openapi:" in response.content


@pytest.mark.django_db
def test_it_serves_swagger_docs_from_the_sidecar(developer: Any) -> None:
    from django.test import Client

    browser = Client()
    browser.force_login(developer)
    response = browser.get(url("docs/"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page and "/static/drf_spectacular_sidecar/" in page
    assert "cdn." not in page  # no assets from the internet


# ---------------------------------------------------------------- fuzzing


@pytest.fixture
def wsgi_in_test_transaction() -> Iterator[None]:
    """Let the WSGI app run inside the test's transaction, as Django's test client does.

    The handler closes "old" connections at request start and end, which
    inside the test transaction would break it.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(
    db: Any,
    developer: Any,
    viewer: Any,
    make_pipeline: Any,
    wsgi_in_test_transaction: None,
    no_broker: list[Any],
) -> dict[str, list[str]]:
    """Objects for the fuzzer to hit: path parameters are often replaced by these ids."""
    pipeline = make_pipeline("seeded", user=developer, schedule="0 2 * * *", tags=["a"])
    sharing_set(obj=pipeline, users={viewer: Level.VIEW}, groups={})
    running = execution_create(pipeline=pipeline)
    finished = execution_cancel(execution=execution_create(pipeline=pipeline))
    return {
        "pipeline_id": [str(pipeline.pk)],
        "execution_id": [str(running.pk), str(finished.pk)],
        "id": [str(Connection.objects.get(name="wh").pk)],
        "task_name": ["t1"],
    }


@pytest.fixture
def fuzz_auth(admin_user: Any, seeded: dict[str, list[str]]) -> dict[str, str]:
    """An admin's bearer header: admins reach every endpoint and object."""
    return {"Authorization": f"Bearer {token_pair(admin_user)['access_token']}"}


FUZZ_EXAMPLES = 10  # per operation and mode: ~600 requests, well under a minute

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_it_holds_up_to_fuzzing(fuzz_auth: dict[str, str], seeded: dict[str, list[str]]) -> None:
    """Schemathesis, valid and invalid data for every operation: no 5xx, nothing off-schema.

    The Python API rather than ``schema.parametrize``: its fixture-loaded
    variant does not run on pytest 9, and the schema needs a logged-in user.
    """
    from datadog_web.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application, headers=fuzz_auth)

    @schema.hook("flatmap_path_parameters")
    def real_ids(context: Any, path_parameters: dict[str, Any]) -> Any:
        # Random ids only ever answer 404: mix in the ids of real objects.
        choices = [path_parameters]
        for key, ids in seeded.items():
            if key in (path_parameters or {}):
                choices += [{**path_parameters, key: value} for value in ids]
        if len(choices) > 2:  # every real combination, e.g. execution + task name
            real = {k: seeded[k][0] for k in path_parameters if k in seeded}
            choices.append({**path_parameters, **real})
        return st.sampled_from(choices)

    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(SPEC_ENDPOINTS)
    # Deletes last, so the other operations still find the seeded objects.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=FUZZ_EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case: Any) -> None:
                case.call_and_validate(headers=fuzz_auth, checks=CHECKS)

            try:
                run()
            except Exception as exc:  # collect all, report all
                failures.append(f"{operation.label} ({mode}): {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
