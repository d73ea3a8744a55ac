"""`manage.py grpc_serve`: the gRPC API (workstream.v1.WorkItems, health, reflection)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from grpcapi.server import Tls, build


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def path_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


class Command(BaseCommand):
    help = "Serve the gRPC API (workstream.v1.WorkItems, grpc.health.v1, reflection) until SIGTERM/SIGINT."

    def add_arguments(self, parser):
        # Each option's default comes from the environment (GRPC_PORT, GRPC_CERTFILE, …), as a
        # deployment configures it; an option given wins.
        parser.add_argument("--host", default=env("GRPC_HOST", "[::]"), help="address to bind (default [::])")
        parser.add_argument(
            "--port", type=int, default=int(env("GRPC_PORT", "50051")), help="port (default 50051; 0: a free one)"
        )
        parser.add_argument(
            "--max-workers", type=int, default=int(env("GRPC_MAX_WORKERS", "8")), help="worker threads (default 8)"
        )
        parser.add_argument("--certfile", type=Path, default=path_env("GRPC_CERTFILE"), help="TLS: certificate (PEM)")
        parser.add_argument("--keyfile", type=Path, default=path_env("GRPC_KEYFILE"), help="TLS: private key (PEM)")
        parser.add_argument(
            "--client-ca",
            type=Path,
            default=path_env("GRPC_CLIENT_CA"),
            help="mTLS: CA certificates (PEM); clients must present a certificate one of them signed",
        )
        parser.add_argument("--grace", type=float, default=10.0, help="seconds calls in flight get on shutdown")

    def handle(self, *args, **opts):
        tls = self._tls(opts)
        if opts["max_workers"] < 1:
            raise CommandError("--max-workers must be at least 1")
        server, port = build(address=f"{opts['host']}:{opts['port']}", max_workers=opts["max_workers"], tls=tls)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        server.start()
        mode = "plaintext" if tls is None else ("mTLS" if tls.client_ca else "TLS")
        self.stdout.write(f"grpc_serve: listening on {opts['host']}:{port} ({mode}, {opts['max_workers']} workers)")
        self.stdout.flush()
        stop.wait()
        server.stop(opts["grace"]).wait()
        self.stdout.write("grpc_serve: stopped")

    def _tls(self, opts) -> Tls | None:
        cert, key, ca = opts["certfile"], opts["keyfile"], opts["client_ca"]
        if cert is None and key is None:
            if ca is not None:
                raise CommandError("--client-ca needs --certfile and --keyfile (mTLS is TLS with client certificates)")
            return None
        if cert is None or key is None:
            raise CommandError("TLS needs both --certfile and --keyfile")
        for path in (cert, key, ca):
            if path is not None and not path.is_file():
                raise CommandError(f"{path}: no such file")
        return Tls(cert, key, ca)
