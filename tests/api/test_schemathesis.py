"""schemathesis against the OpenAPI document the code generates, in-process (WSGI), authenticated.

One test per documented operation; each runs a bounded, derandomized number of generated
requests as an admin client (a real `Api-Key` made by `manage.py create_api_key --role admin`)
and checks: no server error, the response conforms to the documented schema, and its status
code is documented. Half of the examples of an operation
with an item id or a queue name use a real one, so that success responses are checked too.

Generated requests include NUL characters and garbage cursors: both are documented 400s.
"""

from __future__ import annotations

import io
from collections import Counter

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import checks as st_checks

from config.wsgi import application
from tests import factories
from workitems import services

MAX_EXAMPLES = 25
CHECKS = [st_checks.not_a_server_error, st_checks.response_schema_conformance, st_checks.status_code_conformance]

# The operations of docs/api.md's tables (all must be in the document; the test runs every documented one).
API_MD_OPERATIONS = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/token/refresh"),
    ("GET", "/api/v1/workitems"),
    ("POST", "/api/v1/workitems"),
    ("POST", "/api/v1/workitems/bulk"),
    ("POST", "/api/v1/workitems/claim-next"),
    ("GET", "/api/v1/workitems/{item_id}"),
    ("POST", "/api/v1/workitems/{item_id}/{action}"),
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
        return schemathesis.openapi.from_wsgi("/openapi.json", application)


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


@pytest.fixture
def admin_api_key(db) -> str:
    """A real hashed API key of an admin client, made as an operator makes one."""
    out = io.StringIO()
    call_command("create_api_key", "schemathesis-admin", "--role", "admin", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def seeded(svc, alice, sam, team_a, api_config):
    """A queue and items in several states for the generated requests to find."""
    api_config({"rateLimits": {"perRole": {"admin": "100000/s"}}})  # measure the API, not the throttle
    q = factories.queue("st-queue", groups=[team_a], sensitive_keys=["ssn"])
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
    if op.path in ("/api/v1/workitems", "/api/v1/workitems/claim-next") and op.method.upper() == "POST":

        def real_queue(case):
            if isinstance(case.body, dict) and "queue" in case.body:
                case.body = {**case.body, "queue": queue.name}
            return case

        variants.append(base.map(real_queue))
    strategy = st.one_of(variants) if len(variants) > 1 else base
    return strategy


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms(schema, in_process_connections, seeded, admin_api_key, method, path):
    queue, item_ids = seeded
    op = schema[path][method]
    headers = {"Authorization": f"Api-Key {admin_api_key}"}
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
