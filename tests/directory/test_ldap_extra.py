"""LDAP is an optional extra (requirements-ldap.txt): without python-ldap and django-auth-ldap
everything but the LDAP backend imports and `manage.py check` passes; with AUTH_LDAP_SERVER_URI
set and the extra missing, start-up stops with a message naming the variable and the fix.

The extra is installed for the suite, so each test runs a fresh interpreter in which
`import ldap` and `import django_auth_ldap` fail as they do where the extra is absent
(a `None` in sys.modules makes the import raise ImportError). `make run` proves the same
in a real venv without them (.ci/smoke_make_run.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ("api", "audit", "config", "directory", "distribution", "events", "workitems")
NEEDS_THE_EXTRA = {"directory.ldap_backend"}  # django-auth-ldap's backend subclass: loaded only when LDAP is on

WITHOUT_THE_EXTRA = """
import sys
for name in ("ldap", "django_auth_ldap"):
    sys.modules[name] = None  # `import ldap` now raises ImportError, as without the extra
"""


def run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_LDAP_")}
    environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CACHE_BACKEND="locmem",
        CELERY_TASK_ALWAYS_EAGER="true",
        LOG_LEVEL="WARNING",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_EXTRA + code],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_without_the_extra_every_other_module_imports_and_check_passes(tmp_path):
    result = run(
        f"""
import importlib, pkgutil
import django
django.setup()
imported = []
for app in {APPS!r}:
    package = importlib.import_module(app)
    for info in pkgutil.walk_packages(package.__path__, app + "."):
        if info.name not in {NEEDS_THE_EXTRA!r}:
            importlib.import_module(info.name)
            imported.append(info.name)
assert "ldap" not in sys.modules or sys.modules["ldap"] is None
from django.core.management import call_command
call_command("check")
print(len(imported), "modules")
""",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-2]) > 50, result.stdout  # the walk did reach the code
    assert "System check identified no issues" in result.stdout


def test_the_blocker_is_real(tmp_path):
    """The one module that needs the extra fails to import in that interpreter."""
    result = run("import django; django.setup(); import directory.ldap_backend", tmp_path)
    assert result.returncode != 0
    assert "django_auth_ldap" in result.stderr


def test_ldap_on_without_the_extra_stops_start_up_with_the_fix(tmp_path):
    result = run(
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', 'check'])\n",
        tmp_path,
        AUTH_LDAP_SERVER_URI="ldap://127.0.0.1:389",
        AUTH_LDAP_USER_SEARCH_BASE="ou=people,dc=example,dc=org",
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("directory.ldap_config.LdapConfigError: AUTH_LDAP_SERVER_URI is set"), result.stderr
    assert "pip install -r requirements-ldap.txt" in last
