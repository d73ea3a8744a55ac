"""Shared bits of the events management commands: signals and the metrics endpoint."""

from __future__ import annotations

import signal
import threading


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM/SIGINT, so the loop finishes its batch and exits cleanly."""
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def serve_metrics(port: int | None) -> None:
    if port:
        from prometheus_client import start_http_server

        start_http_server(port)
