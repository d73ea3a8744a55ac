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
#   python manage.py migrate --database migrate --no-input && python manage.py db_roles --create
#   python manage.py relay_outbox --metrics-port 9101            (the outbox relay)
#   python manage.py consume_commands --metrics-port 9102        (inbound commands)
#   python manage.py consume_notifications --metrics-port 9103   (the notification consumer)
# deploy/k8s/ runs each as a Deployment (docs/operations.md).
#
# Environment (read by config/settings.py; nothing secret is baked into the image):
#   DATABASE_URL          postgres://user:pass@host:5432/db. Required here: the SQLite
#                         fallback is for `make run` only (and /app is not writable).
#   SECRET_KEY            Django secret key (required: at least 50 random characters; a missing,
#                         published or weak key stops start-up); or SECRET_KEY_FILE, a file holding it.
#   JWT_SIGNING_KEY       signs access/refresh tokens (default SECRET_KEY); or JWT_SIGNING_KEY_FILE.
#   DATABASE_MIGRATE_URL  the role that owns the tables, for `manage.py migrate --database migrate`
#                         and `manage.py db_roles`; DATABASE_URL is then a runtime role that owns nothing.
#   METRICS_TOKEN         bearer token Prometheus sends to /metrics (or METRICS_TOKEN_FILE); without it
#                         /metrics answers 403 unless METRICS_PUBLIC=true.
#   ALLOWED_HOSTS         comma-separated host names (default localhost,127.0.0.1,[::1],testserver).
#                         Keep 127.0.0.1 in it: the HEALTHCHECK below asks for http://127.0.0.1:8000.
#   CSRF_TRUSTED_ORIGINS  comma-separated origins, e.g. https://workstream.example.com
#   DEBUG                 true/false (default false)
#   REDIS_URL             cache (default redis://127.0.0.1:6379/0); CACHE_BACKEND=locmem to do without
#   BROKER_URL            Celery broker (default: REDIS_URL)
#   AMQP_URL              RabbitMQ event bus (default amqp://guest:guest@127.0.0.1:5672//)
#   WORKSTREAM_CONFIG     features/knobs file (default /app/config/workstream.yaml)
#   LOG_LEVEL, LOG_FORMAT INFO / json (or plain)
#   AUTH_LDAP_SERVER_URI  turns LDAP / Active Directory login and sync on (the image has the extra);
#                         the other AUTH_LDAP_* variables: README, "LDAP / Active Directory"
#   DB_CONN_MAX_AGE       seconds a database connection is kept (default 60)
#   CELERY_TASK_TIME_LIMIT, CELERY_VISIBILITY_TIMEOUT   seconds (defaults 300, 3600)
# gunicorn reads these itself:
#   WEB_CONCURRENCY       number of gunicorn worker processes (default 2 here)
#   PROMETHEUS_MULTIPROC_DIR  the workers' metric files, so /metrics shows every worker (config/gunicorn.conf.py
#                         empties it at start; default: a temporary directory of its own)
#   GUNICORN_CMD_ARGS     any further gunicorn options, e.g. "--threads 4 --timeout 60"; behind a
#                         proxy, "--forwarded-allow-ips <proxy address>" (gunicorn trusts only 127.0.0.1)

# Both stages on the same Debian release (bookworm): python-ldap, compiled in the builder
# against libldap 2.5, loads the same shared libraries in the final image.

# --- builder: the dependencies, in a virtualenv that the final stage copies whole ---
FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler and the OpenLDAP/SASL headers, here only: python-ldap (the LDAP extra,
# requirements-ldap.txt) has no wheel. Every runtime pin ships one (requirements.txt).
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libldap2-dev libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
COPY requirements.txt requirements-ldap.txt /tmp/
# The runtime pins from wheels only (manylinux x86_64, CPython 3.11): tests/deploy/test_image.py
# downloads this very set, so a pin without a wheel for the image fails there, daemon or not.
RUN /opt/venv/bin/pip install --no-cache-dir --only-binary :all: -r /tmp/requirements.txt
# python-ldap built from its source distribution against the headers above (the test builds it the
# same way and checks that every header it includes comes from the packages this stage installs).
RUN /opt/venv/bin/pip install --no-cache-dir --no-binary python-ldap -r /tmp/requirements-ldap.txt

# --- final: the runtime, without pip caches, compilers or headers ---
FROM python:3.11-slim-bookworm AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    WEB_CONCURRENCY=2

# A fixed numeric uid/gid, so that `runAsNonRoot` (Kubernetes) can check it and volumes can be chowned to it.
RUN groupadd --system --gid 10001 workstream \
    && useradd --system --uid 10001 --gid workstream --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin workstream

# python-ldap's shared libraries (libldap/liblber 2.5 and libsasl2; apt brings GnuTLS with them),
# so the image can turn LDAP on with AUTH_LDAP_SERVER_URI alone.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libldap-2.5-0 libsasl2-2 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=builder /opt/venv /opt/venv
# Fails the build if a shared library of the LDAP extra is missing here.
RUN python -c "import ldap, django_auth_ldap.config"
WORKDIR /app
# The code stays owned by root: the app user can read it but not change it.
COPY . .
# Static files are collected at build time (no database or broker is needed for it). Settings
# refuse to load without a signing key outside DEBUG; the build signs nothing, so it gets a
# throwaway random one that lives only in this RUN (no key is baked into the image).
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    python manage.py collectstatic --no-input --verbosity 0

USER 10001:10001
EXPOSE 8000

# Liveness only (the process answers); /health/ready also checks what the configuration uses
# (PostgreSQL; Redis as cache; the Celery broker; RabbitMQ when events are on).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]

# Exec form: gunicorn is PID 1 and gets SIGTERM directly for a graceful stop.
# /dev/shm for the worker heartbeat files: a container's overlay filesystem can stall them.
# No control socket: it would go to $HOME/.gunicorn, and the app user has no home to write to.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/dev/shm", \
     "--no-control-socket", "--access-logfile", "-", "--config", "config/gunicorn.conf.py"]
