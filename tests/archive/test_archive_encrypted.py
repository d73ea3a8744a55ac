"""Archival, rotation and GDPR erasure with encrypted context keys (PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from archive.models import ArchivedWorkItem
from archive.services import ERASED, archive_items, erase_subject
from audit.services import audit_verify
from config import contextkeys
from tests import factories
from workitems import crypto, services
from workitems.errors import ValidationFailed
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db
IBAN = "DE89370400440532013000"


@pytest.fixture
def k1():
    return contextkeys.new_key_entry("k1")


@pytest.fixture
def archived(settings, k1, svc, alice, team_a):
    """A completed item with an encrypted iban, closed 120 days ago and archived; a live one beside it."""
    settings.CONTEXT_KEY_RING = contextkeys.parse(k1)
    q = factories.queue("kyc", groups=[team_a], encrypted_keys=["iban"])
    old = factories.item(actor=svc, queue=q, context_data={"customer_id": "C-7", "iban": IBAN})
    services.work_item_claim(item_id=old.pk, actor=alice)
    services.work_item_start(item_id=old.pk, actor=alice)
    services.work_item_complete(item_id=old.pk, actor=alice, result={"ok": True})
    WorkItem.objects.filter(pk=old.pk).update(closed_at=timezone.now() - timedelta(days=120))
    live = factories.item(actor=svc, queue=q, context_data={"customer_id": "C-7", "iban": IBAN})
    assert archive_items(older_than=timedelta(days=90)).items == 1
    return old.pk, live.pk


def get(user, item_id):
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    return client.get(f"/api/v1/workitems/{item_id}")


def archived_text() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT row::text FROM archive_archivedworkitem")
        return " ".join(r[0] for r in cur.fetchall())


def test_an_archived_item_keeps_its_ciphertext_and_reads_for_whoever_may(archived, sam, alice):
    old, _ = archived
    assert IBAN not in archived_text() and "v1:k1:" in archived_text()
    assert get(sam, old).json()["context_data"] == {"customer_id": "C-7", "iban": IBAN}
    assert get(alice, old).json()["context_data"]["iban"] == crypto.ENCRYPTED_MARK


def test_rotation_reaches_archived_items(settings, archived, sam, k1):
    old, live = archived
    k2 = contextkeys.new_key_entry("k2")
    settings.CONTEXT_KEY_RING = contextkeys.parse(f"{k2},{k1}")
    report = services.context_keys_rotate()
    assert (report.live_items, report.archived_items) == ([live], [old])
    assert "v1:k1:" not in archived_text() and "v1:k2:" in archived_text()
    settings.CONTEXT_KEY_RING = contextkeys.parse(k2)  # the old key gone: the archived item still reads
    assert get(sam, old).json()["context_data"]["iban"] == IBAN
    assert audit_verify().ok


def test_erasure_refuses_an_encrypted_key_and_erases_encrypted_values_whole(archived, ada):
    old, live = archived
    with pytest.raises(ValidationFailed) as refused:
        erase_subject(context_key="iban", value=IBAN)
    assert refused.value.errors[0]["field"] == "context_key"
    assert "iban is an encrypted context key (queues kyc)" in refused.value.errors[0]["message"]
    report = erase_subject(context_key="customer_id", value="C-7")
    assert (report.live_items, report.archived_items) == ([live], [old])
    assert WorkItem.objects.get(pk=live).context_data == {"customer_id": ERASED, "iban": ERASED}
    assert ArchivedWorkItem.objects.get(pk=old).row["context_data"] == {"customer_id": ERASED, "iban": ERASED}
    assert audit_verify().ok
