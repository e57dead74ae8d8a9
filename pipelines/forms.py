"""Forms of the pipeline pages: filters, the editor, the copy-task helper, Run."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms

from connectors.spec import DESTINATION_MODES
from core.names import NAME_RE
from pipelines.definition import MAX_TEXT_CHARS
from pipelines.models import ExecutionStatus

STATUS_CHOICES = [
    ("", "any"),
    *[(s.value, s.value) for s in ExecutionStatus],
    ("never", "never run"),
]


class PipelineFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name or description"}),
    )
    tag = forms.ChoiceField(required=False, label="Tag")
    status = forms.ChoiceField(required=False, choices=STATUS_CHOICES, label="Last run")
    enabled = forms.ChoiceField(
        required=False, label="State", choices=[("", "any"), ("yes", "enabled"), ("no", "disabled")]
    )

    def __init__(self, *args: Any, tags: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["tag"]).choices = [("", "any")] + [(t, t) for t in tags]


class ExecutionFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False,
        label="Status",
        choices=[("", "any"), *[(s.value, s.value) for s in ExecutionStatus]],
    )
    pipeline = forms.CharField(
        required=False,
        max_length=100,
        label="Pipeline",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "pipeline name"}),
    )


FORMAT_CHOICES = [("", "detect"), ("yaml", "YAML"), ("json", "JSON")]

NEW_PIPELINE_TEMPLATE = """\
name: my_pipeline
description: What this pipeline does
# schedule: "0 2 * * *"        # cron, optional
tags: []
parameters: {}
tasks:
  - name: first_task
    type: sql
    connection: CONNECTION_NAME
    sql: SELECT 1
"""


class EditorForm(forms.Form):
    definition = forms.CharField(
        label="Definition (YAML or JSON)",
        widget=forms.Textarea(
            attrs={
                "class": "code",
                "spellcheck": "false",
                "autocapitalize": "off",
                "autocomplete": "off",
                "rows": 26,
            }
        ),
        strip=False,
        max_length=MAX_TEXT_CHARS,
    )
    format = forms.ChoiceField(choices=FORMAT_CHOICES, required=False, label="Format")


def _names(text: str) -> list[str]:
    """``"a, b c"`` → ``["a", "b", "c"]``."""
    return [part for part in text.replace(",", " ").split() if part]


class CopyTaskForm(forms.Form):
    """The "new copy task" helper: a copy task from picked connections and tables."""

    # Its fields sit inside the editor's form: browser-side "required" would
    # block saving the definition while the helper is left empty.
    use_required_attribute = False

    task_name = forms.CharField(max_length=100, label="Task name")
    source_connection = forms.ChoiceField(label="Source connection")
    source_table = forms.CharField(
        max_length=200,
        label="Source table",
        help_text="<code>schema.table</code>, or a file name for csv/jsonl",
    )
    destination_connection = forms.ChoiceField(label="Destination connection")
    destination_table = forms.CharField(max_length=200, label="Destination table")
    mode = forms.ChoiceField(
        choices=[(m, m) for m in DESTINATION_MODES], initial="append", label="Write mode"
    )
    keys = forms.CharField(
        required=False, max_length=500, label="Keys (upsert)", help_text="comma-separated"
    )
    not_null = forms.CharField(
        required=False,
        max_length=500,
        label="Drop rows with nulls in",
        help_text="comma-separated columns",
    )
    select = forms.CharField(
        required=False,
        max_length=1000,
        label="Keep only columns",
        help_text="comma-separated; empty keeps all",
    )
    rename = forms.CharField(
        required=False,
        max_length=1000,
        label="Rename columns",
        help_text="<code>old=new</code>, comma-separated",
    )
    depends_on = forms.CharField(
        required=False,
        max_length=1000,
        label="Runs after tasks",
        help_text="comma-separated task names",
    )

    def __init__(self, *args: Any, connections: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(name, name) for name in connections]
        cast(forms.ChoiceField, self.fields["source_connection"]).choices = choices
        cast(forms.ChoiceField, self.fields["destination_connection"]).choices = choices

    def clean_task_name(self) -> str:
        name = self.cleaned_data["task_name"].strip()
        if not NAME_RE.match(name):
            raise forms.ValidationError("letters, digits, _ and -; starting with a letter or _")
        return name

    def clean_rename(self) -> dict[str, str]:
        mapping = {}
        for pair in self.cleaned_data["rename"].split(","):
            if not pair.strip():
                continue
            old, sep, new = pair.partition("=")
            if not sep or not old.strip() or not new.strip():
                raise forms.ValidationError(f"'{pair.strip()}' is not old=new")
            mapping[old.strip()] = new.strip()
        return mapping

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("mode") == "upsert" and not _names(data.get("keys", "")):
            self.add_error("keys", "upsert needs keys")
        return data

    def task(self) -> dict[str, Any]:
        """The task, in the definition's shape (SPEC §2)."""
        data = self.cleaned_data
        transformations: list[dict[str, Any]] = []
        if _names(data["not_null"]):
            transformations.append(
                {
                    "name": "drop_nulls",
                    "function": "filter",
                    "params": {"columns": _names(data["not_null"])},
                }
            )
        if _names(data["select"]):
            transformations.append(
                {
                    "name": "pick",
                    "function": "select",
                    "params": {"columns": _names(data["select"])},
                }
            )
        if data["rename"]:
            transformations.append(
                {"name": "rename", "function": "rename", "params": {"mapping": data["rename"]}}
            )
        destination: dict[str, Any] = {
            "connection": data["destination_connection"],
            "table": data["destination_table"].strip(),
            "mode": data["mode"],
        }
        if data["mode"] == "upsert":
            destination["keys"] = _names(data["keys"])
        task: dict[str, Any] = {
            "name": data["task_name"],
            "type": "copy",
            "source": {
                "connection": data["source_connection"],
                "table": data["source_table"].strip(),
            },
        }
        if transformations:
            task["transformations"] = transformations
        task["destination"] = destination
        if _names(data["depends_on"]):
            task["depends_on"] = _names(data["depends_on"])
        return task


class RunForm(forms.Form):
    """ "Run" with one field per pipeline parameter, typed by its default."""

    def __init__(self, *args: Any, parameters: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.defaults = parameters
        for name, default in parameters.items():
            self.fields[f"param_{name}"] = _parameter_field(name, default)

    def overrides(self) -> dict[str, Any]:
        """The parameters whose value differs from the default."""
        result = {}
        for name, default in self.defaults.items():
            value = self.cleaned_data.get(f"param_{name}")
            if value != default:
                result[name] = value
        return result


class _JsonField(forms.CharField):
    """A parameter whose default is a list, an object or null: edited as JSON."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc}") from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return value
        return json.dumps(value)


def _parameter_field(name: str, default: Any) -> forms.Field:
    label = name
    if isinstance(default, bool):
        return forms.BooleanField(required=False, initial=default, label=label)
    if isinstance(default, int):
        return forms.IntegerField(initial=default, label=label)
    if isinstance(default, float):
        return forms.FloatField(initial=default, label=label)
    if isinstance(default, str):
        return forms.CharField(initial=default, required=False, strip=False, label=label)
    return _JsonField(initial=default, required=False, label=label, help_text="JSON")


class DiffForm(forms.Form):
    a = forms.TypedChoiceField(coerce=int, label="From version")
    b = forms.TypedChoiceField(coerce=int, label="To version")

    def __init__(self, *args: Any, versions: list[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(v, f"v{v}") for v in versions]
        cast(forms.ChoiceField, self.fields["a"]).choices = choices
        cast(forms.ChoiceField, self.fields["b"]).choices = choices
