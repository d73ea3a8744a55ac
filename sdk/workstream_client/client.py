"""The synchronous client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx

from . import _endpoints as ep
from ._core import DEFAULT_TIMEOUT, BaseClient, Call
from .errors import WorkstreamError
from .models import Page, Queue, WorkItem
from .retry import RetryPolicy

__all__ = ["WorkstreamClient"]


class WorkstreamClient(BaseClient):
    """A synchronous client of the Workstream REST API v1.

    ``base_url`` is the server's root (``https://workstream.example.com``; a trailing
    ``/api/v1`` is accepted too). Credentials: ``api_key=`` (service clients), ``token=``
    (a JWT access token), or ``username=``/``password=`` (the client obtains a JWT pair and
    refreshes it once when a request answers 401), or none (``health()`` only).

    Every POST carries an ``Idempotency-Key`` (a fresh UUID4 per call unless
    ``idempotency_key=`` is given), the same on every retry of that call. Connection errors,
    timeouts, 429 and 502/503/504 are retried ``max_retries`` times (default 3) with
    exponential backoff and full jitter, honouring ``Retry-After``.

    Use as a context manager or call :meth:`close`. Thread-safe: one client may be shared.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        user_agent: str | None = None,
        headers: Mapping[str, str] | None = None,
        request_id_factory: Callable[[], str | None] | None = None,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            base_url,
            api_key=api_key,
            token=token,
            username=username,
            password=password,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            user_agent=user_agent,
            headers=headers,
            request_id_factory=request_id_factory,
        )
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._sleep = sleep
        self._auth_lock = threading.Lock()

    def __enter__(self) -> WorkstreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # -- the request loop -------------------------------------------------------------------
    def _call(self, call: Call) -> Any:
        if self._needs_login(call):
            self._reauthenticate(None)
        idempotency_key = self._idempotency_key(call)
        attempt = 0
        reauthed = False
        while True:
            kwargs = self._request_kwargs(call, idempotency_key)
            token_used = self._access
            try:
                response = self._http.request(**kwargs)
            except httpx.HTTPError as exc:
                delay = self._transport_retry_delay(call, exc, attempt)
                if delay is None:
                    raise self._connection_error(exc, call, attempt + 1) from exc
                self._sleep(delay)
                attempt += 1
                continue
            if self._should_reauth(call, response, reauthed):
                response.close()
                self._reauthenticate(token_used)
                reauthed = True
                continue
            delay = self._retry_delay(call, response, attempt)
            if delay is not None:
                response.close()
                self._sleep(delay)
                attempt += 1
                continue
            return self._result(call, response, retried=attempt > 0)

    def _reauthenticate(self, token_used: str | None) -> None:
        """Get a fresh access token: refresh it if we hold a refresh token, else log in.
        When another thread already replaced ``token_used``, there is nothing to do."""
        with self._auth_lock:
            if self._access and self._access != token_used:
                return
            if self._refresh:
                try:
                    self._store_tokens(self._call(self._refresh_call()))
                    return
                except WorkstreamError:  # an expired refresh token: log in again
                    self._refresh = None
            self._store_tokens(self._call(self._login_call()))

    def _pages(self, first: Call) -> Iterator[Page[Any]]:
        page: Page[Any] = self._call(first)
        yield page
        while page.next:
            page = self._call(Call("GET", url=page.next, parse=first.parse, request_id=first.request_id))
            yield page

    def _iterate(self, first: Call) -> Iterator[Any]:
        for page in self._pages(first):
            yield from page.results

    @staticmethod
    def _with(call: Call, request_id: str | None = None, idempotency_key: str | None = None) -> Call:
        call.request_id = request_id
        call.idempotency_key = idempotency_key
        return call

    # -- work items -------------------------------------------------------------------------
    def create_work_item(
        self, *, idempotency_key: str | None = None, request_id: str | None = None, **fields: Any
    ) -> WorkItem:
        """``POST /workitems``: create and distribute one item. Required fields:
        ``workflow_id``, ``task_name``, and ``queue`` unless their task type gives one."""
        return self._call(self._with(ep.create_work_item(fields), request_id, idempotency_key))

    def create_work_items(
        self,
        items: list[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> list[WorkItem]:
        """``POST /workitems/bulk``: up to 1,000 items in one transaction (all or nothing)."""
        return self._call(self._with(ep.create_work_items(items), request_id, idempotency_key))

    def get_work_item(self, item_id: int, *, request_id: str | None = None) -> WorkItem:
        return self._call(self._with(ep.get_work_item(item_id), request_id))

    def list_work_items(self, *, request_id: str | None = None, **filters: Any) -> Iterator[WorkItem]:
        """Every item matching the filters (docs/api.md, "Filters"), following ``next`` across pages
        lazily. ``state`` may be a list; booleans and datetimes are encoded for you."""
        return self._iterate(self._with(ep.list_work_items(filters), request_id))

    def list_work_items_page(
        self, page_url: str | None = None, *, request_id: str | None = None, **filters: Any
    ) -> Page[WorkItem]:
        """One page; pass the previous page's ``next`` as ``page_url`` for the following one."""
        return self._call(self._with(ep.list_work_items(filters, page_url), request_id))

    def action(
        self,
        item_id: int,
        name: str,
        body: Mapping[str, Any] | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """``POST /workitems/{id}/{name}``: any action by name; returns the item after."""
        return self._call(self._with(ep.action(item_id, name, body, if_match), request_id, idempotency_key))

    def update_work_item(
        self, item_id: int, *, if_match: int | None = None, request_id: str | None = None, **changes: Any
    ) -> WorkItem:
        """``PATCH /workitems/{id}`` (supervisors): any of ``priority``, ``due_at``, ``follow_up_at``
        (aware datetimes or ISO strings; ``None`` clears a date) and ``reason``. Values the item
        already has change nothing (the same version comes back)."""
        return self._call(self._with(ep.update_work_item(item_id, changes, if_match), request_id))

    def claim(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(item_id, "claim", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id)

    def release(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id, "release", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    def start(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(item_id, "start", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id)

    def complete(
        self,
        item_id: int,
        result: Any = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id,
            "complete",
            {"result": result} if result is not None else {},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def fail(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id,
            "fail",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def suspend(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id, "suspend", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    def resume(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(item_id, "resume", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id)

    def delegate(
        self,
        item_id: int,
        user: str,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id,
            "delegate",
            {"user": user},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def assign(
        self,
        item_id: int,
        user: str,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id,
            "assign",
            {"user": user},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def escalate(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id,
            "escalate",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def cancel(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return self.action(
            item_id,
            "cancel",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def skip(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """End an ``optional`` item that is no longer needed: CANCELLED, ``outcome`` ``skipped``."""
        return self.action(
            item_id,
            "skip",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def forward(
        self,
        item_id: int,
        *,
        users: list[str] | None = None,
        groups: list[str] | None = None,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """Offer an OFFERED or ASSIGNED item to these users and groups instead (its candidates
        become them; whoever held it lets it go)."""
        return self.action(
            item_id,
            "forward",
            ep._body(users=users, groups=groups),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def accept(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """Take an item reserved for the caller (a push queue with a reservation timeout):
        OFFERED → ASSIGNED."""
        return self.action(item_id, "accept", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id)

    def reject(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """Decline an item reserved for the caller: it moves on to the next candidate."""
        return self.action(
            item_id,
            "reject",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def set_sub_status(
        self,
        item_id: int,
        sub_status: str,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """``POST /workitems/{id}/sub-status``: move inside IN_PROGRESS (lifecycles with sub-statuses)."""
        return self.action(
            item_id,
            "sub-status",
            {"sub_status": sub_status},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    def claim_next(
        self,
        queue: str | list[str] | None = None,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem | None:
        """``POST /workitems/claim-next``: the best item the caller may take, or ``None`` (204);
        ``queue`` one name, or several (ordered by weight × (priority + minutes waited))."""
        return self._call(self._with(ep.claim_next(queue), request_id, idempotency_key))

    def history(self, item_id: int, *, request_id: str | None = None) -> list[dict[str, Any]]:
        """``GET /workitems/{id}/history``: the item's audit records, oldest first."""
        return list(self._iterate(self._with(ep.history(item_id), request_id)))

    # -- queues -----------------------------------------------------------------------------
    def list_queues(self, *, request_id: str | None = None, **filters: Any) -> Iterator[Queue]:
        return self._iterate(self._with(ep.list_queues(filters), request_id))

    def get_queue(self, name: str, *, request_id: str | None = None) -> Queue:
        return self._call(self._with(ep.get_queue(name), request_id))

    def create_queue(
        self, *, idempotency_key: str | None = None, request_id: str | None = None, **fields: Any
    ) -> Queue:
        """``POST /queues`` (admins): ``name`` plus the fields of docs/api.md, "Queue fields"."""
        return self._call(self._with(ep.create_queue(fields), request_id, idempotency_key))

    def update_queue(self, name: str, *, request_id: str | None = None, **fields: Any) -> Queue:
        """``PATCH /queues/{name}`` (admins)."""
        return self._call(self._with(ep.update_queue(name, fields), request_id))

    def queue_stats(self, name: str, *, request_id: str | None = None) -> dict[str, Any]:
        return self._call(self._with(ep.queue_stats(name), request_id))

    # -- cases ------------------------------------------------------------------------------
    def create_case(
        self, case_number: str, *, idempotency_key: str | None = None, request_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """``POST /cases``: ``title``, ``data``, ``sensitive_keys``, ``due_at`` (docs/api.md, "Cases")."""
        body = {"case_number": case_number, **fields}
        return self._call(self._with(ep.create_case(body), request_id, idempotency_key))

    def get_case(self, case_number: str, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /cases/{case_number}``: the case with its ``items`` and routing ``history``."""
        return self._call(self._with(ep.get_case(case_number), request_id))

    def list_cases(self, *, request_id: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._iterate(self._with(ep.dict_list("/cases", filters), request_id))

    def case_action(
        self,
        case_number: str,
        name: str,
        *,
        reason: str | None = None,
        if_match: int | str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /cases/{case_number}/{name}``: ``close`` (a 409 while any of its items is open) or ``reopen``."""
        call = ep.case_action(case_number, name, reason, if_match)
        return self._call(self._with(call, request_id, idempotency_key))

    def close_case(self, case_number: str, **options: Any) -> dict[str, Any]:
        """``case_action(case_number, "close", ...)``."""
        return self.case_action(case_number, "close", **options)

    def reopen_case(self, case_number: str, **options: Any) -> dict[str, Any]:
        """``case_action(case_number, "reopen", ...)``."""
        return self.case_action(case_number, "reopen", **options)

    # -- task types and workflows -----------------------------------------------------------
    def list_task_types(
        self, *, workflow_id: str | None = None, request_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """``GET /task-types`` (admins, supervisors, service clients), optionally of one workflow."""
        filters = {"workflow_id": workflow_id} if workflow_id is not None else {}
        return self._iterate(self._with(ep.dict_list("/task-types", filters), request_id))

    def get_task_type(self, workflow_id: str, task_name: str, *, request_id: str | None = None) -> dict[str, Any]:
        return self._call(self._with(ep.get(ep.task_type_path(workflow_id, task_name)), request_id))

    def create_task_type(
        self,
        workflow_id: str,
        task_name: str,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        **defaults: Any,
    ) -> dict[str, Any]:
        """``POST /task-types``: the defaults of one task (docs/api.md, "Task types and workflows")."""
        call = ep.create_task_type({"workflow_id": workflow_id, "task_name": task_name, **defaults})
        return self._call(self._with(call, request_id, idempotency_key))

    def update_task_type(
        self, workflow_id: str, task_name: str, *, request_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """``PATCH /task-types/{workflow_id}/{task_name}``: the fields given change."""
        return self._call(self._with(ep.update_task_type(workflow_id, task_name, fields), request_id))

    def register_workflow(
        self,
        workflow_id: str,
        tasks: list[Mapping[str, Any]],
        *,
        name: str | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """``POST /workflows``: create or replace the task types of ``tasks`` (each ``{"name", …defaults}``)
        in one transaction; the workflow's task types not listed are kept. Returns ``{id, name,
        task_types, created, updated, unchanged}``."""
        call = ep.register_workflow(workflow_id, name, tasks)
        return self._call(self._with(call, request_id, idempotency_key))

    # -- directory --------------------------------------------------------------------------
    def list_users(self, *, request_id: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._iterate(self._with(ep.dict_list("/users", filters), request_id))

    def get_user(self, username: str, *, request_id: str | None = None) -> dict[str, Any]:
        return self._call(self._with(ep.get_user(username), request_id))

    def set_availability(
        self,
        username: str,
        available: bool,
        *,
        out_of_office_from: datetime | None = None,
        out_of_office_until: datetime | None = None,
        delegate: str | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """``PATCH /users/{username}/availability``: ``available=False`` marks the user out of
        office (from now, or ``out_of_office_from``; open-ended unless ``out_of_office_until``),
        their items going to ``delegate``; ``available=True`` ends the absence."""
        body = {
            "available": available,
            **ep._body(
                out_of_office_from=out_of_office_from, out_of_office_until=out_of_office_until, delegate=delegate
            ),
            **fields,
        }
        return self._call(self._with(ep.set_availability(username, body), request_id))

    def list_groups(self, *, request_id: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._iterate(self._with(ep.dict_list("/groups", filters), request_id))

    def list_departments(self, *, request_id: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._iterate(self._with(ep.dict_list("/departments", filters), request_id))

    def list_roles(self, *, request_id: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._iterate(self._with(ep.dict_list("/roles", filters), request_id))

    # -- audit ------------------------------------------------------------------------------
    def list_audit(self, *, request_id: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        """``GET /audit`` (filters: ``work_item``, ``actor``, ``action``, time range)."""
        return self._iterate(self._with(ep.dict_list("/audit", filters), request_id))

    def verify_audit(self, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /audit/verify``: checks the tamper-evidence chain."""
        return self._call(self._with(ep.get("/audit/verify"), request_id))

    # -- subscriptions ----------------------------------------------------------------------
    def list_subscriptions(self, *, request_id: str | None = None, **filters: Any) -> Iterator[dict[str, Any]]:
        return self._iterate(self._with(ep.dict_list("/subscriptions", filters), request_id))

    def create_subscription(
        self,
        url: str,
        event_types: list[str],
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """``POST /subscriptions``; the answer shows the signing ``secret`` this once."""
        body = {"url": url, "event_types": list(event_types), **fields}
        return self._call(self._with(ep.create_subscription(body), request_id, idempotency_key))

    def delete_subscription(self, subscription_id: int | str, *, request_id: str | None = None) -> None:
        self._call(self._with(ep.delete_subscription(subscription_id), request_id))

    def list_deliveries(
        self, subscription_id: int | str, *, request_id: str | None = None, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        return self._iterate(self._with(ep.dict_list(ep.deliveries_path(subscription_id), filters), request_id))

    # -- service ----------------------------------------------------------------------------
    def features(self, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /features``: the configuration in force (no secrets)."""
        return self._call(self._with(ep.get("/features"), request_id))

    def health(self, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /health`` (outside /api/v1): the checks' results; an unhealthy server's 503
        body is returned too (look at its ``status``), not raised or retried."""
        return self._call(self._with(ep.health(), request_id))

    def get_page(self, page_url: str, *, request_id: str | None = None) -> Page[dict[str, Any]]:
        """Any list's page by URL (a ``next``/``previous`` link), items as plain dicts."""
        return self._call(self._with(ep.dict_list("", page_url=page_url), request_id))
