"""The gRPC server: workstream.v1.WorkItems, the standard health service (grpc.health.v1) and
server reflection, on one port, in the clear or over TLS (mTLS with a client CA)."""

from __future__ import annotations

from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from config import wsconfig
from grpcapi.gen import workitems_pb2_grpc as pb_grpc
from grpcapi.servicer import SERVICE, WorkItemsServicer


@dataclass(frozen=True)
class Tls:
    certfile: Path
    keyfile: Path
    client_ca: Path | None = None  # set: every client must present a certificate it signed

    def credentials(self) -> grpc.ServerCredentials:
        pair = [(self.keyfile.read_bytes(), self.certfile.read_bytes())]
        if self.client_ca is None:
            return grpc.ssl_server_credentials(pair)
        return grpc.ssl_server_credentials(
            pair, root_certificates=self.client_ca.read_bytes(), require_client_auth=True
        )


def build(
    *,
    address: str = "[::]:50051",
    max_workers: int = 8,
    tls: Tls | None = None,
    executor: futures.ThreadPoolExecutor | None = None,
) -> tuple[grpc.Server, int]:
    """A server, not yet started, and the port it bound (0 in `address`: a free one). Each call
    runs on a thread of `executor` (else one of `max_workers` threads): shutting the executor
    down ends the threads, and with them their database connections."""
    executor = executor or futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc")
    # A request larger than REST accepts (performance.maxBodyBytes) is refused by gRPC itself
    # (RESOURCE_EXHAUSTED) before it is read.
    limit = wsconfig.get().performance.maxBodyBytes
    server = grpc.server(executor, options=[("grpc.max_receive_message_length", limit)])
    pb_grpc.add_WorkItemsServicer_to_server(WorkItemsServicer(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    port = server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return server, port
