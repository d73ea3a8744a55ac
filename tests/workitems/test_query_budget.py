"""The statement budget of each command, in-process through the services (issue 13).

Each command is counted with an execute wrapper (tests/querycount.py): every statement the
command sends, not counting transaction control (BEGIN, COMMIT, SAVEPOINT, RELEASE). The
actor is loaded fresh for each command, as a request's authentication loads it, so what a
command reads about its caller (groups, roles) is counted too. A failure prints the
statements. Run with `-s` to see every command's count.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from directory.roles import remember_groups, with_groups
from tests import factories
from tests.querycount import count_statements
from workitems import services

BUDGET = {
    # create: the budgets 4 and 6; the item's id comes with the queue's read, so its
    # INSERT goes with the change's statement (config.statements): 2 and 5
    "create (pull queue)": 2,
    "create (push strategy)": 5,
    # a create that takes its task type's defaults also reads the type and its groups
    # (tests/workitems/test_task_types.py); one without a task type pays nothing for them
    "create (task type)": 4,
    "claim": 4,
    "claim-next": 4,
    # the named queues' ids come with the caller's lock (selectors.claimer_lock)
    "claim-next (one queue named)": 4,
    "claim-next (several queues, by score)": 4,
    "start": 3,
    "complete": 3,
    "release": 3,
    "cancel": 3,
    # reassign (no budget in the issue) locks and reads the row once and runs assign/delegate
    # on it: the lock, the target by username (row, groups), the target's candidacy, its lock
    # and holding constraints (2), the change; 8 before, when the chosen command locked again
    "reassign": 7,
    "skip": 3,
    # forward: the targets' ids (users and groups, one statement), the lock, the change with
    # the candidate lists' writes
    "forward": 3,
}


def fresh(user):
    """The user as a request's authentication hands it over: its row and its groups, nothing else."""
    loaded = with_groups(get_user_model().objects.filter(pk=user.pk)).get()
    remember_groups(loaded)
    return loaded


def counted(name, fn):
    with count_statements() as seen:
        result = fn()
    print(seen.report(name))  # noqa: T201 - `pytest -s` shows today's counts
    assert len(seen) <= BUDGET[name], seen.report(f"{name} is over its budget of {BUDGET[name]}")
    return result


@pytest.mark.django_db
def test_create_into_a_pull_queue(svc, queue):
    actor = fresh(svc)
    item = counted(
        "create (pull queue)", lambda: services.work_item_create(actor=actor, data=factories.item_body(queue))
    )
    assert item.state == "OFFERED"


@pytest.mark.django_db
def test_create_with_a_push_strategy(svc, team_a, alice, carol):
    q = factories.queue("push-queue", groups=[team_a], strategy="least_loaded")
    actor = fresh(svc)
    item = counted(
        "create (push strategy)", lambda: services.work_item_create(actor=actor, data=factories.item_body(q))
    )
    assert item.state == "ASSIGNED" and item.assignee_id in (alice.pk, carol.pk)


@pytest.mark.django_db
def test_claim(make_item, alice):
    item = make_item()
    actor = fresh(alice)
    item = counted("claim", lambda: services.work_item_claim(item_id=item.pk, actor=actor, expected_version=1))
    assert item.state == "ASSIGNED" and item.assignee_id == alice.pk


@pytest.mark.django_db
def test_claim_next(make_item, alice):
    make_item(priority=10)
    best = make_item(priority=90)
    actor = fresh(alice)
    item = counted("claim-next", lambda: services.work_item_claim_next(actor=actor))
    assert item.pk == best.pk and item.assignee_id == alice.pk


@pytest.mark.django_db
def test_claim_next_naming_queues(make_item, svc, alice, team_a, queue):
    other = factories.queue("other-queue", groups=[team_a], weight=2)
    make_item(priority=10)
    best = factories.item(actor=svc, queue=other, priority=60)  # 2 × 60 beats 1 × 90
    make_item(priority=90)
    actor = fresh(alice)
    item = counted(
        "claim-next (several queues, by score)",
        lambda: services.work_item_claim_next(actor=actor, queues=[queue.name, other.name]),
    )
    assert item.pk == best.pk
    actor = fresh(alice)
    item = counted("claim-next (one queue named)", lambda: services.work_item_claim_next(actor=actor, queue=queue.name))
    assert item.priority == 90


@pytest.mark.django_db
def test_start_and_complete(make_item, alice):
    item = services.work_item_claim(item_id=make_item().pk, actor=alice)
    actor = fresh(alice)
    item = counted("start", lambda: services.work_item_start(item_id=item.pk, actor=actor, expected_version=2))
    assert item.state == "IN_PROGRESS"
    actor = fresh(alice)
    item = counted(
        "complete",
        lambda: services.work_item_complete(item_id=item.pk, actor=actor, result={"ok": True}, expected_version=3),
    )
    assert item.state == "COMPLETED"


@pytest.mark.django_db
def test_release(make_item, alice):
    item = services.work_item_claim(item_id=make_item().pk, actor=alice)
    actor = fresh(alice)
    item = counted("release", lambda: services.work_item_release(item_id=item.pk, actor=actor, expected_version=2))
    assert item.state == "OFFERED" and item.assignee_id is None


@pytest.mark.django_db
def test_cancel(make_item, svc):
    item = make_item()
    actor = fresh(svc)
    item = counted("cancel", lambda: services.work_item_cancel(item_id=item.pk, actor=actor, reason="not needed"))
    assert item.state == "CANCELLED"


@pytest.mark.django_db
@pytest.mark.parametrize("held", [False, True], ids=["assign an offered item", "delegate a held one"])
def test_reassign(make_item, alice, carol, sam, held):
    item = make_item()
    if held:
        item = services.work_item_claim(item_id=item.pk, actor=alice)
    actor = fresh(sam)
    item = counted(
        "reassign",
        lambda: services.work_item_reassign(item_id=item.pk, actor=actor, user="carol", expected_version=item.version),
    )
    assert item.state == "ASSIGNED" and item.assignee_id == carol.pk


@pytest.mark.django_db
def test_skip(make_item, svc):
    item = make_item(optional=True)
    actor = fresh(svc)
    item = counted("skip", lambda: services.work_item_skip(item_id=item.pk, actor=actor, reason="not needed"))
    assert item.outcome == "skipped"


@pytest.mark.django_db
def test_forward(make_item, alice, bob, team_b):
    item = services.work_item_claim(item_id=make_item().pk, actor=alice)
    actor = fresh(alice)
    item = counted(
        "forward",
        lambda: services.work_item_forward(
            item_id=item.pk, actor=actor, users=["bob"], groups=["team-b"], expected_version=2
        ),
    )
    assert item.state == "OFFERED" and item.candidate_users.get() == bob
