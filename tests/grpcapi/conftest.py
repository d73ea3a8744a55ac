"""The real gRPC server (grpcapi.server.build) on a free loopback port, in this process, against
the transactional PostgreSQL test database (its calls run on the server's own threads, as
pytest-django's live_server does for HTTP), and clients for it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import uuid
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.db import connections
from rest_framework_simplejwt.tokens import AccessToken

from api.models import ServiceApiKey
from grpcapi.gen import workitems_pb2_grpc as pb_grpc
from grpcapi.server import Tls, build
from tests.api.test_oidc import jwks, oidc  # noqa: F401 - the loopback OIDC provider's fixtures
from tests.workitems.conftest import api_as  # noqa: F401 - a fixture the tests here use too


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """Throttle counters of this test's own (the Redis cache is shared and keys are per user pk)."""
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"grpctest-{uuid.uuid4().hex}"
    settings.CACHES = caches


WORKERS = 4


class Running:
    def __init__(self, tls: Tls | None = None):
        self.executor = futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="grpc-test")
        self.server, self.port = build(address="127.0.0.1:0", tls=tls, executor=self.executor)
        self.server.start()
        self.target = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(None).wait()
        # Each worker thread closes its database connections (the test database is dropped at the
        # end): one task per thread, held at a barrier until every thread has one.
        barrier = threading.Barrier(WORKERS)

        def close() -> None:
            barrier.wait(timeout=10)
            connections.close_all()

        for done in [self.executor.submit(close) for _ in range(WORKERS)]:
            done.result(timeout=15)
        self.executor.shutdown(wait=True)


@pytest.fixture
def start_server(transactional_db):
    """`start_server(tls=None)`: a running server; stopped after the test."""
    running = []

    def start(tls: Tls | None = None) -> Running:
        running.append(Running(tls))
        return running[-1]

    yield start
    for r in running:
        r.stop()


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture
def channel(server):
    with grpc.insecure_channel(server.target) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return pb_grpc.WorkItemsStub(channel)


def jwt_for(user) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {AccessToken.for_user(user)}"),)


@pytest.fixture
def api_key_md(transactional_db):
    """`api_key_md(user, header="authorization")`: metadata carrying a new API key of `user`."""

    def make(user, header: str = "authorization") -> tuple[tuple[str, str], ...]:
        _, key = ServiceApiKey.objects.create_key(name=f"{user.username}-{uuid.uuid4().hex[:6]}", user=user)
        return ((header, f"Api-Key {key}" if header == "authorization" else key),)

    return make


# Certificates, made here: a CA, a server certificate for 127.0.0.1 and localhost, a client one.


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_client_cert: Path  # signed by another CA: not one the server trusts
    other_client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, *, ca=False, sans=(), usage=None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key) -> tuple[Path, Path]:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path.with_suffix(".crt"), path.with_suffix(".key")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, other_ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert(_name("Workstream test CA"), ca_key, _name("Workstream test CA"), ca_key, ca=True)
    other_ca = _cert(_name("Another CA"), other_ca_key, _name("Another CA"), other_ca_key, ca=True)
    ca_path, _ = _write(d / "ca", ca, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _cert(
        _name("localhost"),
        server_key,
        ca.subject,
        ca_key,
        sans=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    client_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    client = _cert(_name("engine"), client_key, ca.subject, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other = _cert(_name("intruder"), other_key, other_ca.subject, other_ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(
        ca_path,
        *_write(d / "server", server, server_key),
        *_write(d / "client", client, client_key),
        *_write(d / "other", other, other_key),
    )
