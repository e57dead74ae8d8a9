"""Failure alerts: ``on_failure: {webhook, email}`` of a pipeline (SPEC §2, §7).

When an execution finishes ``failed``, the process that finished it (usually
a worker) enqueues ``send_failure_alert`` through django-q2; a worker sends
it. The run is already committed by then, so a slow or broken receiver can
neither block nor fail it. Sending has bounded retries and timeouts.

Exactly one alert per failed run and channel: the sending task first claims
``alert:<channel>:<execution id>`` (an atomic ``SET NX`` in Redis, an
``O_EXCL`` file on the embedded default) and sends only if the claim is new.
A duplicate message, a re-delivered task or a second signal finds the claim
taken. The price is at-most-once: a worker killed between the claim and the
POST loses that alert (logged nowhere, it died); we prefer that to paging
twice.

The payload is Slack-compatible (``text`` plus ``blocks``) and carries the
pipeline, run id, failed task, first line of the error and a link. It never
carries the webhook URL (Slack's embed a token), addresses, parameters or
connection secrets; the error is scrubbed of the secrets of the connections
the pipeline uses.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse
from django_q.tasks import async_task

from connectors import crypto
from connectors.base import scrub
from connectors.models import Connection
from core import outbound
from core.env import env_str
from pipelines.models import Execution, ExecutionStatus, TaskRunStatus

logger = logging.getLogger(__name__)

SEND_TASK = "pipelines.alerts.send_failure_alert"
# One HTTP attempt, the attempts, and the pauses between them: at most
# ~3 * 5 s + 1 s + 3 s, under ALERT_TASK_TIMEOUT.
HTTP_TIMEOUT_SECONDS = 5.0
ATTEMPTS = 3
BACKOFF_SECONDS = (1.0, 3.0)
ALERT_TASK_TIMEOUT = 60
# Claims outlive any re-delivery of the task by far.
CLAIM_SECONDS = 7 * 24 * 3600
ERROR_MAX_CHARS = 500


# --- Enqueue (signal receiver) ---------------------------------------------
def on_execution_finished(
    sender: Any, execution_id: Any, status: str | None = None, **_: Any
) -> None:
    """``execution_finished`` receiver: enqueue an alert for a failed run.

    ``status``, when the sender gives it, spares a read for a run that did
    not fail; for a failed one only the definition's ``on_failure`` is read.
    Never raises: the run it reports on is finished and committed.
    """
    if status is not None and status != ExecutionStatus.FAILED:
        return
    try:
        row = (
            Execution.objects.filter(pk=execution_id)
            .values_list("status", "pipeline__definition__on_failure")
            .first()
        )
        if row is None or row[0] != ExecutionStatus.FAILED or not row[1]:
            return
        async_task(
            SEND_TASK,
            str(execution_id),
            q_options={
                "save": False,
                "timeout": ALERT_TASK_TIMEOUT,
                "task_name": f"alert-{execution_id}",
            },
        )
    except Exception:
        logger.exception("could not enqueue the failure alert of execution %s", execution_id)


# --- Send (django-q2 task) --------------------------------------------------
def send_failure_alert(execution_id: str) -> dict[str, str]:
    """Send the alert of one failed execution to each configured channel, once."""
    execution = Execution.objects.select_related("pipeline").filter(pk=execution_id).first()
    if execution is None:
        return {}
    on_failure = (execution.pipeline.definition or {}).get("on_failure") or {}
    payload = alert_payload(execution)
    outcome: dict[str, str] = {}
    webhook = on_failure.get("webhook")
    if webhook:
        if claim_once(f"alert:webhook:{execution_id}"):
            outcome["webhook"] = post_webhook(webhook, payload)
        else:
            outcome["webhook"] = "duplicate"
    emails = on_failure.get("email") or []
    if emails:
        if claim_once(f"alert:email:{execution_id}"):
            outcome["email"] = send_email(emails, payload)
        else:
            outcome["email"] = "duplicate"
    return outcome


def claim_once(key: str) -> bool:
    """True the first time ``key`` is claimed anywhere in the deployment."""
    if settings.REDIS_URL:
        # django-redis ``add`` is SET NX: atomic across machines.
        return bool(cache.add(key, 1, CLAIM_SECONDS))
    # Embedded default: every process is on this machine, and the file
    # cache's add() is a check-then-write. O_EXCL creation is atomic.
    folder = Path(settings.VAR_DIR) / "claims"
    folder.mkdir(parents=True, exist_ok=True)
    name = key.replace(":", "_").replace("/", "_")
    try:
        fd = os.open(folder / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def public_url() -> str:
    """Base URL of the web UI for links (PUBLIC_URL), without a trailing slash."""
    return (
        getattr(settings, "PUBLIC_URL", None) or env_str("PUBLIC_URL") or "http://localhost:8000"
    ).rstrip("/")


def _scrub(text: str, execution: Any) -> str:
    """``text`` without the secrets of the connections the run used.

    Those its version binds (by id), not those the pipeline's current
    definition names: the run may be of an older version, on connections the
    pipeline no longer uses or that were renamed since.
    """
    secrets: list[Any] = []
    for connection in Connection.objects.filter(pipeline_bindings__version_id=execution.version_id):
        try:
            secrets.extend(crypto.decrypt_json(connection.secrets).values())
        except Exception:  # a key rotated away: nothing we could leak either  # nosec B112
            continue
    return scrub(text, *secrets)


def alert_payload(execution: Any) -> dict[str, Any]:
    """Slack-compatible message: ``text`` for any receiver, ``blocks`` for Slack."""
    pipeline = execution.pipeline
    failed = list(
        execution.tasks.filter(status=TaskRunStatus.FAILED)
        .order_by("ended_at", "task_name")
        .values_list("task_name", "error")
    )
    failed_task = failed[0][0] if failed else ""
    raw_error = (failed[0][1] if failed else "") or execution.error or "failed"
    error = _scrub(raw_error.strip().splitlines()[0] if raw_error.strip() else "failed", execution)
    if len(error) > ERROR_MAX_CHARS:
        error = error[: ERROR_MAX_CHARS - 1] + "…"
    link = public_url() + reverse("execution_detail", args=[execution.pk])
    run_id = str(execution.pk)
    text = f"Pipeline {pipeline.name} failed (run {run_id})"
    if failed_task:
        text += f": task {failed_task}: {error}"
    fields = [
        {"type": "mrkdwn", "text": f"*Pipeline*\n{pipeline.name}"},
        {"type": "mrkdwn", "text": f"*Run*\n<{link}|{run_id}>"},
        {"type": "mrkdwn", "text": f"*Failed task*\n{failed_task or '-'}"},
        {"type": "mrkdwn", "text": f"*Trigger*\n{execution.trigger}"},
    ]
    if len(failed) > 1:
        others = ", ".join(name for name, _ in failed[1:6])
        fields.append({"type": "mrkdwn", "text": f"*Also failed*\n{others}"})
    return {
        "text": f"{text} {link}",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"Pipeline {pipeline.name} failed"},
            },
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{error}```"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open run"},
                        "url": link,
                    }
                ],
            },
        ],
        # For receivers other than Slack (which ignores unknown keys).
        "pipeline": pipeline.name,
        "execution_id": run_id,
        "status": execution.status,
        "failed_task": failed_task,
        "error": error,
        "url": link,
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would turn the POST into a GET or send the body elsewhere
    # (and to a host the outbound policy never checked).
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _host(url: str) -> str:
    # Log the host only: the path of a Slack webhook URL is its secret.
    return urlsplit(url).hostname or "?"


def post_webhook(url: str, payload: dict[str, Any]) -> str:
    """POST ``payload`` as JSON; retry network errors, 429 and 5xx. Returns the outcome."""
    body = json.dumps(payload).encode()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            # Checked on every attempt, then pinned: the POST goes to the
            # addresses checked here, whatever DNS answers next (SPEC §10).
            target = outbound.check_url(url)
        except outbound.HostUnresolved as exc:
            retryable, problem = True, str(exc)
        except outbound.HostRefused as exc:
            logger.warning("alert webhook refused: %s", exc)
            return f"failed: {exc}"
        else:
            retryable, problem = _post(url, body, target)
            if not problem:
                return "sent"
        logger.warning(
            "alert webhook to %s: %s (attempt %s of %s)", _host(url), problem, attempt, ATTEMPTS
        )
        if not retryable or attempt == ATTEMPTS:
            return f"failed: {problem}"
        time.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
    return "failed"


def _post(url: str, body: bytes, target: outbound.Target) -> tuple[bool, str]:
    """One POST to the checked ``target``: ``(retryable, problem)``, problem "" when sent."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "datadog-platform-alerts"},
    )
    try:
        with outbound.pinned_opener(target, _NoRedirect()).open(
            request, timeout=HTTP_TIMEOUT_SECONDS
        ) as response:
            response.read(1024)
        return False, ""
    except urllib.error.HTTPError as exc:
        return exc.code == 429 or exc.code >= 500, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return True, type(getattr(exc, "reason", exc)).__name__


def send_email(addresses: list[str], payload: dict[str, Any]) -> str:
    """Send the alert through Django's email backend (EMAIL_* settings)."""
    subject = f"[DataDog] Pipeline {payload['pipeline']} failed"
    body = "\n".join(
        [
            f"Pipeline: {payload['pipeline']}",
            f"Run: {payload['execution_id']}",
            f"Failed task: {payload['failed_task'] or '-'}",
            f"Error: {payload['error']}",
            "",
            payload["url"],
        ]
    )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            connection = get_connection(timeout=HTTP_TIMEOUT_SECONDS * 2)
            EmailMessage(subject, body, to=list(addresses), connection=connection).send()
            return "sent"
        except Exception as exc:  # SMTP errors are many; all are retried a bounded number
            logger.warning(
                "alert email: %s (attempt %s of %s)", type(exc).__name__, attempt, ATTEMPTS
            )
            if attempt == ATTEMPTS:
                return f"failed: {type(exc).__name__}"
            time.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
    return "failed"
