"""Encrypted context keys (workitems.crypto, config.contextkeys): a queue's `encrypted_keys` are
sealed at rest with AES-256-GCM under the ring's primary key, the item id and key name as
associated data; the rows, the audit trail and the outbox hold only ciphertext or the marker."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import AuditRecord
from audit.services import audit_verify
from config import contextkeys
from directory.roles import remember_groups, with_groups
from events.models import OutboxEvent
from tests import factories
from tests.querycount import count_statements
from workitems import crypto, services
from workitems.api.serializers import item_representation
from workitems.errors import EncryptionUnavailable, ValidationFailed
from workitems.models import WorkItem

SSN = "123-45-6789"
CONTEXT = {"ssn": SSN, "name": "Ada", "card": {"pan": "4111111111111111"}}
SECRETS = (SSN, "4111111111111111")


def ring_of(*entries: str) -> contextkeys.KeyRing:
    return contextkeys.parse(",".join(entries))


@pytest.fixture
def k1():
    return contextkeys.new_key_entry("k1")


@pytest.fixture
def ring(settings, k1):
    settings.CONTEXT_KEY_RING = ring_of(k1)
    return settings.CONTEXT_KEY_RING


@pytest.fixture
def hr(ring, team_a):
    return factories.queue("hr", groups=[team_a], encrypted_keys=["ssn", "card"])


@pytest.fixture
def item(svc, hr):
    return factories.item(actor=svc, queue=hr, context_data=CONTEXT)


def raw(sql: str, params=()) -> str:
    """What a psql session reads: the rows as text."""
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return json.dumps([list(map(str, r)) for r in cur.fetchall()])


def test_the_rows_hold_only_ciphertext(svc, alice, item):
    services.work_item_claim(item_id=item.pk, actor=alice)
    row = raw("SELECT context_data::text FROM workitems_workitem WHERE id = %s", [item.pk])
    audit = raw("SELECT data::text FROM audit_auditrecord WHERE stream = %s", [f"workitem:{item.pk}"])
    outbox = raw("SELECT payload::text FROM events_outboxevent WHERE aggregate_id = %s", [str(item.pk)])
    for text in (row, audit, outbox):
        for secret in SECRETS:
            assert secret not in text
    assert row.count('\\"$enc\\": \\"v1:k1:') == 2 and "Ada" in row  # the other keys stay clear
    stored = WorkItem.objects.get(pk=item.pk).context_data
    assert all(crypto.is_sealed(stored[k]) for k in ("ssn", "card")) and stored["name"] == "Ada"
    assert AuditRecord.objects.filter(stream=f"workitem:{item.pk}").count() == 2
    payloads = list(OutboxEvent.objects.filter(aggregate_id=str(item.pk)).values_list("payload", flat=True))
    assert len(payloads) == 2
    for payload in payloads:
        assert payload["work_item"]["context_data"] == {
            "ssn": crypto.ENCRYPTED_MARK,
            "card": crypto.ENCRYPTED_MARK,
            "name": "Ada",
        }


def test_whoever_reads_the_sensitive_keys_reads_the_clear_value_the_rest_the_marker(svc, alice, sam, item):
    assert item_representation(item, svc)["context_data"] == CONTEXT  # the creating client
    fresh = WorkItem.objects.select_related("queue").get(pk=item.pk)
    assert item_representation(fresh, sam)["context_data"] == CONTEXT  # a supervisor (sensitive_roles)
    assert item_representation(fresh, alice)["context_data"] == {
        "ssn": crypto.ENCRYPTED_MARK,
        "card": crypto.ENCRYPTED_MARK,
        "name": "Ada",
    }


def test_a_bulk_create_seals_too_and_never_inserts_the_clear_value(svc, hr):
    bodies = [factories.item_body(hr, context_data={**CONTEXT, "ssn": f"ssn-{i}"}) for i in range(3)]
    items = services.work_item_create_many(actor=svc, items=bodies)
    for i, it in enumerate(items):
        assert item_representation(it, svc)["context_data"]["ssn"] == f"ssn-{i}"
        stored = raw("SELECT context_data::text FROM workitems_workitem WHERE id = %s", [it.pk])
        assert f"ssn-{i}" not in stored and "4111111111111111" not in stored and "v1:k1:" in stored


def test_a_ciphertext_moved_to_another_item_or_key_is_refused(svc, sam, hr, item):
    other = factories.item(actor=svc, queue=hr, context_data={"ssn": "999", "card": "x"})
    sealed = WorkItem.objects.get(pk=item.pk).context_data["ssn"]
    WorkItem.objects.filter(pk=other.pk).update(context_data={"ssn": sealed, "card": sealed})
    moved = WorkItem.objects.select_related("queue").get(pk=other.pk)
    with pytest.raises(EncryptionUnavailable, match=rf"context_data.(ssn|card) of work item {other.pk} does not"):
        item_representation(moved, sam)
    WorkItem.objects.filter(pk=item.pk).update(context_data={"ssn": sealed, "card": sealed})
    swapped = WorkItem.objects.select_related("queue").get(pk=item.pk)
    with pytest.raises(EncryptionUnavailable, match="context_data.card .* the stored value was altered"):
        item_representation(swapped, sam)


def test_a_tampered_ciphertext_is_refused(sam, item):
    sealed = WorkItem.objects.get(pk=item.pk).context_data["ssn"]["$enc"]
    version, key_id, blob = sealed.split(":")
    raw_bytes = bytearray(base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4)))
    raw_bytes[-1] ^= 1
    forged = f"{version}:{key_id}:{base64.urlsafe_b64encode(bytes(raw_bytes)).decode()}"
    WorkItem.objects.filter(pk=item.pk).update(context_data={**CONTEXT, "ssn": {"$enc": forged}, "card": "x"})
    with pytest.raises(EncryptionUnavailable, match="does not decrypt with key 'k1'"):
        item_representation(WorkItem.objects.select_related("queue").get(pk=item.pk), sam)


def test_a_key_the_ring_lacks_and_a_missing_ring_are_named(settings, sam, item):
    fresh = WorkItem.objects.select_related("queue").get(pk=item.pk)
    settings.CONTEXT_KEY_RING = ring_of(contextkeys.new_key_entry("k2"))
    with pytest.raises(EncryptionUnavailable, match="encrypted with key 'k1', which the key ring .* does not hold"):
        item_representation(fresh, sam)
    settings.CONTEXT_KEY_RING = None
    with pytest.raises(EncryptionUnavailable, match="no context key ring is configured"):
        item_representation(fresh, sam)
    # those who get the marker are not refused: nothing is decrypted for them
    assert item_representation(fresh, factories.user("w", roles=["worker"]))["context_data"]["ssn"] == "***encrypted***"


def test_the_same_key_under_the_same_id_but_other_bytes_is_refused(settings, sam, item):
    settings.CONTEXT_KEY_RING = ring_of(contextkeys.new_key_entry("k1"))
    with pytest.raises(EncryptionUnavailable, match="a wrong key under that id"):
        item_representation(WorkItem.objects.select_related("queue").get(pk=item.pk), sam)


def test_without_a_ring_a_create_into_an_encrypting_queue_is_refused_and_writes_nothing(settings, svc, hr):
    settings.CONTEXT_KEY_RING = None
    for body in ({"context_data": CONTEXT}, {"context_data": {"name": "Ada"}}, {}):
        with pytest.raises(EncryptionUnavailable, match="queue hr encrypts context keys ssn, card, but no context"):
            factories.item(actor=svc, queue=hr, **body)
        with pytest.raises(EncryptionUnavailable):
            services.work_item_create_many(actor=svc, items=[factories.item_body(hr, **body)])
    assert not WorkItem.objects.exists() and not OutboxEvent.objects.exists()
    assert not AuditRecord.objects.filter(stream__startswith="workitem:").exists()


def test_a_queue_may_list_encrypted_keys_only_with_a_ring(settings, ada, hr):
    q = services.queue_update(actor=ada, name="hr", data={"encrypted_keys": ["iban", "iban", "ssn"]})
    assert q.encrypted_keys == ["iban", "ssn"]
    settings.CONTEXT_KEY_RING = None
    with pytest.raises(ValidationFailed) as refused:
        services.queue_create(actor=ada, data={"name": "kyc", "encrypted_keys": ["iban"]})
    assert refused.value.errors == [
        {
            "field": "encrypted_keys",
            "message": "no context key ring is configured (WORKSTREAM_CONTEXT_KEYS or WORKSTREAM_CONTEXT_KEYS_FILE)",
        }
    ]
    for bad in ("iban", [1], {"iban": True}):
        with pytest.raises(ValidationFailed) as refused:
            services.queue_update(actor=ada, name="hr", data={"encrypted_keys": bad})
        assert [e["field"] for e in refused.value.errors] == ["encrypted_keys"]
    assert services.queue_update(actor=ada, name="hr", data={"encrypted_keys": []}).encrypted_keys == []


def test_a_client_cannot_send_the_stored_form(svc, hr):
    forged = {"$enc": "v1:k1:AAAA"}
    for key in ("ssn", "other"):
        with pytest.raises(ValidationFailed) as refused:
            factories.item(actor=svc, queue=hr, context_data={key: forged})
        assert refused.value.errors[0]["field"] == f"context_data.{key}"
    with pytest.raises(ValidationFailed) as refused:
        services.work_item_create_many(actor=svc, items=[factories.item_body(hr, context_data={"x": forged})])
    assert refused.value.errors[0]["field"] == "items[0].context_data.x"


def test_rotation_re_encrypts_under_the_new_key_and_the_old_one_can_go(settings, svc, sam, ada, hr, item, k1):
    older = factories.item(actor=svc, queue=hr, context_data={"ssn": "2", "card": [1, 2]})
    unlisted_then = factories.item(actor=svc, queue=hr, context_data={"iban": "DE89"})
    services.queue_update(actor=ada, name="hr", data={"encrypted_keys": ["ssn", "card", "iban"]})
    k2 = contextkeys.new_key_entry("k2")
    settings.CONTEXT_KEY_RING = ring_of(k2, k1)  # the new key first: it encrypts, both decrypt
    newer = factories.item(actor=svc, queue=hr, context_data={"ssn": "3"})
    assert WorkItem.objects.get(pk=newer.pk).context_data["ssn"]["$enc"].startswith("v1:k2:")
    assert item_representation(WorkItem.objects.get(pk=item.pk), sam)["context_data"] == CONTEXT  # old key reads

    dry = services.context_keys_rotate(batch_size=2, dry_run=True)
    assert (dry.key_id, dry.live_items, dry.batches) == ("k2", [item.pk, older.pk, unlisted_then.pk], 2)
    assert WorkItem.objects.get(pk=item.pk).context_data["ssn"]["$enc"].startswith("v1:k1:")  # nothing written

    report = services.context_keys_rotate(batch_size=2)
    assert (report.live_items, report.batches) == ([item.pk, older.pk, unlisted_then.pk], 2)
    stored = raw("SELECT context_data::text FROM workitems_workitem ORDER BY id")
    assert "v1:k1:" not in stored and "DE89" not in stored and stored.count("v1:k2:") == 6
    records = list(AuditRecord.objects.filter(stream="system:context-keys").order_by("seq"))
    assert [r.data["items"] for r in records] == [[item.pk, older.pk], [unlisted_then.pk]]
    assert records[0].data["keys"] == ["card", "ssn"] and records[1].data["keys"] == ["iban"]
    assert records[0].action == "context_keys.rotated" and records[0].channel == "system"
    assert SSN not in raw("SELECT data::text FROM audit_auditrecord")
    assert services.context_keys_rotate().live_items == []  # nothing left to do
    assert audit_verify().ok

    settings.CONTEXT_KEY_RING = ring_of(k2)  # the old key removed: everything still reads
    reads = {i.pk: item_representation(WorkItem.objects.get(pk=i.pk), sam)["context_data"] for i in (item, older)}
    assert reads == {item.pk: CONTEXT, older.pk: {"ssn": "2", "card": [1, 2]}}
    assert item_representation(WorkItem.objects.get(pk=unlisted_then.pk), sam)["context_data"] == {"iban": "DE89"}


def test_the_rotation_command(settings, capsys, item, k1):
    settings.CONTEXT_KEY_RING = ring_of(contextkeys.new_key_entry("k2"), k1)
    call_command("rotate_context_keys", "--dry-run")
    assert "would re-encrypt 1 live and 0 archived items under key k2 (1 batches)" in capsys.readouterr().out
    call_command("rotate_context_keys", "--json")
    assert json.loads(capsys.readouterr().out)["live_items"] == [item.pk]
    settings.CONTEXT_KEY_RING = ring_of(contextkeys.new_key_entry("k3"))  # lost the key of the values
    with pytest.raises(CommandError, match="encrypted with key 'k2', which the key ring"):
        call_command("rotate_context_keys")
    settings.CONTEXT_KEY_RING = None
    with pytest.raises(CommandError, match="no context key ring is configured"):
        call_command("rotate_context_keys")


def test_an_item_moved_to_a_queue_without_encrypted_keys_still_reads(svc, sam, alice, hr, item, team_a):
    plain = factories.queue("plain", groups=[team_a])
    moved = services.work_item_move(item_id=item.pk, actor=sam, queue="plain")
    assert moved.queue == plain
    fresh = WorkItem.objects.select_related("queue").get(pk=item.pk)
    assert item_representation(fresh, sam)["context_data"] == CONTEXT
    assert item_representation(fresh, alice)["context_data"]["ssn"] == crypto.ENCRYPTED_MARK


@pytest.mark.parametrize(
    ("raw_ring", "message"),
    [
        ("k1", "entry 1 must be id:base64key"),
        ("bad id:AAAA", "entry 1 must be id:base64key"),
        ("k1:not*base64", r"entry 1 \(k1\): the key is not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), r"the key must be 32 bytes, not 5"),
        ("k1:" + base64.b64encode(bytes(32)).decode(), "the key is not random"),
        ("{a},{b}", "key id 'k1' appears twice"),
    ],
)
def test_a_malformed_ring_stops_start_up_naming_the_entry_not_the_key(raw_ring, message):
    a, b = contextkeys.new_key_entry("k1"), contextkeys.new_key_entry("k1")
    text = raw_ring.replace("{a}", a).replace("{b}", b)
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        contextkeys.parse(text)
    assert "WORKSTREAM_CONTEXT_KEYS" in str(refused.value)
    for entry in text.split(","):
        secret = entry.partition(":")[2]
        assert not secret or secret not in str(refused.value)


def test_the_ring_reads_standard_and_url_safe_base64_and_the_first_key_encrypts():
    secret = bytes(range(32))
    ring = contextkeys.parse(
        f" k2:{base64.urlsafe_b64encode(secret).decode().rstrip('=')} , k1:{base64.b64encode(secret[::-1]).decode()}"
    )
    assert ring.primary == "k2" and set(ring.keys) == {"k1", "k2"}
    key_id, blob = ring.encrypt(b"x", b"aad")
    assert key_id == "k2" and ring.decrypt("k2", blob, b"aad") == b"x"
    assert ring.encrypt(b"x", b"aad")[1] != blob  # a fresh nonce each time
    with pytest.raises(contextkeys.NotAuthentic):
        ring.decrypt("k1", blob, b"aad")
    assert contextkeys.parse("") is None and contextkeys.parse("  ") is None


def fresh(user):
    """The user as a request's authentication hands it over (as tests/workitems/test_query_budget.py)."""
    loaded = with_groups(get_user_model().objects.filter(pk=user.pk)).get()
    remember_groups(loaded)
    return loaded


def test_encryption_adds_no_statement_to_a_create_or_a_bulk_create(svc, hr, team_a):
    plain = factories.queue("plain", groups=[team_a])
    counts = {}
    for q in (plain, hr):
        actor = fresh(svc)
        with count_statements() as one:
            services.work_item_create(actor=actor, data=factories.item_body(q, context_data=CONTEXT))
        actor = fresh(svc)
        with count_statements() as many:
            services.work_item_create_many(
                actor=actor, items=[factories.item_body(q, context_data=CONTEXT) for _ in range(3)]
            )
        counts[q.name] = (len(one), len(many))
    assert counts["hr"] == counts["plain"]
    assert counts["hr"][0] == 2  # tests/workitems/test_query_budget.py's budget for a create into a pull queue
    assert SSN not in raw("SELECT context_data::text FROM workitems_workitem WHERE queue_id = %s", [hr.pk])


def test_a_malformed_ring_in_a_secret_file_stops_start_up(tmp_path):
    """The process itself: settings read WORKSTREAM_CONTEXT_KEYS_FILE and refuse a bad ring."""
    secret = tmp_path / "context-keys"
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": "", "WORKSTREAM_CONTEXT_KEYS_FILE": str(secret)}
    env.pop("WORKSTREAM_CONTEXT_KEYS", None)
    results = {}
    for name, text in (("good", contextkeys.new_key_entry("k1") + "\n"), ("bad", "k1:c2hvcnQ=\n")):
        secret.write_text(text)
        done = subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        results[name] = (done.returncode, done.stderr)
    assert results["good"][0] == 0, results["good"][1]
    assert results["bad"][0] != 0
    assert "ImproperlyConfigured: WORKSTREAM_CONTEXT_KEYS: entry 1 (k1): the key must be 32 bytes" in results["bad"][1]
