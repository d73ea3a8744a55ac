"""The supervisors' side of the console: the dashboard, its live fragments, the queue pages."""

from __future__ import annotations

from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from console.access import console_view, supervises
from workitems.queues import queue_get_for, queue_snapshot


@require_GET
def root(request):
    """`/`: the console."""
    return redirect("console:home")


@require_GET
@console_view
def home(request):
    """`/console/`: the dashboard for supervisors and admins; workers go to their inbox."""
    if not supervises(request.user):
        return redirect("console:inbox")
    return render(request, "console/dashboard.html", {})


@require_GET
@console_view
def queue_page(request, name: str):
    """`/console/queues/<name>`: a queue the caller may see (404 otherwise)."""
    queue = queue_get_for(actor=request.user, name=name)
    return render(request, "console/queue.html", {"queue": queue, "config": queue_snapshot(queue)})
