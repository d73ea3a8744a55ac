"""The Python SDK's case methods against the real server (live_server, real auth), sync and async."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import workstream_client as wc

from tests import factories


def test_cases_through_the_sdk(ws, worker_client, alice, queue):
    case = ws.create_case("SDK-1", title="Claim", data={"iban": "DE00"}, due_at=datetime(2031, 1, 1, tzinfo=UTC))
    assert (case["case_number"], case["state"], case["due_at"]) == ("SDK-1", "open", "2031-01-01T00:00:00Z")
    item = ws.create_work_item(**factories.item_body(queue, case="SDK-1"))
    assert item.case == "SDK-1" and item.due_at == datetime(2031, 1, 1, tzinfo=UTC)
    assert [c["case_number"] for c in ws.list_cases()] == ["SDK-1"]
    seen = worker_client(alice).get_case("SDK-1")
    assert [i["id"] for i in seen["items"]] == [item.id]
    assert [r["action"] for r in seen["history"]] == ["case.create", "create"]

    with pytest.raises(wc.ConflictError) as refused:
        ws.close_case("SDK-1", reason="done")
    assert "open item" in refused.value.detail
    ws.cancel(item.id, reason="withdrawn")
    with pytest.raises(wc.PreconditionFailedError):
        ws.close_case("SDK-1", if_match=5)
    closed = ws.close_case("SDK-1", reason="done", if_match=1)
    assert (closed["state"], closed["version"]) == ("closed", 2)
    assert ws.reopen_case("SDK-1")["state"] == "open"


def test_cases_through_the_async_sdk(live_server, svc, queue):
    async def run():
        async with wc.AsyncWorkstreamClient(live_server.url, username="svc", password="pw-svc") as c:
            await c.create_case("ASDK-1")
            await c.create_work_item(**factories.item_body(queue, case="ASDK-1"))
            listed = [x["case_number"] async for x in c.list_cases()]
            got = await c.get_case("ASDK-1")
            return listed, got

    listed, got = asyncio.run(run())
    assert listed == ["ASDK-1"] and len(got["items"]) == 1
