"""Fixtures for the SDK's tests against the real server (pytest-django's live_server:
a real Django server in a thread, on the transactional PostgreSQL test database)."""

from __future__ import annotations

import http.client
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import workstream_client as wc


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """A cache key prefix of this test's own: the Redis cache is shared by every test run on
    this machine and throttle keys are per user pk, so without it a test would count the
    requests of other runs (whose users have the same pks)."""
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"sdktest-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture
def api_key_for(transactional_db):
    """An API key (`Authorization: Api-Key <key>`) that acts as the given user."""
    from api.models import ServiceApiKey

    def make(user) -> str:
        _, key = ServiceApiKey.objects.create_key(name=f"{user.username}-key", user=user)
        return key

    return make


@pytest.fixture
def sleeps():
    """Waits the clients did, recorded (and really waited: the server's clock is real)."""
    return []


@pytest.fixture
def ws(live_server, svc, sleeps):
    """The service client (a workflow engine), logged in with its password (JWT)."""
    import time

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    with wc.WorkstreamClient(live_server.url, username="svc", password="pw-svc", sleep=sleep) as c:
        yield c


@pytest.fixture
def worker_client(live_server):
    """A client for a person, by username and password (JWT from /auth/token)."""
    clients = []

    def make(user, **kwargs) -> wc.WorkstreamClient:
        c = wc.WorkstreamClient(live_server.url, username=user.username, password="pw-" + user.username, **kwargs)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def config_override(tmp_path):
    """`config_override({...})`: put a configuration with these overrides in force, as the
    configuration file would (validated); the one from settings is back afterwards."""
    import yaml

    from config import wsconfig

    def apply(overrides: dict) -> None:
        path = tmp_path / f"workstream-sdk-{uuid.uuid4().hex}.yaml"
        path.write_text(yaml.safe_dump(overrides))
        wsconfig.override(wsconfig.load(path))

    yield apply
    wsconfig.override(None)


class DroppingProxy:
    """A forwarding HTTP proxy on 127.0.0.1 in front of the live server that, for the first
    ``drop`` requests matching ``method`` and ``path``, forwards the request, lets the server
    finish it, and then hangs up without passing the answer on: a response lost on the way
    back, the case an Idempotency-Key is for."""

    def __init__(self, upstream: str, *, method: str, path: str, drop: int = 1) -> None:
        self.seen: list[tuple[str, str, dict[str, str], int]] = []  # method, path, headers, status
        self._to_drop = drop
        self._lock = threading.Lock()
        up = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "host")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                finally:
                    conn.close()
                with proxy._lock:
                    proxy.seen.append((self.command, self.path, dict(self.headers.items()), resp.status))
                    drop = self.command == method and self.path.split("?")[0] == path and proxy._to_drop > 0
                    if drop:
                        proxy._to_drop -= 1
                if drop:
                    self.close_connection = True
                    return  # the server did the work; the client never hears of it
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def dropping_proxy(live_server):
    proxies = []

    def make(**kwargs) -> DroppingProxy:
        p = DroppingProxy(live_server.url, **kwargs)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()
