# syntax=docker/dockerfile:1
# Workstream: one image for every process (web, Celery worker, Celery beat, migrate).
#
#   docker build -t workstream .
#   docker run -p 8000:8000 -e DATABASE_URL=postgres://... -e SECRET_KEY=... workstream
#
# The default command serves config.wsgi with gunicorn on 0.0.0.0:8000. Override
# it for the other processes (docker-compose.yml does):
#   celery -A config worker -l info
#   celery -A config beat -l info --schedule /tmp/celerybeat-schedule   (/app is read-only for the app user)
#   python manage.py migrate --no-input
#
# Environment (read by config/settings.py; nothing secret is baked into the image):
#   DATABASE_URL          postgres://user:pass@host:5432/db. Required here: the SQLite
#                         fallback is for `make run` only (and /app is not writable).
#   SECRET_KEY            Django secret key; or SECRET_KEY_FILE, a path to a file holding it.
#   ALLOWED_HOSTS         comma-separated host names (default localhost,127.0.0.1,[::1],testserver).
#                         Keep 127.0.0.1 in it: the HEALTHCHECK below asks for http://127.0.0.1:8000.
#   CSRF_TRUSTED_ORIGINS  comma-separated origins, e.g. https://workstream.example.com
#   DEBUG                 true/false (default false)
#   REDIS_URL             cache (default redis://127.0.0.1:6379/0); CACHE_BACKEND=locmem to do without
#   BROKER_URL            Celery broker (default: REDIS_URL)
#   AMQP_URL              RabbitMQ event bus (default amqp://guest:guest@127.0.0.1:5672//)
#   WORKSTREAM_CONFIG     features/knobs file (default /app/config/workstream.yaml)
#   LOG_LEVEL, LOG_FORMAT INFO / json (or plain)
#   DB_CONN_MAX_AGE       seconds a database connection is kept (default 60)
#   CELERY_TASK_TIME_LIMIT, CELERY_VISIBILITY_TIMEOUT   seconds (defaults 300, 3600)
# gunicorn reads these itself:
#   WEB_CONCURRENCY       number of gunicorn worker processes (default 2 here)
#   GUNICORN_CMD_ARGS     any further gunicorn options, e.g. "--threads 4 --timeout 60"; behind a
#                         proxy, "--forwarded-allow-ips <proxy address>" (gunicorn trusts only 127.0.0.1)

# --- builder: the dependencies, in a virtualenv that the final stage copies whole ---
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Every pinned dependency ships a manylinux wheel (psycopg[binary] bundles libpq), so no
# compiler is needed; a dependency that must compile would add build-essential here only.
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

# --- final: the runtime, without pip caches or build tools ---
FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    WEB_CONCURRENCY=2

# A fixed numeric uid/gid, so that `runAsNonRoot` (Kubernetes) can check it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 workstream \
    && useradd --system --uid 10001 --gid workstream --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin workstream

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root: the app user can read it but not change it.
COPY . .
# Static files are collected at build time (no database or broker is needed for it).
RUN python manage.py collectstatic --no-input --verbosity 0

USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers); /health/ready also checks PostgreSQL, Redis and RabbitMQ.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

# Exec form: gunicorn is PID 1 and gets SIGTERM directly for a graceful stop.
# /dev/shm for the worker heartbeat files: a container's overlay filesystem can stall them.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/dev/shm", \
     "--access-logfile", "-"]
