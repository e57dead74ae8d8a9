"""The connection form, built per kind from the connector class's fields.

Secret fields are write-only: never rendered with their value, shown as
"set" / "not set", and left blank to keep the stored value.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from connectors.models import Connection
from connectors.registry import KINDS, connector_class

# Display order of config keys; keys a kind allows but not listed go last.
FIELD_ORDER = [
    "host",
    "port",
    "database",
    "username",
    "password",
    "sslmode",
    "connect_timeout",
    "path",
    "options",
    "base_url",
    "headers",
    "auth",
]
# Config keys the form does not show: a connection's description is its own field.
HIDDEN_KEYS = {"description"}
INTEGER_KEYS = {"port", "connect_timeout"}
LABELS = {
    "host": "Host",
    "port": "Port",
    "database": "Database",
    "username": "User name",
    "password": "Password",  # nosec B105 - a label, not a secret
    "sslmode": "SSL mode",
    "connect_timeout": "Connect timeout (s)",
    "path": "Path",
    "options": "Options (JSON)",
    "base_url": "Base URL",
    "headers": "Headers (JSON)",
    "auth": "Authentication (JSON)",
}
# Secret config keys holding a JSON object (http headers and auth).
JSON_SECRET_KEYS = {"headers", "auth"}
HELP = {
    "path": "Relative to the data directory (DATA_ROOT): a file for sqlite, "
    "a directory for csv/jsonl.",
    "options": 'A JSON object, e.g. <code>{"statement_timeout": 30}</code>.',
    "base_url": "http:// or https://; loopback and private networks only when the operator "
    "lists them in OUTBOUND_ALLOW_NETWORKS.",
    "headers": 'A JSON object, e.g. <code>{"X-Api-Key": "…"}</code>.',
    "auth": '<code>{"type": "bearer", "token": "…"}</code> or '
    '<code>{"type": "basic", "username": "…", "password": "…"}</code>.',
}


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value (not even the one just submitted)."""

    def format_value(self, value: Any) -> None:
        return None


class KindForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k, k) for k in KINDS], label="Kind")


def config_fields(kind: str) -> list[str]:
    """The config keys the form shows for ``kind``, in display order."""
    cls = connector_class(kind)
    keys = [k for k in cls.allowed_fields if k not in HIDDEN_KEYS]
    return sorted(keys, key=lambda k: (FIELD_ORDER.index(k) if k in FIELD_ORDER else 99, k))


class ConnectionForm(forms.Form):
    """Name, description and the config keys of one kind."""

    name = forms.CharField(
        max_length=100,
        label="Name",
        help_text="Used in pipeline definitions; letters, digits, _ and -.",
    )
    description = forms.CharField(required=False, label="Description", widget=forms.TextInput)

    def __init__(
        self, *args: Any, kind: str, instance: Connection | None = None, **kwargs: Any
    ) -> None:
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": instance.name,
                "description": instance.description,
                **{k: _display(v) for k, v in instance.config.items()},
            }
        super().__init__(*args, **kwargs)
        self.kind = kind
        cls = connector_class(kind)
        self.secret_keys = set(cls.secret_fields)
        stored_secrets = (
            set(instance.secret_keys_set())
            if instance is not None and instance.kind == kind
            else set()
        )
        self.secret_state = {key: key in stored_secrets for key in self.secret_keys}
        for key in config_fields(kind):
            self.fields[key] = self._field(
                key, required=key in cls.required_fields, stored=key in stored_secrets
            )

    def _field(self, key: str, *, required: bool, stored: bool) -> forms.Field:
        label = LABELS.get(key, key.replace("_", " ").capitalize())
        if key in self.secret_keys:
            endpoint = (
                "another scheme, host or port in the base URL"
                if hasattr(connector_class(self.kind), "endpoint")
                else "a new host, port, database or user name"
            )
            state = f"set — leave blank to keep it ({endpoint} clears it)" if stored else "not set"
            if key in JSON_SECRET_KEYS:
                # Never given an initial value: a blank field keeps the stored one.
                return forms.CharField(
                    required=False,
                    label=label,
                    strip=True,
                    widget=SecretTextarea(
                        attrs={"rows": 2, "class": "code-small", "autocomplete": "off"}
                    ),
                    help_text=f"{HELP[key]} Write-only: {state}.",
                )
            return forms.CharField(
                required=False,
                label=label,
                strip=False,
                widget=forms.PasswordInput(
                    render_value=False, attrs={"autocomplete": "new-password"}
                ),
                help_text=f"Write-only: {state}.",
            )
        if key in INTEGER_KEYS:
            field = forms.IntegerField(required=required, label=label, min_value=1)
            default = getattr(connector_class(self.kind), "default_port", None)
            if key == "port" and default:
                field.widget.attrs["placeholder"] = str(default)
                field.help_text = f"Default {default}."
            return field
        if key == "options":
            return forms.CharField(
                required=False,
                label=label,
                help_text=HELP["options"],
                widget=forms.Textarea(attrs={"rows": 2, "class": "code-small"}),
            )
        return forms.CharField(required=required, label=label, help_text=HELP.get(key, ""))

    def clean_options(self) -> Any:
        text = (self.cleaned_data.get("options") or "").strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            if self.kind == "postgresql":
                return text  # libpq options string
            raise forms.ValidationError("must be a JSON object") from None

    def _clean_json_secret(self, key: str) -> Any:
        text = (self.cleaned_data.get(key) or "").strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError("must be a JSON object") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value

    def clean_headers(self) -> Any:
        return self._clean_json_secret("headers")

    def clean_auth(self) -> Any:
        return self._clean_json_secret("auth")

    def config(self) -> dict[str, Any]:
        """The config to save: blank values dropped, so blank secrets keep theirs."""
        return {
            key: value
            for key in config_fields(self.kind)
            if (value := self.cleaned_data.get(key)) not in (None, "")
        }

    @staticmethod
    def field_of(path: str) -> str | None:
        """The form field a service error path (``config.host``) is about."""
        return path.removeprefix("config.") or None


def _display(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value
