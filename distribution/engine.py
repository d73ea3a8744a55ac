"""The seam where distribution decides what happens to a new or returned item.

For now: a named assignee is assigned (the constraints are checked by the
service's pipeline), everything else is offered to its queue (pull). The
strategies (round robin, least loaded, …) plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """What to do with an item: offer it to its candidates, or assign it to `user`."""

    action: str  # "offer" | "assign"
    user: object | None = None
    strategy: str = "offer"
    reason: str = ""


def route_item(*, item, requested_assignee=None) -> Route:
    """Decide how `item` is distributed."""
    if requested_assignee is not None:
        return Route(action="assign", user=requested_assignee, strategy="direct")
    return Route(action="offer", strategy="offer")
