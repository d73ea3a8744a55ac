"""Task types through the Python SDK, against the real server (pytest-django's live_server on
the transactional PostgreSQL test database, real authentication): define, register a workflow,
create an item that names only its task, and the SDK's typed error for bad input."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import workstream_client as wc

from api.models import ServiceApiKey


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """A cache key prefix of this test's own (throttle keys are per user pk; see tests/sdk/conftest.py)."""
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"tt-sdk-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture
def key(transactional_db, svc):
    return ServiceApiKey.objects.create_key(name="svc-key", user=svc)[1]


def test_define_register_and_create_by_task_alone(live_server, key, queue, team_a):
    with wc.WorkstreamClient(live_server.url, api_key=key) as ws:
        made = ws.create_task_type("claims", "review", queue=queue.name, priority=75, sla="PT1H")
        assert (made["queue"], made["priority"], made["sla"]) == (queue.name, 75, "P0DT01H00M00S")
        assert ws.get_task_type("claims", "review") == made
        changed = ws.update_task_type("claims", "review", candidate_groups=[team_a.name])
        assert changed["candidate_groups"] == ["team-a"] and changed["priority"] == 75

        done = ws.register_workflow(
            "claims", [{"name": "review", "queue": queue.name}, {"name": "intake", "priority": 5}], name="Claims"
        )
        assert (done["created"], done["updated"]) == (["intake"], ["review"])
        assert [t["task_name"] for t in ws.list_task_types(workflow_id="claims")] == ["intake", "review"]

        item = ws.create_work_item(workflow_id="claims", task_name="review")
        assert item.queue == queue.name and item.priority == 50  # the re-registration reset the priority

        with pytest.raises(wc.ValidationError) as caught:
            ws.create_task_type("claims", "approve", priority=500)
        assert [e["field"] for e in caught.value.errors] == ["priority"]
        with pytest.raises(wc.NotFoundError):
            ws.get_task_type("claims", "nothing")


def test_the_async_client_has_the_same_methods(live_server, key, queue):
    async def run():
        async with wc.AsyncWorkstreamClient(live_server.url, api_key=key) as ws:
            await ws.register_workflow("billing", [{"name": "check", "queue": queue.name, "priority": 60}])
            listed = [t async for t in ws.list_task_types()]
            updated = await ws.update_task_type("billing", "check", active=False)
            return listed, updated, await ws.get_task_type("billing", "check")

    listed, updated, fetched = asyncio.run(run())
    assert [(t["workflow_id"], t["task_name"], t["priority"]) for t in listed] == [("billing", "check", 60)]
    assert updated["active"] is False and fetched == updated
