"""A webhook receiver on loopback (http.server in a thread) that answers a script of status codes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Records every request; answers `statuses` in turn, then `then` for the rest."""

    def __init__(self, statuses=(), then: int = 200):
        self.statuses = list(statuses)
        self.then = then
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with receiver.received:
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.then
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers.items()), "body": body, "status": status}
                    )
                    receiver.received.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout: float = 10) -> list[dict]:
        with self.received:
            self.received.wait_for(lambda: len(self.requests) >= n, timeout=timeout)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
