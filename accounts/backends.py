"""``user.has_perm(perm, obj)`` answers what ``accounts.permissions.can`` answers.

Guardian's object backend answered from the sharing alone: a viewer an
object was shared with at the edit level "had" ``change_pipeline`` on it,
though ``can`` refuses a viewer any change. This backend takes its place, so
Django's own checks (``has_perm`` with an object, as the admin and templates
use it) and the platform's one rule agree. Without an object it has no
opinion: model permissions stay Django's ``ModelBackend``'s.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from accounts.permissions import Action, can

# The action a codename's verb stands for. ``delete`` is a change (SPEC §5);
# ``use_connection`` is using it in a pipeline; ``operate_pipeline`` running it.
_ACTION_OF_VERB = {
    "view": Action.VIEW,
    "operate": Action.OPERATE,
    "use": Action.USE,
    "change": Action.CHANGE,
    "delete": Action.CHANGE,
    "share": Action.SHARE,
}

# The objects the rule covers, as (app label, model name).
_SHARED_MODELS = {("pipelines", "pipeline"), ("connectors", "connection")}


def action_of(perm: str, obj: Model) -> Action | None:
    """The action ``perm`` ("app.verb_model") asks about on ``obj``, or None."""
    app_label, _, codename = perm.partition(".")
    verb, _, model_name = codename.partition("_")
    meta = obj._meta
    if (meta.app_label, meta.model_name) not in _SHARED_MODELS:
        return None
    if app_label != meta.app_label or model_name != meta.model_name:
        return None
    return _ACTION_OF_VERB.get(verb)


class ActionBackend:
    """An authorization-only backend: it authenticates nobody."""

    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def has_perm(self, user: Any, perm: str, obj: Model | None = None) -> bool:
        if obj is None:
            return False
        action = action_of(perm, obj)
        return action is not None and can(user, action, obj)

    def get_all_permissions(self, user: Any, obj: Model | None = None) -> set[str]:
        if obj is None or (obj._meta.app_label, obj._meta.model_name) not in _SHARED_MODELS:
            return set()
        meta = obj._meta
        return {
            f"{meta.app_label}.{verb}_{meta.model_name}"
            for verb, action in _ACTION_OF_VERB.items()
            if can(user, action, obj)
        }
