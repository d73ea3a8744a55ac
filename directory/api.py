"""Directory endpoints: users (skills, capacity, availability, load), groups, departments, roles.

Thin views over directory.selectors (reads, visibility built in) and directory.services
(the one write here: availability). Who sees whom is described in directory/selectors.py.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.pagination import Cursor
from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES, page_size_parameter
from api.views import WorkstreamAPIView
from config import wsconfig
from config.timefmt import isoformat_z as _iso
from directory import selectors, services
from directory.models import Department, PlatformRoleGrant
from directory.roles import ADMIN, ROLES, roles_of
from workitems import schemas
from workitems.errors import ValidationFailed

User = get_user_model()

PAGE_PARAMS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="opaque cursor from next/previous"),
    page_size_parameter(),
]


# --- representations ---------------------------------------------------------------------


class AvailabilityOut(serializers.Serializer):
    available = serializers.BooleanField(help_text="false while an absence is in effect")
    out_of_office_from = serializers.DateTimeField(allow_null=True)
    out_of_office_until = serializers.DateTimeField(allow_null=True)
    delegate = serializers.CharField(allow_null=True)


class RoleAssignmentOut(serializers.Serializer):
    role = serializers.CharField()
    name = serializers.CharField()
    valid_from = serializers.DateTimeField()
    valid_to = serializers.DateTimeField(allow_null=True)


class UserOut(serializers.Serializer):
    username = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    email = serializers.CharField()
    is_active = serializers.BooleanField()
    department = serializers.CharField(allow_null=True, help_text="department code")
    groups = serializers.ListField(child=serializers.CharField())
    platform_roles = serializers.ListField(child=serializers.ChoiceField(choices=ROLES))
    roles = RoleAssignmentOut(many=True, help_text="business roles held now (valid assignments)")
    skills = serializers.DictField(child=serializers.IntegerField(min_value=1, max_value=10))
    capacity = serializers.IntegerField(allow_null=True, help_text="open items across all queues; null = no limit")
    load = serializers.IntegerField(help_text="open items held now (assigned, in progress, suspended)")
    last_assigned_at = serializers.DateTimeField(allow_null=True)
    availability = AvailabilityOut()


class UserPageOut(serializers.Serializer):
    results = UserOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


def user_representation(user, *, at=None) -> dict:
    """A user as the API shows it (expects the prefetches of selectors.user_list_for)."""
    profile = getattr(user, "workstream_profile", None)
    at = at or timezone.now()
    group_names = [g.name for g in user.groups.all()]
    role_by_group = {name: role for role, name in wsconfig.get().roles.as_dict().items()}
    platform = {role_by_group[n] for n in group_names if n in role_by_group}
    if user.is_superuser:
        platform.add("admin")
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": user.is_active,
        "department": profile.department.code if profile and profile.department else None,
        "groups": group_names,
        "platform_roles": sorted(platform) if user.is_active else [],
        "roles": [
            {"role": a.role.code, "name": a.role.name, "valid_from": _iso(a.valid_from), "valid_to": _iso(a.valid_to)}
            for a in getattr(user, "current_role_assignments", [])
        ],
        "skills": dict(profile.skills or {}) if profile else {},
        "capacity": profile.capacity if profile else None,
        "load": getattr(user, "load", 0),
        "last_assigned_at": _iso(profile.last_assigned_at) if profile else None,
        "availability": {
            "available": not (profile and profile.is_out_of_office(at)),
            "out_of_office_from": _iso(profile.out_of_office_from) if profile else None,
            "out_of_office_until": _iso(profile.out_of_office_until) if profile else None,
            "delegate": profile.delegate.username if profile and profile.delegate else None,
        },
    }


class GroupOut(serializers.Serializer):
    name = serializers.CharField()
    members = serializers.IntegerField()
    platform_role = serializers.CharField(allow_null=True, help_text="admin, supervisor, worker or service")


class DepartmentOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    parent = serializers.CharField(allow_null=True)
    manager = serializers.CharField(allow_null=True)
    members = serializers.IntegerField()


class RoleOut(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    queues = serializers.ListField(child=serializers.CharField())
    actions = serializers.ListField(child=serializers.CharField())
    holders = serializers.IntegerField(help_text="users whose assignment is valid now")


def _page_out(name: str, item: serializers.Serializer):
    return type(
        name,
        (serializers.Serializer,),
        {
            "results": item(many=True),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
        },
    )


GroupPageOut = _page_out("GroupPageOut", GroupOut)
DepartmentPageOut = _page_out("DepartmentPageOut", DepartmentOut)
RolePageOut = _page_out("RolePageOut", RoleOut)


# --- input -------------------------------------------------------------------------------


class TimeIn(serializers.DateTimeField):
    """A time as every input reads one (workitems.schemas.parse_iso_time): ISO 8601 in ASCII,
    a real date, within the accepted range; without a zone, UTC."""

    def to_internal_value(self, value):
        parsed, message = schemas.parse_iso_time(value, zone_required=False)
        if message:
            raise serializers.ValidationError(message)
        return parsed


class AvailabilityIn(serializers.Serializer):
    available = serializers.BooleanField(help_text="true clears any absence; false sets one")
    out_of_office_from = TimeIn(required=False, allow_null=True, help_text="default: now")
    out_of_office_until = TimeIn(required=False, allow_null=True, help_text="null: open-ended")
    delegate = serializers.CharField(required=False, allow_null=True, help_text="username of an active user")

    def validate(self, attrs):
        if attrs["available"]:
            extra = sorted(k for k in ("out_of_office_from", "out_of_office_until", "delegate") if attrs.get(k))
            if extra:
                raise serializers.ValidationError({extra[0]: "only with available=false"})
        return attrs


# --- views -------------------------------------------------------------------------------


def _check_params(request, known: set[str]) -> None:
    unknown = sorted(set(request.query_params) - known - {"cursor", "page_size"})
    if unknown:
        raise ProblemException(
            "validation-error",
            f"unknown query parameter(s): {', '.join(unknown)}",
            errors=[{"field": u, "message": "unknown filter"} for u in unknown],
        )
    raw = request.query_params.get("page_size")
    if raw is not None and (not raw.isdigit() or not 1 <= int(raw) <= wsconfig.get().performance.maxPageSize):
        raise ProblemException("validation-error", "page_size: must be an integer from 1 to the maximum page size")


def _bool_param(request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ProblemException(
        "validation-error",
        f"{name}: must be true or false",
        errors=[{"field": name, "message": "must be true or false"}],
    )


class _Paged(WorkstreamAPIView):
    order: tuple[str, ...] = ("id",)

    def cursor_ordering(self, request):
        return self.order

    def page(self, request, qs, represent):
        paginator = Cursor()
        rows = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([represent(r) for r in rows])


class UserListView(_Paged):
    order = ("username",)

    @extend_schema(
        operation_id="users_list",
        summary="Users the caller may see",
        description="Admins, supervisors and service clients see everyone; a worker sees themself and "
        "the members of their teams (groups other than the platform-role groups).",
        parameters=[
            OpenApiParameter("department", OpenApiTypes.STR, description="department code (its sub-departments too)"),
            OpenApiParameter("group", OpenApiTypes.STR, description="group name"),
            OpenApiParameter("active", OpenApiTypes.BOOL),
            OpenApiParameter("available", OpenApiTypes.BOOL, description="not out of office now"),
            OpenApiParameter("search", OpenApiTypes.STR, description="username, name or email contains"),
            *PAGE_PARAMS,
        ],
        responses={200: UserPageOut, **PROBLEM_RESPONSES(400, 401, 429)},
    )
    def get(self, request):
        _check_params(request, {"department", "group", "active", "available", "search"})
        now = timezone.now()
        qs = selectors.user_list_for(actor=request.user, at=now)
        params = request.query_params
        if "department" in params:
            codes = _department_subtree(params["department"])
            qs = qs.filter(workstream_profile__department__code__in=codes)
        if "group" in params:
            qs = qs.filter(groups__name=params["group"])
        active = _bool_param(request, "active")
        if active is not None:
            qs = qs.filter(is_active=active)
        available = _bool_param(request, "available")
        if available is not None:
            away = selectors.out_of_office_q(now)
            qs = qs.exclude(away) if available else qs.filter(away)
        if params.get("search"):
            term = params["search"]
            qs = qs.filter(
                Q(username__icontains=term)
                | Q(first_name__icontains=term)
                | Q(last_name__icontains=term)
                | Q(email__icontains=term)
            )
        qs = selectors.with_load(qs)
        return self.page(request, qs, lambda u: user_representation(u, at=now))


def _department_subtree(code: str) -> set[str]:
    parents = dict(Department.objects.values_list("code", "parent__code"))
    if code not in parents:
        return set()
    found = {code}
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                changed = True
    return found


class UserDetailView(WorkstreamAPIView):
    @extend_schema(
        operation_id="users_retrieve",
        summary="One user: skills, capacity, availability, load",
        responses={200: UserOut, **PROBLEM_RESPONSES(401, 404, 429)},
    )
    def get(self, request, username: str):
        now = timezone.now()
        return Response(
            user_representation(selectors.user_get_for(actor=request.user, username=username, at=now), at=now)
        )


def _absence_body() -> dict:
    """The document's form of an availability body: `{"available": true}` alone, or
    `{"available": false, …}` with the absence's optional bounds and delegate (AvailabilityIn
    enforces the same)."""
    fields = AvailabilityIn().fields
    when = {"type": "string", "format": "date-time", "nullable": True}
    absent = {
        "available": {"type": "boolean", "enum": [False]},
        "out_of_office_from": {**when, "description": fields["out_of_office_from"].help_text},
        "out_of_office_until": {**when, "description": fields["out_of_office_until"].help_text},
        "delegate": {"type": "string", "minLength": 1, "nullable": True, "description": fields["delegate"].help_text},
    }
    back = {"available": {"type": "boolean", "enum": [True]}}
    return {
        "oneOf": [
            {"type": "object", "properties": props, "required": ["available"], "additionalProperties": False}
            for props in (back, absent)
        ]
    }


class UserAvailabilityView(WorkstreamAPIView):
    @extend_schema(
        operation_id="users_availability",
        summary="Set or clear a user's absence (the user themself or a supervisor)",
        description='`{"available": false, "out_of_office_until": …, "delegate": "carol"}` marks the user '
        "out of office (from now unless `out_of_office_from` says later); their held items go to the delegate or "
        'back to distribution when the absence begins. `{"available": true}` ends it.',
        request={"application/json": _absence_body()},
        responses={200: UserOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 413, 429)},
    )
    def patch(self, request, username: str):
        target = selectors.user_get_for(actor=request.user, username=username)
        if not isinstance(request.data, dict):
            raise ProblemException("validation-error", "the request body must be a JSON object")
        ser = AvailabilityIn(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        if data["available"]:
            services.availability_clear(actor=request.user, user=target)
        else:
            delegate = None
            if data.get("delegate"):
                delegate = User.objects.filter(username=data["delegate"]).first()
                if delegate is None:
                    raise ValidationFailed([{"field": "delegate", "message": f"unknown user {data['delegate']!r}"}])
            services.availability_set(
                actor=request.user,
                user=target,
                out_of_office_from=data.get("out_of_office_from"),
                out_of_office_until=data.get("out_of_office_until"),
                delegate=delegate,
            )
        now = timezone.now()
        return Response(
            user_representation(selectors.user_get_for(actor=request.user, username=username, at=now), at=now)
        )


class GroupListView(_Paged):
    order = ("name",)

    @extend_schema(
        operation_id="groups_list",
        summary="Groups the caller may see (all for supervisors, admins, services; a worker's own)",
        parameters=PAGE_PARAMS,
        responses={200: GroupPageOut, **PROBLEM_RESPONSES(400, 401, 429)},
    )
    def get(self, request):
        _check_params(request, set())
        role_by_group = {name: role for role, name in wsconfig.get().roles.as_dict().items()}
        qs = selectors.group_list_for(actor=request.user)
        return self.page(
            request,
            qs,
            lambda g: {"name": g.name, "members": g.member_count, "platform_role": role_by_group.get(g.name)},
        )


class DepartmentListView(_Paged):
    order = ("code",)

    @extend_schema(
        operation_id="departments_list",
        summary="The department tree, as a list with parent codes",
        parameters=PAGE_PARAMS,
        responses={200: DepartmentPageOut, **PROBLEM_RESPONSES(400, 401, 429)},
    )
    def get(self, request):
        _check_params(request, set())
        return self.page(
            request,
            selectors.department_list(),
            lambda d: {
                "code": d.code,
                "name": d.name,
                "parent": d.parent.code if d.parent else None,
                "manager": d.manager.username if d.manager else None,
                "members": d.member_count,
            },
        )


class RoleListView(_Paged):
    order = ("code",)

    @extend_schema(
        operation_id="roles_list",
        summary="Business roles: the queues each grants and the actions it allows there",
        parameters=PAGE_PARAMS,
        responses={200: RolePageOut, **PROBLEM_RESPONSES(400, 401, 429)},
    )
    def get(self, request):
        _check_params(request, set())
        return self.page(
            request,
            selectors.role_list(),
            lambda r: {
                "code": r.code,
                "name": r.name,
                "description": r.description,
                "queues": sorted(q.name for q in r.queues.all()),
                "actions": list(r.actions or []),
                "holders": r.holders,
            },
        )


# --- temporary platform roles -------------------------------------------------------------------


class RoleGrantIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=list(ROLES), help_text="the platform role granted")
    valid_to = TimeIn(help_text="when it ends: after now, at most a year after valid_from (else 409)")
    valid_from = TimeIn(required=False, help_text="when it begins; default now")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class RoleGrantRevokeIn(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class RoleGrantOut(serializers.Serializer):
    id = serializers.IntegerField()
    user = serializers.CharField()
    role = serializers.CharField()
    valid_from = serializers.DateTimeField()
    valid_to = serializers.DateTimeField()
    in_force = serializers.BooleanField(help_text="the user holds the role through this grant now")
    granted_by = serializers.CharField(allow_null=True)
    reason = serializers.CharField()


def grant_representation(grant, now=None) -> dict:
    now = now or timezone.now()
    return {
        "id": grant.pk,
        "user": grant.user.username,
        "role": grant.role,
        "valid_from": _iso(grant.valid_from),
        "valid_to": _iso(grant.valid_to),
        "in_force": grant.started and not grant.ended and grant.valid_from <= now < grant.valid_to,
        "granted_by": grant.granted_by.username if grant.granted_by_id else None,
        "reason": grant.reason,
    }


def _admin_only(request) -> None:
    if ADMIN not in roles_of(request.user):
        raise ProblemException("not-allowed", "only admins manage temporary platform roles")


class UserRoleGrantsView(WorkstreamAPIView):
    @extend_schema(
        operation_id="users_role_grants_list",
        summary="A user's temporary platform roles, newest first (admins)",
        responses={200: RoleGrantOut(many=True), **PROBLEM_RESPONSES(401, 403, 404, 429)},
    )
    def get(self, request, username: str):
        _admin_only(request)
        user = selectors.user_get_for(actor=request.user, username=username)
        grants = PlatformRoleGrant.objects.filter(user=user).select_related("user", "granted_by")[:1000]
        now = timezone.now()
        return Response([grant_representation(g, now) for g in grants])

    @extend_schema(
        operation_id="users_role_grants_create",
        summary="Grant a platform role until a time (admins): supervisor for a week",
        description="While the grant is in force the user is a member of the role's group, so every "
        "check of roles sees it; when it ends (beat, within a minute) the membership goes again unless "
        "the user held it before. A directory sync keeps a granted membership while the grant lasts.",
        request=RoleGrantIn,
        responses={201: RoleGrantOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 413, 429)},
    )
    def post(self, request, username: str):
        _admin_only(request)
        user = selectors.user_get_for(actor=request.user, username=username)
        ser = RoleGrantIn(data=_object_body(request, RoleGrantIn))
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        grant = services.platform_role_grant(
            actor=request.user,
            user=user,
            role=data["role"],
            valid_to=data["valid_to"],
            valid_from=data.get("valid_from"),
            reason=data.get("reason", ""),
        )
        return Response(grant_representation(grant), status=201)


class RoleGrantRevokeView(WorkstreamAPIView):
    @extend_schema(
        operation_id="role_grants_revoke",
        summary="End a temporary platform role now (admins); kept for the record",
        request=RoleGrantRevokeIn,
        responses={200: RoleGrantOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 413, 429)},
    )
    def post(self, request, grant_id: int):
        _admin_only(request)
        grant = PlatformRoleGrant.objects.select_related("user", "granted_by").filter(pk=grant_id).first()
        if grant is None:
            raise ProblemException("not-found", f"role grant {grant_id} not found")
        ser = RoleGrantRevokeIn(data=_object_body(request, RoleGrantRevokeIn))
        ser.is_valid(raise_exception=True)
        grant = services.platform_role_revoke(
            actor=request.user, grant=grant, reason=ser.validated_data.get("reason", "")
        )
        return Response(grant_representation(grant))


def _object_body(request, serializer_class) -> dict:
    """The JSON object body; a member the serializer does not know is refused (400 naming it)."""
    data = request.data
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "the request body must be a JSON object"}])
    unknown = sorted(set(data) - set(serializer_class().fields))
    if unknown:
        raise ValidationFailed([{"field": name, "message": "unknown field"} for name in unknown])
    return data
