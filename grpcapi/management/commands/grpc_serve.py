"""`manage.py grpc_serve`: the gRPC API (workstream.v1.WorkItems, health, reflection)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from grpcapi.server import Tls, build


class Command(BaseCommand):
    help = "Serve the gRPC API (workstream.v1.WorkItems, grpc.health.v1, reflection) until SIGTERM/SIGINT."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="[::]", help="address to bind (default [::], every interface)")
        parser.add_argument("--port", type=int, default=50051, help="port (default 50051; 0: a free one)")
        parser.add_argument("--max-workers", type=int, default=8, help="worker threads (concurrent calls; default 8)")
        parser.add_argument("--certfile", type=Path, help="TLS: the server's certificate chain (PEM)")
        parser.add_argument("--keyfile", type=Path, help="TLS: the server's private key (PEM)")
        parser.add_argument(
            "--client-ca", type=Path, help="mTLS: CA certificates (PEM); clients must present a certificate they signed"
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
