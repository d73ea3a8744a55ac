"""The SLA knobs of the configuration file, and items that breached while
`features.escalation` was off: the levels they missed fire once it is on again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from config import wsconfig
from tests import factories
from workitems import services
from workitems.models import Queue, SlaState, WorkItem


@pytest.fixture
def sla_queue(team_a):
    return factories.queue("sla-q", groups=[team_a], sla=timedelta(hours=4))


def test_levels_held_while_escalation_was_off_fire_when_it_is_on_again(ws_config, svc, sla_queue):
    ws_config({"features": {"escalation": False}})
    item = factories.item(actor=svc, queue=sla_queue, priority=10)
    t0 = item.created_at
    services.sla_scan(now=t0 + timedelta(hours=5))
    item.refresh_from_db()
    assert (item.sla_state, item.sla_level, item.escalation_level) == (SlaState.BREACHED, 0, 0)
    assert item.sla_next_at is None  # nothing the rules can do while off
    assert Queue.objects.get(pk=sla_queue.pk).escalation_held_since is not None
    services.sla_scan(now=t0 + timedelta(hours=6))  # still off: still held
    assert WorkItem.objects.get(pk=item.pk).sla_level == 0

    ws_config({"features": {"escalation": True}})
    assert services.sla_scan(now=t0 + timedelta(hours=7)) == 1
    item.refresh_from_db()
    assert (item.sla_level, item.escalation_level) == (2, 1)  # both default levels, once each
    assert item.sla_next_at is None
    assert Queue.objects.get(pk=sla_queue.pk).escalation_held_since is None
    assert services.sla_scan(now=t0 + timedelta(hours=8)) == 0


def test_a_level_before_the_at_risk_share_is_revisited_on_track_items_too(ws_config, svc, sla_queue):
    sla_queue.escalation_policy = [{"at": 0.5, "actions": [{"type": "raise_priority", "by": 30}]}]
    sla_queue.save()
    ws_config({"features": {"escalation": False}})
    item = factories.item(actor=svc, queue=sla_queue, priority=10)
    t0 = item.created_at
    services.sla_scan(now=t0 + timedelta(hours=2, minutes=10))  # past the level, before at risk
    item.refresh_from_db()
    assert (item.sla_state, item.priority) == (SlaState.ON_TRACK, 10)
    assert item.sla_next_at == t0 + timedelta(hours=3)  # the at-risk moment: the level is left out
    ws_config({"features": {"escalation": True}})
    services.sla_scan(now=t0 + timedelta(hours=2, minutes=20))  # still before at risk
    item.refresh_from_db()
    assert (item.sla_state, item.priority, item.sla_level) == (SlaState.ON_TRACK, 40, 1)


def test_an_item_changed_meanwhile_is_left_to_its_own_next_moment(ws_config, svc, sam, sla_queue, team_a):
    ws_config({"features": {"escalation": False}})
    item = factories.item(actor=svc, queue=sla_queue)
    suspended = factories.item(actor=svc, queue=sla_queue)
    services.sla_scan(now=item.created_at + timedelta(hours=5))
    services.work_item_suspend(item_id=suspended.pk, actor=sam, reason="waiting")
    ws_config({"features": {"escalation": True}})
    services.sla_scan(now=item.created_at + timedelta(hours=5, minutes=1))
    assert WorkItem.objects.get(pk=item.pk).sla_level == 2
    assert WorkItem.objects.get(pk=suspended.pk).sla_level == 0  # its clock is stopped
    assert WorkItem.objects.get(pk=suspended.pk).sla_next_at is None


def test_the_default_policy_comes_from_the_configuration(ws_config, svc, alice, sla_queue):
    ws_config({"sla": {"defaultPolicy": [{"at": 0.5, "actions": [{"type": "raise_priority", "by": 25}]}]}})
    item = factories.item(actor=svc, queue=sla_queue, priority=50)
    services.sla_scan(now=item.created_at + timedelta(hours=2, minutes=1))
    item.refresh_from_db()
    assert (item.priority, item.sla_level) == (75, 1)
    sla_queue.escalation_policy = [{"at": 0.9, "actions": [{"type": "notify"}]}]  # a queue's own wins
    sla_queue.save()
    other = factories.item(actor=svc, queue=sla_queue, priority=50)
    services.sla_scan(now=other.created_at + timedelta(hours=2, minutes=1))
    assert WorkItem.objects.get(pk=other.pk).priority == 50


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"sla": {"defaultPolicy": [{"at": 0, "actions": [{"type": "notify"}]}]}}, "sla.defaultPolicy[0].at"),
        ({"sla": {"defaultPolicy": [{"at": 1.0, "actions": []}]}}, "sla.defaultPolicy[0].actions"),
        ({"sla": {"defaultPolicy": [{"at": 1, "actions": [{"type": "page"}]}]}}, "sla.defaultPolicy[0].actions[0]"),
        ({"sla": {"defaultPolicy": "notify"}}, "sla.defaultPolicy"),
        ({"capacity": {"checkSeconds": 0}}, "capacity.checkSeconds"),
        ({"notifications": {"summary": {"timeOfDay": "25:00"}}}, "notifications.summary.timeOfDay"),
        ({"notifications": {"summary": {"timeOfDay": "8:00"}}}, "notifications.summary.timeOfDay"),
        ({"notifications": {"summary": {"timeZone": "Mars/Olympus"}}}, "notifications.summary.timeZone"),
        ({"notifications": {"summary": {"at": "08:00"}}}, "notifications.summary.at (unknown key)"),
        ({"notifications": {"channels": {"pagerduty": "yes"}}}, "notifications.channels.pagerduty"),
    ],
)
def test_bad_knobs_stop_the_load_naming_the_key(ws_config, db, overrides, key):
    with pytest.raises(wsconfig.ConfigError) as info:
        ws_config(overrides)
    assert f"invalid configuration at {key}:" in str(info.value)


def test_the_shipped_file_has_every_knob():
    cfg = wsconfig.load()
    assert cfg.sla.defaultPolicy is None and cfg.capacity.checkSeconds == 60
    assert cfg.notifications.summary.as_dict() == {
        "enabled": True,
        "timeOfDay": "08:00",
        "timeZone": "UTC",
        "checkSeconds": 60,
    }
    assert cfg.notifications.channels.pagerduty is False


def test_a_scan_with_nothing_due_is_two_statements(ws_config, svc, sla_queue, django_assert_num_queries):
    factories.item(actor=svc, queue=sla_queue)
    with django_assert_num_queries(2):  # any queue with levels held? then the due items by index
        assert services.sla_scan() == 0
    ws_config({"features": {"escalation": False}})
    with django_assert_num_queries(2):  # mark the queues (once), then the due items
        assert services.sla_scan() == 0
