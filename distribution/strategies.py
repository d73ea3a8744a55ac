"""Push strategies: candidates in, one choice out.

A strategy is a class with `name` and `choose(candidates, item) -> Candidate | None`,
registered with `@register`. Candidates arrive sorted by user id, already
filtered by every constraint. Adding a strategy is one class here and one line
(`features.distribution.strategies.<name>: true`) in the configuration file.
Only round robin touches the database (its cursor); the rest are pure.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from distribution.constraints import Candidate

STRATEGIES: dict[str, type[Strategy]] = {}

_NEVER = datetime.min.replace(tzinfo=UTC)


def register(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls
    return cls


class Strategy:
    name = ""
    pushes = True  # False for `offer`: the item is left for its candidates to claim

    def choose(self, candidates: list[Candidate], item) -> Candidate | None:
        raise NotImplementedError


def idle_key(c: Candidate):
    """Never assigned first, then the oldest last assignment; user id breaks ties."""
    return (c.last_assigned_at or _NEVER, c.user_id)


@register
class Offer(Strategy):
    name = "offer"
    pushes = False

    def choose(self, candidates, item):
        return None


@register
class Direct(Strategy):
    """The named assignee (the engine resolves only that user, so the list has 0 or 1)."""

    name = "direct"

    def choose(self, candidates, item):
        return candidates[0] if candidates else None


@register
class Random(Strategy):
    name = "random"

    def __init__(self, rng: random.Random | None = None):
        self.rng = rng or random.SystemRandom()

    def choose(self, candidates, item):
        return self.rng.choice(candidates) if candidates else None


@register
class LeastLoaded(Strategy):
    """Fewest open held items; ties go to the longest idle."""

    name = "least_loaded"

    def choose(self, candidates, item):
        return min(candidates, key=lambda c: (c.load, *idle_key(c)), default=None)


@register
class LongestIdle(Strategy):
    """The candidate whose last assignment is oldest (Twilio TaskRouter's default)."""

    name = "longest_idle"

    def choose(self, candidates, item):
        return min(candidates, key=idle_key, default=None)


@register
class SkillBased(Strategy):
    """Best combined level in the required skills, then least loaded, then longest idle."""

    name = "skill_based"

    def choose(self, candidates, item):
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
    """Each candidate in turn, fair across processes: the cursor is a row per queue,
    locked FOR UPDATE while the next user is chosen and written back, so
    concurrent creators queue on it and never pick the same turn twice."""

    name = "round_robin"

    def choose(self, candidates, item):
        from distribution.models import RoundRobinCursor

        if not candidates:
            return None
        cursor = RoundRobinCursor.lock_for(item.queue_id)
        choice = next_after(candidates, cursor.last_user_id)
        cursor.last_user_id = choice.user_id
        cursor.save(update_fields=["last_user_id"])
        return choice


def get(name: str) -> Strategy:
    return STRATEGIES[name]()
