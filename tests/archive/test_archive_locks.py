"""archive_items takes no long locks: an item another transaction holds is skipped, not waited
for (FOR UPDATE SKIP LOCKED), and the batches commit one by one."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
from django.db import connection

from archive.models import ArchivedWorkItem
from archive.services import archive_items
from audit.services import audit_verify
from tests.archive.test_archive import aged
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)  # the other session must see committed rows


def test_a_held_item_is_skipped_and_the_rest_commit(make_item, svc):
    items = [aged(services.work_item_cancel(item_id=make_item().pk, actor=svc, reason="x")) for _ in range(3)]
    held = items[1]
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=False,
    )
    try:
        other.execute("SELECT id FROM workitems_workitem WHERE id = %s FOR UPDATE", [held.pk])
        done = threading.Event()
        result = {}

        def archiver():
            result["report"] = archive_items(older_than=timedelta(days=90), batch=1)
            connection.close()  # this thread's connection
            done.set()

        threading.Thread(target=archiver).start()
        assert done.wait(20), "archive_items waited on a held row"
        assert result["report"].items == 2 and result["report"].batches == 2
        # Committed batch by batch: the other session sees the two moved while it still holds its row.
        moved = other.execute("SELECT count(*) FROM archive_archivedworkitem").fetchone()[0]
        assert moved == 2
    finally:
        other.rollback()
        other.close()
    assert WorkItem.objects.filter(pk=held.pk).exists()
    assert archive_items(older_than=timedelta(days=90)).items == 1  # released: the next run takes it
    assert sorted(ArchivedWorkItem.objects.values_list("id", flat=True)) == sorted(i.pk for i in items)
    assert audit_verify().ok
