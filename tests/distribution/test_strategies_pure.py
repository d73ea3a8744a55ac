"""Each strategy's choice on small hand-built cases: Candidate objects in, one choice out.

No database: the strategies (except round robin's cursor) and the constraint filter
`apply_constraints` are pure when the item carries its related lists and has no SoD key.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from distribution import strategies
from distribution.constraints import CONSTRAINTS, apply_constraints
from distribution.strategies import STRATEGIES, Candidate, next_after, strategy_choices

T0 = datetime(2025, 1, 1, 9, 0, tzinfo=UTC)


def c(uid: int, *, load=0, idle_minutes=None, skills=None, **kw) -> Candidate:
    """A candidate whose last assignment was `idle_minutes` before T0 (None: never assigned)."""
    last = None if idle_minutes is None else T0 - timedelta(minutes=idle_minutes)
    return Candidate(user_id=uid, username=f"u{uid}", load=load, last_assigned_at=last, skills=skills or {}, **kw)


def fake_item(*, required_skills=(), capacity_per_user=None, sod_key=""):
    return SimpleNamespace(
        pk=None,
        required_skills=list(required_skills),
        sod_key=sod_key,
        queue=SimpleNamespace(capacity_per_user=capacity_per_user),
        queue_id=1,
    )


def choose(name: str, cands, item=None):
    return strategies.get(name).choose(cands, item or fake_item())


def test_registry_is_the_list_of_strategies():
    assert [name for name, _ in strategy_choices()] == list(STRATEGIES)
    for name in STRATEGIES:
        assert strategies.get(name).name == name
    assert strategies.get("offer").pushes is False
    assert all(strategies.get(n).pushes for n in STRATEGIES if n != "offer")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_no_candidates_means_no_choice(name):
    assert choose(name, []) is None


def test_offer_never_pushes_and_direct_takes_the_only_candidate():
    assert choose("offer", [c(1), c(2)]) is None
    only = c(7)
    assert choose("direct", [only]) is only


# --- least loaded --------------------------------------------------------------------------


def test_least_loaded_takes_the_fewest_open_items():
    cands = [c(1, load=3, idle_minutes=500), c(2, load=1, idle_minutes=1), c(3, load=2, idle_minutes=900)]
    assert choose("least_loaded", cands).user_id == 2


def test_least_loaded_tie_goes_to_the_longest_idle():
    cands = [c(1, load=1, idle_minutes=10), c(2, load=1, idle_minutes=60), c(3, load=1, idle_minutes=30)]
    assert choose("least_loaded", cands).user_id == 2


def test_least_loaded_tie_never_assigned_beats_any_assignment_then_user_id():
    cands = [c(4, load=0, idle_minutes=10_000), c(5, load=0), c(3, load=0)]
    assert choose("least_loaded", cands).user_id == 3  # both never assigned: lower id
    assert choose("least_loaded", cands[:2]).user_id == 5


def test_least_loaded_full_tie_is_deterministic_by_user_id():
    cands = [c(9, load=2, idle_minutes=5), c(2, load=2, idle_minutes=5), c(5, load=2, idle_minutes=5)]
    assert choose("least_loaded", cands).user_id == 2
    assert choose("least_loaded", list(reversed(cands))).user_id == 2


# --- longest idle --------------------------------------------------------------------------


def test_longest_idle_takes_the_oldest_last_assignment():
    cands = [c(1, idle_minutes=5), c(2, idle_minutes=120), c(3, idle_minutes=60)]
    assert choose("longest_idle", cands).user_id == 2


def test_longest_idle_prefers_never_assigned_users_lowest_id_first():
    cands = [c(1, idle_minutes=10**6), c(8), c(4)]
    assert choose("longest_idle", cands).user_id == 4


def test_longest_idle_ignores_load():
    cands = [c(1, load=0, idle_minutes=1), c(2, load=9, idle_minutes=2)]
    assert choose("longest_idle", cands).user_id == 2


# --- skill based ---------------------------------------------------------------------------


def test_skill_based_best_level_in_the_required_skills():
    item = fake_item(required_skills=["german", "claims"])
    cands = [
        c(1, skills={"german": 5, "claims": 5}),  # 10
        c(2, skills={"german": 9, "claims": 4}),  # 13
        c(3, skills={"german": 3, "claims": 3, "french": 10}),  # 6: other skills do not count
    ]
    assert choose("skill_based", cands, item).user_id == 2


def test_skill_based_equal_level_goes_to_least_loaded_then_longest_idle():
    item = fake_item(required_skills=["german"])
    cands = [
        c(1, load=2, skills={"german": 7}, idle_minutes=999),
        c(2, load=1, skills={"german": 7}, idle_minutes=1),
        c(3, load=1, skills={"german": 7}, idle_minutes=50),
        c(4, load=0, skills={"german": 6}),
    ]
    assert choose("skill_based", cands, item).user_id == 3


def test_skill_based_without_required_skills_uses_overall_level():
    cands = [c(1, skills={"a": 2, "b": 2}), c(2, skills={"a": 5})]
    assert choose("skill_based", cands).user_id == 2


# --- random --------------------------------------------------------------------------------


def test_random_only_returns_candidates_and_reaches_each():
    cands = [c(1), c(2), c(3)]
    strategy = strategies.Random(rng=random.Random(4))  # noqa: S311 - a seeded test RNG
    seen = Counter(strategy.choose(cands, fake_item()).user_id for _ in range(600))
    assert set(seen) == {1, 2, 3}
    assert all(150 <= n <= 250 for n in seen.values()), seen
    default = strategies.get("random")
    assert all(default.choose(cands, fake_item()) in cands for _ in range(50))


# --- round robin's pure rule ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "expected"),
    [(None, 3), (3, 5), (5, 9), (9, 3), (4, 5), (100, 3), (0, 3)],
)
def test_next_after_wraps_around_in_user_id_order(last, expected):
    cands = [c(3), c(5), c(9)]
    assert next_after(cands, last).user_id == expected


def test_next_after_empty_and_single():
    assert next_after([], 5) is None
    assert next_after([c(5)], 5).user_id == 5


def test_next_after_a_full_cycle_serves_everyone_once():
    cands = [c(i) for i in (2, 4, 6, 8)]
    last, served = None, []
    for _ in range(8):
        last = next_after(cands, last).user_id
        served.append(last)
    assert served == [2, 4, 6, 8, 2, 4, 6, 8]


# --- constraints without a database ---------------------------------------------------------


def run(cands, item=None, **kw):
    res = apply_constraints(cands, item or fake_item(), related={"excluded_users": []}, **kw)
    return [x.user_id for x in res.candidates], res.emptied_by


def test_constraint_order_is_documented():
    assert CONSTRAINTS == ("active", "available", "capacity", "skills", "excluded", "separation_of_duties")


def test_active_drops_inactive_and_names_itself_when_emptied():
    assert run([c(1, is_active=False), c(2)]) == ([2], None)
    assert run([c(1, is_active=False)]) == ([], "active")


def test_available_drops_absent_users_without_a_delegate():
    assert run([c(1, out_of_office=True), c(2)]) == ([2], None)
    assert run([c(1, out_of_office=True)]) == ([], "available")


def test_capacity_queue_limit_and_personal_limit():
    item = fake_item(capacity_per_user=2)
    cands = [
        Candidate(1, "a", queue_load=2, load=2),  # queue full
        Candidate(2, "b", queue_load=1, load=5, capacity=5),  # personal full
        Candidate(3, "c", queue_load=1, load=4, capacity=5),
        Candidate(4, "d", queue_load=0, load=50),  # no personal limit
    ]
    assert run(cands, item) == ([3, 4], None)
    assert run(cands[:2], item) == ([], "capacity")
    assert run([Candidate(5, "e", load=0, capacity=0)]) == ([], "capacity")


def test_skills_need_every_required_skill_at_level_one_or_more():
    item = fake_item(required_skills=["german", "claims"])
    cands = [
        c(1, skills={"german": 3}),
        c(2, skills={"german": 3, "claims": 1}),
        c(3, skills={"german": 3, "claims": "high"}),  # not a level
        c(4, skills={"german": 0, "claims": 2}),
    ]
    assert run(cands, item) == ([2], None)
    assert run([cands[0], cands[2]], item) == ([], "skills")


def test_excluded_users_drop_out():
    excluded = [SimpleNamespace(pk=2), SimpleNamespace(pk=3)]
    res = apply_constraints([c(1), c(2), c(3)], fake_item(), related={"excluded_users": excluded})
    assert [x.user_id for x in res.candidates] == [1] and res.emptied_by is None
    res = apply_constraints([c(2), c(3)], fake_item(), related={"excluded_users": excluded})
    assert res.candidates == [] and res.emptied_by == "excluded"


def test_the_first_constraint_that_empties_the_list_is_reported():
    item = fake_item(required_skills=["x"], capacity_per_user=1)
    # each survives the constraint before its own failure
    cands = [
        c(1, is_active=False, skills={"x": 1}),
        Candidate(2, "b", queue_load=1, skills={"x": 1}),
        c(3, skills={}),
    ]
    assert run(cands, item) == ([], "skills")  # capacity left user 3, skills removed them
    assert run(cands, item, skip=("skills",)) == ([3], None)
    assert run(cands[:2], item) == ([], "capacity")
