"""The API's endpoints as :class:`Call` builders (docs/api.md), shared by both clients."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._core import Call, encode_params, segment
from .models import Page, Queue, WorkItem


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _items(data: Any) -> list[WorkItem]:
    items = data.get("items") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise TypeError("expected {'items': [...]} from bulk create")
    return [WorkItem.from_dict(x) for x in items]


def work_item_page(data: Any) -> Page[WorkItem]:
    return Page.from_response(data, WorkItem.from_dict)


def queue_page(data: Any) -> Page[Queue]:
    return Page.from_response(data, Queue.from_dict)


def dict_page(data: Any) -> Page[dict[str, Any]]:
    return Page.from_response(data, dict)


# -- work items ----------------------------------------------------------------------------
def create_work_item(fields: Mapping[str, Any]) -> Call:
    return Call("POST", "/workitems", json=dict(fields), parse=WorkItem.from_dict)


def create_work_items(items: list[Mapping[str, Any]]) -> Call:
    return Call("POST", "/workitems/bulk", json={"items": [dict(i) for i in items]}, parse=_items)


def get_work_item(item_id: int) -> Call:
    return Call("GET", f"/workitems/{segment(item_id)}", parse=WorkItem.from_dict)


def list_work_items(filters: Mapping[str, Any], page_url: str | None = None) -> Call:
    if page_url:
        return Call("GET", url=page_url, parse=work_item_page)
    return Call("GET", "/workitems", params=encode_params(filters), parse=work_item_page)


def update_work_item(item_id: int, changes: Mapping[str, Any], if_match: int | str | None) -> Call:
    body = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in changes.items()}
    return Call("PATCH", f"/workitems/{segment(item_id)}", json=body, if_match=if_match, parse=WorkItem.from_dict)


def action(item_id: int, name: str, body: Mapping[str, Any] | None, if_match: int | str | None) -> Call:
    return Call(
        "POST",
        f"/workitems/{segment(item_id)}/{segment(name)}",
        json=dict(body or {}),
        if_match=if_match,
        parse=WorkItem.from_dict,
    )


def claim_next(queue: str | list[str] | None) -> Call:
    """One queue name, or several (then ordered by score: docs/api.md "claim-next")."""
    return Call("POST", "/workitems/claim-next", json=_body(queue=queue), parse=WorkItem.from_dict)


def history(item_id: int) -> Call:
    return Call("GET", f"/workitems/{segment(item_id)}/history", parse=dict_page)


# -- queues --------------------------------------------------------------------------------
def list_queues(filters: Mapping[str, Any], page_url: str | None = None) -> Call:
    if page_url:
        return Call("GET", url=page_url, parse=queue_page)
    return Call("GET", "/queues", params=encode_params(filters), parse=queue_page)


def get_queue(name: str) -> Call:
    return Call("GET", f"/queues/{segment(name)}", parse=Queue.from_dict)


def create_queue(fields: Mapping[str, Any]) -> Call:
    return Call("POST", "/queues", json=dict(fields), parse=Queue.from_dict)


def update_queue(name: str, fields: Mapping[str, Any]) -> Call:
    return Call("PATCH", f"/queues/{segment(name)}", json=dict(fields), parse=Queue.from_dict)


def queue_stats(name: str) -> Call:
    return Call("GET", f"/queues/{segment(name)}/stats")


# -- cases (plain objects: docs/api.md, "Cases") -----------------------------------------------
def create_case(fields: Mapping[str, Any]) -> Call:
    body = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in fields.items()}
    return Call("POST", "/cases", json=body)


def get_case(case_number: str) -> Call:
    return get(f"/cases/{segment(case_number)}")


def case_action(case_number: str, name: str, reason: str | None, if_match: int | str | None) -> Call:
    return Call("POST", f"/cases/{segment(case_number)}/{name}", json=_body(reason=reason), if_match=if_match)


# -- task types and workflows --------------------------------------------------------------
def task_type_path(workflow_id: str, task_name: str) -> str:
    return f"/task-types/{segment(workflow_id)}/{segment(task_name)}"


def create_task_type(fields: Mapping[str, Any]) -> Call:
    return Call("POST", "/task-types", json=dict(fields))


def update_task_type(workflow_id: str, task_name: str, fields: Mapping[str, Any]) -> Call:
    return Call("PATCH", task_type_path(workflow_id, task_name), json=dict(fields))


def register_workflow(workflow_id: str, name: str | None, tasks: list[Mapping[str, Any]]) -> Call:
    body = {"id": workflow_id, "tasks": [dict(t) for t in tasks], **_body(name=name)}
    return Call("POST", "/workflows", json=body)


# -- lists of plain objects (directory, audit, subscriptions) --------------------------------
def dict_list(path: str, filters: Mapping[str, Any] | None = None, page_url: str | None = None) -> Call:
    if page_url:
        return Call("GET", url=page_url, parse=dict_page)
    return Call("GET", path, params=encode_params(filters or {}), parse=dict_page)


def get(path: str, *, api: bool = True) -> Call:
    return Call("GET", path, api=api)


def health() -> Call:
    return Call("GET", "/health", api=False, ok_statuses=frozenset({503}), retry=False)


def get_user(username: str) -> Call:
    return get(f"/users/{segment(username)}")


def set_availability(username: str, fields: Mapping[str, Any]) -> Call:
    return Call("PATCH", f"/users/{segment(username)}/availability", json=dict(fields))


def create_subscription(fields: Mapping[str, Any]) -> Call:
    return Call("POST", "/subscriptions", json=dict(fields))


def delete_subscription(subscription_id: int | str) -> Call:
    return Call("DELETE", f"/subscriptions/{segment(subscription_id)}", gone_ok_on_retry=True)


def deliveries_path(subscription_id: int | str) -> str:
    return f"/subscriptions/{segment(subscription_id)}/deliveries"
