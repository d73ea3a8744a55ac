"""Locust users of the load test (issue 15): the realistic mix and the closed-loop saturation run.

Run by bench/load/run.py, which seeds the database and writes the seed file named by LOAD_SEED
(JSON: api_keys, workers, supervisors, password, queues). Loopback only: the host is the
gunicorn that run.py started on 127.0.0.1.

  ServiceClient  creates items with an API key (`Authorization: Api-Key …`), think time.
  Worker         one JWT from POST /api/v1/auth/token per simulated user, then claim-next →
                 start → complete with think time between the steps (204: nothing to take).
  Supervisor     polls GET /api/v1/stats/queues (JWT) and the console dashboard's live
                 fragments (/console/live/tiles, /charts, /breaches) after a session login.
  Saturation     closed loop, no think time: create (API key) → claim-next → start → complete
                 (JWT), as fast as the server answers (`locust … Saturation`).

Without --login, run.py mints each user's access token and console session beforehand
(SEED tokens, sessions): PBKDF2 costs each password check ~0.1–0.3 s of CPU, and 1,000 logins
at the start would be the run. With --login every user calls auth/token (and the supervisors
the console's login form) once, as a real client does.

Think times (seconds) come from LOAD_THINK_CREATE, LOAD_THINK_STEP, LOAD_THINK_ITEM and
LOAD_THINK_POLL ("lo,hi"), defaults below.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import uuid
from pathlib import Path

import gevent
from locust import HttpUser, between, constant, task

SEED = json.loads(Path(os.environ["LOAD_SEED"]).read_text()) if os.environ.get("LOAD_SEED") else {}
_counters = {name: itertools.count() for name in ("api_keys", "workers", "supervisors", "queues")}


def _next(kind: str):
    pool = SEED[kind]
    return pool[next(_counters[kind]) % len(pool)]


def _think(name: str, default: str):
    lo, hi = (float(x) for x in os.environ.get(name, default).split(","))
    return between(lo, hi)


def _create_body() -> dict:
    return {
        "workflow_id": "load",
        "task_name": "review",
        "run_id": uuid.uuid4().hex,
        "queue": _next("queues"),
        "title": "load test item",
        "context_data": {"customer_id": uuid.uuid4().hex[:12]},
    }


class _Api(HttpUser):
    abstract = True

    def jwt_login(self, username: str) -> None:
        if username in SEED.get("tokens", {}):  # minted by run.py (no --login): no password hashing
            self.jwt = {"Authorization": f"Bearer {SEED['tokens'][username]}"}
            return
        body = {"username": username, "password": SEED["password"]}
        with self.client.post("/api/v1/auth/token", json=body, name="auth/token", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"token: {r.status_code}")
                return
            self.jwt = {"Authorization": f"Bearer {r.json()['access']}"}

    def create(self, key: str) -> None:
        headers = {"Authorization": f"Api-Key {key}"}
        self.client.post("/api/v1/workitems", json=_create_body(), headers=headers, name="create")

    def lifecycle(self) -> bool:
        """claim-next → start → complete; False when there was nothing to claim."""
        r = self.client.post("/api/v1/workitems/claim-next", json={}, headers=self.jwt, name="claim-next")
        if r.status_code != 200:
            return False
        item = r.json()
        self.think_step()
        r = self.client.post(
            f"/api/v1/workitems/{item['id']}/start", json={}, headers=self.jwt, name="start", timeout=30
        )
        if r.status_code != 200:
            return True
        self.think_step()
        self.client.post(
            f"/api/v1/workitems/{item['id']}/complete",
            json={"result": {"ok": True}},
            headers=self.jwt,
            name="complete",
        )
        return True

    def think_step(self) -> None:
        pass


class ServiceClient(_Api):
    weight = 10
    wait_time = _think("LOAD_THINK_CREATE", "2,6")

    def on_start(self) -> None:
        self.key = _next("api_keys")

    @task
    def create_item(self) -> None:
        self.create(self.key)


class Worker(_Api):
    weight = 80
    wait_time = _think("LOAD_THINK_ITEM", "5,15")
    _step = _think("LOAD_THINK_STEP", "1,3")

    def on_start(self) -> None:
        self.jwt_login(_next("workers"))

    def think_step(self) -> None:
        gevent.sleep(self._step())  # a bound method of the user, as wait_time

    @task
    def work(self) -> None:
        if getattr(self, "jwt", None):
            self.lifecycle()


class Supervisor(_Api):
    weight = 10
    wait_time = _think("LOAD_THINK_POLL", "5,10")

    def on_start(self) -> None:
        username = _next("supervisors")
        self.jwt_login(username)
        if username in SEED.get("sessions", {}):
            self.client.cookies.set("sessionid", SEED["sessions"][username])
            return
        page = self.client.get("/console/login", name="console/login")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        form = {"username": username, "password": SEED["password"], "csrfmiddlewaretoken": token and token[1]}
        self.client.post("/console/login", data=form, name="console/login", headers={"Referer": self.host})

    @task(2)
    def stats(self) -> None:
        if getattr(self, "jwt", None):
            self.client.get("/api/v1/stats/queues", headers=self.jwt, name="stats/queues")

    @task(1)
    def dashboard(self) -> None:
        for part in ("tiles", "charts", "breaches"):
            url, name = f"/console/live/{part}", f"console/live/{part}"
            with self.client.get(url, name=name, allow_redirects=False, catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"{part}: {r.status_code} (session login failed?)")


class Saturation(_Api):
    """Closed loop: every user sends its next request when the last one answered."""

    weight = 1  # run.py names the classes of each run: the mix or this one
    wait_time = constant(0)

    def on_start(self) -> None:
        self.key = _next("api_keys")
        self.jwt_login(_next("workers"))

    @task
    def loop(self) -> None:
        self.create(self.key)
        if getattr(self, "jwt", None):
            self.lifecycle()
