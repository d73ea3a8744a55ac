"""HTTP hot path (issue 13, targets 3, 5 and 6): ours over gunicorn against a naive DRF app.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/15 \\
        .venv/bin/python bench/http_hot.py            # apt-get install -y wrk first

One command. It creates two databases: ours (`ws_h_bench_http`, or --db), migrated and seeded
with a worker, a service client with an API key, and --small visible items (a fifth as many
again in a queue the worker does not see, interleaved in time); and the naive baseline's
(`ws_h_bench_naive`, or --naive-db: bench/naive, one model, a `ModelViewSet`, DRF's
TokenAuthentication and PageNumberPagination, no audit, outbox, distribution, throttle or
access log) with as many rows. Both apps are served at once by gunicorn with the same settings
(--gunicorn, default the project's serving model `-k gthread --threads 20 -w 2`, with
config/gunicorn.conf.py), rate limits lifted from ours through WORKSTREAM_CONFIG. Load: wrk
(keep-alive connections, --connections, 2 threads). Parts (--parts, all by default):

  reads   a worker's `GET /api/v1/workitems?page_size=20` (JWT) vs the naive `GET /api/items`
          (page of 20), and `GET /api/v1/workitems/{id}` vs `GET /api/items/{id}` (random ids
          among 500 of the visible rows): --pairs alternated pairs of --duration s each (the
          order flips every pair), ratio of requests/s, median over the pairs. Target ≥ 0.8.
  create  `POST /api/v1/workitems` with an API key, every guarantee (item, audit chain, outbox,
          routing, access record) vs the naive `POST /api/items`: the same pairs. Target ≥ 1.0.
  memory  our gunicorn workers' RSS (/proc/<pid>/statm) while wrk sends --memory-requests of a
          mix (in turn: a list, eight gets of different items, a create) in chunks of 30 s; growth
          from the first sample (after the warm-up) to the last, and from the first past
          --memory-settle requests. Target: < 150 MB a worker, < 10 % growth.
  size    p50 of list and get at one connection (wrk -c 1) with --small items, then again after
          growing the table to --large (set-based inserts, ANALYZE), and the EXPLAIN ANALYZE of
          each request's work-item statements at both sizes (captured in-process through the
          view). Target: p50 at --large ≤ 1.5 × p50 at --small.

Prints each result with the load average, then a Markdown table; kills its servers and drops
both databases unless --keep.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "load"))

os.environ.setdefault("JWT_ACCESS_MINUTES", "600")  # the worker's token outlives the run
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

from claim_next import (  # noqa: E402
    analyze,
    bench_main,
    explain,
    make_users,
    print_table,
    recreate_database,
    seed_items,
    server_url,
    with_db,
)
from run import _tree, answering, stop_server, write_config  # noqa: E402  (bench/load/run.py)

GUNICORN = Path(sys.executable).parent / "gunicorn"
PARTS = ("reads", "create", "memory", "size")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="ws_h_bench_http", help="our database (dropped first if it exists)")
    p.add_argument("--naive-db", default="ws_h_bench_naive", help="the naive baseline's database")
    p.add_argument("--keep", action="store_true", help="keep both databases afterwards")
    p.add_argument("--parts", default=",".join(PARTS), help=f"which of {', '.join(PARTS)} to run")
    p.add_argument("--pairs", type=int, default=3, help="alternated ours/naive pairs per comparison")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run of a pair")
    p.add_argument("--connections", type=int, default=8, help="wrk keep-alive connections")
    p.add_argument("--gunicorn", default="-k gthread --threads 20 -w 2 --keep-alive 75", help="both servers' options")
    p.add_argument("--small", type=int, default=10_000, help="items at the start (visible + a fifth hidden)")
    p.add_argument("--large", type=int, default=1_000_000, help="items for the second size")
    p.add_argument("--size-duration", type=int, default=15, help="seconds of each one-connection p50 run")
    p.add_argument("--memory-requests", type=int, default=100_000, help="requests of the memory run")
    p.add_argument("--memory-settle", type=int, default=5_000, help="requests before the second growth figure")
    p.add_argument("--port", type=int, default=8791)
    p.add_argument("--naive-port", type=int, default=8792)
    p.add_argument("--naive-setup", nargs=2, metavar=("ROWS", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args()


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# --- the naive app (a process of its own: its own settings) ---------------------------------------


def naive_setup(rows: int, out: str) -> None:
    """Migrate the naive database, make its user and token, seed `rows` items; ids to `out`."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "naive.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user("naive-worker", password="bench")  # noqa: S106
    token = Token.objects.create(user=user).key
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO naive_item (workflow_id, run_id, task_name, queue, state, priority, payload, due_at, "
            "created_at, updated_at, version) SELECT 'bench', 'r' || g, 'review', 'bench-list', 'OFFERED', "
            "mod(g * 7919, 101), '{}'::jsonb, now() + mod(g, 5000) * interval '1 minute', "
            "now() - g * interval '5 milliseconds', now(), 1 FROM generate_series(1, %s) AS g",
            [rows],
        )
        cur.execute("ANALYZE")
        cur.execute("SELECT id FROM naive_item ORDER BY random() LIMIT 500")
        ids = [r[0] for r in cur.fetchall()]
    Path(out).write_text(json.dumps({"token": token, "ids": ids}))


# --- servers and wrk ---------------------------------------------------------------------------


def start(app: str, port: int, env: dict, opts: str, log: Path) -> subprocess.Popen:
    cmd = [str(GUNICORN), app, "-c", str(ROOT / "config/gunicorn.conf.py"), "-b", f"127.0.0.1:{port}", *opts.split()]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)  # noqa: S603
    return answering(proc, f"http://127.0.0.1:{port}/", f"gunicorn {app}", log, timeout=90)


def lua(path: Path, *, method: str, paths: list[str], headers: dict, body: str | None = None) -> Path:
    """A wrk script: `paths` in turn (a random start per thread); a body with {n} made unique."""
    hdr = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    plist = ", ".join(f'"{p}"' for p in paths)
    text = f"""{hdr}
local paths = {{{plist}}}
local i = 0
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("tag", os.time() .. "-" .. counter) end
init = function(args) i = math.random(#paths) end
request = function()
  i = i + 1
  local p = paths[(i % #paths) + 1]
"""
    if body is None:
        text += f'  return wrk.format("{method}", p)\nend\n'
    else:
        b = body.replace('"', '\\"').replace("{n}", '" .. tag .. "-" .. i .. "')
        text += f'  return wrk.format("{method}", p, nil, "{b}")\nend\n'
    path.write_text(text)
    return path


def lua_mix(path: Path, steps: list[tuple[str, str, dict, str | None]]) -> Path:
    """A wrk script sending `steps` (method, path, headers, body) in turn, bodies made unique."""
    rows = []
    for method, p, headers, body in steps:
        h = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        b = "nil" if body is None else '"' + body.replace('"', '\\"').replace("{n}", '" .. tag .. "-" .. i .. "') + '"'
        rows.append(f'  function() return wrk.format("{method}", "{p}", {{{h}}}, {b}) end')
    text = (
        "local i = 0\nlocal counter = 0\n"
        'setup = function(thread) counter = counter + 1; thread:set("tag", os.time() .. "-" .. counter) end\n'
        "local steps\n"
        "request = function()\n  i = i + 1\n  return steps[(i % #steps) + 1]()\nend\n"
        "steps = {\n" + ",\n".join(rows) + "\n}\n"
    )
    path.write_text(text)
    return path


def wrk(base: str, script: Path, *, connections: int, duration: int, threads: int = 2) -> dict:
    threads = min(threads, connections)
    cmd = ["wrk", "--latency", "--timeout", "60s", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s"]
    cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, base], capture_output=True, text=True, check=True).stdout  # noqa: S603
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out)[1])
    total = int(re.search(r"(\d+) requests in", out)[1])
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def ms(label: str) -> float:
        m = re.search(rf"\s{label}%\s+([0-9.]+)(us|ms|s)\b", out)
        return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]

    return {
        "rate": rate,
        "total": total,
        "p50": ms("50"),
        "p99": ms("99"),
        "bad": int(bad[1]) if bad else 0,
        "socket": sum(int(x) for x in errors.groups()[:3]) if errors else 0,
        "timeouts": int(errors[4]) if errors else 0,
        "out": out,
    }


def checked(res: dict, what: str) -> dict:
    if res["bad"] or res["socket"] or res["timeouts"]:
        raise RuntimeError(f"{what}: {res['bad']} non-2xx responses, socket errors:\n{res['out']}")
    return res


def pairs(args, name: str, ours: tuple[str, Path], naive: tuple[str, Path], target: float) -> list[tuple]:
    """Alternated ours/naive wrk runs; the ratio of requests/s per pair, median over the pairs."""
    print(f"{name}: warm-up …", flush=True)
    for base, script in (ours, naive):
        checked(wrk(base, script, connections=args.connections, duration=3), name)
    ratios, rates = [], []
    for k in range(args.pairs):
        order = [("ours", ours), ("naive", naive)]
        if k % 2:
            order.reverse()
        got = {
            side: checked(wrk(b, s, connections=args.connections, duration=args.duration), name)
            for side, (b, s) in order
        }
        o, n = got["ours"], got["naive"]
        ratios.append(o["rate"] / n["rate"])
        rates.append((o["rate"], n["rate"], o["p50"], n["p50"]))
        print(
            f"  pair {k + 1}: ours {o['rate']:.0f}/s (p50 {o['p50']:.1f} ms) vs naive {n['rate']:.0f}/s "
            f"(p50 {n['p50']:.1f} ms) = {ratios[-1]:.2f}x; {load()}",
            flush=True,
        )
    r = statistics.median(ratios)
    med = [statistics.median(x[i] for x in rates) for i in range(4)]
    return [
        (
            f"{name}, {args.connections} connections",
            f"{med[0]:,.0f}/s vs {med[1]:,.0f}/s (p50 {med[2]:.1f} vs {med[3]:.1f} ms) = **{r:.2f}x** "
            f"(median of {args.pairs}: {', '.join(f'{x:.2f}' for x in ratios)}; {load()})",
            f"≥ {target}x",
            "met" if r >= target else "missed",
        )
    ]


# --- RSS -----------------------------------------------------------------------------------------


def worker_rss(master: int) -> dict[int, int]:
    """RSS in bytes of each gunicorn worker (the master's children)."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = {}
    for pid in _tree(master)[1:]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            out[pid] = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
    return out


def memory_run(args, base: str, script: Path, master: int) -> list[tuple]:
    print(f"memory: {args.memory_requests:,} requests (a list, 8 gets, a create in turn) …", flush=True)
    checked(wrk(base, script, connections=args.connections, duration=5), "memory warm-up")
    samples = [(0, worker_rss(master))]
    print(f"  after the warm-up: {', '.join(f'{v / 2**20:.1f}' for v in samples[0][1].values())} MiB", flush=True)
    done = 0
    while done < args.memory_requests:
        res = checked(wrk(base, script, connections=args.connections, duration=30), "memory")
        done += res["total"]
        samples.append((done, worker_rss(master)))
        print(
            f"  {done:,} requests ({res['rate']:.0f}/s): RSS "
            f"{', '.join(f'{v / 2**20:.1f}' for v in samples[-1][1].values())} MiB; {load()}",
            flush=True,
        )
    first, last = samples[0][1], samples[-1][1]
    if set(first) != set(last):
        raise RuntimeError(f"the workers changed during the run: {sorted(first)} → {sorted(last)}")
    peak = max(v for _, s in samples for v in s.values())
    growth = max((last[p] - first[p]) / first[p] for p in first)
    # and from the first sample past --memory-settle requests (caches of shapes, plans and
    # connections fill over the first few thousand)
    settled_at, settled = next(((n, s) for n, s in samples if n >= args.memory_settle), samples[0])
    later = max((last[p] - settled[p]) / settled[p] for p in first)
    return [
        (
            f"memory: gunicorn worker RSS over {done:,} requests ({len(first)} workers)",
            f"after warm-up {', '.join(f'{v / 2**20:.0f}' for v in first.values())} MiB → "
            f"end {', '.join(f'{v / 2**20:.0f}' for v in last.values())} MiB; peak {peak / 2**20:.0f} MiB",
            "< 150 MB",
            "met" if peak < 150e6 else "missed",
        ),
        (
            "memory: growth of a worker's RSS, warm-up → end",
            f"**{growth:+.1%}** (largest of the workers; {load()})",
            "< 10%",
            "met" if growth < 0.10 else "missed",
        ),
        (
            f"memory: growth of a worker's RSS, after {settled_at:,} requests → end",
            f"**{later:+.1%}** ({', '.join(f'{v / 2**20:.0f}' for v in settled.values())} MiB then)",
            "< 10%",
            "met" if later < 0.10 else "missed",
        ),
    ]


# --- size ----------------------------------------------------------------------------------------


def plans(worker, item_id: int) -> tuple[str, dict[str, float]]:
    """EXPLAIN ANALYZE of the work-item statements one list and one get send, in-process, and
    their execution times added up per request (ms)."""
    from django.db import connection
    from rest_framework.test import APIRequestFactory, force_authenticate

    from workitems.api.views import WorkItemDetailView, WorkItemListCreateView

    captured: list[tuple[str, str, object]] = []

    def grab(what):
        def wrapper(execute, sql, params, many, context):
            if "workitems_workitem" in sql and sql.lstrip().upper().startswith(("SELECT", "WITH")):
                captured.append((what, sql, params))
            return execute(sql, params, many, context)

        return wrapper

    for what, view, path, kw in (
        ("list", WorkItemListCreateView.as_view(), "/api/v1/workitems", {}),
        ("get", WorkItemDetailView.as_view(), f"/api/v1/workitems/{item_id}", {"item_id": item_id}),
    ):
        request = APIRequestFactory().get(path, {"page_size": 20} if what == "list" else {})
        force_authenticate(request, user=worker)
        with connection.execute_wrapper(grab(what)):
            response = view(request, **kw)
            response.render()
        assert response.status_code == 200, response.content[:300]
    out, executed = [], {"list": 0.0, "get": 0.0}
    for what, sql, params in captured:
        with connection.cursor() as cur:
            text = cur.mogrify(sql, params) if hasattr(cur, "mogrify") else sql % tuple(params or ())
        if isinstance(text, bytes):
            text = text.decode()
        plan = explain(text)
        took = re.search(r"Execution Time: ([0-9.]+) ms", plan)
        out.append(f"-- {what}: {text[:160]}…\n{plan}")
        executed[what] += float(took[1]) if took else float("nan")
        print(f"  {what} statement: {took[1] if took else '?'} ms executed", flush=True)
    return "\n\n".join(out), executed


def p50s(args, base: str, list_script: Path, get_script: Path) -> dict[str, float]:
    out = {}
    for what, script in (("list", list_script), ("get", get_script)):
        checked(wrk(base, script, connections=1, duration=3, threads=1), what)
        res = checked(wrk(base, script, connections=1, duration=args.size_duration, threads=1), what)
        if res["total"] < 10:
            raise RuntimeError(f"{what}: {res['total']} requests in {args.size_duration}s: raise --size-duration")
        out[what] = res["p50"]
        print(f"  {what}: p50 {res['p50']:.2f} ms, p99 {res['p99']:.2f} ms, {res['rate']:.0f}/s; {load()}", flush=True)
    return out


def grow(queue, hidden, have: int, size: int) -> None:
    """Items to `size` in all: four in five visible (one every 5 ms), one in five hidden, between them."""
    ref = "(SELECT coalesce(min(created_at), now()) FROM workitems_workitem)"
    n = size - have
    visible, invisible = n - n // 5, n // 5
    seed_items(queue, visible, varying_sql={"created_at": f"{ref} - g * interval '5 milliseconds'"})
    seed_items(
        hidden,
        invisible,
        varying_sql={"created_at": f"{ref} - (g * 4 + 2) * interval '5 milliseconds' + interval '2 ms'"},
    )
    analyze()


# --- the run -------------------------------------------------------------------------------------


def run(args, bench_url: str, t_start: float) -> int:
    from django.contrib.auth.models import Group
    from django.db import connections
    from rest_framework_simplejwt.tokens import RefreshToken

    from api.models import ServiceApiKey
    from directory.roles import SERVICE, role_group_name
    from tests import factories
    from workitems.models import WorkItem

    parts = set(args.parts.split(","))
    work = Path(tempfile.mkdtemp(prefix="ws-http-hot-"))
    print(f"{load()}; files in {work}", flush=True)

    # ours: a worker who sees one queue, a service client creating into another (kept out of the list)
    team, other = factories.group("http-team"), factories.group("http-other")
    worker = make_users("http-worker", 1, groups=[team])[0]
    svc = make_users("http-svc", 1, groups=[Group.objects.get_or_create(name=role_group_name(SERVICE))[0]])[0]
    key = ServiceApiKey.objects.create_key(name="http-svc", user=svc)[1]
    visible = factories.queue("http-list", groups=[team])
    hidden = factories.queue("http-hidden", groups=[other])
    factories.queue("http-create", groups=[other])
    grow(visible, hidden, 0, args.small)
    have = WorkItem.objects.count()
    ids = list(WorkItem.objects.filter(queue=visible).order_by("?").values_list("id", flat=True)[:500])
    jwt = str(RefreshToken.for_user(worker).access_token)
    config = work / "bench.yaml"
    write_config(config)
    print(f"ours: {have:,} items ({WorkItem.objects.filter(queue=visible).count():,} visible)", flush=True)

    server = server_url()
    naive_url = with_db(server, args.naive_db)
    recreate_database(server, args.naive_db)
    seeded = work / "naive.json"
    pypath = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    naive_env = dict(
        os.environ, NAIVE_DATABASE_URL=naive_url, DJANGO_SETTINGS_MODULE="naive.settings", PYTHONPATH=pypath
    )
    rows = WorkItem.objects.filter(queue=visible).count()
    subprocess.run([sys.executable, __file__, "--naive-setup", str(rows), str(seeded)], env=naive_env, check=True)  # noqa: S603
    naive = json.loads(seeded.read_text())
    print(f"naive: {rows:,} items", flush=True)
    connections.close_all()

    env = dict(os.environ, DATABASE_URL=bench_url, WORKSTREAM_CONFIG=str(config), DEBUG="false")
    env.update(LOG_LEVEL="WARNING", DB_CONN_MAX_AGE="600", ALLOWED_HOSTS="127.0.0.1,localhost")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    ours_base, naive_base = f"http://127.0.0.1:{args.port}", f"http://127.0.0.1:{args.naive_port}"
    ours_auth = {"Authorization": f"Bearer {jwt}", "Accept": "application/json"}
    svc_auth = {"Authorization": f"Api-Key {key}", "Content-Type": "application/json", "Accept": "application/json"}
    naive_auth = {"Authorization": f"Token {naive['token']}", "Accept": "application/json"}
    naive_post = {**naive_auth, "Content-Type": "application/json"}
    ours_body = '{"workflow_id": "wrk", "run_id": "{n}", "task_name": "review", "queue": "http-create"}'
    naive_body = '{"workflow_id": "wrk", "run_id": "{n}", "task_name": "review", "queue": "http-create"}'
    s = {
        "ours_list": lua(
            work / "ours_list.lua", method="GET", paths=["/api/v1/workitems?page_size=20"], headers=ours_auth
        ),
        "naive_list": lua(work / "naive_list.lua", method="GET", paths=["/api/items"], headers=naive_auth),
        "ours_get": lua(
            work / "ours_get.lua", method="GET", paths=[f"/api/v1/workitems/{i}" for i in ids], headers=ours_auth
        ),
        "naive_get": lua(
            work / "naive_get.lua", method="GET", paths=[f"/api/items/{i}" for i in naive["ids"]], headers=naive_auth
        ),
        "ours_create": lua(
            work / "ours_create.lua", method="POST", paths=["/api/v1/workitems"], headers=svc_auth, body=ours_body
        ),
        "naive_create": lua(
            work / "naive_create.lua", method="POST", paths=["/api/items"], headers=naive_post, body=naive_body
        ),
    }
    # the memory run's mix, ten requests in turn: a list, eight gets of different items, a create
    mix_steps = [("GET", "/api/v1/workitems?page_size=20", ours_auth, None)]
    mix_steps += [("GET", f"/api/v1/workitems/{i}", ours_auth, None) for i in ids[:8]]
    mix_steps += [("POST", "/api/v1/workitems", svc_auth, ours_body)]
    s["mix"] = lua_mix(work / "mix.lua", mix_steps)

    rows_out: list[tuple] = []
    sizes: dict[int, dict[str, float]] = {}
    plan_text: dict[int, str] = {}
    executed: dict[int, dict[str, float]] = {}
    ours_proc = start("config.wsgi:application", args.port, env, args.gunicorn, work / "ours.log")
    naive_proc = start("naive.wsgi:application", args.naive_port, naive_env, args.gunicorn, work / "naive.log")
    try:
        print(f"servers up: gunicorn {args.gunicorn}; {load()}", flush=True)
        if "size" in parts:
            print(f"size: {have:,} items, one connection …", flush=True)
            sizes[have] = p50s(args, ours_base, s["ours_list"], s["ours_get"])
            plan_text[have], executed[have] = plans(worker, ids[0])
            print(f"\n### plans at {have:,} items\n\n```\n{plan_text[have]}\n```\n", flush=True)
        if "reads" in parts:
            rows_out += pairs(
                args, "worker GET /workitems (page of 20) vs naive list", (ours_base, s["ours_list"]),
                (naive_base, s["naive_list"]), 0.8,
            )  # fmt: skip
            rows_out += pairs(
                args, "worker GET /workitems/{id} vs naive retrieve", (ours_base, s["ours_get"]),
                (naive_base, s["naive_get"]), 0.8,
            )  # fmt: skip
        if "create" in parts:
            rows_out += pairs(
                args, "POST /workitems (API key, every guarantee) vs naive create", (ours_base, s["ours_create"]),
                (naive_base, s["naive_create"]), 1.0,
            )  # fmt: skip
        if "size" in parts:
            now = WorkItem.objects.count()
            print(f"size: growing {now:,} → {args.large:,} items …", flush=True)
            t0 = time.perf_counter()
            grow(visible, hidden, now, args.large)
            connections.close_all()
            large = WorkItem.objects.count()
            print(f"  {large:,} items in {time.perf_counter() - t0:.0f}s; one connection …", flush=True)
            sizes[large] = p50s(args, ours_base, s["ours_list"], s["ours_get"])
            plan_text[large], executed[large] = plans(worker, ids[0])
            print(f"\n### plans at {large:,} items\n\n```\n{plan_text[large]}\n```\n", flush=True)
            (small, a), (big, b) = sorted(sizes.items())
            for what in ("list", "get"):
                r = b[what] / a[what]
                rows_out.append(
                    (
                        f"size: worker {'GET /workitems' if what == 'list' else 'GET /workitems/{id}'} p50, "
                        f"one connection, {big:,} vs {small:,} items",
                        f"{b[what]:.2f} ms vs {a[what]:.2f} ms = **{r:.2f}x** ({load()}); its statements "
                        f"executed in {executed[big][what]:.3f} vs {executed[small][what]:.3f} ms",
                        "≤ 1.5x",
                        "met" if r <= 1.5 else "missed",
                    )
                )
                print(" | ".join(rows_out[-1]), flush=True)
        if "memory" in parts:  # last: a long run, on the largest table
            rows_out += memory_run(args, ours_base, s["mix"], ours_proc.pid)
    finally:
        stop_server(ours_proc)
        stop_server(naive_proc)
        if not args.keep:
            from claim_next import drop_database

            drop_database(server, args.naive_db)
    print_table(rows_out, t_start)
    print(load())
    return 0


def main() -> int:
    args = parse_args()
    if args.naive_setup:
        naive_setup(int(args.naive_setup[0]), args.naive_setup[1])
        return 0
    return bench_main(args, run)


if __name__ == "__main__":
    sys.exit(main())
