"""Forms of the accounts pages: login, audit filters, sharing."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import Group
from django.db.models import Model

from accounts.actor import Actor
from accounts.models import ActorKind, AuditEvent
from accounts.permissions import Level
from accounts.services import sharing_add, sharing_users


class LoginForm(AuthenticationForm):
    """Django's login form with the autocomplete hints password managers use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocomplete": "username", "autofocus": True})
        self.fields["password"].widget.attrs.update({"autocomplete": "current-password"})


class AuditFilterForm(forms.Form):
    """Filters of the audit log; every field is optional."""

    action = forms.ChoiceField(required=False)
    actor = forms.CharField(required=False, max_length=150, label="User")
    actor_kind = forms.ChoiceField(
        required=False, label="Actor", choices=[("", "any"), *ActorKind.choices]
    )
    object_type = forms.ChoiceField(
        required=False,
        label="Object",
        choices=[
            ("", "any"),
            ("pipeline", "pipeline"),
            ("connection", "connection"),
            ("user", "user"),
            ("group", "group (role)"),
        ],
    )
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        actions = AuditEvent.objects.order_by().values_list("action", flat=True).distinct()
        cast(forms.ChoiceField, self.fields["action"]).choices = [("", "any")] + [
            (a, a) for a in sorted(set(actions))
        ]


LEVEL_CHOICES = [(level.value, level.value) for level in Level]


class ShareForm(forms.Form):
    """Share an object with one user or group at a level (adds to the current sharing)."""

    name = forms.CharField(max_length=150, label="User name or group name")
    principal_type = forms.ChoiceField(
        choices=[("user", "User"), ("group", "Group")], label="It is a", initial="user"
    )
    level = forms.ChoiceField(choices=LEVEL_CHOICES, initial=Level.VIEW.value)

    def __init__(self, *args: Any, actor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor  # who shares: only admins learn why a user name is refused

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        name = (data.get("name") or "").strip()
        principal: Any = None
        if data.get("principal_type") == "group":
            principal = Group.objects.filter(name=name).first()
            if name and principal is None:
                self.add_error("name", f"no group named '{name}'")
        elif name:
            found, refused = sharing_users([name], actor=self.actor)
            principal = found.get(name)
            if principal is None:
                self.add_error("name", f"cannot share with '{name}': {refused[name]}")
        data["principal"] = principal
        return data

    def save(self, *, obj: Model, actor: Actor) -> dict[str, Any]:
        """Add (or change) this principal's level, keeping everyone else's."""
        data = self.cleaned_data
        return sharing_add(
            obj=obj, principal=data["principal"], level=Level(data["level"]), actor=actor
        )
