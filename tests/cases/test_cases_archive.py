"""An archived item keeps its case (the archive keeps the whole row), and an item archived
before cases existed reads with the new columns' defaults (no case, run scope)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from archive.models import ArchivedWorkItem
from archive.selectors import archived_item_get_for
from archive.services import archive_items
from tests import factories
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db


def test_archived_items_read_with_their_case_or_the_defaults(api, svc, queue, make_case):
    make_case("ARC-1")
    ids = []
    for case in ("ARC-1", None):
        item = factories.item(actor=svc, queue=queue, **({"case": case, "sod_scope": "case"} if case else {}))
        services.work_item_cancel(item_id=item.pk, actor=svc, reason="old")
        WorkItem.objects.filter(pk=item.pk).update(closed_at=timezone.now() - timedelta(days=120))  # aged
        ids.append(item.pk)
    archive_items(older_than=timedelta(days=90))
    in_case, legacy = ids
    got = api(svc).get(f"/api/v1/workitems/{in_case}").json()
    assert (got["archived"], got["case"], got["sod_scope"]) == (True, "ARC-1", "case")

    # As the archive held rows before the columns existed.
    row = ArchivedWorkItem.objects.get(pk=legacy).row
    ArchivedWorkItem.objects.filter(pk=legacy).update(
        row={k: v for k, v in row.items() if k not in ("case_number", "sod_scope")}
    )
    old = archived_item_get_for(actor=svc, item_id=legacy)
    assert (old.case_id, old.sod_scope) == (None, "run")
    assert api(svc).get(f"/api/v1/workitems/{legacy}").json()["sod_scope"] == "run"
