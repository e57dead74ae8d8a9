"""Admin: pipelines editable through the same validation; history read-only.

Querysets and object permissions come from accounts.permissions, the same
functions the UI and the API use.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django_q.admin import FailAdmin, QueueAdmin, ScheduleAdmin, TaskAdmin
from django_q.models import Failure, OrmQ, Schedule, Success

from accounts.actor import Actor
from accounts.admin import SharedObjectAdmin
from accounts.permissions import visible
from core.errors import ServiceError
from pipelines import definition as definition_module
from pipelines.models import (
    Execution,
    IdempotencyKey,
    Pipeline,
    PipelineVersion,
    TaskLogLine,
    TaskRun,
    Transition,
    Watermark,
)
from pipelines.selectors import definition_for
from pipelines.services import (
    pipeline_create,
    pipeline_delete,
    pipeline_update,
    pipeline_validate,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History must not change: no add, no change, no delete, no action."""

    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PipelineForm(forms.ModelForm):
    definition_text = forms.CharField(
        label="Definition (YAML or JSON)",
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100, "spellcheck": "false"}),
    )

    class Meta:
        model = Pipeline
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # ``user`` is set on the form class by PipelineAdmin.get_form.
            shown = definition_for(self.user, self.instance, self.instance.definition)
            self.fields["definition_text"].initial = definition_module.dump_yaml(shown)

    user: Any = None

    def clean_definition_text(self) -> Any:
        text = self.cleaned_data["definition_text"]
        try:
            data = definition_module.parse_text(text)
            # A change needs the use right only on connections it adds.
            current = self.instance if self.instance.pk else None
            normalized = pipeline_validate(data, actor=Actor.of(self.user), pipeline=current)
        except definition_module.DefinitionError as exc:
            raise forms.ValidationError([str(p) for p in exc.problems]) from None
        except ServiceError as exc:
            raise forms.ValidationError(str(exc).splitlines()[1:] or [exc.detail]) from None
        clash = Pipeline.objects.filter(name=normalized["name"]).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(f"name: a pipeline named {normalized['name']!r} exists")
        return data


@admin.register(Pipeline)
class PipelineAdmin(SharedObjectAdmin):
    form = PipelineForm
    list_display = ["name", "version", "enabled", "schedule", "created_by", "updated_at"]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]
    readonly_fields = ["pipeline_id", "version", "created_by", "created_at", "updated_at"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        form.user = request.user  # type: ignore[attr-defined]
        return form

    def save_model(self, request: HttpRequest, obj: Pipeline, form: Any, change: bool) -> None:
        data = form.cleaned_data["definition_text"]
        if change:
            saved = pipeline_update(pipeline=obj, data=data, actor=Actor.from_request(request))
        else:
            saved = pipeline_create(data=data, actor=Actor.from_request(request))
        obj.pk = saved.pk
        obj.__dict__.update(saved.__dict__)

    def delete_object(self, request: HttpRequest, obj: Pipeline) -> None:
        pipeline_delete(pipeline=obj, actor=Actor.from_request(request))


@admin.register(PipelineVersion)
class PipelineVersionAdmin(ReadOnlyAdmin):
    list_display = ["pipeline", "version", "created_by", "created_at"]
    list_select_related = ["pipeline", "created_by"]
    readonly_fields = ["pipeline", "version", "pretty_definition", "created_by", "created_at"]
    exclude = ["definition"]

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            # Display methods get no request: the definition as this user may
            # read it travels on the object (one per request).
            obj.shown_definition = definition_for(request.user, obj.pipeline, obj.definition)
        return obj

    @admin.display(description="definition")
    def pretty_definition(self, obj: PipelineVersion) -> str:
        shown = getattr(obj, "shown_definition", None)
        shown = shown or definition_module.redacted(obj.definition)
        return json.dumps(shown, indent=2, ensure_ascii=False)

    def get_queryset(self, request: HttpRequest) -> Any:
        pipelines = visible(request.user, Pipeline.objects.all())
        return super().get_queryset(request).filter(pipeline__in=pipelines)


class TaskRunInline(admin.TabularInline):
    model = TaskRun
    fields = (
        "task_name",
        "task_type",
        "status",
        "attempt",
        "retry_count",
        "started_at",
        "ended_at",
        "error",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = ["execution_id", "pipeline", "status", "trigger", "created_at", "ended_at"]
    list_filter = ["status", "trigger"]
    list_select_related = ["pipeline"]
    search_fields = ["pipeline__name", "execution_id"]
    date_hierarchy = "created_at"
    inlines = [TaskRunInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        pipelines = visible(request.user, Pipeline.objects.all())
        return super().get_queryset(request).filter(pipeline__in=pipelines)


class TaskLogInline(admin.TabularInline):
    model = TaskLogLine
    fields = ("seq", "attempt", "at", "level", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    max_num = 0


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyAdmin):
    list_display = [
        "task_name",
        "execution",
        "task_type",
        "status",
        "attempt",
        "retry_count",
        "started_at",
    ]
    list_filter = ["status", "task_type"]
    list_select_related = ["execution"]
    inlines = [TaskLogInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        pipelines = visible(request.user, Pipeline.objects.all())
        return super().get_queryset(request).filter(execution__pipeline__in=pipelines)


@admin.register(Transition)
class TransitionAdmin(ReadOnlyAdmin):
    list_display = ["at", "execution", "task_run", "from_status", "to_status", "actor", "reason"]
    list_filter = ["to_status"]
    list_select_related = ["execution", "task_run"]

    def get_queryset(self, request: HttpRequest) -> Any:
        pipelines = visible(request.user, Pipeline.objects.all())
        return super().get_queryset(request).filter(execution__pipeline__in=pipelines)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "user", "pipeline", "execution", "created_at"]
    list_select_related = ["user", "pipeline"]

    def get_queryset(self, request: HttpRequest) -> Any:
        pipelines = visible(request.user, Pipeline.objects.all())
        return super().get_queryset(request).filter(pipeline__in=pipelines)


@admin.register(Watermark)
class WatermarkAdmin(ReadOnlyAdmin):
    list_display = ["pipeline", "task_name", "column", "value", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> Any:
        pipelines = visible(request.user, Pipeline.objects.all())
        return super().get_queryset(request).filter(pipeline__in=pipelines)


# django-q2's own admins let anyone with the model permissions (every
# admin-role user) add or edit a Schedule, whose ``func`` and ``args`` are a
# dotted path and arguments the workers call: code execution on the workers,
# with their database credentials and Fernet keys. They also resubmit stored
# tasks, replaying a task run message past the engine's state guards. Read-only
# for everyone, superusers included: the product's code makes the only schedule
# there is (pipelines.tasks, "datadog-maintain"; pipeline schedules live in the
# definitions), and whoever must change it has a shell on the deployment,
# while a stolen superuser session must not become one.
admin.site.unregister([Schedule, Success, Failure])


@admin.register(Schedule)
class ScheduleReadOnlyAdmin(ReadOnlyAdmin, ScheduleAdmin):
    pass


@admin.register(Success)
class SuccessReadOnlyAdmin(ReadOnlyAdmin, TaskAdmin):
    pass


@admin.register(Failure)
class FailureReadOnlyAdmin(ReadOnlyAdmin, FailAdmin):
    pass


# The ORM broker's queue is registered only with that broker (or in tests).
if admin.site.is_registered(OrmQ):
    admin.site.unregister(OrmQ)

    @admin.register(OrmQ)
    class QueueReadOnlyAdmin(ReadOnlyAdmin, QueueAdmin):
        pass
