"""Workstream settings: everything that differs between deployments comes from
the environment (twelve-factor); features and knobs come from the validated
configuration file named by WORKSTREAM_CONFIG (default config/workstream.yaml).
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import contextkeys, keys, wsconfig
from directory import ldap_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: str = "False") -> bool:
    value = env(name, default).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: str) -> int:
    try:
        return int(env(name, default))
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {env(name)!r}") from None


def envsecret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = env(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return env(name, default)


DEBUG = envbool("DEBUG", "False")
# The test suite: pytest (8.2 and later) sets PYTEST_VERSION for its run and the processes it starts.
TESTING = bool(env("PYTEST_VERSION"))
# Deployments set SECRET_KEY (or SECRET_KEY_FILE). The development key is for `make run` (DEBUG) and
# the test suite only: anywhere else a missing, published or weak key (or JWT_SIGNING_KEY) stops
# start-up, naming the variable (config/keys.py).
SECRET_KEY = envsecret("SECRET_KEY") or (keys.DEV_SECRET_KEY if DEBUG or TESTING else "")
JWT_SIGNING_KEY = envsecret("JWT_SIGNING_KEY")
if not (DEBUG or TESTING):
    _refusal = keys.refusal("SECRET_KEY", SECRET_KEY) or (
        JWT_SIGNING_KEY and keys.refusal("JWT_SIGNING_KEY", JWT_SIGNING_KEY)
    )
    if _refusal:
        raise ImproperlyConfigured(_refusal)
ALLOWED_HOSTS = [
    h.strip() for h in env("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

# The feature/knob file: loaded and validated once, here, so a bad file stops start-up.
WORKSTREAM = wsconfig.load(env("WORKSTREAM_CONFIG") or None)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework_api_key",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "api",
    "audit",
    "archive",  # terminal items past the retention (manage.py archive_items)
    "events",
    "directory",
    "distribution",
    "workitems",
    "notifications",
    "csp",
    "console",
    "stats",
    "grpcapi",  # the gRPC API (manage.py grpc_serve)
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "config.db_router.FreshReadsMiddleware",  # each request its own read-your-writes scope (replicas)
    "config.observability.RequestIdMiddleware",
    "api.access_log.AccessLogMiddleware",  # every API request and its outcome (refusals too)
    "api.toggles.RestApiToggleMiddleware",
    "api.middleware.BodySizeLimitMiddleware",
    # rateLimits.anonymousPerIp on API requests that do not authenticate, counted before DRF runs.
    "api.throttle_middleware.AnonymousRateMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # CONTENT_SECURITY_POLICY below
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite is only the embedded default for `make run`; everything else (tests,
# CI, deployments) sets DATABASE_URL to PostgreSQL.
DATABASE_URL = env("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", "60"))}
# Least privilege (README "Security"): DATABASE_URL is then a runtime role that owns nothing, and
# DATABASE_MIGRATE_URL the role that owns the tables, the `migrate` alias of
# `manage.py migrate --database migrate` and `manage.py db_roles` (which grants the runtime role).
DATABASE_MIGRATE_URL = env("DATABASE_MIGRATE_URL")
if DATABASE_MIGRATE_URL:
    DATABASES["migrate"] = dj_database_url.parse(DATABASE_MIGRATE_URL, conn_max_age=0)
    DATABASES["migrate"]["TEST"] = {"MIRROR": "default"}  # a test run has one database
# Read replicas (README "Read replicas"; config/db_router.py): DATABASE_REPLICA_URL, one URL or
# several separated by commas, are PostgreSQL streaming replicas of DATABASE_URL (aliases replica,
# replica2, …). Reporting reads (statistics, dashboards, audit search) go to one that is at most
# DATABASE_REPLICA_MAX_LAG seconds behind; everything else, and any read past that, to the primary.
DATABASE_REPLICAS: list[str] = []
for _n, _url in enumerate(u.strip() for u in env("DATABASE_REPLICA_URL").split(",") if u.strip()):
    _alias = "replica" if _n == 0 else f"replica{_n + 1}"
    DATABASES[_alias] = dj_database_url.parse(_url, conn_max_age=envint("DB_CONN_MAX_AGE", "60"))
    if {DATABASES[_alias]["ENGINE"], DATABASES["default"]["ENGINE"]} != {"django.db.backends.postgresql"}:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL: PostgreSQL replicas of a PostgreSQL DATABASE_URL")
    DATABASES[_alias]["OPTIONS"] = {"connect_timeout": envint("DATABASE_REPLICA_CONNECT_TIMEOUT", "2")}
    DATABASES[_alias]["TEST"] = {"MIRROR": "default"}  # a test run has one database
    DATABASE_REPLICAS.append(_alias)
DATABASE_REPLICA_MAX_LAG = envint("DATABASE_REPLICA_MAX_LAG", "10")
DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
for _database in DATABASES.values():
    if _database["ENGINE"] == "django.db.backends.postgresql":
        # No `SELECT 1` round trip before each request on a persistent connection: a connection
        # that broke fails the request's first statement and Django drops it at the request's end
        # (close_if_unusable_or_obsolete). DB_CONN_HEALTH_CHECKS=true brings the check back.
        _database["CONN_HEALTH_CHECKS"] = envbool("DB_CONN_HEALTH_CHECKS", "false")
        # OLTP connections: PostgreSQL's JIT compiles a plan whose cost estimate passes
        # jit_above_cost, which costs a request 1-2 s and never pays back on a page of 20 rows.
        # Prepared statements (below) keep one generic plan per connection: by default PostgreSQL
        # plans a statement with array or subquery parameters afresh on every execution (its
        # generic plan's estimate looks worse than the custom ones), and under load planning the
        # hot lock queries cost 15 times their execution (bench/load: 193 s of planning against
        # 13 s of execution in a 1,000-user minute). Only prepared statements (sqlcache's) are
        # affected; Django's own client-bound queries are planned each time as before.
        # DB_PLAN_CACHE_MODE=auto restores PostgreSQL's choice.
        _plan_cache = env("DB_PLAN_CACHE_MODE", "force_generic_plan")
        if _plan_cache not in ("auto", "force_generic_plan", "force_custom_plan"):
            raise ImproperlyConfigured(
                f"DB_PLAN_CACHE_MODE={_plan_cache!r}: one of auto, force_generic_plan, force_custom_plan"
            )
        _database.setdefault("OPTIONS", {})["options"] = f"-c jit=off -c plan_cache_mode={_plan_cache}"
        # Prepared statements for the hot path's compiled queries (config.sqlcache): PostgreSQL
        # parses and plans each once per connection. Only what sqlcache runs through its
        # server-side-binding cursor is prepared (Django's own cursors bind on the client, and
        # prepare nothing). DB_PREPARED_STATEMENTS=false behind a pooler in transaction mode
        # that does not keep prepared statements across server connections (PgBouncer < 1.21).
        if envbool("DB_PREPARED_STATEMENTS", "true"):
            _database["OPTIONS"]["prepare_threshold"] = 2**31 - 1  # never by count: sqlcache asks
        # A bounded pool per process (psycopg_pool, Django's `pool` option): DB_POOL_MAX_SIZE
        # connections at most, shared by the process's threads, instead of one persistent
        # connection per thread (gthread's 20 threads: 20 connections a process). Off (0) by
        # default; docs/performance.md compares the two under load.
        _pool_max = envint("DB_POOL_MAX_SIZE", "0")
        if _pool_max > 0:
            _database["CONN_MAX_AGE"] = 0  # the pool keeps the connections
            _database["OPTIONS"]["pool"] = {
                "min_size": min(envint("DB_POOL_MIN_SIZE", "1"), _pool_max),
                "max_size": _pool_max,
                "timeout": envint("DB_POOL_TIMEOUT", "10"),
            }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = env("AMQP_URL", env("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//"))

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", "workstream"),
    }
    if env("CACHE_BACKEND", "redis") == "redis"
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# The browser console (console/): session login for workers, supervisors and admins.
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "console:login"

# Content-Security-Policy (django-csp): every asset comes from this origin and nothing runs or
# styles inline, so an injected <script> or style attribute does nothing. The console keeps to it
# (htmx's config in a meta tag, chart data in JSON blocks read by console.js); the API viewers'
# bundles (Swagger UI, ReDoc) inject their own <style> elements and relax style-src on their
# pages alone (config/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# whitenoise warns on every start when the folder is missing (before the first collectstatic)
with contextlib.suppress(OSError):
    STATIC_ROOT.mkdir(exist_ok=True)
# whitenoise serves the admin's and Swagger/Redoc's files from the app itself (no CDN, no proxy needed).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DATA_UPLOAD_MAX_MEMORY_SIZE = WORKSTREAM.performance.maxBodyBytes

# Celery (Redis broker), at least once: acks_late with reject_on_worker_lost (a killed child's
# task is redelivered, not acked), prefetch 1, and a Redis visibility timeout longer than any
# task's time limit (an unacked task comes back only after it).
CELERY_BROKER_URL = env("BROKER_URL", env("CELERY_BROKER_URL", REDIS_URL))
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "False")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", "300")
_VISIBILITY = envint("CELERY_VISIBILITY_TIMEOUT", "3600")  # longer than any task time limit
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _VISIBILITY}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": _VISIBILITY}
CELERY_VISIBILITY_TIMEOUT = _VISIBILITY
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "workstream")  # tests give theirs a unique name
CELERY_BEAT_SCHEDULE: dict = {
    "expire-reservations": {"task": "workitems.expire_reservations", "schedule": 10.0},
    "sla-scan": {"task": "workitems.sla_scan", "schedule": float(WORKSTREAM.sla.scanSeconds)},
    "capacity-check": {"task": "workitems.capacity_check", "schedule": float(WORKSTREAM.capacity.checkSeconds)},
    "purge-idempotency-keys": {"task": "api.purge_idempotency_keys", "schedule": 3600.0},
    # Safety nets for the on-commit nudges (events/nudge.py): a lost nudge costs seconds, not events.
    "events-relay-outbox": {"task": "events.relay_outbox", "schedule": 10.0},
    "events-deliver-webhooks": {"task": "events.deliver_webhooks", "schedule": 5.0},
    "events-purge-published": {"task": "events.purge_published", "schedule": 24 * 3600.0},
    "audit-checkpoint": {"task": "audit.checkpoint", "schedule": 3600.0},
    # Monthly partitions created ahead, old outbox months dropped (config/partitions.py).
    "partitions-maintain": {"task": "audit.maintain_partitions", "schedule": 6 * 3600.0},
    "audit-purge-access-log": {"task": "audit.purge_access_log", "schedule": 3600.0},
    # Moves terminal items past archive.retentionDays to the archive tables; a no-op unless archive.enabled.
    "archive-items": {"task": "archive.archive_items", "schedule": 24 * 3600.0},
    # Reads new outbox rows into notifications and sends what is due (notifications/notifier.py).
    "notifications-run": {"task": "notifications.run", "schedule": float(WORKSTREAM.notifications.pollSeconds)},
    "stats-rollup": {"task": "stats.rollup", "schedule": 5.0},  # stats.tasks.ROLLUP_SECONDS: bounds pending deltas
    # Queues' daily summaries, once the configured time of day has come (notifications/summary.py).
    "notifications-daily-summary": {
        "task": "notifications.daily_summary",
        "schedule": float(WORKSTREAM.notifications.summary.checkSeconds),
    },
}
# Email notifications: Django's SMTP backend; the password from the environment or a secret file.
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = env("EMAIL_USER")
EMAIL_HOST_PASSWORD = envsecret("EMAIL_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "False")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "10")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "workstream@localhost")
# Signs deliveries to work items' callback_url (Standard Webhooks, whsec_<base64>); derived from
# SECRET_KEY when unset. Engines verify callbacks with it.
CALLBACK_SIGNING_SECRET = envsecret("CALLBACK_SIGNING_SECRET")
# Signs the audit checkpoints (audit.services.audit_checkpoint); derived from SECRET_KEY when unset.
AUDIT_CHECKPOINT_KEY = envsecret("AUDIT_CHECKPOINT_KEY")
# The key ring of queues' encrypted_keys (config/contextkeys.py): unset, no queue may encrypt;
# malformed, start-up stops.
CONTEXT_KEY_RING = contextkeys.parse(envsecret(contextkeys.VARIABLE))

LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = env("LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.context.RequestIdFilter"},
        # trace_id / span_id of the current span (config/tracing.py; empty with tracing off)
        "trace": {"()": "config.tracing.TraceContextFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(trace_id)s %(span_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": sys.stderr,
            "formatter": LOG_FORMAT if LOG_FORMAT in ("json", "plain") else "json",
            "filters": ["request_id", "trace"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
    },
}

AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username/IP before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# LDAP / Active Directory login and sync (README "LDAP / Active Directory"; directory/ldap_config.py):
# on only when AUTH_LDAP_SERVER_URI is set. Adds django-auth-ldap's AUTH_LDAP_* and WORKSTREAM_LDAP;
# the directory backend goes after axes (lockouts first) and before the local passwords.
_LDAP = ldap_config.from_environment(os.environ)
globals().update(_LDAP)
if _LDAP:
    AUTHENTICATION_BACKENDS.insert(1, "directory.ldap_backend.WorkstreamLDAPBackend")
    if _LDAP["WORKSTREAM_LDAP"]["sync_interval_minutes"]:
        CELERY_BEAT_SCHEDULE["directory-sync"] = {
            "task": "directory.sync_directory",
            "schedule": _LDAP["WORKSTREAM_LDAP"]["sync_interval_minutes"] * 60.0,
        }
# Scheduled absences hand their held items over when they begin.
CELERY_BEAT_SCHEDULE["directory-availability"] = {"task": "directory.availability_sweep", "schedule": 60.0}
# Temporary platform roles start and end (directory.services.platform_role_grants_apply).
CELERY_BEAT_SCHEDULE["directory-role-grants"] = {"task": "directory.role_grants_apply", "schedule": 60.0}

# Brute-force protection on password logins (the token endpoint and the admin).
AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "10")
AXES_COOLOFF_TIME = envint("AXES_COOLOFF_MINUTES", "15") / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # the token view reports its logins to axes (api/auth_views.py)
# The address the throttles count too: REMOTE_ADDR, X-Forwarded-For only behind rateLimits.trustedProxies.
AXES_CLIENT_IP_CALLABLE = "api.throttling.client_ip"
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_ENABLED = envbool("AXES_ENABLED", "True")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Bearer tokens of the configured OIDC provider (oidc: in the configuration file); off by default.
        "api.oidc.OIDCAuthentication",
        # JWT first, so a request without credentials gets 401 with WWW-Authenticate: Bearer.
        "api.authentication.JWTAuthentication",
        "api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttling.ClientRateThrottle"],
    # DRF's JSON parser plus nesting, number and text checks (api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser"],
    # The browsable page for browsers' successful GETs; errors are problem JSON always (api/renderers.py).
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "api.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "api.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # ISO 8601 in the current time zone (UTC), +00:00 written as Z: what config.timefmt.isoformat_z
    # writes everywhere else (tests/config/test_timefmt.py holds the two together).
    "DATETIME_FORMAT": "iso-8601",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=envint("JWT_ACCESS_MINUTES", "15")),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=envint("JWT_REFRESH_HOURS", "24")),
    "SIGNING_KEY": JWT_SIGNING_KEY or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    "TOKEN_REFRESH_SERIALIZER": "api.authentication.TokenRefreshSerializer",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Workstream API",
    "DESCRIPTION": "Work items for people: who may and who should do each one, tracked, audited and evented. "
    "Errors are RFC 9457 problem details.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "workitems.api.openapi.per_action_operations",
        "api.schema.closed_request_bodies",
    ],
    "SECURITY": [{"jwtAuth": []}, {"ApiKeyAuth": []}],
    "ENUM_NAME_OVERRIDES": {
        "ItemStrategyEnum": "workitems.api.serializers.ITEM_STRATEGY_CHOICES",
        "QueueStrategyEnum": "workitems.api.queue_views.QUEUE_STRATEGY_CHOICES",
        "PlatformRolesEnum": "directory.roles.ROLES",  # a user's platform_roles, a queue's sensitive_roles
        "CaseStateEnum": "workitems.models.CaseState",  # a case's open/closed (an item's state is StateEnum)
    },
}

PROMETHEUS_EXPORT_MIGRATIONS = False
# /metrics (config/observability.py): with METRICS_TOKEN set, a scrape must send it as a bearer token;
# without one the endpoint answers 403 unless METRICS_PUBLIC, which is on by default only under DEBUG
# (`make run`) and the test suite.
METRICS_TOKEN = envsecret("METRICS_TOKEN")
METRICS_PUBLIC = envbool("METRICS_PUBLIC", "true" if DEBUG or TESTING else "false")
if keys.token_refusal("METRICS_TOKEN", METRICS_TOKEN):
    raise ImproperlyConfigured(keys.token_refusal("METRICS_TOKEN", METRICS_TOKEN))
