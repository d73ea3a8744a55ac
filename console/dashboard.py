"""The supervisors' side of the console: the dashboard and its live fragments, and the queue
pages. Figures come from console.figures over the queues the caller may see
(workitems.queues.queue_list_for); the breach list's actions post to the item's action
endpoint (console.views.item_action), which runs the command."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET
from rest_framework.request import Request

from api.pagination import Cursor
from api.problems import ProblemException
from config import sqlcache
from config.db_router import reporting
from console import figures
from console.access import console_view, supervises
from directory.models import Department
from workitems import policy
from workitems.api.views import FAR_FUTURE, WorkItemListCreateView
from workitems.filters import ORDERINGS, WorkItemFilter
from workitems.models import OPEN_STATES, SlaState, State
from workitems.queues import queue_get_for, queue_list_for, queue_snapshot
from workitems.selectors import work_item_list_for

User = get_user_model()
# The windows a supervisor can choose (ISO 8601 durations, as the statistics API takes them).
WINDOWS = {
    "PT1H": timedelta(hours=1),
    "PT24H": timedelta(hours=24),
    "P7D": timedelta(days=7),
    "P30D": timedelta(days=30),
}
DEFAULT_WINDOW = "PT24H"
BREACH_LIST_SIZE = 25  # the soonest due; a live list to act on, not a report
RAISE_BY = 10  # the breach list's "raise priority" (capped at 100, as the SLA policy's raise_priority)
POLL = {"tiles": "every 2s", "breaches": "every 2s", "charts": "every 3s"}


@require_GET
def root(request):
    """`/`: the console."""
    return redirect("console:home")


@dataclass
class Filters:
    """The dashboard's filters, read from the query string (unknown values are ignored)."""

    queues: list  # the visible, active queues shown
    all_queues: list  # every visible active queue (the filter's choices)
    queue: str
    department: Department | None
    departments: list
    window: str

    @property
    def query(self) -> str:
        params = {
            "queue": self.queue,
            "department": self.department.code if self.department else "",
            "window": self.window,
        }
        return urlencode({k: v for k, v in params.items() if v})


def _filters(request, *, departments: bool = False) -> Filters:
    """The filters of the query string; the departments to choose from only for the whole page
    (`departments`): a fragment shows the chosen one alone. Of the queues, what the dashboard
    shows (id, name): not their groups, lifecycles and escalation targets."""
    shown = queue_list_for(actor=request.user).prefetch_related(None).select_related(None)
    visible = list(shown.filter(active=True).only("id", "name", "active"))
    name = request.GET.get("queue", "")
    chosen = [q for q in visible if q.name == name] if name else visible
    code = request.GET.get("department", "")
    department = Department.objects.filter(code=code).first() if code else None
    window = request.GET.get("window", DEFAULT_WINDOW)
    return Filters(
        queues=chosen,
        all_queues=visible,
        queue=name if chosen and name else "",
        department=department,
        departments=list(Department.objects.order_by("name")[:500]) if departments else [],
        window=window if window in WINDOWS else DEFAULT_WINDOW,
    )


# The figures a replica may serve (README "Read replicas"); the breach list stays on the primary.
@reporting()
def _tiles(f: Filters) -> list[dict]:
    by_id = figures.queue_figures(queues=f.queues, window=WINDOWS[f.window])
    return [{**by_id[q.pk], "queue": q} for q in f.queues]


@reporting()
def _charts(f: Filters) -> dict:
    found = figures.charts(queues=f.queues, department=f.department)
    created, completed, users, ages = found["created"], found["completed"], found["users"], found["ages"]
    return {
        "throughput": {
            "labels": [p["label"] for p in created],
            "datasets": [
                {"label": "created", "data": [p["count"] for p in created]},
                {"label": "completed", "data": [p["count"] for p in completed]},
            ],
        },
        "users": {
            "labels": [u["user"] for u in users],
            "datasets": [
                {"label": "open items held", "data": [u["open"] for u in users]},
                {"label": "capacity", "data": [u["capacity"] for u in users], "colour": "#98a2b3"},
            ],
        },
        "age": {
            "labels": [b["label"] for b in ages],
            "datasets": [{"label": "open items", "data": [b["count"] for b in ages]}],
        },
    }


def _breaches(request, f: Filters) -> dict:
    """Open items breaching or at risk, soonest due (so the breached) first, with the actions the
    caller may take on each; the people of their queues and the queues to move to, once each
    (the rows' inputs share them as datalists)."""
    items = _breach_items(request.user, f)
    rows = []
    for item in items:
        allowed = policy.allowed_actions_for(item, request.user)
        rows.append(
            {
                "item": item,
                # services.work_item_reassign assigns or delegates, as the item's state needs
                "reassign": bool({"assign", "delegate"} & set(allowed)),
                "escalate": "escalate" in allowed,
                "move": "move" in allowed,
                "raise_to": min(100, item.priority + RAISE_BY)
                if item.priority < 100 and policy.may_fire("update", item, request.user)
                else None,
            }
        )
    # One datalist per distinct set of people (queues of one team share theirs), and each row's
    # action URLs from one reversed pattern: the fragment is polled every 2 s by every dashboard.
    lists: dict[tuple[str, ...], int] = {}
    list_of_queue = {
        queue_id: lists.setdefault(tuple(m["username"] for m in members), len(lists))
        for queue_id, members in _people_of({r["item"].queue_id for r in rows if r["reassign"]}).items()
    }
    pattern = reverse("console:item-action", args=[0, "-"])[: -len("0/-")]
    token, back = get_token(request), _back(f)
    for row in rows:
        row["people_list"] = list_of_queue.get(row["item"].queue_id, "")
        row["url"] = f"{pattern}{row['item'].pk}"  # the item page; its actions are url/<action>
        # the hidden fields of each of the row's forms, made once, not once per form (the
        # fragment's rendering was most of its time)
        row["hidden"] = format_html(
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<input type="hidden" name="version" value="{}"><input type="hidden" name="next" value="{}">',
            token,
            row["item"].version,
            back,
        )
    return {
        "rows": rows,
        "people": [(i, names) for names, i in lists.items()],
        "move_queues": [q.name for q in f.all_queues],
    }


def _breach_query(actor, queue_ids) -> QuerySet:
    return (
        work_item_list_for(actor=actor)
        .filter(queue_id__in=queue_ids, state__in=OPEN_STATES, sla_state__in=(SlaState.BREACHED, SlaState.AT_RISK))
        .select_related("queue__lifecycle", "task_type", "assignee")
        # by deadline alone: breached items are the ones due first, and this order walks the
        # open-state partial index on due_at (wi_open_due_idx) and stops at the list's size
        .order_by(F("due_at").asc(nulls_last=True), "id")
    )


def _breach_items(actor, f: Filters) -> list:
    """The breach list's items. For a caller who sees every item (supervisors, admins) and no
    department, the statement is compiled once per number of queues (config.sqlcache: building
    and compiling it was a quarter of the fragment's time), else through the ORM."""
    ids = [q.pk for q in f.queues]
    if not ids:
        return []
    if f.department is None and policy.sees_everything(actor):
        template = sqlcache.template(
            ("console-breaches", len(ids)),
            lambda stand: _breach_query(None, stand.values("q", len(ids)))[:BREACH_LIST_SIZE],
        )
        if template is not None:
            return template.fetch({f"q{i}": qid for i, qid in enumerate(ids)})
    qs = _breach_query(actor, ids)
    if f.department is not None:
        qs = qs.filter(assignee__workstream_profile__department_id__in=figures.department_ids(f.department))
    return list(qs[:BREACH_LIST_SIZE])


def _people_of(queue_ids) -> dict[int, list[dict]]:
    """_people_by_queue, shared for figures.FIGURES_TTL by every dashboard (whom a queue's items
    can go to is no caller's own)."""
    if not queue_ids:
        return {}
    return figures.shared("people", queue_ids, lambda: _people_by_queue(queue_ids))


def _people_by_queue(queue_ids) -> dict[int, list[dict]]:
    """The active members of each queue (its candidate groups), by username, in one query: whom
    an item there can be given to. The command checks the one chosen (policy.hold_refusal)."""
    rows = (
        User.objects.filter(is_active=True, groups__workstream_queues__in=queue_ids)
        .values_list("groups__workstream_queues", "pk", "username")
        .distinct()
        .order_by("username")
    )
    people: dict[int, list[dict]] = {}
    for queue_id, pk, username in rows:
        people.setdefault(queue_id, []).append({"pk": pk, "username": username})
    return people


def _back(f: Filters) -> str:
    """Where a breach row's action comes back to: this dashboard, its filters kept."""
    return reverse("console:home") + "?" + f.query


def _context(request, f: Filters, *parts: str) -> dict:
    ctx: dict = {"f": f, "updated_at": timezone.now(), "poll": POLL}
    if "tiles" in parts:
        ctx["tiles"] = _tiles(f)
    if "charts" in parts:
        ctx["charts"] = _charts(f)
    if "breaches" in parts:
        ctx["breaches"] = _breaches(request, f)
    return ctx


@require_GET
@console_view
def home(request):
    """`/console/`: the dashboard for supervisors and admins; workers go to their inbox."""
    if not supervises(request.user):
        return redirect("console:inbox")
    f = _filters(request, departments=True)
    ctx = _context(request, f, "tiles", "charts", "breaches")
    ctx["windows"] = list(WINDOWS)
    return render(request, "console/dashboard.html", ctx)


FRAGMENTS = {
    "tiles": "console/_tiles.html",
    "charts": "console/_charts_data.html",
    "breaches": "console/_breaches.html",
}


@require_GET
@console_view(supervisors_only=True)
def live(request, part: str):
    """`/console/live/<part>`: one of the dashboard's live fragments, for htmx to poll."""
    if part not in FRAGMENTS:
        raise Http404("no such fragment")
    f = _filters(request)
    return render(request, FRAGMENTS[part], _context(request, f, part))


# --- the queue page ---------------------------------------------------------------------------

QUEUE_ITEM_PARAMS = ("state", "sla_state", "assignee", "priority_min", "priority_max", "overdue", "ordering")


@reporting()
def _queue_stats(request, name: str):
    queue = queue_get_for(actor=request.user, name=name)
    window = request.GET.get("window", DEFAULT_WINDOW)
    window = window if window in WINDOWS else DEFAULT_WINDOW
    return queue, window, figures.queue_figures(queues=[queue], window=WINDOWS[window])[queue.pk]


@require_GET
@console_view
def queue_live(request, name: str):
    """`/console/queues/<name>/live`: the queue page's figures, for htmx to poll."""
    queue, window, stats = _queue_stats(request, name)
    return render(request, "console/_queue_stats.html", {"queue": queue, "window": window, "stats": stats})


@require_GET
@console_view
def queue_page(request, name: str):
    """`/console/queues/<name>`: a queue the caller may see (404 otherwise): its figures over a
    window, its items (the API's filters, orderings and cursor pagination), its configuration."""
    queue, window, stats = _queue_stats(request, name)
    data = request.GET.copy()
    data.setdefault("ordering", "-created_at")
    filterset = WorkItemFilter(
        data={
            k: data.getlist(k) if k in ("state", "sla_state") else data.get(k) for k in QUEUE_ITEM_PARAMS if k in data
        },
        queryset=work_item_list_for(actor=request.user).filter(queue=queue),
        request=request,
    )
    error, page, links, status = "", [], {}, 200
    if filterset.is_valid():
        qs = filterset.qs.annotate(due_sort=Coalesce(F("due_at"), Value(FAR_FUTURE))).select_related("assignee")
        paginator = Cursor()
        try:
            # the API list view's order (due_at as due_sort: no deadline last), as GET /workitems sorts
            page = paginator.paginate_queryset(qs, Request(request), view=WorkItemListCreateView())
            links = paginator.get_paginated_response([]).data
        except ProblemException as exc:
            error, status = str(exc.detail), 400
    else:
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in filterset.errors.items())
        status = 400
    return render(
        request,
        "console/queue.html",
        {
            "queue": queue,
            "config": queue_snapshot(queue),
            "stats": stats,
            "users": figures.user_figures(queues=[queue]),
            "window": window,
            "windows": list(WINDOWS),
            "items": page,
            "next_url": links.get("next"),
            "previous_url": links.get("previous"),
            "error": error,
            "states": [s.value for s in State],
            "sla_states": [s.value for s in SlaState],
            "orderings": ORDERINGS,
            "chosen": {
                k: data.getlist(k) if k in ("state", "sla_state") else data.get(k, "") for k in QUEUE_ITEM_PARAMS
            },
            "is_admin": request.user.is_staff and request.user.has_perm("workitems.change_queue"),
        },
        status=status,
    )
