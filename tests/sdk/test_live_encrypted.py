"""Encrypted context keys through the Python SDK against the live server."""

from __future__ import annotations

from config import contextkeys
from tests import factories
from workitems import crypto
from workitems.models import WorkItem


def test_the_sdk_reads_the_clear_value_for_the_creator_and_the_marker_for_a_worker(
    settings, ws, worker_client, alice, team_a
):
    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("k1"))
    factories.queue("hr", groups=[team_a], encrypted_keys=["iban"])
    created = ws.create_work_item(workflow_id="wf", task_name="review", queue="hr", context_data={"iban": "DE89 3704"})
    assert created.context_data == {"iban": "DE89 3704"}
    assert crypto.is_sealed(WorkItem.objects.get(pk=created.id).context_data["iban"])
    assert ws.get_work_item(created.id).context_data == {"iban": "DE89 3704"}
    assert worker_client(alice).get_work_item(created.id).context_data == {"iban": crypto.ENCRYPTED_MARK}
