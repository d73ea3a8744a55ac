"""One lifecycle on one thread, ours against django-viewflow (issue 13, target 4).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/viewflow_lifecycle.py

One command. viewflow is never a dependency of the project: it lives in a venv of its own
(--venv, default /tmp/ws-bench-viewflow-venv), made here with `python3.11 -m venv` and
`pip install -r bench/viewflow/requirements.txt` when missing. Two databases on the same
PostgreSQL: ours (`ws_h_bench_vf`, or --db, migrated) and viewflow's (`ws_h_bench_vf_viewflow`,
or --viewflow-db, migrated by bench/viewflow/run_lifecycles.py, which that venv's python runs
as a child process taking commands on stdin).

  ours      create → claim-next → start → complete through the services, in-process (every
            guarantee: audit chain, outbox, candidacy, capacity, versions): bench/hot_path.py's
            `ours_round`.
  viewflow  bench/viewflow/vfbench/flows.py, Start (from code) → a human View (gated by a
            permission) → End: start the process, assign the task, start and complete it
            (which ends the process), each as viewflow's own views do it (a transaction, the
            flow's SELECT … FOR UPDATE lock of the process), without HTTP.

Ours and viewflow alternate, --rounds times (default 3) of --duration seconds each; the rate
is lifecycles per second of lifecycle time (the median lifecycle's), the ratio ours /
viewflow's per round, the median over the rounds. Target ≥ 10. Also prints the statements
of one lifecycle on each side and the CPU time per lifecycle. Drops both databases unless
--keep.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from claim_next import bench_main, drop_database, print_table, recreate_database, server_url, with_db  # noqa: E402
from hot_path import STEPS, ours_round  # noqa: E402

VF = HERE / "viewflow"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="ws_h_bench_vf", help="our database (dropped first if it exists)")
    p.add_argument("--viewflow-db", default="ws_h_bench_vf_viewflow", help="viewflow's database")
    p.add_argument("--venv", default="/tmp/ws-bench-viewflow-venv", help="viewflow's own venv (made when missing)")  # noqa: S108
    p.add_argument("--keep", action="store_true", help="keep both databases afterwards")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per side per round")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds")
    return p.parse_args()


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def viewflow_python(venv: Path) -> Path:
    python = venv / "bin/python"
    if not python.exists():
        print(f"making viewflow's venv in {venv} …", flush=True)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)  # noqa: S603, S607
        pip = [str(venv / "bin/pip"), "install", "-q", "-r", str(VF / "requirements.txt")]
        subprocess.run(pip, check=True)  # noqa: S603
    return python


class Viewflow:
    """The child process running viewflow's lifecycles."""

    def __init__(self, python: Path, db_url: str) -> None:
        env = dict(os.environ, VIEWFLOW_DATABASE_URL=db_url, DJANGO_SETTINGS_MODULE="settings")
        self.proc = subprocess.Popen(  # noqa: S603 - our own script in viewflow's venv
            [str(python), str(VF / "run_lifecycles.py")],
            cwd=VF,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"viewflow's runner did not start: {line!r}")

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(30)


def our_statements(svc, worker, queue) -> int:
    """SQL statements of one of our lifecycles (not BEGIN/COMMIT/SAVEPOINT/RELEASE)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from workitems import services

    body = {"workflow_id": "hot", "run_id": "count-one", "task_name": "review", "queue": queue.name}
    with CaptureQueriesContext(connection) as q:
        services.work_item_create(actor=svc, data=body)
        item = services.work_item_claim_next(actor=worker)
        item = services.work_item_start(item_id=item.pk, actor=worker, expected_version=item.version)
        services.work_item_complete(item_id=item.pk, actor=worker, result={"ok": True}, expected_version=item.version)
    skip = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", "BEGIN", "COMMIT")
    return sum(1 for x in q.captured_queries if not (x["sql"] or "").startswith(skip))


def run(args, bench_url: str, t_start: float) -> int:
    from tests import factories

    server = server_url()
    vf_url = with_db(server, args.viewflow_db)
    recreate_database(server, args.viewflow_db)
    python = viewflow_python(Path(args.venv))
    version = subprocess.run(  # noqa: S603
        [str(python), "-c", "import importlib.metadata as m; print(m.version('django-viewflow'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"django-viewflow {version} in {args.venv}; {load()}", flush=True)
    svc = factories.user("vf-svc", roles=["service"])
    team = factories.group("vf-team")
    worker = factories.user("vf-worker", roles=["worker"], groups=[team])
    queue = factories.queue("vf-ours", groups=[team])
    vf = Viewflow(python, vf_url)
    rows = []
    try:
        ours_round(svc, worker, queue, 1.0)  # warm-up (imports, plans, the connection)
        vf.ask("run 1")
        ours_n, vf_n = our_statements(svc, worker, queue), vf.ask("count")
        print(f"statements per lifecycle: ours {ours_n}, viewflow {vf_n['statements']}", flush=True)
        ratios, rates, cpus = [], [], []
        for r in range(args.rounds):
            cpu0 = time.process_time()
            ours = ours_round(svc, worker, queue, args.duration)
            ours_cpu = (time.process_time() - cpu0) / len(ours["create"])
            theirs = vf.ask(f"run {args.duration}")
            t = theirs["times"]
            vf_cpu = theirs["cpu"] / len(t["create"])
            ours_life = statistics.median(sum(x) for x in zip(*(ours[s] for s in STEPS), strict=True))
            vf_life = statistics.median(sum(x) for x in zip(*t.values(), strict=True))
            rates.append((1 / ours_life, 1 / vf_life))
            ratios.append(vf_life / ours_life)
            cpus.append((ours_cpu, vf_cpu))
            print(
                f"  round {r + 1}: ours {1 / ours_life:.1f}/s ({len(ours['create'])} lifecycles, CPU "
                f"{ours_cpu * 1000:.1f} ms each) vs viewflow {1 / vf_life:.1f}/s ({len(t['create'])}, CPU "
                f"{vf_cpu * 1000:.1f} ms) = {ratios[-1]:.2f}x; "
                + ", ".join(f"{s} {statistics.median(ours[s]) * 1000:.1f} ms" for s in STEPS)  # our steps' medians
                + "; viewflow "
                + ", ".join(f"{s} {statistics.median(v) * 1000:.1f} ms" for s, v in t.items())
                + f"; {load()}",
                flush=True,
            )
    finally:
        vf.close()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database(server, args.viewflow_db)
    ratio = statistics.median(ratios)
    ours_rate, vf_rate = statistics.median(o for o, _ in rates), statistics.median(v for _, v in rates)
    rows.append(
        (
            "one lifecycle on one thread: ours (create → claim-next → start → complete, services) vs "
            f"django-viewflow {version} (start → assign → start+complete)",
            f"{ours_rate:.1f}/s vs {vf_rate:.1f}/s = **{ratio:.2f}x** "
            f"(median of {args.rounds}: {', '.join(f'{x:.2f}' for x in ratios)}; {load()})",
            "≥ 10x",
            "met" if ratio >= 10 else "missed",
        )
    )
    rows.append(
        (
            "CPU per lifecycle (this process / viewflow's), statements per lifecycle",
            f"{statistics.median(c for c, _ in cpus) * 1000:.1f} ms vs "
            f"{statistics.median(c for _, c in cpus) * 1000:.1f} ms; {ours_n} vs {vf_n['statements']} statements",
            "",
            "",
        )
    )
    print_table(rows, t_start)
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(bench_main(parse_args(), run))
