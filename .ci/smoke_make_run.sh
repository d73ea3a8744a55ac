#!/usr/bin/env bash
# CI: the README's first command works on this clone with Python 3.11 and nothing else.
#
# Runs `make run` in the background in a virtualenv of its own (exactly requirements.txt,
# wheels only: PIP_ONLY_BINARY) on a free port, with Redis, the Celery broker and RabbitMQ
# pointed at a closed port (make run must not need them, and /health/ready must not ask
# them); waits for /health/ready, logs in as the demo service client (svc / demo), creates
# one work item in the demo queue `claims` (201), then stops the server. Any failure exits
# non-zero and prints the server's log.
#
#   .ci/smoke_make_run.sh          # SMOKE_PORT, SMOKE_VENV, SMOKE_TIMEOUT (seconds) to override
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PORT=${SMOKE_PORT:-$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
TIMEOUT=${SMOKE_TIMEOUT:-120}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/workstream-smoke.XXXXXX")
VENV_DIR=${SMOKE_VENV:-$WORK/venv}
LOG=$WORK/make-run.log
CLOSED=127.0.0.1:1
had_db=$([ -e db.sqlite3 ] && echo yes || echo no)
pid=""

stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    # make, manage.py runserver and its autoreloader child share one process group (setsid)
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}

finish() {
  status=$?
  stop
  if [ "$status" -ne 0 ]; then
    echo "smoke: FAILED (exit $status); the server's log ($LOG):" >&2
    tail -n 200 "$LOG" >&2 || true
  fi
  [ "$had_db" = no ] && rm -f db.sqlite3  # leave the clone as it was
  rm -rf "$WORK"
  exit "$status"
}
trap finish EXIT

echo "smoke: make run VENV=$VENV_DIR PORT=$PORT (Redis, broker and RabbitMQ at $CLOSED)"
setsid env \
  PIP_ONLY_BINARY=:all: \
  REDIS_URL="redis://$CLOSED/0" BROKER_URL="redis://$CLOSED/0" AMQP_URL="amqp://guest:guest@$CLOSED//" \
  make run VENV="$VENV_DIR" PORT="$PORT" PYTHON="$PYTHON" >"$LOG" 2>&1 </dev/null &
pid=$!

SMOKE_BASE="http://127.0.0.1:$PORT" SMOKE_TIMEOUT="$TIMEOUT" SMOKE_PID="$pid" "$PYTHON" - <<'PY'
"""Wait for /health/ready, then one API create as the demo service client."""
import json
import os
import sys
import time
import urllib.error
import urllib.request

base, deadline = os.environ["SMOKE_BASE"], time.monotonic() + float(os.environ["SMOKE_TIMEOUT"])
pid = int(os.environ["SMOKE_PID"])


def call(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def fail(message):
    print(f"smoke: {message}", file=sys.stderr)
    sys.exit(1)


status, body = None, None
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        fail("`make run` exited before the server was ready")
    try:
        status, body = call("GET", "/health/ready")
        if status == 200:
            break
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        pass  # not listening yet: installing, migrating or loading the demo data
    time.sleep(1)
else:
    fail(f"/health/ready did not answer 200 within {os.environ['SMOKE_TIMEOUT']} s (last: {status} {body})")
print(f"smoke: /health/ready 200 {json.dumps(body['checks'])}")
if set(body["checks"]) != {"database"}:
    fail(f"under make run readiness must check the database only, it checked {sorted(body['checks'])}")

status, body = call("POST", "/api/v1/auth/token", {"username": "svc", "password": "demo"})
if status != 200:
    fail(f"POST /api/v1/auth/token as svc: {status} {body}")
item = {"workflow_id": "ci-smoke", "task_name": "assess-claim", "queue": "claims", "priority": 50}
status, body = call("POST", "/api/v1/workitems", item, token=body["access"])
if status != 201:
    fail(f"POST /api/v1/workitems: expected 201, got {status} {body}")
print(f"smoke: POST /api/v1/workitems 201 id={body['id']} state={body['state']} queue={body['queue']}")
PY

stop
echo "smoke: ok, server stopped"
