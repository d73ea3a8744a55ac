"""Settings of the viewflow side of bench/viewflow_lifecycle.py (its own venv, its own
database: VIEWFLOW_DATABASE_URL)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dburl import django_database  # noqa: E402  (bench/dburl.py)

SECRET_KEY = "viewflow-bench-only-" + "x" * 40
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "viewflow",
    "viewflow.workflow",
    "vfbench",
]
DATABASES = {"default": django_database(os.environ["VIEWFLOW_DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
