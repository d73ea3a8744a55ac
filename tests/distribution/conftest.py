"""Helpers for the distribution tests: many workers, many items, many threads.

The shared PostgreSQL allows 100 connections in all (`max_connections`), and other
suites use it at the same time, so the concurrency tests run their threads on a
*connection budget*: a thread takes a slot, does a short burst of commands on its own
connection, closes it and gives the slot back. Every thread still calls the service
concurrently with the others; at most `DB_SLOTS` of them hold a connection at once.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable

import pytest
from django.db import connection, connections

from tests import factories
from workitems import services

DB_SLOTS = 40


def worker_users(prefix: str, n: int, *, groups=(), roles=("worker",)) -> list:
    return [factories.user(f"{prefix}{i:03d}", roles=list(roles), groups=list(groups)) for i in range(n)]


def create_items(actor, queue, n: int, *, chunk: int = 1000, **body) -> list[int]:
    """`n` items through `work_item_create_many`, `chunk` per transaction; their ids."""
    ids: list[int] = []
    while len(ids) < n:
        k = min(chunk, n - len(ids))
        made = services.work_item_create_many(actor=actor, items=[factories.item_body(queue, **body) for _ in range(k)])
        ids.extend(i.pk for i in made)
    return ids


class ThreadRun:
    """Run `fn(index, slot)` in `n` threads started together; collect errors and results.

    `slot` is a context manager: `with slot(): ...` holds one of the DB_SLOTS connection
    slots for the block and closes this thread's connection when it ends.
    """

    def __init__(self, n: int, fn: Callable, *, slots: int = DB_SLOTS, timeout: float = 300):
        self.n, self.fn, self.timeout = n, fn, timeout
        self.sem = threading.BoundedSemaphore(slots)
        self.barrier = threading.Barrier(n)
        self.errors: list[str] = []
        self.results: dict[int, object] = {}
        self.elapsed = 0.0

    class _Slot:
        def __init__(self, sem):
            self.sem = sem

        def __enter__(self):
            self.sem.acquire()

        def __exit__(self, *exc):
            try:
                connection.close()
            finally:
                self.sem.release()

    def slot(self):
        return self._Slot(self.sem)

    def _run(self, i: int) -> None:
        try:
            self.barrier.wait()
            self.results[i] = self.fn(i, self.slot)
        except BaseException:  # noqa: BLE001 - reported by the test
            self.errors.append(f"thread {i}:\n{traceback.format_exc()}")
        finally:
            connections.close_all()

    def run(self) -> ThreadRun:
        threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        deadline = t0 + self.timeout
        for t in threads:
            t.join(max(0.0, deadline - time.perf_counter()))
        self.elapsed = time.perf_counter() - t0
        alive = sum(t.is_alive() for t in threads)
        assert alive == 0, f"{alive} threads still running after {self.timeout}s"
        return self


@pytest.fixture
def run_threads():
    return lambda n, fn, **kw: ThreadRun(n, fn, **kw).run()
