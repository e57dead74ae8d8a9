"""What every page's layout needs to know about the user."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.permissions import Role, role_of


def role(request: HttpRequest) -> dict[str, object]:
    """The user's role name and whether to show the admin-only links.

    A context processor rather than an argument of ``core.ui.render_ui``, so
    the shared UI plumbing needs no app, and pages Django renders itself
    (login, password change) get the same layout.
    """
    user_role = role_of(getattr(request, "user", None))
    return {
        "user_role": user_role.value if user_role else "",
        "user_is_admin": user_role == Role.ADMIN,
    }
