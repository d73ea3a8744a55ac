"""config.sqlcache: a hot query compiled once per shape answers exactly what the ORM answers,
refuses a shape whose values do not come through as parameters, and is prepared once per
connection by PostgreSQL (issue 13)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from config import sqlcache
from tests import factories
from workitems import policy, selectors
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db


def fresh(user):
    return get_user_model().objects.get(pk=user.pk)


def orm_row(actor, item_id, *, for_update, claimer):
    """work_item_get_for's statement through the ORM (what the template replaces)."""
    visibility = None if policy.sees_everything(actor) else policy.visible_filter(actor)
    qs = selectors._get_for_queryset(actor, item_id, for_update=for_update, claimer=claimer, visibility=visibility)
    return qs.first()


def row_of(item) -> dict:
    skip = {"_state", "_prefetched_objects_cache", "_django_fsm_state_cache"}
    values = {k: v for k, v in item.__dict__.items() if k not in skip and not k.startswith("_fsm")}
    values["related"] = {
        name: getattr(item, name).pk if getattr(item, name) is not None else None
        for name in ("queue", "assignee", "created_by", "reserved_for")
    }
    # what select_related filled in, on the item and on its queue (the lifecycle)
    values["joined"] = (sorted(item._state.fields_cache), sorted(item.queue._state.fields_cache))
    return values


@pytest.fixture
def world(db):
    team, other = factories.group("sq-team"), factories.group("sq-other")
    svc = factories.user("sq-svc", roles=["service"])
    member = factories.user("sq-member", roles=["worker"], groups=[team])
    outsider = factories.user("sq-outsider", roles=["worker"], groups=[other])
    named = factories.user("sq-named", roles=["worker"])
    queue = factories.queue("sq-queue", groups=[team])
    plain = factories.item(actor=svc, queue=queue)
    naming = factories.item(actor=svc, queue=queue, candidate_users=["sq-named"], excluded_users=["sq-member"])
    return {"svc": svc, "member": member, "outsider": outsider, "named": named, "items": [plain, naming]}


@pytest.mark.parametrize("who", ["svc", "member", "outsider", "named"])
@pytest.mark.parametrize("for_update", [False, True])
@pytest.mark.parametrize("claiming", [False, True])
def test_the_lock_template_reads_what_the_orm_reads(world, who, for_update, claiming):
    actor = fresh(world[who])
    claimer = actor if claiming else None
    template = selectors._get_for_template(
        actor, for_update=for_update, claimer=claimer, sees_all=policy.sees_everything(actor)
    )
    assert template is not None, "the shape is fit: its values are plain parameters"
    with transaction.atomic():
        for item in world["items"]:
            (cached,) = template.fetch({"item": item.pk, **selectors.user_values(actor)})
            assert row_of(cached) == row_of(orm_row(actor, item.pk, for_update=for_update, claimer=claimer))
    if who == "outsider":
        assert not cached._visible
    if claiming and who in ("member", "named"):
        # the member may claim the plain item; the second names only sq-named and excludes sq-member
        assert cached.claimable is (who == "named")


def test_the_template_follows_the_actors_values_not_the_first_callers(world):
    """One shape, two callers: each gets its own visibility (the first caller's ids are not baked in)."""
    item = world["items"][0]
    member, outsider = fresh(world["member"]), fresh(world["outsider"])
    assert selectors.work_item_get_for(actor=member, item_id=item.pk).pk == item.pk
    with pytest.raises(Exception) as caught:
        selectors.work_item_get_for(actor=outsider, item_id=item.pk)
    assert type(caught.value).__name__ == "NotFound"


def test_a_stand_in_turned_into_text_is_refused(world):
    """A value that does not reach the SQL as the same parameter makes the shape unfit: the
    caller keeps the ORM path."""

    def build(stand):
        return WorkItem.objects.filter(title=str(stand.value("title")))

    assert sqlcache.template(("test-unfit-text",), build) is None


def test_a_text_stand_in_is_a_parameter_of_the_statement(world):
    """`Stand.text` (a lookup by name): the value is bound per call, not the first caller's."""
    plain, naming = world["items"]
    WorkItem.objects.filter(pk=plain.pk).update(title="first % title")
    WorkItem.objects.filter(pk=naming.pk).update(title="second")
    template = sqlcache.template(("test-text",), lambda stand: WorkItem.objects.filter(title=stand.text("title")))
    assert template is not None
    assert "first" not in template.sql and "%s" in template.sql
    assert [i.pk for i in template.fetch({"title": "first % title"})] == [plain.pk]
    assert [i.pk for i in template.fetch({"title": "second"})] == [naming.pk]
    assert template.fetch({"title": "third"}) == []


def test_a_text_stand_in_changed_by_its_lookup_is_refused(world):
    """icontains wraps the value in `%…%`: the parameter is no longer the stand-in, so the ORM is kept."""

    def build(stand):
        return WorkItem.objects.filter(title__icontains=stand.text("title"))

    assert sqlcache.template(("test-unfit-text-lookup",), build) is None


def test_a_stand_in_that_never_reaches_the_sql_is_refused(world):
    def build(stand):
        stand.value("unused")
        return WorkItem.objects.filter(pk=stand.value("item"))

    assert sqlcache.template(("test-unfit-missing",), build) is None


def test_the_statement_is_prepared_once_per_connection(world):
    """With prepared statements on (the default), PostgreSQL holds the template's statement."""
    actor = fresh(world["member"])
    item = world["items"][0]
    selectors.work_item_get_for(actor=actor, item_id=item.pk)
    assert connection.connection.prepare_threshold is not None, "on by default (DB_PREPARED_STATEMENTS)"
    template = selectors._get_for_template(actor, for_update=False, claimer=None, sees_all=False)
    head = template.sql[:120]  # the select list's start: no parameter in it
    assert "%s" not in head

    def prepared():
        with connection.cursor() as cur:
            cur.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in cur.fetchall() if row[0].startswith(head)]

    assert len(prepared()) == 1
    selectors.work_item_get_for(actor=actor, item_id=world["items"][1].pk)
    assert len(prepared()) == 1, "the second call runs the same prepared statement"


def test_a_prepared_statement_keeps_one_generic_plan(world):
    """DB_PLAN_CACHE_MODE (default force_generic_plan): the lock template's prepared statement is
    planned once and its plan reused, not re-planned on each call (PostgreSQL's `auto` kept
    custom plans for the statements with array parameters: planning cost 15 times execution
    under load)."""
    with connection.cursor() as cur:
        cur.execute("SHOW plan_cache_mode")
        assert cur.fetchone()[0] == "force_generic_plan"
    actor = fresh(world["member"])
    for item in [*world["items"], *world["items"]]:
        selectors.work_item_get_for(actor=actor, item_id=item.pk)
    calls = 2 * len(world["items"])
    head = selectors._get_for_template(actor, for_update=False, claimer=None, sees_all=False).sql[:120]
    with connection.cursor() as cur:
        cur.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        (plans,) = [(g, c) for s, g, c in cur.fetchall() if s.startswith(head)]
    assert plans == (calls, 0), plans


def test_start_up_refuses_an_unknown_plan_cache_mode():
    from tests.config.test_metrics_auth import settings_of

    proc = settings_of("DATABASES", DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", DB_PLAN_CACHE_MODE="fast")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: DB_PLAN_CACHE_MODE='fast'"), last
    ok = settings_of("DATABASES", DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", DB_PLAN_CACHE_MODE="auto")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "-c plan_cache_mode=auto" in ok.stdout


def test_a_templates_constants_are_written_into_its_text(world):
    """Only the stand-ins (and the clock) stay parameters; every other value is in the SQL
    text, so the one generic plan sees it as a constant. A `%` in a value survives (psycopg's
    placeholder syntax doubles it), and the template reads what the ORM reads."""
    item = world["items"][0]
    WorkItem.objects.filter(pk=item.pk).update(title="50% done, 'quoted'")

    def build(stand):
        return WorkItem.objects.filter(
            pk=stand.value("item"), state__in=["OFFERED", "ASSIGNED"], title__contains="50% done"
        )

    template = sqlcache.template(("test-inlined",), build)
    assert template is not None
    assert "'OFFERED'" in template.sql and "'ASSIGNED'" in template.sql
    assert [name for _, name in template.slots] == ["item"] and len(template.params) == 1
    (got,) = template.fetch({"item": item.pk})
    assert got.title == "50% done, 'quoted'"
    assert template.fetch({"item": world["items"][1].pk}) == []


def test_the_query_log_shows_a_prepared_statements_sql(world):
    """Django's query log (DEBUG, CaptureQueriesContext) holds a prepared statement's text, not None."""
    from django.test.utils import CaptureQueriesContext

    template = sqlcache.template(("test-log",), lambda stand: WorkItem.objects.filter(pk=stand.value("item")))
    with CaptureQueriesContext(connection) as log:
        template.fetch({"item": world["items"][0].pk})
    assert [q["sql"] for q in log.captured_queries] == [template.sql]


def test_a_long_statements_conversion_is_kept_and_gives_psycopgs_own():
    """psycopg converts a query over 4 kB or 50 parameters afresh on every execute; the prepared
    cursor keeps the conversion per SQL text, and the statement answers as psycopg's own would."""
    from psycopg._queries import PostgresQuery
    from psycopg.adapt import Transformer

    n = 60  # over psycopg's 50-parameter limit for its own cache
    sql = "SELECT " + ", ".join(f"%s::int AS c{i} /* {'x' * 60} */" for i in range(n))
    assert len(sql) > 4096
    params = list(range(n))
    sqlcache._CONVERTED.clear()
    with sqlcache.prepared_cursor() as cur:
        cur.execute(sql, params)
        first = cur.fetchall()
        cur.execute(sql, [p + 1 for p in params])
        second = cur.fetchall()
    assert first == [tuple(params)]
    assert second == [tuple(p + 1 for p in params)]
    kept = [key for key in sqlcache._CONVERTED if key[0] == sql]
    assert len(kept) == 1, "converted once, kept under its text"
    own = PostgresQuery(Transformer(connection.connection))
    own.convert(sql, params)
    assert sqlcache._CONVERTED[kept[0]][0] == own.query  # the same $n text psycopg sends


def test_the_kept_conversions_are_bounded(monkeypatch):
    """Past _CONVERTED_MAX shapes a new text is converted per call and not kept."""
    monkeypatch.setattr(sqlcache, "_CONVERTED_MAX", 1)
    sqlcache._CONVERTED.clear()
    with sqlcache.prepared_cursor() as cur:
        cur.execute("SELECT %s::int", [1])
        cur.execute("SELECT %s::int + 1", [1])
        assert cur.fetchall() == [(2,)]
    assert len(sqlcache._CONVERTED) == 1


@pytest.mark.django_db(transaction=True)
def test_a_template_built_on_one_threads_connection_serves_another():
    """Templates are kept per process: a thread with a connection of its own uses the template
    another thread built (no second build) and reads through its own connection."""
    import threading

    from django.db import connections

    from workitems.models import Queue

    queue = factories.queue("shared-template-q")
    key = ("test-shared-across-threads",)

    def build(stand):
        return Queue.objects.filter(pk=stand.value("q"))

    built = sqlcache.template(key, build)
    assert [q.name for q in built.fetch({"q": queue.pk})] == ["shared-template-q"]
    seen = {}

    def other_thread():
        try:

            def refuse(stand):
                raise AssertionError("built a second time")

            mine = sqlcache.template(key, refuse)
            seen["same"] = mine is built
            seen["names"] = [q.name for q in mine.fetch({"q": queue.pk})]
            seen["own connection"] = connection.connection is not None
        finally:
            connections.close_all()

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(30)
    assert seen == {"same": True, "names": ["shared-template-q"], "own connection": True}
