"""Connections in the admin: a form whose secret fields are write-only."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from accounts.actor import Actor
from accounts.admin import SharedObjectAdmin
from connectors.models import Connection
from connectors.services import connection_create, connection_delete, connection_update


class ConnectionForm(forms.ModelForm):
    config_json = forms.CharField(
        label="Config (JSON, without secrets)",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        initial="{}",
    )
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave empty to keep the stored value.",
    )

    class Meta:
        model = Connection
        fields = ["name", "kind", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["config_json"].initial = json.dumps(self.instance.config, indent=2)
            state = "set" if self.instance.secret_keys_set() else "not set"
            self.fields["password"].help_text = f"Write-only ({state}). Leave empty to keep it."

    def clean_config_json(self) -> Any:
        try:
            value = json.loads(self.cleaned_data["config_json"] or "{}")
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"invalid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value


@admin.register(Connection)
class ConnectionAdmin(SharedObjectAdmin):
    form = ConnectionForm
    list_display = ["name", "kind", "created_by", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    readonly_fields = ["id", "created_by", "created_at", "updated_at", "secrets_state"]

    @admin.display(description="secrets")
    def secrets_state(self, obj: Connection) -> str:
        keys = obj.secret_keys_set() if obj.pk else []
        return ", ".join(f"{k}: set" for k in keys) or "none set"

    def save_model(self, request: HttpRequest, obj: Connection, form: Any, change: bool) -> None:
        config = dict(form.cleaned_data["config_json"])
        if form.cleaned_data.get("password"):
            config["password"] = form.cleaned_data["password"]
        data = form.cleaned_data
        fields = {
            "name": data["name"],
            "kind": data["kind"],
            "config": config,
            "description": data.get("description", ""),
            "actor": Actor.from_request(request),
        }
        # A refusal propagates: SharedObjectAdmin.changeform_view rolls back and says why.
        if change:
            saved = connection_update(connection=obj, **fields)
        else:
            saved = connection_create(**fields)
        obj.__dict__.update(saved.__dict__)

    def delete_object(self, request: HttpRequest, obj: Connection) -> None:
        connection_delete(connection=obj, actor=Actor.from_request(request))
