"""gRPC vs REST (issue 16): the same lifecycle through both APIs, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/grpc_vs_rest.py

Creates its own database (`workstream_bench_grpc`, or --db), migrates it, starts the two servers
as they run in production, each one process: gunicorn (config.wsgi, one sync worker) and
`manage.py grpc_serve` (one worker thread), then drives create → claim → start → complete one
call at a time from this process: REST over one keep-alive HTTP/1.1 connection (httpx, JSON),
gRPC over one channel (HTTP/2, protobuf), both with JWTs. REST and gRPC alternate, --rounds
times of --items lifecycles each; per step the p50 latency of all rounds, and the ratio
REST p50 / gRPC p50 (above 1: gRPC is faster). Rate limits are lifted for the run. The database
is dropped at the end (--keep keeps it).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from claim_next import bench_main, make_users, pct, print_table  # noqa: E402

STEPS = ("create", "claim", "start", "complete")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_grpc", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--items", type=int, default=100, help="lifecycles per side per round")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    return p.parse_args()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_servers() -> tuple[list[subprocess.Popen], str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    http_port = free_port()
    gunicorn = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{http_port}",
         "--workers", "1", "--no-control-socket", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    grpc_proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", "grpc_serve", "--host", "127.0.0.1", "--port", "0", "--max-workers", "1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    line = grpc_proc.stdout.readline()
    if "listening on" not in line:
        raise RuntimeError(f"grpc_serve did not start: {line!r}")
    grpc_target = "127.0.0.1:" + line.split("127.0.0.1:")[1].split()[0]
    return [gunicorn, grpc_proc], f"http://127.0.0.1:{http_port}", grpc_target


def wait_http(base: str, client) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if client.get(base + "/health/live").status_code == 200:
                return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer /health/live in 60 s")


def timed(times: dict[str, list[float]], step: str, fn):
    t0 = time.perf_counter()
    out = fn()
    times[step].append(time.perf_counter() - t0)
    return out


def rest_round(http, base: str, svc_h: dict, worker_h: dict, queue: str, n: int, times) -> None:
    body = {"workflow_id": "bench", "task_name": "review", "queue": queue, "context_data": {"claim_id": 1}}
    for _ in range(n):
        item = timed(times, "create", lambda: http.post(f"{base}/api/v1/workitems", json=body, headers=svc_h)).json()
        url = f"{base}/api/v1/workitems/{item['id']}"
        for step, payload in (("claim", None), ("start", None), ("complete", {"result": {"ok": True}})):
            post = lambda s=step, p=payload, u=url: http.post(f"{u}/{s}", json=p or {}, headers=worker_h)  # noqa: E731
            r = timed(times, step, post)
            if r.status_code != 200:
                raise RuntimeError(f"REST {step}: {r.status_code} {r.text[:300]}")


def grpc_round(stub, pb, svc_md, worker_md, queue: str, n: int, times) -> None:
    for _ in range(n):
        req = pb.CreateWorkItemRequest(workflow_id="bench", task_name="review", queue=queue)
        req.context_data.update({"claim_id": 1})
        item = timed(times, "create", lambda r=req: stub.Create(r, metadata=svc_md))
        claim = start = pb.ItemActionRequest(id=item.id)
        timed(times, "claim", lambda r=claim: stub.Claim(r, metadata=worker_md))
        timed(times, "start", lambda r=start: stub.Start(r, metadata=worker_md))
        done = pb.CompleteRequest(id=item.id)
        done.result.update({"ok": True})
        timed(times, "complete", lambda d=done: stub.Complete(d, metadata=worker_md))


def run(args, bench_url: str, t_start: float) -> int:
    import grpc
    import httpx
    from django.contrib.auth.models import Group
    from rest_framework_simplejwt.tokens import AccessToken

    from directory.roles import role_group_name
    from grpcapi.gen import workitems_pb2 as pb
    from grpcapi.gen import workitems_pb2_grpc as pb_grpc
    from workitems.models import Queue

    group = Group.objects.create(name="bench-grpc")
    worker = make_users("worker", 1, groups=[group])[0]
    svc = make_users("svc", 1)[0]
    svc.groups.add(Group.objects.get_or_create(name=role_group_name("service"))[0])
    queue = Queue.objects.create(name="bench-grpc")
    queue.candidate_groups.add(group)
    svc_token, worker_token = str(AccessToken.for_user(svc)), str(AccessToken.for_user(worker))

    procs, base, target = start_servers()
    times = {side: {s: [] for s in STEPS} for side in ("rest", "grpc")}
    try:
        with httpx.Client(timeout=30) as http, grpc.insecure_channel(target) as channel:
            wait_http(base, http)
            stub = pb_grpc.WorkItemsStub(channel)
            svc_h, worker_h = ({"Authorization": f"Bearer {t}"} for t in (svc_token, worker_token))
            svc_md, worker_md = ((("authorization", f"Bearer {t}"),) for t in (svc_token, worker_token))
            # Warm both (imports, connections, statement caches) before measuring.
            rest_round(http, base, svc_h, worker_h, queue.name, 5, {s: [] for s in STEPS})
            grpc_round(stub, pb, svc_md, worker_md, queue.name, 5, {s: [] for s in STEPS})
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}: {args.items} lifecycles over REST, then gRPC …", flush=True)
                rest_round(http, base, svc_h, worker_h, queue.name, args.items, times["rest"])
                grpc_round(stub, pb, svc_md, worker_md, queue.name, args.items, times["grpc"])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)

    rows = []
    for step in (*STEPS, "lifecycle"):
        if step == "lifecycle":
            rest_ms, grpc_ms = (sum(pct(times[side][s], 50) for s in STEPS) * 1000 for side in ("rest", "grpc"))
        else:
            rest_ms, grpc_ms = (pct(times[side][step], 50) * 1000 for side in ("rest", "grpc"))
        result = f"{rest_ms:.2f} / {grpc_ms:.2f} ms"
        rows.append((f"{step}: p50 REST / gRPC", result, "", f"ratio {rest_ms / grpc_ms:.2f}"))
    print_table(rows, t_start)
    return 0


def main() -> int:
    cfg = Path(tempfile.mkdtemp()) / "workstream.yaml"
    cfg.write_text("rateLimits: {default: 1000000/s}\n")  # back-to-back calls would meet 100/s
    os.environ.setdefault("WORKSTREAM_CONFIG", str(cfg))
    return bench_main(parse_args(), run)


if __name__ == "__main__":
    sys.exit(main())
