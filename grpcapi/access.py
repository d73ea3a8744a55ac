"""The access log for gRPC calls: one `audit.models.AccessRecord` per call, refused ones too, as
api.access_log writes one per REST request (the same caller, credential-id and outcome fields).
method `GRPC`, route the full method name (`/workstream.v1.WorkItems/Get`), resource the item id
asked for, status the HTTP status of the answer's problem (200 on success), problem its kind."""

from __future__ import annotations

import ipaddress
import re

from api import access_log
from audit.models import AccessRecord
from config import wsconfig

_PEER = re.compile(r"^ipv[46]:\[?([0-9A-Fa-f:.]+?)\]?:\d+$")


def peer_ip(peer: str) -> str | None:
    """The address in a gRPC peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`), else None."""
    match = _PEER.match(peer or "")
    if match is None:
        return None
    try:
        return str(ipaddress.ip_address(match.group(1)))
    except ValueError:
        return None


def record(*, at, request_id: str, route: str, request, drf_request, status: int, problem: str, duration_ms: int,
           peer: str) -> None:  # fmt: skip
    cfg = wsconfig.get().accessLog
    if not cfg.enabled:
        return
    known = drf_request is not None and hasattr(drf_request, "_user")  # authentication ran (never run it here)
    user, auth, credential = access_log.caller_of(drf_request) if known else (None, "", "")
    item_id = getattr(request, "id", None)
    access_log.write_record(
        AccessRecord(
            at=at,
            request_id=request_id,
            method="GRPC",
            route=route[:200],
            resource={"id": item_id} if item_id else {},
            params=[],
            actor=user,
            actor_username=user.get_username() if user else "",
            auth=auth,
            credential=credential,
            status=status,
            problem=problem[:50],
            duration_ms=duration_ms,
            ip=peer_ip(peer) if cfg.recordIp else None,
        )
    )
