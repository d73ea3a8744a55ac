"""Operators' view of the directory: departments (as a tree), roles, role assignments,
profiles, and Django's users with their profile and role assignments inline.

Every change made here goes through directory.services (audited, channel "admin"):
save_model / save_related / save_formset / delete_model are overridden, and the bulk
actions (out of office, available, deactivate, revoke) call the same services.
Accounts are deactivated, never deleted: audit records and work items refer to them.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.utils import timezone

from config.context import acting
from directory import services
from directory.models import Department, PlatformRoleGrant, Profile, Role, RoleAssignment
from workitems.errors import WorkstreamError

User = get_user_model()


def _run(request, label: str, items, command) -> None:
    """Apply `command` to each item as the admin user; report what worked and what did not."""
    done, failed = 0, []
    with acting(channel="admin"):
        for obj in items:
            try:
                command(obj)
                done += 1
            except WorkstreamError as exc:
                failed.append(f"{obj}: {exc.detail}")
    if done:
        messages.success(request, f"{label}: {done}.")
    for line in failed[:20]:
        messages.warning(request, line)


def _errors_to_form(form, exc: WorkstreamError) -> None:
    for err in getattr(exc, "errors", None) or [{"field": "", "message": exc.detail}]:
        field = err.get("field", "").split(".")[0].split("[")[0]  # `channels[0].ref` is the channels field
        form.add_error(field if field in form.fields else None, err["message"])


# --- departments -------------------------------------------------------------------------


def _path(dept: Department, by_id: dict[int, Department]) -> list[str]:
    names, node, seen = [], dept, set()
    while node is not None and node.pk not in seen:
        seen.add(node.pk)
        names.insert(0, node.name.lower())
        node = by_id.get(node.parent_id)
    return names


class DepartmentTreeList(ChangeList):
    """The page's departments in tree order (parents before their children, siblings by name)."""

    def get_results(self, request):
        super().get_results(request)
        by_id = {d.pk: d for d in Department.objects.only("pk", "name", "parent_id")}
        rows = list(self.result_list)
        for d in rows:
            d.tree_depth = len(_path(d, by_id)) - 1
        rows.sort(key=lambda d: _path(d, by_id))
        self.result_list = rows


class DepartmentForm(forms.ModelForm):
    class Meta:
        model = Department
        fields = ("code", "name", "parent", "manager", "external_id")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and cleaned.get("parent") is not None:
            try:
                services._check_parent(self.instance, cleaned["parent"])
            except WorkstreamError as exc:
                _errors_to_form(self, exc)
        return cleaned


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    form = DepartmentForm
    list_display = ("tree_name", "code", "manager", "member_count", "external_id")
    search_fields = ("code", "name", "external_id")
    list_select_related = ("manager",)
    list_per_page = 1000  # a page holds the whole tree, so it can be shown in tree order
    autocomplete_fields = ("parent", "manager")

    def get_changelist(self, request, **kwargs):
        return DepartmentTreeList

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("members"))

    @admin.display(description="department")
    def tree_name(self, obj):
        return "\u2003" * getattr(obj, "tree_depth", 0) + ("└ " if getattr(obj, "tree_depth", 0) else "") + obj.name

    @admin.display(description="members", ordering="_members")
    def member_count(self, obj):
        return obj._members

    def save_model(self, request, obj, form, change):
        with acting(channel="admin"):
            if not change:
                saved = services.department_create(
                    actor=request.user,
                    code=obj.code,
                    name=obj.name,
                    parent=obj.parent,
                    manager=obj.manager,
                    external_id=obj.external_id,
                )
                obj.pk = saved.pk
            elif form.changed_data:
                services.department_update(
                    actor=request.user,
                    department=obj,
                    **{f: form.cleaned_data[f] for f in form.changed_data if f in DepartmentForm.Meta.fields},
                )

    def delete_model(self, request, obj):
        with acting(channel="admin"):
            services.department_delete(actor=request.user, department=obj)

    def delete_queryset(self, request, queryset):
        # Children before parents, so a whole branch can go at once.
        by_id = {d.pk: d for d in Department.objects.only("pk", "name", "parent_id")}
        doomed = sorted(queryset, key=lambda d: -len(_path(d, by_id)))
        _run(request, "Deleted", doomed, lambda d: services.department_delete(actor=request.user, department=d))


# --- roles -------------------------------------------------------------------------------


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "queue_names", "actions", "holders_now")
    search_fields = ("code", "name")
    filter_horizontal = ("queues",)

    def get_queryset(self, request):
        now = timezone.now()
        valid = Q(assignments__valid_from__lte=now) & (
            Q(assignments__valid_to__isnull=True) | Q(assignments__valid_to__gt=now)
        )
        return (
            super()
            .get_queryset(request)
            .prefetch_related("queues")
            .annotate(_holders=Count("assignments__user", filter=valid, distinct=True))
        )

    @admin.display(description="queues")
    def queue_names(self, obj):
        return ", ".join(q.name for q in obj.queues.all())

    @admin.display(description="holders now", ordering="_holders")
    def holders_now(self, obj):
        return obj._holders

    def save_model(self, request, obj, form, change):
        with acting(channel="admin"):
            if not change:
                saved = services.role_create(
                    actor=request.user,
                    code=obj.code,
                    name=obj.name,
                    description=obj.description,
                    actions=obj.actions or [],
                    queues=form.cleaned_data.get("queues", []),
                )
                obj.pk = saved.pk
            else:
                services.role_update(
                    actor=request.user,
                    role=obj,
                    queues=form.cleaned_data.get("queues", []),
                    **{
                        f: form.cleaned_data[f]
                        for f in ("code", "name", "description", "actions")
                        if f in form.changed_data
                    },
                )

    def save_related(self, request, form, formsets, change):
        pass  # the queues were set by the service in save_model

    def delete_model(self, request, obj):
        with acting(channel="admin"):
            services.role_delete(actor=request.user, role=obj)

    def delete_queryset(self, request, queryset):
        _run(request, "Deleted", list(queryset), lambda r: services.role_delete(actor=request.user, role=r))


# --- role assignments --------------------------------------------------------------------


class ValidNowFilter(admin.SimpleListFilter):
    title = "validity"
    parameter_name = "valid"

    def lookups(self, request, model_admin):
        return [("now", "valid now"), ("future", "starts later"), ("past", "ended")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "now":
            return queryset.valid_at(now)
        if self.value() == "future":
            return queryset.filter(valid_from__gt=now)
        if self.value() == "past":
            return queryset.filter(valid_to__lte=now)
        return queryset


def _save_assignment(request, obj, form, change):
    with acting(channel="admin"):
        if not change:
            return services.role_assignment_grant(
                actor=request.user,
                user=obj.user,
                role=obj.role,
                valid_from=obj.valid_from,
                valid_to=obj.valid_to,
                reason=obj.reason,
            )
        changed = {f: form.cleaned_data[f] for f in ("valid_from", "valid_to", "reason") if f in form.changed_data}
        if "role" in form.changed_data or "user" in form.changed_data:
            # Another role or person is another grant: end this one, grant the new one.
            services.role_assignment_revoke(actor=request.user, assignment=RoleAssignment(pk=obj.pk), reason="replaced")
            return services.role_assignment_grant(
                actor=request.user,
                user=obj.user,
                role=obj.role,
                valid_from=obj.valid_from,
                valid_to=obj.valid_to,
                reason=obj.reason,
            )
        if changed:
            return services.role_assignment_update(actor=request.user, assignment=obj, **changed)
        return obj


@admin.register(RoleAssignment)
class RoleAssignmentAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "valid_from", "valid_to", "valid_now", "granted_by", "reason")
    list_filter = (ValidNowFilter, "role")
    search_fields = ("user__username", "role__code", "reason")
    list_select_related = ("user", "role", "granted_by")
    autocomplete_fields = ("user",)
    readonly_fields = ("granted_by", "created_at")
    actions = ("revoke_assignments",)
    date_hierarchy = "valid_from"

    @admin.display(boolean=True, description="valid now")
    def valid_now(self, obj):
        now = timezone.now()
        return obj.valid_from <= now and (obj.valid_to is None or obj.valid_to > now)

    def save_model(self, request, obj, form, change):
        try:
            saved = _save_assignment(request, obj, form, change)
        except WorkstreamError as exc:
            messages.error(request, exc.detail)
            return
        if saved is not None:
            obj.pk = saved.pk

    def delete_model(self, request, obj):
        with acting(channel="admin"):
            services.role_assignment_delete(actor=request.user, assignment=obj)

    def delete_queryset(self, request, queryset):
        _run(
            request,
            "Deleted",
            list(queryset),
            lambda a: services.role_assignment_delete(actor=request.user, assignment=a),
        )

    @admin.action(description="Revoke selected assignments now (they are kept as ended)")
    def revoke_assignments(self, request, queryset):
        _run(
            request,
            "Revoked",
            list(queryset),
            lambda a: services.role_assignment_revoke(actor=request.user, assignment=a, reason="revoked in the admin"),
        )


# --- profiles and availability -------------------------------------------------------------


class OutOfOfficeForm(forms.Form):
    out_of_office_from = forms.DateTimeField(required=False, help_text="empty: now")
    out_of_office_until = forms.DateTimeField(required=False, help_text="empty: until further notice")
    delegate = forms.ModelChoiceField(queryset=User.objects.filter(is_active=True).order_by("username"), required=False)


def _out_of_office_action(modeladmin, request, users, action_name: str):
    """The bulk out-of-office page, shared by the user and profile admins."""
    if "apply" in request.POST:
        form = OutOfOfficeForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            _run(
                request,
                "Marked out of office",
                users,
                lambda u: services.availability_set(
                    actor=request.user,
                    user=u,
                    out_of_office_from=data["out_of_office_from"],
                    out_of_office_until=data["out_of_office_until"],
                    delegate=data["delegate"],
                ),
            )
            return None
    else:
        form = OutOfOfficeForm()
    return TemplateResponse(
        request,
        "admin/directory/out_of_office.html",
        {
            **modeladmin.admin_site.each_context(request),
            "form": form,
            "users": users,
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "action": action_name,
        },
    )


def _save_profile_form(request, user, form, new: bool) -> None:
    """Route a profile form's changes to the profile and availability services."""
    changed = set(form.changed_data)
    data = form.cleaned_data
    with acting(channel="admin"):
        profile_changes = {f: data[f] for f in ("department", "skills", "capacity") if f in changed and f in data}
        if profile_changes:
            services.profile_update(actor=request.user, user=user, **profile_changes)
        availability = {"out_of_office_from", "out_of_office_until", "delegate"}
        if changed & availability:
            if data.get("out_of_office_from") is None and data.get("out_of_office_until") is None:
                services.availability_clear(actor=request.user, user=user)
                if data.get("delegate") is not None:
                    messages.warning(request, "A delegate only applies while out of office; it was not kept.")
            else:
                services.availability_set(
                    actor=request.user,
                    user=user,
                    out_of_office_from=data.get("out_of_office_from"),
                    out_of_office_until=data.get("out_of_office_until"),
                    delegate=data.get("delegate"),
                )


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ("department", "skills", "capacity", "out_of_office_from", "out_of_office_until", "delegate")

    def clean_skills(self):
        try:
            return services.validate_skills(self.cleaned_data.get("skills") or {})
        except WorkstreamError as exc:
            raise forms.ValidationError("; ".join(e["message"] for e in exc.errors)) from None

    def clean(self):
        cleaned = super().clean()
        start, until = cleaned.get("out_of_office_from"), cleaned.get("out_of_office_until")
        if until is not None and start is not None and until <= start:
            self.add_error("out_of_office_until", "must be after the start")
        delegate = cleaned.get("delegate")
        if delegate is not None and self.instance.user_id == delegate.pk:
            self.add_error("delegate", "a user cannot be their own delegate")
        elif delegate is not None and not delegate.is_active:
            self.add_error("delegate", f"{delegate.username} is not active")
        return cleaned


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ("user", "department", "capacity", "availability", "delegate", "last_assigned_at")
    list_filter = ("department",)
    search_fields = ("user__username", "user__first_name", "user__last_name", "external_id")
    list_select_related = ("user", "department", "delegate")
    autocomplete_fields = ("delegate",)
    readonly_fields = ("user", "last_assigned_at", "external_id")
    actions = ("mark_out_of_office", "mark_available")

    def has_add_permission(self, request):
        return False  # profiles come with users (admin, LDAP login, sync)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="availability")
    def availability(self, obj):
        if obj.is_out_of_office():
            return f"away until {obj.out_of_office_until:%Y-%m-%d %H:%M}" if obj.out_of_office_until else "away"
        if obj.out_of_office_from and obj.out_of_office_from > timezone.now():
            return f"away from {obj.out_of_office_from:%Y-%m-%d %H:%M}"
        return "available"

    def save_model(self, request, obj, form, change):
        _save_profile_form(request, obj.user, form, new=False)

    @admin.action(description="Mark selected users out of office…")
    def mark_out_of_office(self, request, queryset):
        users = [p.user for p in queryset.select_related("user")]
        return _out_of_office_action(self, request, users, "mark_out_of_office")

    @admin.action(description="Mark selected users available")
    def mark_available(self, request, queryset):
        users = [p.user for p in queryset.select_related("user")]
        _run(request, "Marked available", users, lambda u: services.availability_clear(actor=request.user, user=u))


# --- users ---------------------------------------------------------------------------------


class ProfileInline(admin.StackedInline):
    model = Profile
    form = ProfileForm
    fk_name = "user"
    can_delete = False
    max_num = 1
    readonly_fields = ("last_assigned_at", "external_id")
    fields = (
        "department",
        "skills",
        "capacity",
        ("out_of_office_from", "out_of_office_until"),
        "delegate",
        "last_assigned_at",
        "external_id",
    )
    autocomplete_fields = ("department", "delegate")


class RoleAssignmentInline(admin.TabularInline):
    model = RoleAssignment
    fk_name = "user"
    extra = 0
    fields = ("role", "valid_from", "valid_to", "reason", "granted_by")
    readonly_fields = ("granted_by",)


admin.site.unregister(User)


@admin.register(User)
class WorkstreamUserAdmin(UserAdmin):
    """Django's user admin with the profile (skills, capacity, availability) and role
    assignments inline; changes go through directory.services."""

    inlines = (ProfileInline, RoleAssignmentInline)
    list_display = ("username", "first_name", "last_name", "department", "is_active", "is_staff", "away")
    list_select_related = ("workstream_profile__department",)
    list_filter = ("is_active", "is_staff", "groups", "workstream_profile__department")
    actions = ("mark_out_of_office", "mark_available", "deactivate_users")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else ()  # the profile comes with the new user

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="department", ordering="workstream_profile__department__code")
    def department(self, obj):
        profile = getattr(obj, "workstream_profile", None)
        return profile.department if profile else None

    @admin.display(boolean=True, description="away")
    def away(self, obj):
        profile = getattr(obj, "workstream_profile", None)
        return bool(profile and profile.is_out_of_office())

    def save_model(self, request, obj, form, change):
        with acting(channel="admin"):
            if not change:
                services.user_create(actor=request.user, user=obj, source="admin")
                return
            changed = set(form.changed_data)
            fields = {f: form.cleaned_data[f] for f in ("username", *services.USER_FIELDS) if f in changed}
            # The form already set the new values on `obj`; the service compares with the stored row.
            if fields:
                services.user_update(actor=request.user, user=obj, **fields)
            if "is_active" in changed:
                if form.cleaned_data["is_active"]:
                    services.user_activate(actor=request.user, user=obj, reason="activated in the admin")
                else:
                    services.user_deactivate(actor=request.user, user=obj, reason="deactivated in the admin")

    def save_related(self, request, form, formsets, change):
        if "groups" in form.changed_data:
            with acting(channel="admin"):
                services.user_set_groups(actor=request.user, user=form.instance, groups=form.cleaned_data["groups"])
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request, form, formset, change):
        user = form.instance
        # The admin's change message reads these; the services do the saving.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if formset.model is Profile:
            for f in formset.forms:
                if f.has_changed() and not formset._should_delete_form(f):
                    _save_profile_form(request, user, f, new=f.instance.pk is None)
                    formset.changed_objects.append((f.instance, f.changed_data))
            return
        if formset.model is RoleAssignment:
            with acting(channel="admin"):
                for f in formset.forms:
                    if not f.has_changed() and not formset._should_delete_form(f):
                        continue
                    if formset._should_delete_form(f):
                        if f.instance.pk:
                            services.role_assignment_delete(actor=request.user, assignment=f.instance)
                            formset.deleted_objects.append(f.instance)
                        continue
                    new = f.instance.pk is None
                    f.instance.user = user
                    try:
                        saved = _save_assignment(request, f.instance, f, change=not new)
                    except WorkstreamError as exc:
                        messages.error(request, exc.detail)
                        continue
                    if new:
                        formset.new_objects.append(saved)
                    else:
                        formset.changed_objects.append((saved, f.changed_data))
            return
        super().save_formset(request, form, formset, change)

    @admin.action(description="Mark selected users out of office…")
    def mark_out_of_office(self, request, queryset):
        return _out_of_office_action(self, request, list(queryset), "mark_out_of_office")

    @admin.action(description="Mark selected users available")
    def mark_available(self, request, queryset):
        _run(
            request,
            "Marked available",
            list(queryset),
            lambda u: services.availability_clear(actor=request.user, user=u),
        )

    @admin.action(description="Deactivate selected users (their held items go back to distribution)")
    def deactivate_users(self, request, queryset):
        _run(
            request,
            "Deactivated",
            list(queryset.filter(is_active=True)),
            lambda u: services.user_deactivate(actor=request.user, user=u, reason="deactivated in the admin"),
        )


@admin.register(PlatformRoleGrant)
class PlatformRoleGrantAdmin(admin.ModelAdmin):
    """Temporary platform roles: made and revoked through the services (the membership follows)."""

    list_display = ("user", "role", "valid_from", "valid_to", "in_force", "granted_by", "reason")
    list_filter = ("role", "ended")
    search_fields = ("user__username", "reason")
    list_select_related = ("user", "granted_by")
    autocomplete_fields = ("user",)
    fields = ("user", "role", "valid_from", "valid_to", "reason", "granted_by", "started", "added", "ended")
    readonly_fields = ("granted_by", "started", "added", "ended")
    actions = ("revoke_grants",)

    @admin.display(boolean=True, description="in force")
    def in_force(self, obj):
        now = timezone.now()
        return obj.started and not obj.ended and obj.valid_from <= now < obj.valid_to

    def has_change_permission(self, request, obj=None):
        # a grant is changed only by revoking it: its page is read-only (no Save)
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            with acting(channel="admin"):
                saved = services.platform_role_grant(
                    actor=request.user,
                    user=obj.user,
                    role=obj.role,
                    valid_from=obj.valid_from,
                    valid_to=obj.valid_to,
                    reason=obj.reason,
                )
        except WorkstreamError as exc:
            messages.error(request, exc.detail)
            return
        obj.pk = saved.pk

    @admin.action(description="Revoke selected grants now (they are kept as ended)")
    def revoke_grants(self, request, queryset):
        _run(
            request,
            "Revoked",
            list(queryset),
            lambda g: services.platform_role_revoke(actor=request.user, grant=g, reason="revoked in the admin"),
        )
