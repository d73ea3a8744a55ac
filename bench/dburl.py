"""`DATABASES["default"]` from a postgres:// URL, for the benches' own Django apps (bench/naive,
bench/viewflow), which run without the project's settings (and viewflow's in another venv)."""

from urllib.parse import urlsplit


def django_database(url: str) -> dict:
    db = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": db.path.lstrip("/"),
        "USER": db.username or "postgres",
        "PASSWORD": db.password or "",
        "HOST": db.hostname or "127.0.0.1",
        "PORT": db.port or 5432,
        "CONN_MAX_AGE": 600,  # persistent, as the project's server in the benches (DB_CONN_MAX_AGE)
    }
