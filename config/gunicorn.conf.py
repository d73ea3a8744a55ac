"""gunicorn settings of the web process: `gunicorn config.wsgi:application -c config/gunicorn.conf.py`
(the Dockerfile's CMD and docker-compose.yml's web service). Everything else stays on the command
line, in WEB_CONCURRENCY and in GUNICORN_CMD_ARGS.

Only the Prometheus bookkeeping lives here. Each worker is a process of its own; without
prometheus_client's multiprocess mode a scrape of /metrics would show the counters of the
one worker that happened to answer it. With it, every worker writes its metrics to files in
PROMETHEUS_MULTIPROC_DIR and a scrape adds up the files of all of them
(config/observability.py `metrics_registry`):

- PROMETHEUS_MULTIPROC_DIR names the directory (a tmpfs such as /dev/shm/... is best). When it
  is unset, a fresh temporary directory is made here, set for the workers, and removed at exit.
- `on_starting` (the master, before the first worker) empties the directory: files of an
  earlier run would otherwise be added to this one's counts.
- `child_exit` drops the live-gauge files of a worker that exited or was recycled (its
  counters stay: they are part of the server's totals).

This file is read by the master before any worker starts, so the variable is in the
environment every worker inherits, before any of them imports prometheus_client.
"""

from __future__ import annotations

import os as _os
import shutil as _shutil
import tempfile as _tempfile
from pathlib import Path as _Path

# gunicorn treats this module's public names as settings: helpers carry a leading underscore.
_MADE_HERE = not _os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _MADE_HERE:
    _os.environ["PROMETHEUS_MULTIPROC_DIR"] = _tempfile.mkdtemp(prefix="workstream-metrics-")
_METRICS_DIR = _Path(_os.environ["PROMETHEUS_MULTIPROC_DIR"])


def on_starting(server):
    _METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for stale in _METRICS_DIR.glob("*.db"):
        stale.unlink()
    server.log.info("Prometheus multiprocess directory: %s", _METRICS_DIR)


def child_exit(server, worker):
    # Imported here, in the master and after the variable is set: a prometheus_client imported
    # before it would keep in-memory values, and the workers forked from it would inherit them.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_METRICS_DIR))


def on_exit(server):
    if _MADE_HERE:
        _shutil.rmtree(_METRICS_DIR, ignore_errors=True)
