"""Push strategies: candidates in, one choice out.

A strategy is a class with `name` and `choose(candidates, item) -> Candidate | None`,
registered with `@register`. Candidates arrive sorted by user id, already
filtered by every constraint. This registry is the only list of strategy names:
the model fields' choices, the configuration schema, queue validation and the
API's enums all derive from it, so adding a strategy is one class here and one
line (`features.distribution.strategies.<name>: true`) in the configuration
file, with no migration.

Every strategy is pure (no database, no Django): round robin is handed the last
user its queue served (`last_user_id`); the engine keeps that cursor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

STRATEGIES: dict[str, type[Strategy]] = {}


@dataclass
class Candidate:
    """One user as the strategies see them."""

    user_id: int
    username: str
    is_active: bool = True
    load: int = 0  # open items held, all queues
    queue_load: int = 0  # open items held in the item's queue
    capacity: int | None = None  # personal limit across queues
    skills: dict[str, int] = field(default_factory=dict)
    last_assigned_at: datetime | None = None
    out_of_office: bool = False
    delegate_id: int | None = None
    on_behalf_of: int | None = None  # set when standing in for an absent user


_NEVER = datetime.min.replace(tzinfo=UTC)


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


class Strategy:
    name = ""
    label = ""
    pushes = True  # False for `offer`: the item is left for its candidates to claim
    queue_default = True  # False for `direct`: only an item's own create names it
    uses_cursor = False  # True for round robin: `choose` gets the queue's last served user
    uses_familiar = False  # True for retain familiar: `choose` gets who did the run's previous item

    def choose(self, candidates: list[Candidate], item, last_user_id: int | None = None) -> Candidate | None:
        raise NotImplementedError


def strategy_names() -> list[str]:
    """Every registered strategy, in registration order."""
    return list(STRATEGIES)


def strategy_choices() -> list[tuple[str, str]]:
    """(name, label) of every strategy: the choices of the `strategy` model fields (a callable,
    so that registering a strategy changes no migration)."""
    return [(name, cls.label or name.replace("_", " ")) for name, cls in STRATEGIES.items()]


def queue_strategy_choices() -> list[tuple[str, str]]:
    """The strategies a queue may default to (all but `direct`, which names its user per item)."""
    return [(name, label) for name, label in strategy_choices() if STRATEGIES[name].queue_default]


def idle_key(c: Candidate):
    """Never assigned first, then the oldest last assignment; user id breaks ties."""
    return (c.last_assigned_at or _NEVER, c.user_id)


@register
class Offer(Strategy):
    name = "offer"
    label = "offer (pull)"
    pushes = False

    def choose(self, candidates, item, last_user_id=None):
        return None


@register
class Direct(Strategy):
    """The named assignee (the engine resolves only that user, so the list has 0 or 1)."""

    name = "direct"
    queue_default = False

    def choose(self, candidates, item, last_user_id=None):
        return candidates[0] if candidates else None


@register
class Random(Strategy):
    name = "random"

    def __init__(self, rng: random.Random | None = None):
        self.rng = rng or random.SystemRandom()

    def choose(self, candidates, item, last_user_id=None):
        return self.rng.choice(candidates) if candidates else None


@register
class LeastLoaded(Strategy):
    """Fewest open held items; ties go to the longest idle."""

    name = "least_loaded"

    def choose(self, candidates, item, last_user_id=None):
        return min(candidates, key=lambda c: (c.load, *idle_key(c)), default=None)


@register
class LongestIdle(Strategy):
    """The candidate whose last assignment is oldest (Twilio TaskRouter's default)."""

    name = "longest_idle"

    def choose(self, candidates, item, last_user_id=None):
        return min(candidates, key=idle_key, default=None)


@register
class SkillBased(Strategy):
    """Best combined level in the required skills, then least loaded, then longest idle."""

    name = "skill_based"

    def choose(self, candidates, item, last_user_id=None):
        required = list(item.required_skills or [])

        def key(c: Candidate):
            level = (
                sum(c.skills.get(s, 0) for s in required)
                if required
                else sum(v for v in c.skills.values() if isinstance(v, int))
            )
            return (-level, c.load, *idle_key(c))

        return min(candidates, key=key, default=None)


def next_after(candidates: list[Candidate], last_user_id: int | None) -> Candidate | None:
    """Round robin's pure rule: the first candidate (by user id) after the last one served, wrapping."""
    if not candidates:
        return None
    if last_user_id is not None:
        for c in candidates:
            if c.user_id > last_user_id:
                return c
    return candidates[0]


@register
class RoundRobin(Strategy):
    """Each candidate in turn, fair across processes: the engine holds the queue's cursor
    row locked FOR UPDATE while the next user is chosen and written back, so
    concurrent creators queue on it and never pick the same turn twice."""

    name = "round_robin"
    uses_cursor = True

    def choose(self, candidates, item, last_user_id=None):
        return next_after(candidates, last_user_id)


@register
class RetainFamiliar(Strategy):
    """Retain familiar (workflow resource pattern 7): the user who completed the run's previous
    item (same workflow_id and run_id), when they are among the eligible candidates; else the
    least loaded. The engine looks the familiar user up (`familiar_user_id`)."""

    name = "retain_familiar"
    uses_familiar = True

    def choose(self, candidates, item, last_user_id=None, familiar_user_id=None):
        familiar = next((c for c in candidates if c.user_id == familiar_user_id), None)
        return familiar or LeastLoaded().choose(candidates, item)


def get(name: str) -> Strategy:
    return STRATEGIES[name]()
