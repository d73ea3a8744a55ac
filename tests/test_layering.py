"""The layering rule holds: nothing below the services imports a services module, and no
project module is imported lazily to dodge a cycle (scripts/layering.py, which CI runs here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]


def _layering():
    spec = importlib.util.spec_from_file_location("layering", ROOT / "scripts" / "layering.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_points_back_up_into_services_and_no_lazy_project_imports():
    upward, lazy = _layering().scan()
    assert upward == []
    assert lazy == []


def test_the_scan_reads_every_project_app():
    """Every installed app that lives in this repository (and config/) is scanned."""
    project = {name.split(".")[0] for name in settings.INSTALLED_APPS if (ROOT / name.split(".")[0]).is_dir()}
    assert {"archive", "console", "grpcapi", "notifications", "stats"} <= project  # the check can fail
    assert project | {"config"} <= _layering().APPS
