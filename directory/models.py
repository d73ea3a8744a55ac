"""Who the workers are: departments, profiles (skills, capacity, availability), roles with validity."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from directory.roles import ROLES
from workitems.schemas import validate_time_range


class Department(models.Model):
    """A unit of the organisation; departments form a tree (parent → children)."""

    code = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="managed_departments"
    )
    external_id = models.CharField(max_length=500, blank=True, help_text="the directory's DN or id")

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    """A user's working profile: department, skills (level 1–10), personal capacity,
    availability (out of office from–until, with a delegate) and last assignment time."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workstream_profile")
    department = models.ForeignKey(Department, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    skills = models.JSONField(default=dict, blank=True, help_text='{"german": 7, "claims": 3}: levels 1–10')
    capacity = models.PositiveIntegerField(
        null=True, blank=True, help_text="open items this user may hold across all queues; empty = no limit"
    )
    out_of_office_from = models.DateTimeField(null=True, blank=True, validators=[validate_time_range])
    out_of_office_until = models.DateTimeField(
        null=True, blank=True, help_text="empty = until further notice", validators=[validate_time_range]
    )
    delegate = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="delegating_profiles"
    )
    last_assigned_at = models.DateTimeField(null=True, blank=True)
    external_id = models.CharField(max_length=500, blank=True, help_text="the directory's DN or objectGUID")
    # The `out_of_office_from` whose start has been handed to distribution (held items moved), so
    # the availability sweep hands each absence over exactly once, even when it starts later.
    out_of_office_handled_from = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["last_assigned_at"], name="profile_last_assigned_idx")]

    def __str__(self) -> str:
        return f"profile of {self.user}"

    def is_out_of_office(self, at=None) -> bool:
        at = at or timezone.now()
        if self.out_of_office_from is None or self.out_of_office_from > at:
            return False
        return self.out_of_office_until is None or at < self.out_of_office_until

    def skill_level(self, skill: str) -> int:
        value = (self.skills or {}).get(skill, 0)
        return value if isinstance(value, int) else 0


class Role(models.Model):
    """A business role (data): the queues it grants and the actions it allows there."""

    code = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    queues = models.ManyToManyField("workitems.Queue", blank=True, related_name="roles")
    actions = models.JSONField(default=list, blank=True, help_text='actions allowed in those queues, e.g. ["claim"]')

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name


class RoleAssignmentQuerySet(models.QuerySet):
    def valid_at(self, at=None):
        at = at or timezone.now()
        return self.filter(valid_from__lte=at).filter(Q(valid_to__isnull=True) | Q(valid_to__gt=at))


class RoleAssignment(models.Model):
    """A user holds a role from `valid_from` until `valid_to` (open-ended if empty), so
    temporary grants expire on their own."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="assignments")
    valid_from = models.DateTimeField(default=timezone.now, validators=[validate_time_range])
    valid_to = models.DateTimeField(null=True, blank=True, validators=[validate_time_range])
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RoleAssignmentQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "valid_from", "valid_to"], name="roleassign_user_valid_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True) | Q(valid_to__gt=models.F("valid_from")),
                name="roleassign_valid_range",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.role}"


class PlatformRoleGrantQuerySet(models.QuerySet):
    def in_force(self, at=None):
        at = at or timezone.now()
        return self.filter(valid_from__lte=at, valid_to__gt=at)


class PlatformRoleGrant(models.Model):
    """A time-bound grant of a platform role (admin, supervisor, worker, service): "supervisor
    for a week". While it is in force the user is a member of the role's group (the configured
    `roles:` group), so every check of roles sees it; when it ends the membership goes again,
    unless the user held it before the grant (`added` is False then) or another grant of the
    same role is still in force (directory.services.platform_role_grants_apply)."""

    ROLE_CHOICES = [(r, r) for r in ROLES]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="platform_role_grants")
    role = models.CharField(max_length=20, choices=ROLE_CHOICES)
    valid_from = models.DateTimeField(default=timezone.now, validators=[validate_time_range])
    valid_to = models.DateTimeField(validators=[validate_time_range])
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField(blank=True)
    added = models.BooleanField(default=False, help_text="the grant made the group membership (ends with it)")
    started = models.BooleanField(default=False)
    ended = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PlatformRoleGrantQuerySet.as_manager()

    class Meta:
        ordering = ["-valid_from", "-id"]
        indexes = [
            models.Index(fields=["user", "valid_to"], name="rolegrant_user_to_idx"),
            models.Index(fields=["valid_from"], name="rolegrant_pending_idx", condition=Q(ended=False)),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(valid_to__gt=models.F("valid_from")), name="rolegrant_valid_range")
        ]

    def __str__(self) -> str:
        return f"{self.user} as {self.role} until {self.valid_to:%Y-%m-%d %H:%M}"


SKILL_LEVEL_VALIDATORS = [MinValueValidator(1), MaxValueValidator(10)]
