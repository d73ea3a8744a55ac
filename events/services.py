"""Commands on webhook subscriptions (the API and the admin call these)."""

from __future__ import annotations

import re

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from directory.roles import ADMIN, SERVICE, roles_of
from events import urlguard, webhooks
from events.models import Delivery, Subscription
from workitems.errors import NotAllowed, NotFound, ValidationFailed

MAX_URL = urlguard.MAX_URL
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[0-9]+$")
MANAGER_ROLES = frozenset({ADMIN, SERVICE})


def subscription_may_manage(actor) -> bool:
    """Service clients manage their own subscriptions; admins manage all."""
    return bool(roles_of(actor) & MANAGER_ROLES)


def subscriptions_visible_to(actor):
    qs = Subscription.objects.filter(deleted_at__isnull=True)
    if ADMIN in roles_of(actor):
        return qs
    return qs.filter(owner=actor)


def subscription_get_for(*, actor, subscription_id: int, for_update: bool = False) -> Subscription:
    """The subscription if `actor` may see it, else NotFound (not told apart from a missing one)."""
    qs = subscriptions_visible_to(actor)
    if for_update:
        qs = qs.select_for_update()
    sub = qs.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound(f"subscription {subscription_id} not found")
    return sub


def _validate(url, event_types) -> list[dict[str, str]]:
    errors = []
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        errors.append({"field": "url", "message": f"an http(s) URL of at most {MAX_URL} characters is required"})
    else:
        try:
            urlguard.check(url)  # a subscription's host must resolve now (it is checked again per delivery)
        except urlguard.TargetRefused as exc:
            errors.append({"field": "url", "message": f"refused: {exc}"})
    if not isinstance(event_types, list) or not event_types:
        errors.append({"field": "event_types", "message": "a non-empty list of event types is required"})
    else:
        for i, t in enumerate(event_types):
            if not isinstance(t, str) or not EVENT_TYPE.match(t):
                errors.append(
                    {"field": f"event_types[{i}]", "message": "not an event type (e.g. workitem.completed.v1)"}
                )
    return errors


@transaction.atomic
def subscription_create(*, actor, url: str, event_types: list[str]) -> Subscription:
    """Register a webhook endpoint; the returned object carries its signing secret."""
    if not subscription_may_manage(actor):
        raise NotAllowed("webhook subscriptions are for service clients and admins")
    errors = _validate(url, event_types)
    if errors:
        raise ValidationFailed(errors)
    sub = Subscription.objects.create(
        url=url, event_types=list(dict.fromkeys(event_types)), secret=webhooks.new_secret(), owner=actor
    )
    audit_record(
        stream=f"subscription:{sub.pk}",
        action="create",
        actor=actor,
        to_state="active",
        data={"url": url, "event_types": sub.event_types},
    )
    return sub


@transaction.atomic
def subscription_delete(*, actor, subscription_id: int) -> None:
    """Stop deliveries to the endpoint; the row and its delivery log are kept."""
    if not subscription_may_manage(actor):
        raise NotAllowed("webhook subscriptions are for service clients and admins")
    sub = subscription_get_for(actor=actor, subscription_id=subscription_id, for_update=True)
    before = "active" if sub.active else "disabled"
    sub.active, sub.deleted_at = False, timezone.now()
    sub.save(update_fields=["active", "deleted_at"])
    sub.deliveries.filter(status=Delivery.PENDING).update(status=Delivery.FAILED, last_error="subscription deleted")
    audit_record(stream=f"subscription:{sub.pk}", action="delete", actor=actor, from_state=before, to_state="deleted")


@transaction.atomic
def subscription_enable(*, actor, subscription_id: int) -> Subscription:
    """Re-enable a disabled subscription (admin): failures and breaker reset."""
    sub = subscription_get_for(actor=actor, subscription_id=subscription_id, for_update=True)
    if ADMIN not in roles_of(actor):
        raise NotAllowed("only admins re-enable subscriptions")
    sub.active, sub.disabled_at, sub.disabled_reason = True, None, ""
    sub.consecutive_failures, sub.circuit_open_until = 0, None
    sub.save()
    audit_record(
        stream=f"subscription:{sub.pk}", action="enable", actor=actor, from_state="disabled", to_state="active"
    )
    return sub
