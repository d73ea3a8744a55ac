"""The SSRF guard (events.urlguard) at create time: webhook subscriptions (REST), work items'
callback_url (REST single and bulk create, the inbound bus), with and without
webhooks.allowPrivateTargets. What the guard does at delivery is in test_webhooks.py."""

from __future__ import annotations

import json
import uuid

import pytest
from rest_framework.test import APIClient

from events import inbound, urlguard
from events.models import InboxCommand, Subscription
from tests import factories
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db

# Refused whatever webhooks.allowPrivateTargets says: the form of the URL, or an address
# where no TCP endpoint lives.
ALWAYS_REFUSED = [
    # not http(s), or no host
    ("ftp://8.8.8.8/hook", "http and https"),
    ("file:///etc/passwd", "http and https"),
    ("gopher://8.8.8.8:70/_x", "http and https"),
    ("javascript:alert(1)", "http and https"),
    ("//8.8.8.8/hook", "http and https"),
    ("http:///hook", "no host"),
    # userinfo, also the form that reads as one host and connects to another
    ("http://user@8.8.8.8/hook", "userinfo"),
    ("http://user:pw@8.8.8.8/hook", "userinfo"),
    ("http://8.8.8.8@127.0.0.1/hook", "userinfo"),
    ("http://@8.8.8.8/hook", "userinfo"),
    # ports outside 1–65535
    ("http://8.8.8.8:0/hook", "port"),
    ("http://[2606:4700::1]:0/hook", "port"),
    ("http://8.8.8.8:65536/hook", "port"),
    ("http://8.8.8.8:99999/hook", "port"),
    ("http://8.8.8.8:-1/hook", "port"),
    ("http://8.8.8.8:http/hook", "port"),
    # IPv4 in decimal, octal, hex and short forms (what inet_aton reads as 127.0.0.1 and 0.0.0.0)
    ("http://2130706433/", "non-standard form"),
    ("http://017700000001/", "non-standard form"),
    ("http://0x7f000001/", "non-standard form"),
    ("http://0x7f.1/", "non-standard form"),
    ("http://0x7f.0.0.1/", "non-standard form"),
    ("http://0177.0.0.1/", "non-standard form"),
    ("http://0177.1/", "non-standard form"),
    ("http://127.1/", "non-standard form"),
    ("http://0/", "non-standard form"),
    ("http://０x7f.1/", "non-standard form"),  # fullwidth: IDNA maps it to 0x7f.1
    # never a host
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://[::ffff:0.0.0.0]/", "unspecified"),
    ("http://224.0.0.251/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[::ffff:224.0.0.1]/", "multicast"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://[::127.0.0.1]/", "IPv4-compatible"),
    ("http://[::8.8.8.8]/", "IPv4-compatible"),
    ("http://[fe80::1%25eth0]/", "zone"),
    # not a URL one could send to
    ("http://exa mple.com/", "whitespace"),
    ("http://8.8.8.8/\r\nX-Injected: 1", "control characters"),
    ("http://8.8.8.8\\@127.0.0.1/", "backslash"),
    ("http://[zzz]/", "not a URL"),
    ("http://a..b/", "not a valid host name"),
    ("http://-a.example/", "not a valid host name"),
    ("http://" + "a" * 64 + ".example/", "not a valid host name"),
]

# Refused unless webhooks.allowPrivateTargets: addresses that are not public, in every
# spelling, and names resolving to them.
PRIVATE = [
    ("http://127.0.0.1/hook", "loopback"),
    ("http://127.255.255.254:8080/hook", "loopback"),
    ("http://１２７.０.０.１/hook", "loopback"),  # fullwidth digits: IDNA maps them to 127.0.0.1
    ("http://10.0.0.1/hook", "private"),
    ("http://172.16.5.4/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://100.64.0.1/hook", "not public"),  # shared (CGNAT)
    ("http://192.0.0.8/hook", "not public"),
    ("http://198.18.0.1/hook", "not public"),  # benchmarking
    ("http://240.0.0.1/hook", "not public"),  # reserved
    ("http://[::1]/hook", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]:8080/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
    ("http://[::ffff:7f00:1]/hook", "IPv4-mapped"),
    ("http://[::ffff:10.0.0.1]/hook", "IPv4-mapped"),
    ("http://[::ffff:169.254.169.254]/hook", "IPv4-mapped"),
    ("http://[::ffff:0:127.0.0.1]/hook", "IPv4-translated"),
    ("http://[64:ff9b::127.0.0.1]/hook", "NAT64"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "NAT64"),  # 169.254.169.254
    ("http://[64:ff9b::10.1.2.3]/hook", "NAT64"),
    ("http://[64:ff9b:1::8.8.8.8]/hook", "local-use NAT64"),
    ("http://[2002:7f00:1::1]/hook", "6to4"),
    ("http://[2002:c0a8:101::1]/hook", "6to4"),  # 192.168.1.1
    ("http://[2001::1]/hook", "Teredo"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "Teredo"),
    ("http://[fec0::1]/hook", "site-local"),
    ("http://[feff::1]/hook", "site-local"),
    ("http://[fc00::1]/hook", "unique-local"),
    ("http://[fd00:ec2::254]/hook", "unique-local"),  # the AWS metadata service over IPv6
    ("http://[fe80::1]/hook", "link-local"),
    ("http://[100::1]/hook", "discard"),
    ("http://[2001:db8::1]/hook", "documentation"),
    ("http://localhost/hook", "localhost resolves to"),
    ("http://LOCALHOST:8000/hook", "localhost resolves to"),
]

PUBLIC = [
    "https://8.8.8.8/hook",
    "http://1.1.1.1:65535/hook?step=review",
    "http://[2606:4700:4700::1111]:8443/hook",
    "http://[::ffff:8.8.8.8]/hook",
    "http://[64:ff9b::8.8.8.8]/hook",  # NAT64 to a public address
    "http://[2002:808:808::1]/hook",  # 6to4 of a public address
]

HOSTILE = ALWAYS_REFUSED + PRIVATE


def _ids(cases):
    return [url for url, _ in cases]


@pytest.fixture
def client():
    def make(user):
        c = APIClient(raise_request_exception=False)
        c.force_authenticate(user)
        return c

    return make


@pytest.fixture
def private(ws_config):
    """`private(True|False)`: put webhooks.allowPrivateTargets in force."""
    return lambda allowed: ws_config({"webhooks": {"allowPrivateTargets": allowed}})


def _subscribe(client, user, url):
    return client(user).post(
        "/api/v1/subscriptions", {"url": url, "event_types": ["workitem.created.v1"]}, format="json"
    )


def _create(client, user, queue, url):
    return client(user).post("/api/v1/workitems", factories.item_body(queue, callback_url=url), format="json")


def _refusal(resp, field: str) -> str:
    assert resp.status_code == 400, resp.content
    assert resp["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body["type"].endswith("/validation-error")
    messages = [e["message"] for e in body["errors"] if e["field"] == field]
    assert messages, body
    return messages[0]


# --- the guard itself -----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "why"), HOSTILE, ids=_ids(HOSTILE))
def test_the_guard_refuses_every_hostile_form(url, why):
    with pytest.raises(urlguard.TargetRefused) as info:
        urlguard.resolve(url, allow_private=False)
    assert why in str(info.value)
    assert not isinstance(info.value, urlguard.TargetUnresolved)


@pytest.mark.parametrize(("url", "why"), ALWAYS_REFUSED, ids=_ids(ALWAYS_REFUSED))
def test_allowing_private_targets_does_not_allow_these(url, why):
    with pytest.raises(urlguard.TargetRefused) as info:
        urlguard.resolve(url, allow_private=True)
    assert why in str(info.value)


@pytest.mark.parametrize(("url", "why"), PRIVATE, ids=_ids(PRIVATE))
def test_allowing_private_targets_allows_these(url, why):
    target = urlguard.resolve(url, allow_private=True)
    assert target.addresses and target.path.startswith("/")


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_pass(url):
    target = urlguard.resolve(url, allow_private=False)
    assert target.scheme in ("http", "https") and 1 <= target.port <= 65535


def test_a_refusal_says_what_the_name_resolved_to_and_how_to_allow_it():
    with pytest.raises(urlguard.TargetRefused) as info:
        urlguard.resolve("http://localhost:8000/x", allow_private=False)
    assert str(info.value) == (
        "localhost resolves to 127.0.0.1, which is loopback (not public); "
        "webhooks.allowPrivateTargets allows private targets"
    )
    with pytest.raises(urlguard.TargetRefused) as info:
        urlguard.resolve("http://0.0.0.0/x", allow_private=False)
    assert "allowPrivateTargets" not in str(info.value)  # the switch would not help


def test_a_name_that_does_not_resolve_is_unresolved_not_refused():
    with pytest.raises(urlguard.TargetUnresolved, match="cannot resolve"):
        urlguard.resolve("https://no-such-host.invalid/hook", allow_private=False)
    urlguard.check("https://no-such-host.invalid/hook", allow_private=False, require_resolvable=False)
    with pytest.raises(urlguard.TargetUnresolved):
        urlguard.check("https://no-such-host.invalid/hook", allow_private=False)


# --- subscription create (REST) --------------------------------------------------------------


@pytest.mark.parametrize(("url", "why"), HOSTILE, ids=_ids(HOSTILE))
def test_subscription_create_refuses_hostile_urls(private, client, svc, url, why):
    private(False)
    resp = _subscribe(client, svc, url)
    assert why in _refusal(resp, "url")
    assert not Subscription.objects.exists()


@pytest.mark.parametrize("url", PUBLIC)
def test_subscription_create_accepts_public_addresses(private, client, svc, url):
    private(False)
    resp = _subscribe(client, svc, url)
    assert resp.status_code == 201, resp.content
    assert Subscription.objects.get().url == url


def test_subscription_create_follows_allow_private_targets(private, client, svc):
    private(True)
    for url, _ in PRIVATE[:3] + PRIVATE[-2:]:
        resp = _subscribe(client, svc, url)
        assert resp.status_code == 201, (url, resp.content)
    for url, why in ALWAYS_REFUSED[:12]:
        resp = _subscribe(client, svc, url)
        assert why in _refusal(resp, "url")
    assert Subscription.objects.count() == 5


def test_a_subscription_host_must_resolve(private, client, svc):
    private(False)
    resp = _subscribe(client, svc, "https://no-such-host.invalid/hook")
    assert "cannot resolve no-such-host.invalid" in _refusal(resp, "url")


# --- work-item create: callback_url (REST single, bulk, the bus) ---------------------------------


@pytest.mark.parametrize(("url", "why"), HOSTILE, ids=_ids(HOSTILE))
def test_work_item_create_refuses_a_hostile_callback_url(private, client, svc, queue, url, why):
    private(False)
    resp = _create(client, svc, queue, url)
    assert why in _refusal(resp, "callback_url")
    assert not WorkItem.objects.exists()


def test_bulk_create_names_the_item_whose_callback_is_refused(private, client, svc, queue):
    private(False)
    items = [
        factories.item_body(queue, callback_url="https://8.8.8.8/cb"),
        factories.item_body(queue, callback_url="http://[64:ff9b::127.0.0.1]/cb"),
        factories.item_body(queue),
        factories.item_body(queue, callback_url="http://0x7f.1/cb"),
    ]
    resp = client(svc).post("/api/v1/workitems/bulk", {"items": items}, format="json")
    assert "NAT64" in _refusal(resp, "items[1].callback_url")
    items[1]["callback_url"] = "http://[64:ff9b::8.8.8.8]/cb"
    resp = client(svc).post("/api/v1/workitems/bulk", {"items": items}, format="json")
    assert "non-standard form" in _refusal(resp, "items[3].callback_url")
    assert not WorkItem.objects.exists()  # all or none
    del items[3]["callback_url"]
    resp = client(svc).post("/api/v1/workitems/bulk", {"items": items}, format="json")
    assert resp.status_code == 201, resp.content
    assert WorkItem.objects.count() == 4


@pytest.mark.parametrize(("url", "why"), HOSTILE[::4], ids=_ids(HOSTILE[::4]))
def test_a_bus_create_with_a_hostile_callback_is_rejected(private, svc, queue, url, why):
    private(False)
    body = {
        "command_id": uuid.uuid4().hex,
        "command": "create",
        "actor": svc.username,
        "data": factories.item_body(queue, callback_url=url),
    }
    cmd = inbound.parse(json.dumps(body).encode())
    assert inbound.apply(cmd) == inbound.REJECTED
    row = InboxCommand.objects.get(command_id=cmd["command_id"])
    assert row.error["type"] == "validation-error" and row.work_item_id is None
    (message,) = [e["message"] for e in row.error["errors"] if e["field"] == "callback_url"]
    assert why in message
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("url", PUBLIC)
def test_work_item_create_accepts_a_public_callback(private, client, svc, queue, url):
    private(False)
    resp = _create(client, svc, queue, url)
    assert resp.status_code == 201, resp.content
    assert WorkItem.objects.get().callback_url == url


def test_a_callback_host_that_does_not_resolve_yet_is_accepted(private, client, svc, queue):
    """A DNS hiccup does not stop items being created; every delivery resolves and checks again."""
    private(False)
    resp = _create(client, svc, queue, "https://engine.invalid/cb")
    assert resp.status_code == 201, resp.content


def test_callbacks_follow_allow_private_targets(private, client, svc, queue):
    private(True)
    for url, _ in PRIVATE:
        resp = _create(client, svc, queue, url)
        assert resp.status_code == 201, (url, resp.content)
    for url, why in ALWAYS_REFUSED:
        resp = _create(client, svc, queue, url)
        assert why in _refusal(resp, "callback_url"), url
    assert WorkItem.objects.count() == len(PRIVATE)
