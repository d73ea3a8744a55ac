"""A body the server does not read is refused, never taken as empty (issue 10, item 5).

Django reads `Content-Length` bytes of a body; a chunked body has no length, so it read
nothing and `complete` stored `result: {}` — a final state with the client's data lost.
api/middleware.py now answers 411 `length-required` to any request with a
Transfer-Encoding. Tested through a real gunicorn server with raw sockets and http.client,
and in-process for the header variants a server passes on.
"""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from tests.api.conftest import bearer
from tests.api.helpers import assert_problem, create_body, item_state
from tests.config.test_metrics_multiprocess import Gunicorn
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads what the test wrote


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is; (status, headers, body) of the answer, as http.client reads it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


@pytest.fixture(scope="module", params=["sync", "gthread"])
def server(request, django_db_setup, tmp_path_factory):
    """gunicorn with the project's config (two workers of each class) on the test database."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GUNICORN_CMD_ARGS", f"--worker-class {request.param}")
        s = Gunicorn(tmp_path_factory.mktemp(f"gunicorn-{request.param}"), None)
    yield s
    s.stop()


@pytest.fixture
def started(alice, sam, make_item):
    """An item alice has claimed and started (version 3)."""
    item = make_item()
    services.work_item_claim(item_id=item.pk, actor=alice)
    return services.work_item_start(item_id=item.pk, actor=alice)


def _chunks(body: bytes, size: int = 7) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size))
    return out + b"0\r\n\r\n"


def _post(path: str, auth: str, headers: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nConnection: close\r\n{headers}\r\n"
    ).encode() + body


def _assert_length_required(status: int, headers: dict, body: bytes) -> None:
    assert status == 411, (status, body[:500])
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem = json.loads(body)
    assert problem["type"].endswith("/length-required") and problem["status"] == 411
    assert "Content-Length" in problem["detail"]


RESULT = json.dumps({"result": {"approved": True, "amount": 1200}}).encode()


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("chunked", _chunks(RESULT)),
        ("Chunked", _chunks(RESULT, size=1)),
        ("chunked", b"0\r\n\r\n"),  # an empty chunked body: still not "no body"
    ],
    ids=["chunks", "one-byte chunks, mixed case", "empty"],
)
def test_a_chunked_complete_through_gunicorn_is_411_and_the_item_stays_open(server, started, alice, coding, body):
    path = f"/api/v1/workitems/{started.pk}/complete"
    status, headers, answer = _raw(server.port, _post(path, bearer(alice), f"Transfer-Encoding: {coding}\r\n", body))
    _assert_length_required(status, headers, answer)
    item = WorkItem.objects.get(pk=started.pk)
    assert (item.state, item.version, item.result, item.completed_at) == ("IN_PROGRESS", 3, None, None)


def test_http_client_encode_chunked_complete_and_create_are_411(server, started, alice, svc, queue):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "POST",
        f"/api/v1/workitems/{started.pk}/complete",
        body=iter([RESULT[:10], RESULT[10:]]),
        headers={"Authorization": bearer(alice), "Content-Type": "application/json"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    _assert_length_required(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    conn.close()
    assert item_state(started.pk)[0] == "IN_PROGRESS"

    body = json.dumps(create_body(queue)).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(
        "POST",
        "/api/v1/workitems",
        body=iter([body]),
        headers={"Authorization": bearer(svc), "Content-Type": "application/json"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    _assert_length_required(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    conn.close()
    assert WorkItem.objects.count() == 1  # only `started`


def test_chunked_with_a_content_length_too_is_refused(server, started, alice):
    """Both framings at once (request smuggling's shape): refused, by gunicorn or by us."""
    headers = f"Transfer-Encoding: chunked\r\nContent-Length: {len(RESULT)}\r\n"
    status, _, _ = _raw(server.port, _post(f"/api/v1/workitems/{started.pk}/complete", bearer(alice), headers, RESULT))
    assert 400 <= status < 500
    assert item_state(started.pk)[0] == "IN_PROGRESS"


def test_the_same_complete_with_a_content_length_completes_through_gunicorn(server, started, alice):
    """The control: the server path works, so the 411 above is the refusal, not a broken setup."""
    path = f"/api/v1/workitems/{started.pk}/complete"
    status, _, answer = _raw(server.port, _post(path, bearer(alice), f"Content-Length: {len(RESULT)}\r\n", RESULT))
    assert status == 200, answer[:500]
    item = WorkItem.objects.get(pk=started.pk)
    assert (item.state, item.result) == ("COMPLETED", {"approved": True, "amount": 1200})


@pytest.mark.parametrize("charset", ["bz2_codec", "base64_codec", "zlib_codec", "rot13"])
def test_a_charset_that_is_not_a_text_encoding_is_415_through_gunicorn(server, started, alice, charset):
    """Django's request decodes the query string with the body's charset while it is built,
    before any middleware: `bz2_codec` raised LookupError there, a 500 from the server itself."""
    path = f"/api/v1/workitems/{started.pk}/complete?x=1"
    headers = f"Content-Length: {len(RESULT)}\r\n"
    request = _post(path, bearer(alice), headers, RESULT).replace(
        b"Content-Type: application/json", f"Content-Type: application/json; charset={charset}".encode()
    )
    status, headers_out, answer = _raw(server.port, request)
    assert status == 415, (status, answer[:300])
    assert headers_out["content-type"].startswith("application/problem+json")
    assert json.loads(answer)["type"].endswith("/unsupported-media-type")
    assert item_state(started.pk)[0] == "IN_PROGRESS"


# --- in-process: what the middleware refuses, whatever server passes it on ------------------


@pytest.mark.django_db  # in-process: the test's own transaction is enough
@pytest.mark.parametrize("coding", ["chunked", "gzip, chunked", "CHUNKED", "deflate", " chunked "])
def test_any_transfer_coding_is_411_in_process(api, started, alice, coding):
    resp = api(alice).post(
        f"/api/v1/workitems/{started.pk}/complete",
        RESULT,
        content_type="application/json",
        HTTP_TRANSFER_ENCODING=coding,
    )
    assert_problem(resp, 411, "length-required", detail_contains="Content-Length")
    assert item_state(started.pk)[0] == "IN_PROGRESS"


@pytest.mark.django_db  # in-process: the test's own transaction is enough
@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "١٢", "0x10"])
def test_a_content_length_that_is_not_a_number_is_400(api, started, alice, length):
    resp = api(alice).post(
        f"/api/v1/workitems/{started.pk}/complete", RESULT, content_type="application/json", CONTENT_LENGTH=length
    )
    assert_problem(resp, 400, "malformed-request", detail_contains="Content-Length")
    assert item_state(started.pk)[0] == "IN_PROGRESS"


@pytest.mark.django_db  # in-process: the test's own transaction is enough
def test_a_content_length_past_any_integer_is_413(api, started, alice):
    resp = api(alice).post(
        f"/api/v1/workitems/{started.pk}/complete", RESULT, content_type="application/json", CONTENT_LENGTH="9" * 40
    )
    assert_problem(resp, 413, "payload-too-large")
