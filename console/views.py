"""The worker's side of the console: the inbox, get next, the item page and its actions, and
out of office. Reads go through the selectors (visibility built in), the representation the
API gives (masking, allowed actions), writes through `workitems.services` (and the directory's
availability commands) under the `console` audit channel."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import F, Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from audit.models import AuditRecord
from console import resultform
from console.access import as_console, console_view
from directory import services as directory_services
from directory.models import Profile
from workitems import policy, schemas, services
from workitems.api.serializers import item_representation
from workitems.errors import (
    ConstraintViolated,
    InvalidTransition,
    NotAllowed,
    NotFound,
    StaleVersion,
    ValidationFailed,
)
from workitems.models import ACTIONS, HELD_STATES, WorkItem
from workitems.queues import queue_list_for
from workitems.selectors import CLAIM_ORDER, work_item_get_for, work_item_list_for, work_item_visible_to

User = get_user_model()
CLAIMABLE_SHOWN = 50


# --- the inbox --------------------------------------------------------------------------------


def _my_items(actor):
    return (
        work_item_list_for(actor=actor)
        .filter(assignee_id=actor.pk, state__in=HELD_STATES)
        .order_by(F("due_at").asc(nulls_last=True), "-priority", "id")
    )


def _claimable(actor):
    now = timezone.now()
    return (
        work_item_list_for(actor=actor)
        .filter(policy.claimable_filter(actor), queue__active=True)
        .filter(Q(follow_up_at__isnull=True) | Q(follow_up_at__lte=now))
        .order_by(*CLAIM_ORDER)
    )


def _teammates(user):
    """Who may stand in for `user` (policy.delegate_refusal): active people sharing a team."""
    teams = policy.team_ids(user)
    candidates = User.objects.filter(is_active=True, groups__in=teams).exclude(pk=user.pk).distinct()
    return [u for u in candidates.order_by("username")[:200] if policy.delegate_refusal(user, u) is None]


def _inbox_lists(actor) -> dict:
    claimable = list(_claimable(actor)[: CLAIMABLE_SHOWN + 1])
    return {
        "my_items": list(_my_items(actor)[:200]),
        "claimable": claimable[:CLAIMABLE_SHOWN],
        "claimable_more": len(claimable) > CLAIMABLE_SHOWN,
    }


@require_GET
@console_view
def inbox(request):
    actor = request.user
    profile = Profile.objects.filter(user_id=actor.pk).select_related("delegate").first()
    return render(
        request,
        "console/inbox.html",
        {
            **_inbox_lists(actor),
            "queues": [q for q in queue_list_for(actor=actor) if q.active],
            "profile": profile,
            "away": profile is not None and profile.is_out_of_office(),
            "teammates": _teammates(actor),
        },
    )


@require_GET
@console_view
def inbox_live(request):
    """`/console/inbox/live`: the inbox's two lists, for htmx to poll (an item handed to me or
    offered in my queues shows up without a reload)."""
    return render(request, "console/_inbox_lists.html", _inbox_lists(request.user))


@require_POST
@console_view
def claim_next(request):
    queue = request.POST.get("queue") or None
    try:
        with as_console():
            item = services.work_item_claim_next(actor=request.user, queue=queue)
    except (ValidationFailed, NotAllowed, ConstraintViolated, NotFound) as exc:
        messages.error(request, _message(exc))
        return redirect("console:inbox")
    if item is None:
        messages.info(request, "Nothing to claim right now.")
        return redirect("console:inbox")
    messages.success(request, f"You have #{item.pk}: {item.title or item.task_name}.")
    return redirect("console:item", item_id=item.pk)


@require_POST
@console_view
def availability(request):
    """Out of office on (now, open-ended, with an optional delegate) or off."""
    actor = request.user
    try:
        with as_console():
            if request.POST.get("away") == "on":
                delegate = None
                if request.POST.get("delegate"):
                    delegate = User.objects.filter(username=request.POST["delegate"]).first()
                    if delegate is None:
                        raise ValidationFailed([{"field": "delegate", "message": "unknown user"}])
                directory_services.availability_set(actor=actor, user=actor, delegate=delegate)
                messages.success(request, "You are out of office" + (f"; {delegate} stands in." if delegate else "."))
            else:
                directory_services.availability_clear(actor=actor, user=actor)
                messages.success(request, "Welcome back: you are available.")
    except (ValidationFailed, NotAllowed) as exc:
        messages.error(request, _message(exc))
    return redirect("console:inbox")


# --- the item page ------------------------------------------------------------------------------

# The arguments each action takes come from the action table (models.ACTIONS).
REASON_ACTIONS = frozenset(name for name, a in ACTIONS.items() if "reason" in a.args)


def _people_for(item):
    """Whom an item may be given to: its pool's active members (named users, its or its queue's groups)."""
    groups = list(item.candidate_groups.values_list("pk", flat=True)) or list(
        item.queue.candidate_groups.values_list("pk", flat=True)
    )
    people = User.objects.filter(is_active=True).filter(
        Q(groups__in=groups) | Q(pk__in=item.candidate_users.values("pk"))
    )
    # a pick list: the command checks the one chosen (policy.hold_refusal) and says why not
    return list(people.distinct().order_by("username")[:200])


def _item_context(request, item: WorkItem, **extra) -> dict:
    actor = request.user
    rep = item_representation(item, actor)  # the API's view of it: masked context, allowed actions
    allowed = rep["allowed_actions"]
    lifecycle = item.lifecycle
    result_errors = extra.pop("result_errors", None)
    posted = extra.pop("posted", None)
    result_inputs, result_general = resultform.inputs(
        item.result_schema,
        posted if posted is not None else None,
        result_errors,
        item.task_type.form if item.task_type_id else None,
    )
    sub_moves = []
    if "set_sub_status" in allowed:
        names = lifecycle.sub_status_names
        sub_moves = sorted(n for n in names if lifecycle.sub_status_move_allowed(item.sub_status, n))
    needs_people = bool({"assign", "delegate"} & set(allowed))
    ctx = {
        "item": item,
        "rep": rep,
        "allowed": allowed,
        "reason_actions": [a for a in allowed if a in REASON_ACTIONS],
        "plain_actions": [a for a in allowed if not ACTIONS[a].args],
        "result_inputs": result_inputs,
        "result_general": result_general,
        "sub_moves": sub_moves,
        "people": _people_for(item) if needs_people else [],
        "move_queues": [q for q in queue_list_for(actor=actor) if q.active and q.pk != item.queue_id]
        if "move" in allowed
        else [],
        "may_update": policy.may_fire("update", item, actor),
        "history": AuditRecord.objects.filter(work_item_id=item.pk).order_by("seq"),
        "stale": False,
        "error": "",
        "next": _safe_next(request),
    }
    ctx.update(extra)
    return ctx


@require_GET
@console_view
def item_page(request, item_id: int):
    item = work_item_get_for(actor=request.user, item_id=item_id)
    return render(request, "console/item.html", _item_context(request, item))


def _message(exc) -> str:
    if isinstance(exc, ValidationFailed):
        return "; ".join(f"{e['field']}: {e['message']}" if e.get("field") else e["message"] for e in exc.errors)
    return exc.detail


def _safe_next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return ""


def _version(request) -> int | None:
    raw = request.POST.get("version", "")
    return int(raw) if raw.isdigit() else None


@console_view
def item_action(request, item_id: int, action: str):
    """POST one action on the item, through its command. A stale version, a refused or invalid
    action and bad input come back as the item page with the message, not an error page."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    command, arg_names = _console_command(action)
    actor = request.user
    item = work_item_get_for(actor=actor, item_id=item_id)  # 404 for what the caller may not see
    args = {}
    if action == "complete":
        result, parse_errors = resultform.parse(item.result_schema, request.POST)
        if parse_errors:
            return _refused(request, item, 400, result_errors=parse_errors, posted=request.POST)
        args["result"] = result
    if action == "update":
        args["changes"] = _posted_changes(request.POST)
        args["reason"] = request.POST.get("reason", "").strip()
    for name in arg_names:
        if name in ("users", "groups"):  # forward: names, comma-separated
            args[name] = [n.strip() for n in request.POST.get(name, "").split(",") if n.strip()]
        elif name not in ("result", "changes"):
            args[name] = request.POST.get(name, "").strip()
    try:
        with as_console():
            item = command(item_id=item.pk, actor=actor, expected_version=_version(request), **args)
    except StaleVersion:
        fresh = work_item_get_for(actor=actor, item_id=item_id)
        return _refused(request, fresh, 409, stale=True)
    except ValidationFailed as exc:
        if action == "complete":
            return _refused(request, item, 400, result_errors=exc.errors, posted=request.POST)
        return _refused(request, item, 400, error=_message(exc))
    except (InvalidTransition, ConstraintViolated) as exc:
        return _refused(request, work_item_get_for(actor=actor, item_id=item_id), 409, error=_message(exc))
    except NotAllowed as exc:
        return _refused(request, item, 403, error=_message(exc))
    messages.success(request, f"#{item.pk}: {action.replace('_', ' ')} done ({item.state.lower().replace('_', ' ')}).")
    target = _safe_next(request)
    if target:
        return redirect(target)
    if not work_item_visible_to(actor=actor, item=item):
        return redirect("console:inbox")
    return redirect("console:item", item_id=item.pk)


def _console_command(action: str):
    """The command a console form fires and the inputs it takes: an action by id (the API's
    routes), `update` (a supervisor's new priority or due date) or `reassign` (assign or delegate,
    services.work_item_reassign decides); 404 for anything else."""
    if action == "reassign":
        return services.work_item_reassign, ("user",)
    command = services.COMMANDS.get(action)
    if command is None or not (ACTIONS[action].route or action == "update"):
        raise NotFound(f"unknown action {action!r}")
    return command, ACTIONS[action].args


def _posted_changes(post) -> dict:
    """The update form's fields as the command takes them: a priority (digits as a number,
    anything else as typed, for the command to refuse), a due date from a `datetime-local`
    input read as UTC, or cleared with `clear_due`. Fields left empty are not changed."""
    changes: dict = {}
    priority = post.get("priority", "").strip()
    if priority:
        changes["priority"] = int(priority) if priority.isdigit() else priority
    due = post.get("due_at", "").strip()
    if post.get("clear_due"):
        changes["due_at"] = None
    elif due:  # datetime-local has no zone: UTC (workitems.schemas); a bad value goes on as typed, refused there
        value, _ = schemas.parse_iso_time(due, zone_required=False)
        changes["due_at"] = value or due
    return changes


def _refused(request, item, status: int, **extra):
    return render(request, "console/item.html", _item_context(request, item, **extra), status=status)
