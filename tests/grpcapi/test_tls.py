"""TLS and mTLS from certificate files (made by the pki fixture with `cryptography`), in-process
and through `manage.py grpc_serve` itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import grpc
import pytest
from django.core.management import CommandError, call_command
from grpc_health.v1 import health_pb2, health_pb2_grpc

from grpcapi.gen import workitems_pb2_grpc as pb_grpc
from grpcapi.server import Tls
from tests.grpcapi.conftest import jwt_for
from tests.grpcapi.test_server import create_request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def credentials(pki, *, cert=None, key=None) -> grpc.ChannelCredentials:
    pair = {} if cert is None else {"certificate_chain": cert.read_bytes(), "private_key": key.read_bytes()}
    return grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes(), **pair)


def serving(target: str, creds: grpc.ChannelCredentials) -> int:
    with grpc.secure_channel(target, creds) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_tls_serves_the_api(start_server, pki, svc, queue):
    server = start_server(Tls(pki.server_cert, pki.server_key))
    for host in ("127.0.0.1", "localhost"):  # the certificate names both
        with grpc.secure_channel(f"{host}:{server.port}", credentials(pki)) as ch:
            item = pb_grpc.WorkItemsStub(ch).Create(create_request(queue), metadata=jwt_for(svc), timeout=10)
            assert item.state == "OFFERED"
    with grpc.insecure_channel(server.target) as plain, pytest.raises(grpc.RpcError) as excinfo:
        health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE  # no TLS, no call


def test_mtls_requires_a_client_certificate_of_the_ca(start_server, pki):
    server = start_server(Tls(pki.server_cert, pki.server_key, client_ca=pki.ca))
    with_cert = credentials(pki, cert=pki.client_cert, key=pki.client_key)
    assert serving(server.target, with_cert) == health_pb2.HealthCheckResponse.SERVING
    for creds in (credentials(pki), credentials(pki, cert=pki.other_client_cert, key=pki.other_client_key)):
        with pytest.raises(grpc.RpcError) as excinfo:
            serving(server.target, creds)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpc_serve_command_with_mtls(pki, tmp_path):
    env = {**os.environ, "DEBUG": "true", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "manage.py", "grpc_serve", "--host", "127.0.0.1", "--port", "0", "--max-workers", "2"]
    tls = ["--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key), "--client-ca", str(pki.ca)]
    proc = subprocess.Popen([*args, *tls], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line and "(mTLS, 2 workers)" in line, line + proc.stderr.read()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        with_cert = credentials(pki, cert=pki.client_cert, key=pki.client_key)
        assert serving(f"127.0.0.1:{port}", with_cert) == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError):
            serving(f"127.0.0.1:{port}", credentials(pki))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert "grpc_serve: stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_grpc_serve_refuses_half_a_tls_configuration(pki):
    for extra, missing in (
        (["--certfile", str(pki.server_cert)], "--keyfile"),
        (["--client-ca", str(pki.ca)], "--certfile"),
    ):
        with pytest.raises(CommandError, match=missing):
            call_command("grpc_serve", "--port", "0", *extra)
