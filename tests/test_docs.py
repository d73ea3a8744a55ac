"""The project's documents live in the project.

A clone has only what is tracked, so no tracked file outside `tests/` may cite a
document the clone does not have: nothing under `../shared/`, no `*.md` name that
is not a file of the repository, and every relative link of a tracked Markdown file
(README.md, docs/*.md, sdk/README.md) must reach a tracked file (and, with `#anchor`,
one of its headings). `docs/api.md` names every route the API serves.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Files other work is rewriting right now, which still cite a document outside the
# repository; their authors fix the citation as part of that work. Remove an entry
# once its file no longer cites (the test then holds it like every other file).
PENDING: dict[str, str] = {}

# A name ending in .md that does not continue a longer path, URL or word.
MD_NAME = re.compile(r"(?<![\w./~-])((?:\.{1,2}/)*[\w][\w./-]*\.md)(?![\w-])")
# Inline links and images `[text](target "title")` and reference definitions `[x]: target`.
MD_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$", re.M)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def tracked_files() -> list[str]:
    """Paths of the files a clone has (git's index), or of the working tree outside git."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        ).stdout.decode()
        return [p for p in out.split("\0") if p and (ROOT / p).is_file()]
    except (OSError, subprocess.SubprocessError):
        skip = {".git", ".venv", "node_modules", "__pycache__"}
        return [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and ".egg-info" not in str(p)
        ]


def text_of(path: str) -> str | None:
    data = (ROOT / path).read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_pending(path: str) -> bool:
    return path in PENDING or any(path.startswith(p.removesuffix(".py") + "/") for p in PENDING)


FILES = tracked_files()
CHECKED = [p for p in FILES if not p.startswith("tests/") and not is_pending(p)]
MARKDOWN = [p for p in CHECKED if p.endswith(".md")]
BASENAMES = {Path(p).name for p in FILES}


def inside_repository(path: Path) -> bool:
    try:
        path.resolve().relative_to(ROOT)
    except ValueError:
        return False
    return True


def names_a_repository_file(source: str, name: str) -> bool:
    """`name` (as written in `source`) is a file of the repository: relative to the file,
    relative to the root, or a bare file name that some tracked file has."""
    for base in (ROOT / source).parent, ROOT:
        candidate = base / name
        if inside_repository(candidate) and candidate.is_file():
            return True
    return "/" not in name and name in BASENAMES


def without_code_blocks(text: str) -> str:
    """Markdown with fenced code blocks blanked (their brackets are not links)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else line)
    return "\n".join(out)


def heading_slugs(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings."""
    slugs: set[str] = set()
    for line in without_code_blocks(text).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            title = re.sub(r"[`*_]|<[^>]+>", "", m.group(1)).strip().lower()
            slugs.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", title)))
    return slugs


def test_the_files_are_found():
    assert "README.md" in FILES and "docs/api.md" in FILES, "the repository's own documents are missing"
    assert len(CHECKED) > 50


@pytest.mark.parametrize("path", CHECKED)
def test_no_citation_of_a_document_outside_the_repository(path):
    text = text_of(path)
    if text is None:
        return  # binary
    problems = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if "../shared/" in line:
            problems.append(f"{path}:{lineno}: cites ../shared/ (not in a clone)")
        for m in MD_NAME.finditer(line):
            name = m.group(1)
            if not names_a_repository_file(path, name):
                problems.append(f"{path}:{lineno}: {name} is not a file of the repository")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", MARKDOWN)
def test_relative_markdown_links_resolve(path):
    text = text_of(path)
    body = without_code_blocks(text)
    problems = []
    for m in MD_LINK.finditer(body):
        target = m.group(1) or m.group(2)
        if SCHEME.match(target) or target.startswith("//"):
            continue  # absolute URL
        file_part, _, anchor = target.partition("#")
        if file_part:
            resolved = ((ROOT / path).parent / file_part).resolve()
            if not inside_repository(resolved) or not resolved.exists():
                problems.append(f"{path}: link {target!r} does not reach a file of the repository")
                continue
            rel = str(resolved.relative_to(ROOT))
            if resolved.is_file() and rel not in FILES:
                problems.append(f"{path}: link {target!r} reaches {rel}, which is not tracked")
                continue
        else:
            resolved = ROOT / path
        if anchor and resolved.suffix == ".md" and anchor not in heading_slugs(resolved.read_text("utf-8")):
            problems.append(f"{path}: link {target!r}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not problems, "\n".join(problems)


def test_docs_api_names_every_route():
    """Every method of every route under /api/v1/ appears in docs/api.md as `METHOD /path`,
    with path parameters written as {…}."""
    from api import urls

    doc = re.sub(r"\{[^}/]+\}", "{}", (ROOT / "docs" / "api.md").read_text("utf-8"))
    missing = []
    for pattern in urls.urlpatterns:
        path = "/" + re.sub(r"<[^>]+>", "{}", str(pattern.pattern))
        view = pattern.callback.view_class
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method) and f"`{method.upper()} {path}`" not in doc:
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"docs/api.md does not document: {', '.join(missing)}"
