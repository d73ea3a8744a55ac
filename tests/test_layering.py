"""The layering rule holds: nothing below the services imports a services module, and no
project module is imported lazily to dodge a cycle (scripts/layering.py, which CI runs here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _scan():
    spec = importlib.util.spec_from_file_location("layering", ROOT / "scripts" / "layering.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.scan()


def test_no_import_points_back_up_into_services_and_no_lazy_project_imports():
    upward, lazy = _scan()
    assert upward == []
    assert lazy == []
