"""A pipeline whose failure webhook URLs carry tokens, for the redaction tests (SPEC §10).

``.invalid`` never resolves: the outbound policy lets an unresolved name
pass, and no test depends on the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from accounts.actor import Actor
from pipelines.services import pipeline_update

TOKEN_1 = "xoxT0KEN-first-0123456789"
TOKEN_2 = "xoxT0KEN-second-9876543210"
URL_1 = f"https://hooks.slack.invalid/services/T000/B000/{TOKEN_1}"
URL_2 = f"https://hooks.slack.invalid/services/T000/B111/{TOKEN_2}"
# What users who may not edit the pipeline see of either.
CUT = "https://hooks.slack.invalid/…"


def alerting_pipeline(make_pipeline: Callable[..., Any], owner: Any) -> Any:
    """A pipeline of ``owner`` in two versions, v1 alerting ``URL_1``, v2 ``URL_2``."""
    pipeline = make_pipeline("alerting", user=owner, on_failure={"webhook": URL_1})
    data = {**pipeline.definition, "on_failure": {"webhook": URL_2}}
    return pipeline_update(pipeline=pipeline, data=data, actor=Actor.of(owner))
