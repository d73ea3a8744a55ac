"""The asynchronous client (the same methods as :class:`WorkstreamClient`, awaited)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from . import _endpoints as ep
from ._core import DEFAULT_TIMEOUT, BaseClient, Call
from .errors import WorkstreamError
from .models import Page, Queue, WorkItem
from .retry import RetryPolicy

__all__ = ["AsyncWorkstreamClient"]


class AsyncWorkstreamClient(BaseClient):
    """An asynchronous client of the Workstream REST API v1.

    ``base_url`` is the server's root (``https://workstream.example.com``; a trailing
    ``/api/v1`` is accepted too). Credentials: ``api_key=`` (service clients), ``token=``
    (a JWT access token), or ``username=``/``password=`` (the client obtains a JWT pair and
    refreshes it once when a request answers 401), or none (``health()`` only).

    Every POST carries an ``Idempotency-Key`` (a fresh UUID4 per call unless
    ``idempotency_key=`` is given), the same on every retry of that call. Connection errors,
    timeouts, 429 and 502/503/504 are retried ``max_retries`` times (default 3) with
    exponential backoff and full jitter, honouring ``Retry-After``.

    Use as an async context manager or await :meth:`aclose`. One client may be shared by many
    tasks of one event loop.
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
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
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
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep
        self._auth_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncWorkstreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # -- the request loop -------------------------------------------------------------------
    async def _call(self, call: Call) -> Any:
        if self._needs_login(call):
            await self._reauthenticate(None)
        idempotency_key = self._idempotency_key(call)
        attempt = 0
        reauthed = False
        while True:
            kwargs = self._request_kwargs(call, idempotency_key)
            token_used = self._access
            try:
                response = await self._http.request(**kwargs)
            except httpx.HTTPError as exc:
                delay = self._transport_retry_delay(call, exc, attempt)
                if delay is None:
                    raise self._connection_error(exc, call, attempt + 1) from exc
                await self._sleep(delay)
                attempt += 1
                continue
            if self._should_reauth(call, response, reauthed):
                await response.aclose()
                await self._reauthenticate(token_used)
                reauthed = True
                continue
            delay = self._retry_delay(call, response, attempt)
            if delay is not None:
                await response.aclose()
                await self._sleep(delay)
                attempt += 1
                continue
            return self._result(call, response, retried=attempt > 0)

    async def _reauthenticate(self, token_used: str | None) -> None:
        """Get a fresh access token: refresh it if we hold a refresh token, else log in.
        When another thread already replaced ``token_used``, there is nothing to do."""
        async with self._auth_lock:
            if self._access and self._access != token_used:
                return
            if self._refresh:
                try:
                    self._store_tokens(await self._call(self._refresh_call()))
                    return
                except WorkstreamError:  # an expired refresh token: log in again
                    self._refresh = None
            self._store_tokens(await self._call(self._login_call()))

    async def _pages(self, first: Call) -> AsyncIterator[Page[Any]]:
        page: Page[Any] = await self._call(first)
        yield page
        while page.next:
            page = await self._call(Call("GET", url=page.next, parse=first.parse, request_id=first.request_id))
            yield page

    async def _iterate(self, first: Call) -> AsyncIterator[Any]:
        async for page in self._pages(first):
            for item in page.results:
                yield item

    @staticmethod
    def _with(call: Call, request_id: str | None = None, idempotency_key: str | None = None) -> Call:
        call.request_id = request_id
        call.idempotency_key = idempotency_key
        return call

    # -- work items -------------------------------------------------------------------------
    async def create_work_item(
        self, *, idempotency_key: str | None = None, request_id: str | None = None, **fields: Any
    ) -> WorkItem:
        """``POST /workitems``: create and distribute one item. Required fields:
        ``workflow_id``, ``task_name``, and ``queue`` unless their task type gives one."""
        return await self._call(self._with(ep.create_work_item(fields), request_id, idempotency_key))

    async def create_work_items(
        self,
        items: list[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> list[WorkItem]:
        """``POST /workitems/bulk``: up to 1,000 items in one transaction (all or nothing)."""
        return await self._call(self._with(ep.create_work_items(items), request_id, idempotency_key))

    async def get_work_item(self, item_id: int, *, request_id: str | None = None) -> WorkItem:
        return await self._call(self._with(ep.get_work_item(item_id), request_id))

    async def list_work_items(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[WorkItem]:
        """Every item matching the filters (docs/api.md, "Filters"), following ``next`` across pages
        lazily. ``state`` may be a list; booleans and datetimes are encoded for you."""
        async for x in self._iterate(self._with(ep.list_work_items(filters), request_id)):
            yield x

    async def list_work_items_page(
        self, page_url: str | None = None, *, request_id: str | None = None, **filters: Any
    ) -> Page[WorkItem]:
        """One page; pass the previous page's ``next`` as ``page_url`` for the following one."""
        return await self._call(self._with(ep.list_work_items(filters, page_url), request_id))

    async def action(
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
        return await self._call(self._with(ep.action(item_id, name, body, if_match), request_id, idempotency_key))

    async def update_work_item(
        self, item_id: int, *, if_match: int | None = None, request_id: str | None = None, **changes: Any
    ) -> WorkItem:
        """``PATCH /workitems/{id}`` (supervisors): any of ``priority``, ``due_at``, ``follow_up_at``
        (aware datetimes or ISO strings; ``None`` clears a date) and ``reason``. Values the item
        already has change nothing (the same version comes back)."""
        return await self._call(self._with(ep.update_work_item(item_id, changes, if_match), request_id))

    async def claim(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id, "claim", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    async def release(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id, "release", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    async def start(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id, "start", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    async def complete(
        self,
        item_id: int,
        result: Any = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id,
            "complete",
            {"result": result} if result is not None else {},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def fail(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id,
            "fail",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def suspend(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id, "suspend", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    async def resume(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id, "resume", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    async def delegate(
        self,
        item_id: int,
        user: str,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id,
            "delegate",
            {"user": user},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def assign(
        self,
        item_id: int,
        user: str,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id,
            "assign",
            {"user": user},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def escalate(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id,
            "escalate",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def cancel(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        return await self.action(
            item_id,
            "cancel",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def skip(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """End an ``optional`` item that is no longer needed: CANCELLED, ``outcome`` ``skipped``."""
        return await self.action(
            item_id,
            "skip",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def forward(
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
        return await self.action(
            item_id,
            "forward",
            ep._body(users=users, groups=groups),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def accept(
        self,
        item_id: int,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """Take an item reserved for the caller (a push queue with a reservation timeout):
        OFFERED → ASSIGNED."""
        return await self.action(
            item_id, "accept", if_match=if_match, idempotency_key=idempotency_key, request_id=request_id
        )

    async def reject(
        self,
        item_id: int,
        reason: str | None = None,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """Decline an item reserved for the caller: it moves on to the next candidate."""
        return await self.action(
            item_id,
            "reject",
            ep._body(reason=reason),
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def set_sub_status(
        self,
        item_id: int,
        sub_status: str,
        *,
        if_match: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem:
        """``POST /workitems/{id}/sub-status``: move inside IN_PROGRESS (lifecycles with sub-statuses)."""
        return await self.action(
            item_id,
            "sub-status",
            {"sub_status": sub_status},
            if_match=if_match,
            idempotency_key=idempotency_key,
            request_id=request_id,
        )

    async def claim_next(
        self,
        queue: str | list[str] | None = None,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> WorkItem | None:
        """``POST /workitems/claim-next``: the best item the caller may take, or ``None`` (204);
        ``queue`` one name, or several (ordered by weight × (priority + minutes waited))."""
        return await self._call(self._with(ep.claim_next(queue), request_id, idempotency_key))

    async def history(self, item_id: int, *, request_id: str | None = None) -> list[dict[str, Any]]:
        """``GET /workitems/{id}/history``: the item's audit records, oldest first."""
        return [x async for x in self._iterate(self._with(ep.history(item_id), request_id))]

    # -- queues -----------------------------------------------------------------------------
    async def list_queues(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[Queue]:
        async for x in self._iterate(self._with(ep.list_queues(filters), request_id)):
            yield x

    async def get_queue(self, name: str, *, request_id: str | None = None) -> Queue:
        return await self._call(self._with(ep.get_queue(name), request_id))

    async def create_queue(
        self, *, idempotency_key: str | None = None, request_id: str | None = None, **fields: Any
    ) -> Queue:
        """``POST /queues`` (admins): ``name`` plus the fields of docs/api.md, "Queue fields"."""
        return await self._call(self._with(ep.create_queue(fields), request_id, idempotency_key))

    async def update_queue(self, name: str, *, request_id: str | None = None, **fields: Any) -> Queue:
        """``PATCH /queues/{name}`` (admins)."""
        return await self._call(self._with(ep.update_queue(name, fields), request_id))

    async def queue_stats(self, name: str, *, request_id: str | None = None) -> dict[str, Any]:
        return await self._call(self._with(ep.queue_stats(name), request_id))

    # -- cases ------------------------------------------------------------------------------
    async def create_case(
        self, case_number: str, *, idempotency_key: str | None = None, request_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """``POST /cases``: ``title``, ``data``, ``sensitive_keys``, ``due_at`` (docs/api.md, "Cases")."""
        body = {"case_number": case_number, **fields}
        return await self._call(self._with(ep.create_case(body), request_id, idempotency_key))

    async def get_case(self, case_number: str, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /cases/{case_number}``: the case with its ``items`` and routing ``history``."""
        return await self._call(self._with(ep.get_case(case_number), request_id))

    async def list_cases(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        async for x in self._iterate(self._with(ep.dict_list("/cases", filters), request_id)):
            yield x

    async def case_action(
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
        return await self._call(self._with(call, request_id, idempotency_key))

    async def close_case(self, case_number: str, **options: Any) -> dict[str, Any]:
        """``case_action(case_number, "close", ...)``."""
        return await self.case_action(case_number, "close", **options)

    async def reopen_case(self, case_number: str, **options: Any) -> dict[str, Any]:
        """``case_action(case_number, "reopen", ...)``."""
        return await self.case_action(case_number, "reopen", **options)

    # -- task types and workflows -----------------------------------------------------------
    async def list_task_types(
        self, *, workflow_id: str | None = None, request_id: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """``GET /task-types`` (admins, supervisors, service clients), optionally of one workflow."""
        filters = {"workflow_id": workflow_id} if workflow_id is not None else {}
        async for x in self._iterate(self._with(ep.dict_list("/task-types", filters), request_id)):
            yield x

    async def get_task_type(self, workflow_id: str, task_name: str, *, request_id: str | None = None) -> dict[str, Any]:
        return await self._call(self._with(ep.get(ep.task_type_path(workflow_id, task_name)), request_id))

    async def create_task_type(
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
        return await self._call(self._with(call, request_id, idempotency_key))

    async def update_task_type(
        self, workflow_id: str, task_name: str, *, request_id: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """``PATCH /task-types/{workflow_id}/{task_name}``: the fields given change."""
        return await self._call(self._with(ep.update_task_type(workflow_id, task_name, fields), request_id))

    async def register_workflow(
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
        return await self._call(self._with(call, request_id, idempotency_key))

    # -- directory --------------------------------------------------------------------------
    async def list_users(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        async for x in self._iterate(self._with(ep.dict_list("/users", filters), request_id)):
            yield x

    async def get_user(self, username: str, *, request_id: str | None = None) -> dict[str, Any]:
        return await self._call(self._with(ep.get_user(username), request_id))

    async def set_availability(
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
        return await self._call(self._with(ep.set_availability(username, body), request_id))

    async def list_groups(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        async for x in self._iterate(self._with(ep.dict_list("/groups", filters), request_id)):
            yield x

    async def list_departments(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        async for x in self._iterate(self._with(ep.dict_list("/departments", filters), request_id)):
            yield x

    async def list_roles(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        async for x in self._iterate(self._with(ep.dict_list("/roles", filters), request_id)):
            yield x

    # -- audit ------------------------------------------------------------------------------
    async def list_audit(self, *, request_id: str | None = None, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        """``GET /audit`` (filters: ``work_item``, ``actor``, ``action``, time range)."""
        async for x in self._iterate(self._with(ep.dict_list("/audit", filters), request_id)):
            yield x

    async def verify_audit(self, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /audit/verify``: checks the tamper-evidence chain."""
        return await self._call(self._with(ep.get("/audit/verify"), request_id))

    # -- subscriptions ----------------------------------------------------------------------
    async def list_subscriptions(
        self, *, request_id: str | None = None, **filters: Any
    ) -> AsyncIterator[dict[str, Any]]:
        async for x in self._iterate(self._with(ep.dict_list("/subscriptions", filters), request_id)):
            yield x

    async def create_subscription(
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
        return await self._call(self._with(ep.create_subscription(body), request_id, idempotency_key))

    async def delete_subscription(self, subscription_id: int | str, *, request_id: str | None = None) -> None:
        await self._call(self._with(ep.delete_subscription(subscription_id), request_id))

    async def list_deliveries(
        self, subscription_id: int | str, *, request_id: str | None = None, **filters: Any
    ) -> AsyncIterator[dict[str, Any]]:
        async for x in self._iterate(
            self._with(ep.dict_list(ep.deliveries_path(subscription_id), filters), request_id)
        ):
            yield x

    # -- service ----------------------------------------------------------------------------
    async def features(self, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /features``: the configuration in force (no secrets)."""
        return await self._call(self._with(ep.get("/features"), request_id))

    async def health(self, *, request_id: str | None = None) -> dict[str, Any]:
        """``GET /health`` (outside /api/v1): the checks' results; an unhealthy server's 503
        body is returned too (look at its ``status``), not raised or retried."""
        return await self._call(self._with(ep.health(), request_id))

    async def get_page(self, page_url: str, *, request_id: str | None = None) -> Page[dict[str, Any]]:
        """Any list's page by URL (a ``next``/``previous`` link), items as plain dicts."""
        return await self._call(self._with(ep.dict_list("", page_url=page_url), request_id))
