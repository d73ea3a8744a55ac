"""schemathesis against the OpenAPI document the code generates, in-process (WSGI), authenticated.

One test per documented operation and identity; each runs a bounded, derandomized number of
generated requests as one of three callers: an admin client and a service client (real `Api-Key`s
made by `manage.py create_api_key`) and a worker (a real access JWT), and runs every check
schemathesis has (the CLI's `--checks all`): no server error, the status code, content type,
headers and body conform to the document, data the document rejects is rejected and data it
accepts is not refused as invalid, a required header missing is refused, an undocumented method
is 405 with an `Allow` header, and authentication that is required is not ignored. Half of the
examples of an operation with an item id or a queue name use a real one, so that success
responses are checked too.

Generated requests include NUL characters and garbage cursors: both are documented 400s.
"""

from __future__ import annotations

import io
import uuid
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from django.conf import settings
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS as ST_CHECKS
from schemathesis.checks import is_check_class, load_all_checks
from schemathesis.config import SchemathesisConfig

from config import contextkeys
from config.wsgi import application
from tests import factories
from tests.api.conftest import bearer
from workitems import services
from workitems.models import ROUTED_ACTIONS

MAX_EXAMPLES = 25
load_all_checks()
# `--checks all`: every check function schemathesis registers (object_level_authorization is a
# class that needs two callers' resources; tests/api/test_bola.py covers object-level access).
CHECKS = [c for c in ST_CHECKS.get_all() if not is_check_class(c)]
IDENTITIES = ("admin", "service", "worker")

# The operations of docs/api.md's tables (all must be in the document; the test runs every documented one).
API_MD_OPERATIONS = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/token/refresh"),
    ("GET", "/api/v1/workitems"),
    ("POST", "/api/v1/workitems"),
    ("POST", "/api/v1/workitems/bulk"),
    ("POST", "/api/v1/workitems/claim-next"),
    ("GET", "/api/v1/workitems/{item_id}"),
    ("GET", "/api/v1/workitems/{item_id}/history"),
    ("GET", "/api/v1/queues"),
    ("POST", "/api/v1/queues"),
    ("GET", "/api/v1/queues/{name}"),
    ("PATCH", "/api/v1/queues/{name}"),
    ("GET", "/api/v1/queues/{name}/stats"),
    ("GET", "/api/v1/users"),
    ("GET", "/api/v1/users/{username}"),
    ("PATCH", "/api/v1/users/{username}/availability"),
    ("GET", "/api/v1/groups"),
    ("GET", "/api/v1/departments"),
    ("GET", "/api/v1/roles"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/verify"),
    ("GET", "/api/v1/subscriptions"),
    ("POST", "/api/v1/subscriptions"),
    ("DELETE", "/api/v1/subscriptions/{subscription_id}"),
    ("GET", "/api/v1/subscriptions/{subscription_id}/deliveries"),
    ("GET", "/api/v1/features"),
    # POST /workitems/{id}/{action}: the document lists each action as its own operation.
    *{("POST", f"/api/v1/workitems/{{item_id}}/{route}") for route in ROUTED_ACTIONS},
}


def _documented_operations() -> list[tuple[str, str]]:
    """Every operation of the generated document (the same generator /openapi.json serves)."""
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    methods = ("get", "post", "put", "patch", "delete")
    return sorted((m.upper(), path) for path, item in document["paths"].items() for m in item if m in methods)


OPERATIONS = _documented_operations()


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        config = SchemathesisConfig.from_path(Path(settings.BASE_DIR) / "schemathesis.toml")
        return schemathesis.openapi.from_wsgi("/openapi.json", application, config=config)


@pytest.fixture
def in_process_connections():
    """Calling the WSGI app straight sends request_started/finished, whose close_old_connections
    would close the test's connection (it is inside the test transaction); the Django test
    client disconnects it the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _api_key(name: str, role: str) -> str:
    """A real hashed API key of a client with `role`, made as an operator makes one."""
    out = io.StringIO()
    call_command("create_api_key", name, "--role", role, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def authorization(request, db, alice) -> str:
    """The Authorization header of the identity the test is parametrized with."""
    if request.param == "worker":
        return bearer(alice)
    return f"Api-Key {_api_key(f'schemathesis-{request.param}', request.param)}"


@pytest.fixture
def seeded(svc, alice, carol, sam, team_a, api_config, settings):
    """A queue and items in several states for the generated requests to find; a context key ring,
    so that a queue may list encrypted_keys (without one that is a 400) and the items' ssn is sealed."""
    settings.CONTEXT_KEY_RING = contextkeys.parse(contextkeys.new_key_entry("st"))
    unlimited = {role: "100000/s" for role in ("admin", "service", "worker")}
    # Measure the API, not the throttle (ignored_auth repeats each request without credentials).
    api_config({"rateLimits": {"perRole": unlimited, "anonymousPerIp": "100000/s"}})
    q = factories.queue("st-queue", groups=[team_a], sensitive_keys=["ssn"], encrypted_keys=["ssn"])
    items = [factories.item(actor=svc, queue=q, context_data={"ssn": "1", "n": i}) for i in range(4)]
    services.work_item_claim(item_id=items[1].pk, actor=alice)
    services.work_item_claim(item_id=items[2].pk, actor=alice)
    services.work_item_start(item_id=items[2].pk, actor=alice)
    services.work_item_suspend(item_id=items[3].pk, actor=sam, reason="x")
    return q, [i.pk for i in items]


def _strategy(op, queue, item_ids):
    base = op.as_strategy()
    variants = [base]
    params = {p.name for p in op.path_parameters}
    if "item_id" in params:
        variants += [op.as_strategy(path_parameters={"item_id": i}) for i in item_ids]
    if "name" in params:
        variants.append(op.as_strategy(path_parameters={"name": queue.name}))
    if "username" in params:
        variants.append(op.as_strategy(path_parameters={"username": "alice"}))
    strategy = st.one_of(variants) if len(variants) > 1 else base
    strategy = strategy.map(_existing_references(queue))
    if any(p.name == "cursor" for p in op.query):
        strategy = strategy.map(_issued_cursors_only)
    return strategy


# Body members that name another resource: the document says they are strings (names), but only
# the name of one that exists (and, for people, one who may take the item) is valid data.
PEOPLE = ("user", "delegate", "assignee")
PEOPLE_LISTS = ("excluded_users", "candidate_users")


def _existing_references(queue):
    """A positive example names resources that exist: the seeded queue, team-a and its members,
    no lifecycle, calendar, escalation or overflow queue (a name is a free string to the document,
    and an unknown one is a documented 400). Negative examples keep what they were given. An
    absence is open-ended from now (the server refuses one that has ended)."""

    def fix(case):
        body = case.body
        if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(body, dict):
            return case
        body = references(body)
        path = case.operation.path
        if path == "/api/v1/workitems" and "queue" not in body:  # no task type is seeded: a create names its queue
            body["queue"] = queue.name
        if path == "/api/v1/workitems/bulk" and isinstance(body.get("items"), list):
            body["items"] = [
                {"queue": queue.name, **references(i), **({"sod_scope": "run"} if not i.get("case") else {})}
                if isinstance(i, dict)
                else i
                for i in body["items"]
            ]
        if body.get("sod_scope") == "case" and not body.get("case"):
            body["sod_scope"] = "run"  # case scope needs a case (a documented 400); none is seeded
        if path == "/api/v1/workitems/claim-next" and "queue" in body and "queues" in body:
            del body["queues"]  # one or the other (docs/api.md); both is a documented 400
        if isinstance(body.get("tasks"), list):  # POST /workflows: each task a task type's body, each name once
            tasks = [references(t) if isinstance(t, dict) else t for t in body["tasks"]]
            names = [t.get("name") if isinstance(t, dict) else None for t in tasks]
            body["tasks"] = [t for i, t in enumerate(tasks) if names[i] not in names[:i]]
        case.body = body
        # A client sends a fresh key with each distinct request (a reused one is a 422).
        if case.headers and "Idempotency-Key" in case.headers:
            case.headers["Idempotency-Key"] = f"{case.headers['Idempotency-Key'][:200]}-{uuid.uuid4().hex}"
        return case

    def references(body: dict) -> dict:
        body = dict(body)
        if isinstance(body.get("queue"), str):
            body["queue"] = queue.name
        for key in ("queue", "queues"):  # several names: the seeded queue, once
            if isinstance(body.get(key), list):
                body[key] = [queue.name][: len(body[key])]
        for key in ("calendar", "lifecycle", "escalation_queue", "overflow_queue", "department"):
            if isinstance(body.get(key), str):
                body[key] = None
        for key in PEOPLE:
            if isinstance(body.get(key), str):
                body[key] = "carol"
        for key in PEOPLE_LISTS:
            if isinstance(body.get(key), list):
                body[key] = ["carol"][: len(body[key])]
        for key in ("candidate_groups", "supervisor_groups"):
            if isinstance(body.get(key), list):
                body[key] = ["team-a"][: len(body[key])]
        # Members whose rules go beyond what JSON Schema says (spans in order, a level's actions,
        # a channel's secret): a positive example sends one the server's rules allow.
        if isinstance(body.get("working_hours"), dict):
            body["working_hours"] = {"mon": [["09:00", "17:00"]]}
        if isinstance(body.get("escalation_policy"), list):
            body["escalation_policy"] = [{"at": 1.0, "actions": [{"type": "raise_priority", "by": 10}]}]
        if isinstance(body.get("channels"), list):
            body["channels"] = [{"type": "in_app"}]
        if isinstance(body.get("country"), str):  # a country the holidays package knows
            body.update(country="DE", subdivision="")
        if isinstance(body.get("url"), str):  # a public address: a name would not resolve here
            body["url"] = "https://93.184.215.14/hooks/workstream"
        if body.get("available") is False:
            body.update(out_of_office_from=None, out_of_office_until=None)
        # a task type's result schema (a JSON Schema, not any object) and its form (each property once)
        if isinstance(body.get("result_schema"), dict):
            body["result_schema"] = {"type": "object"}
        if isinstance(body.get("form"), dict):
            body["form"] = {"fields": [{"name": "approved", "label": "Approved?"}]}
        return body

    return fix


def _issued_cursors_only(case):
    """A cursor is an opaque token the server issues (a page's `next` link); any string the
    document allows is not one, so a positive example leaves it out (the first page) and the
    negative ones keep theirs, which must be refused with a 400 (tests/api/test_pagination.py
    tries forged cursors by hand)."""
    if case.meta is not None and case.meta.generation.mode.is_positive and case.query and "cursor" in case.query:
        case.query = {k: v for k, v in case.query.items() if k != "cursor"}
    return case


@pytest.mark.slow
@pytest.mark.parametrize("authorization", IDENTITIES, indirect=True)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(schema, in_process_connections, seeded, authorization, method, path):
    queue, item_ids = seeded
    op = schema[path][method]
    headers = {"Authorization": authorization}
    statuses: Counter = Counter()

    @given(case=_strategy(op, queue, item_ids))
    @hsettings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(headers=headers)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        run()
    finally:
        counts = dict(sorted(statuses.items()))
        print(f"schemathesis {method} {path}: {sum(statuses.values())} examples, statuses {counts}")
    assert sum(statuses.values()) >= 1
    assert 500 not in statuses


def test_every_api_md_operation_is_in_the_schema(schema):
    documented = {(r.ok().method.upper(), r.ok().path) for r in schema.get_all_operations()}
    assert documented == set(OPERATIONS)  # what /openapi.json serves is what this file tests
    assert documented >= API_MD_OPERATIONS, sorted(API_MD_OPERATIONS - documented)
