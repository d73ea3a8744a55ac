"""Count import edges that break the layering rule, and lazy imports of project modules.

Rule: services may import any app's models, selectors and policy, and other services;
models, selectors, policy and everything in distribution/ never import a services module.
A lazy import (inside a function) of a project module is counted too: none may exist to
dodge a cycle (an AppConfig's `ready()` is exempt: importing there is Django's hook for
work at start-up, once the models are loaded).
Run: python scripts/layering.py [--list]; exit status 1 when any is found.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every project app (a top-level folder with an AppConfig), and config/: a new app is
# watched without touching this list.
APPS = {"config"} | {path.parent.name for path in ROOT.glob("*/apps.py")}
LOWER = ("models.py", "selectors.py", "policy.py", "queues.py", "cases.py", "schemas.py", "snapshots.py")


def is_lower(path: Path) -> bool:
    rel = path.relative_to(ROOT)
    # a services module may share a lower module's name (services/cases.py beside cases.py)
    return rel.parts[0] == "distribution" or (path.name in LOWER and "services" not in rel.parts)


def imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return []


def scan() -> tuple[list[str], list[str]]:
    upward, lazy = [], []
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] not in APPS or "migrations" in rel.parts:
            continue
        tree = ast.parse(path.read_text(), str(rel))
        funcs = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            and not (path.name == "apps.py" and n.name == "ready")
        ]
        inner = {id(n) for f in funcs for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            names = imported(node)
            project = [n for n in names if n.split(".")[0] in APPS]
            if is_lower(path) and any(".services" in f".{n}" for n in project):
                upward.append(f"{rel}:{node.lineno} imports {project[0]}")
            if project and id(node) in inner:
                lazy.append(f"{rel}:{node.lineno} imports {project[0]} inside a function")
    return upward, lazy


if __name__ == "__main__":
    up, lazy = scan()
    print(f"import edges pointing back up into services: {len(up)}")
    print(f"lazy imports of project modules: {len(lazy)}")
    if "--list" in sys.argv:
        print("\n".join(up + lazy))
    sys.exit(1 if up or lazy else 0)
