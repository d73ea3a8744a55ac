"""Items follow people: when a user leaves (out of office, deactivated) their held items move
on, and when they return the untouched ones come back. Each move is a service command."""

from __future__ import annotations

import logging

from django.utils import timezone

from workitems import services
from workitems.models import State, WorkItem

log = logging.getLogger(__name__)


def on_user_unavailable(*, user, reason: str = "out of office") -> int:
    """Move every item `user` holds (ASSIGNED, IN_PROGRESS) to their delegate or back to
    distribution. Each item in its own transaction, so one failure does not undo the rest."""
    ids = list(
        WorkItem.objects.filter(assignee_id=user.pk, state__in=(State.ASSIGNED, State.IN_PROGRESS))
        .order_by("id")
        .values_list("id", flat=True)
    )
    moved = 0
    for item_id in ids:
        item = services.work_item_hand_over_for_absence(item_id=item_id, user=user, reason=reason)
        moved += int(item.assignee_id != user.pk)
    return moved


def on_user_returned(*, user) -> int:
    """Give back to `user` the items moved away during their absence that nobody touched since."""
    ids = list(WorkItem.objects.filter(return_to_id=user.pk).order_by("id").values_list("id", flat=True))
    back = 0
    for item_id in ids:
        back += int(services.work_item_return_to_owner(item_id=item_id) is not None)
    return back


def expire_reservations(*, limit: int = 1000) -> int:
    """The reservation timeout job: lapsed reservations move to the next candidate."""
    ids = list(
        WorkItem.objects.filter(state=State.OFFERED, reserved_until__lte=timezone.now())
        .order_by("reserved_until")
        .values_list("id", flat=True)[:limit]
    )
    done = 0
    for item_id in ids:
        done += int(services.work_item_expire_reservation(item_id=item_id) is not None)
    return done
