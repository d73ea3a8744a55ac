"""Load test (issue 15): Locust against gunicorn on loopback, per serving model, with the
database floor measured by pgbench in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/12 \
        LOCUST=/tmp/locust-venv/bin/locust .venv/bin/python bench/load/run.py --users 100,1000

One command: creates the database (`workstream_bench_load`, or --db), migrates it, seeds users,
queues and API keys (bench/claim_next.py's helpers), writes a configuration file with the rate
limits raised out of the way (WORKSTREAM_CONFIG: a throttle would turn the run into a test of
the limiter), then for each serving model (--models, e.g. gthread and sync) starts gunicorn with
config/gunicorn.conf.py and runs

  * the realistic mix (locustfile.py: service clients, workers, supervisors) at each --users,
    open loop with think time, for --duration seconds, and
  * a closed-loop saturation run (locustfile.py `Saturation`, --sat-users users, no think time),

sampling the server's CPU (all gunicorn processes, % of one core) and RSS from /proc. Then
pgbench runs the project's create shape (item + audit + outbox INSERT in one transaction, the
column lists from the models) with --sat-users clients for --duration seconds: the floor the
saturation create rate is divided by. Prints one Markdown table per run, drops the database
unless --keep. Locust is not a project dependency (bench/load/README.md): LOCUST names its
executable.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from claim_next import bench_main, make_users  # noqa: E402

MODELS = {
    "gthread": ["-k", "gthread", "--threads", "20", "-w", "2", "--keep-alive", "75"],
    "sync": ["-k", "sync", "-w", "4"],
    # Four processes (both cores, less GIL contention than two) that still hold keep-alive
    # connections in threads: up to 40 database connections, as gthread's.
    "gthread4": ["-k", "gthread", "--threads", "10", "-w", "4", "--keep-alive", "75"],
    # gthread's processes and threads over a bounded pool: 8 database connections a process
    # (DB_POOL_MAX_SIZE), not one per thread.
    "gthread-pool": ["-k", "gthread", "--threads", "20", "-w", "2", "--keep-alive", "75"],
}
MODEL_ENV = {"gthread-pool": {"DB_POOL_MAX_SIZE": "8"}}
OPS = ("create", "claim-next", "start", "complete", "stats/queues", "console/live/tiles", "auth/token")
SENTINEL = 987654321
SENTINEL_UUID = "00000000-0000-4000-8000-00000000abcd"
SENTINEL_HASH = "f" * 64


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_load")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--users", default="100", help="concurrent users of the mix, comma-separated")
    p.add_argument("--rate", type=float, default=50, help="users started per second")
    p.add_argument("--duration", type=int, default=60, help="seconds per locust run and for pgbench")
    p.add_argument("--sat-users", type=int, default=40, help="closed-loop users (and pgbench clients)")
    p.add_argument("--models", default="gthread,sync", help=f"serving models: {', '.join(MODELS)}")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--workers", type=int, default=800, help="worker accounts seeded")
    p.add_argument("--login", action="store_true", help="every user logs in (auth/token, console form)")
    p.add_argument("--out", default="", help="directory for locust's CSV files (default: a temporary one)")
    p.add_argument(
        "--steady",
        action="store_true",
        help="report the steady state: Locust's --reset-stats zeroes the figures once every user is "
        "started (users / rate seconds), so the ramp-up and the server's cold start are left out",
    )
    return p.parse_args()


# --- seeding ------------------------------------------------------------------------------------


def _session(user) -> str:
    """A console session of `user`, as the login view leaves it."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


def seed(path: Path, n_workers: int, *, login: bool) -> None:
    from django.contrib.auth.models import Group
    from rest_framework_simplejwt.tokens import RefreshToken

    from api.models import ServiceApiKey
    from directory.roles import SERVICE, SUPERVISOR, role_group_name
    from workitems.models import Queue

    team = Group.objects.create(name="load-team")
    workers = make_users("lw", n_workers, groups=[team])
    sup_group = Group.objects.get_or_create(name=role_group_name(SUPERVISOR))[0]
    supervisors = make_users("ls", 20, groups=[team, sup_group])
    service_group = Group.objects.get_or_create(name=role_group_name(SERVICE))[0]
    queues = []
    for i in range(4):
        q = Queue.objects.create(name=f"load-{i}")
        q.candidate_groups.add(team)
        queues.append(q.name)
    keys = []
    for svc in make_users("lsvc", 20):
        svc.groups.add(service_group)
        keys.append(ServiceApiKey.objects.create_key(name=svc.username, user=svc)[1])
    data = {
        "password": "bench",
        "tokens": {}
        if login
        else {u.username: str(RefreshToken.for_user(u).access_token) for u in [*workers, *supervisors]},
        "sessions": {} if login else {u.username: _session(u) for u in supervisors},
        "workers": [u.username for u in workers],
        "supervisors": [u.username for u in supervisors],
        "api_keys": keys,
        "queues": queues,
    }
    path.write_text(json.dumps(data))


def write_config(path: Path) -> None:
    fast = "100000/s"
    path.write_text(
        "rateLimits:\n"
        + "".join(f"  {k}: {fast}\n" for k in ("default", "anonymousPerIp", "tokenPerIp", "tokenPerUsername"))
        + "  perRole: {"
        + ", ".join(f"{r}: {fast}" for r in ("admin", "supervisor", "worker", "service"))
        + "}\n"
    )


# --- the server ---------------------------------------------------------------------------------


def start_server(model: str, port: int, env: dict, log_path: Path) -> subprocess.Popen:
    cmd = [
        str(ROOT / ".venv/bin/gunicorn"),
        "config.wsgi:application",
        "-c",
        str(ROOT / "config/gunicorn.conf.py"),
        "-b",
        f"127.0.0.1:{port}",
        "--backlog",
        "2048",
        *MODELS[model],
    ]
    proc = subprocess.Popen(  # noqa: S603 - the venv's gunicorn, fixed arguments
        cmd, cwd=ROOT, env={**env, **MODEL_ENV.get(model, {})}, stdout=log_path.open("w"), stderr=subprocess.STDOUT
    )
    return answering(proc, f"http://127.0.0.1:{port}/api/v1/features", f"gunicorn ({model})", log_path)


def answering(proc: subprocess.Popen, url: str, what: str, log_path: Path, timeout: float = 60) -> subprocess.Popen:
    """`proc` once `url` answers anything (a 401 or 404 too); killed if it does not in `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - a http:// URL of ours
            return proc
        except urllib.error.HTTPError:
            return proc  # it answers
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{what} did not answer: {log_path.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tree(pid: int) -> list[int]:
    pids = [pid]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def _cpu_rss(pids: list[int]) -> tuple[float, int]:
    ticks, rss = 0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            rss += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK"), rss


def run_locust(args, host: str, users: int, user_class: str, csv_prefix: Path, env: dict, server) -> dict:
    locust = os.environ.get("LOCUST") or shutil.which("locust") or "/tmp/locust-venv/bin/locust"  # noqa: S108
    cmd = [locust, "-f", str(HERE / "locustfile.py"), "--headless", "-u", str(users), "-r", str(args.rate)]
    cmd += ["-t", f"{args.duration}s", "--host", host, "--csv", str(csv_prefix), "--only-summary"]
    cmd += ["--stop-timeout", "5"]
    if args.steady:
        cmd += ["--reset-stats"]
    cmd += user_class.split()
    pids = _tree(server.pid)
    cpu0, _ = _cpu_rss(pids)
    t0, rss_max = time.time(), 0
    log = open(f"{csv_prefix}.log", "w")  # noqa: SIM115 - a file, not a pipe: a full pipe stalls locust
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    while proc.poll() is None:
        rss_max = max(rss_max, _cpu_rss(_tree(server.pid))[1])
        time.sleep(1)
    cpu1, _ = _cpu_rss(_tree(server.pid))
    log.close()
    err = Path(f"{csv_prefix}.log").read_text()
    rows = {}
    with open(f"{csv_prefix}_stats.csv") as f:
        for r in csv.DictReader(f):
            rows[r["Name"]] = r
    with open(f"{csv_prefix}_exceptions.csv") as f:
        exceptions = sum(int(r["Count"]) for r in csv.DictReader(f))
    return {
        "rows": rows,
        "exceptions": exceptions,
        "cpu": 100 * (cpu1 - cpu0) / (time.time() - t0),
        "rss": rss_max,
        "load": os.getloadavg(),
        "stderr": err[-1500:] if proc.returncode not in (0, 1) else "",
    }


def print_run(title: str, res: dict) -> None:
    load = ", ".join(f"{x:.2f}" for x in res["load"])
    print(f"\n#### {title}\n")
    print(f"server CPU {res['cpu']:.0f}% of one core (2 cores), RSS max {res['rss'] / 2**20:.0f} MiB, load {load}\n")
    print("| operation | requests | req/s | p50 ms | p95 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    rows = res["rows"]
    names = [n for n in rows if n != "Aggregated"] + (["Aggregated"] if "Aggregated" in rows else [])
    for name in names:
        r = rows[name]
        print(
            f"| {name} | {r['Request Count']} | {float(r['Requests/s']):.1f} | {r['50%']} | {r['95%']} "
            f"| {r['99%']} | {r['Failure Count']} |"
        )
    print(f"\nexceptions in the users' code: {res['exceptions']}")
    if res["stderr"]:
        print(f"\nlocust: {res['stderr']}")


# --- the database floor -------------------------------------------------------------------------


def pgbench_script(path: Path, bench_url: str) -> None:
    """The create's SQL shape as literal statements for pgbench (one transaction)."""
    import psycopg
    from claim_next import floor_statements
    from django.contrib.auth import get_user_model
    from hot_path import _item_insert_sql
    from psycopg.types.json import Jsonb

    from workitems.models import Queue

    svc = get_user_model().objects.get(username="lsvc00000")
    queue = Queue.objects.get(name="load-0")
    _, (a_cols, a_defaults, a_sql), (o_cols, o_defaults, o_sql) = floor_statements()
    item_sql, item_values, run_id_at = _item_insert_sql(queue.pk, svc.pk)
    item_values = list(item_values)
    item_values[run_id_at] = SENTINEL_HASH
    audit = {
        "stream": f"workitem:{SENTINEL}", "seq": 1, "work_item_id": SENTINEL, "action": "create",
        "actor_id": svc.pk, "actor_username": svc.username, "channel": "api", "from_state": "",
        "to_state": "OFFERED", "data": Jsonb({"version": 1}), "request_id": "", "correlation_id": "",
        "created_at": "2026-01-01T00:00:00Z", "prev_hash": "", "hash": SENTINEL_HASH,
    }  # fmt: skip
    event = {
        "event_id": SENTINEL_UUID, "event_type": "workitem.created.v1", "aggregate_type": "workitem",
        "aggregate_id": str(SENTINEL), "sequence": 1, "occurred_at": "2026-01-01T00:00:00Z",
        "producer": "workstream", "trace_id": "", "correlation_id": "",
        "payload": Jsonb({"work_item": {"id": SENTINEL, "state": "OFFERED"}}), "attempts": 0, "last_error": "",
    }  # fmt: skip
    with psycopg.connect(bench_url) as conn:
        cur = psycopg.ClientCursor(conn)
        stmts = [
            cur.mogrify(item_sql, item_values),
            cur.mogrify(a_sql, [audit.get(c, a_defaults[c]) for c in a_cols]),
            cur.mogrify(o_sql, [event.get(c, o_defaults[c]) for c in o_cols]),
        ]
    text = "\n".join(stmts)
    text = text.replace(f"'workitem:{SENTINEL}'", "'workitem:' || :id").replace(f"'{SENTINEL}'", ":id::text")
    text = re.sub(rf"'{SENTINEL_HASH}'", "md5(random()::text) || md5(random()::text)", text)
    text = re.sub(rf"'{SENTINEL_UUID}'(::uuid)?", "gen_random_uuid()", text)
    text = re.sub(r"'2026-01-01T00:00:00Z'(::timestamptz)?", "now()", text)
    payload = json.dumps({"work_item": {"id": SENTINEL, "state": "OFFERED"}})
    built = "jsonb_build_object('work_item', jsonb_build_object('id', :id, 'state', 'OFFERED'))"
    text = re.sub(re.escape(f"'{payload}'") + "(::jsonb)?", built, text)
    text = text.replace(str(SENTINEL), ":id")
    text = re.sub(r":id\b", ":id::bigint", text)  # -M prepared: a parameter needs its type
    item, audit_sql, outbox_sql = text.split("\n")
    path.write_text(f"BEGIN;\n{item} \\gset\n{audit_sql};\n{outbox_sql};\nEND;\n")


def pgbench_floor(script: Path, bench_url: str, clients: int, duration: int) -> float:
    cmd = ["pgbench", "-n", "-f", str(script), "-c", str(clients), "-j", "2", "-T", str(duration), "-M", "prepared"]
    done = subprocess.run([*cmd, bench_url], capture_output=True, text=True)  # noqa: S603
    if done.returncode:
        raise RuntimeError(f"pgbench failed: {done.stderr[-2000:]}")
    return float(re.search(r"tps = ([0-9.]+)", done.stdout)[1])


# --- the run ------------------------------------------------------------------------------------


def run(args, bench_url: str, t_start: float) -> int:
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ws-load-"))
    work.mkdir(parents=True, exist_ok=True)
    seed_file, config_file = work / "seed.json", work / "load.yaml"
    print("seeding users, queues and API keys …", flush=True)
    seed(seed_file, args.workers, login=args.login)
    write_config(config_file)
    script = work / "create.sql"
    pgbench_script(script, bench_url)
    from django.db import connections

    connections.close_all()
    env = dict(os.environ, DATABASE_URL=bench_url, WORKSTREAM_CONFIG=str(config_file), LOAD_SEED=str(seed_file))
    env.update(DEBUG="false", LOG_LEVEL="WARNING", DB_CONN_MAX_AGE="600")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/12")
    host = f"http://127.0.0.1:{args.port}"
    print(f"rate limits raised to 100000/s for the run ({config_file}, WORKSTREAM_CONFIG)")
    sat: dict[str, float] = {}
    for model in args.models.split(","):
        print(f"\n### {model}: gunicorn {' '.join(MODELS[model])}", flush=True)
        server = start_server(model, args.port, env, work / f"gunicorn-{model}.log")
        try:
            for users in (int(u) for u in args.users.split(",")):
                mix = "ServiceClient Worker Supervisor"
                res = run_locust(args, host, users, mix, work / f"{model}-{users}", env, server)
                print_run(f"{model}, mix, {users} users, {args.duration}s", res)
            res = run_locust(args, host, args.sat_users, "Saturation", work / f"{model}-sat", env, server)
            print_run(f"{model}, closed-loop saturation, {args.sat_users} users, {args.duration}s", res)
            sat[model] = float(res["rows"].get("create", {}).get("Requests/s", 0))
        finally:
            stop_server(server)
    print(f"\npgbench: the create's SQL shape, {args.sat_users} clients, {args.duration}s …", flush=True)
    floor = pgbench_floor(script, bench_url, args.sat_users, args.duration)
    print(f"\ndatabase floor (pgbench, item + audit + outbox INSERT per transaction): {floor:.0f} creates/s")
    for model, rate in sat.items():
        print(f"saturation {model}: {rate:.1f} creates/s = {rate / floor:.3f} of the floor")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average {load}; {time.perf_counter() - t_start:.0f}s in all")
    print(f"locust CSV files in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(bench_main(parse_args(), run))
