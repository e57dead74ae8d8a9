"""Admin for the accounts app and the base every owned-object admin shares.

The admin is a third front end beside the UI and the API: it asks the same
questions (accounts.permissions) and changes objects through the same
services, so an admin action cannot skip an audit record, an in-use check or
the sharing cleanup (SPEC §10).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import model_ngettext, unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from rest_framework_simplejwt.token_blacklist.admin import (
    BlacklistedTokenAdmin as LibraryBlacklistedTokenAdmin,
)
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.actor import Actor
from accounts.models import AuditEvent
from accounts.permissions import Action, can, can_create, is_admin, visible
from accounts.services import audit_record, audit_state_change, group_state, user_state
from core.errors import ServiceError


def refusal(exc: ServiceError) -> str:
    """A service error as one line for an admin message ("used by p1 and p2")."""
    return "; ".join(str(exc).splitlines()[1:]) or exc.detail


class SharedObjectAdmin(admin.ModelAdmin):
    """Admin for owned, shareable objects (pipelines, connections).

    Lists and object permissions come from accounts.permissions, the same
    answers the UI and the API give. Every delete (the delete view and the
    "delete selected" action) goes through ``delete_object``, which each
    subclass implements with its service.
    """

    # Replaces Django's site-wide action of the same name, which deletes with
    # one queryset.delete() and checks no object permission.
    actions = ["delete_selected"]

    def delete_object(self, request: HttpRequest, obj: Any) -> None:
        """Delete ``obj`` through its service; a refusal raises ServiceError."""
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # A refusal propagates to delete_view, which rolls back and says why.
        self.delete_object(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self.delete_each(request, queryset)

    def delete_each(self, request: HttpRequest, queryset: QuerySet[Any]) -> int:
        """Delete the objects one by one through the service; refusals become messages.

        Each object is its own transaction: one connection still in use does
        not keep the others from going. Returns how many were deleted.
        """
        deleted = 0
        for obj in queryset:
            if not self.has_delete_permission(request, obj):
                self.message_user(request, f"{obj}: you may not delete it", messages.ERROR)
                continue
            try:
                with transaction.atomic():
                    self.log_deletions(request, queryset.filter(pk=obj.pk))
                    self.delete_object(request, obj)
            except ServiceError as exc:
                self.message_user(request, f"{obj} was not deleted: {refusal(exc)}", messages.ERROR)
            else:
                deleted += 1
        return deleted

    @admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
    def delete_selected(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        """Django's confirmation page, then a delete through the service per object."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        _, _, perms_needed, protected = self.get_deleted_objects(queryset, request)
        if protected:
            return django_delete_selected(self, request, queryset)  # the page says why
        if perms_needed:
            raise PermissionDenied
        deleted = self.delete_each(request, queryset)
        if deleted:
            items = model_ngettext(self.opts, deleted)
            self.message_user(request, f"Deleted {deleted} {items}.", messages.SUCCESS)
        return None

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        to_delete, model_count, _, protected = super().get_deleted_objects(objs, request)
        # What goes with an object (a pipeline's versions and runs, which no
        # admin may delete alone) is its service's business; the user needs
        # the right to delete the selected objects themselves.
        perms_needed = {str(obj) for obj in objs if not self.has_delete_permission(request, obj)}
        return to_delete, model_count, perms_needed, protected

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as exc:
            # save_model's service refused what the form let through (a rule
            # only the service knows). The view's transaction is rolled back:
            # nothing saved, and no "added successfully" for an object that
            # does not exist.
            self.message_user(request, f"Not saved: {refusal(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceError as exc:
            # delete_view's transaction is rolled back (the admin log entry too).
            self.message_user(request, f"Not deleted: {refusal(exc)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def get_queryset(self, request: HttpRequest) -> Any:
        return visible(request.user, super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can_create(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Action.CHANGE, obj) if obj else can_create(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Action.CHANGE, obj) if obj else can_create(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Action.VIEW, obj) if obj else request.user.is_staff


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail: admins read it, nobody changes it."""

    list_display = ["at", "actor_name", "actor_kind", "action", "object_type", "object_repr", "ip"]
    list_filter = ["action", "actor_kind", "object_type"]
    search_fields = ["actor_name", "object_repr", "object_id"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.unregister(BlacklistedToken)


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(LibraryBlacklistedTokenAdmin):
    """Revoked refresh tokens: superusers may revoke one, nobody un-revokes.

    Deleting or changing a row would let a revoked (logged out, rotated or
    stolen) refresh token work again, so nobody may; the library's admin
    would let any user with the model permissions (every admin-role user)
    do it. The issued tokens (OutstandingToken) stay the library's admin,
    already read-only for everyone.
    """

    raw_id_fields = ["token"]  # a select of every token ever issued would not load

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedStateAdmin(admin.ModelAdmin):
    """An admin whose saves and deletes are audit events, with the object's state.

    For the accounts (users, groups that are roles): managing them is an
    admin action like any other (SPEC §5), and Django's own admin log is
    not read with the rest of the trail. The state before a change is read
    from the database in save_model; the event is written in save_related,
    once the many-to-many fields (groups, permissions) are saved too, in the
    same transaction.
    """

    def audit_state(self, obj: Any) -> dict[str, Any]:
        """What the audit trail follows of ``obj`` (never a secret)."""
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Kept on the instance this request edits: the admin object is shared.
        stored = type(obj).objects.get(pk=obj.pk) if change else None
        obj.audit_before = self.audit_state(stored) if stored is not None else None
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        audit_state_change(
            obj=obj,
            before=getattr(obj, "audit_before", None) if change else None,
            after=self.audit_state(obj),
            actor=Actor.from_request(request),
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # One transaction: no event for a delete that failed, no delete unrecorded.
        with transaction.atomic():
            audit_record(
                action="delete",
                obj=obj,
                by=Actor.from_request(request),
                details={"state": self.audit_state(obj)},
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # One by one (not queryset.delete()), so each object gets its event.
        for obj in queryset:
            self.delete_model(request, obj)


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(AuditedStateAdmin, DjangoGroupAdmin):
    """Groups, the roles among them: who changed a role's permissions is audited."""

    def audit_state(self, obj: Any) -> dict[str, Any]:
        return group_state(obj)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class UserAdmin(AuditedStateAdmin, DjangoUserAdmin):
    """Admins manage users and roles; only superusers make or touch superusers.

    An admin-role user holds every model permission (ROLE_MODEL_PERMS), so
    Django's own UserAdmin would let them tick ``is_superuser`` on
    themselves, or set a superuser's password and sign in as them: what is
    kept for superusers (revoking tokens) would be one form away.
    """

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            fields += ["is_superuser", "user_permissions"]
        return fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def audit_state(self, obj: Any) -> dict[str, Any]:
        return user_state(obj)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        # Django's view saves the password, logs and redirects in one piece:
        # whether it changed anything is read from the stored hash (never
        # recorded itself).
        user = self.get_object(request, unquote(id))
        old_hash = user.password if user is not None else None
        response = super().user_change_password(request, id, form_url)
        if user is not None:
            user.refresh_from_db(fields=["password"])
            if user.password != old_hash:
                audit_record(
                    action="password_reset",
                    obj=user,
                    by=Actor.from_request(request),
                    details={"usable": user.has_usable_password()},
                )
        return response
