"""`make run` needs Python 3.11 and nothing else: every runtime dependency, direct or not,
installs from a wheel (no compiler, no system headers), on this machine and on the usual
developer and server platforms. LDAP support, which must compile, is the extra in
requirements-ldap.txt.

pip resolves the real index (`pip install --dry-run --only-binary :all:`, metadata only,
cached), so a new pin that ships only a source distribution fails here.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CP311 = ["--python-version", "3.11", "--implementation", "cp"]
PLATFORMS = {
    "this-machine": [],
    "linux-x86_64": [*CP311, "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64"],
    "linux-aarch64": [*CP311, "--platform", "manylinux2014_aarch64", "--platform", "manylinux_2_28_aarch64"],
    "macos-arm64": [*CP311, "--platform", "macosx_14_0_arm64"],
    "macos-x86_64": [*CP311, "--platform", "macosx_13_0_x86_64"],
}


def pins(path: Path) -> dict[str, str]:
    """name → version of the `name==version` lines of a requirements file (no -r includes)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;]+)", line)
            assert match, f"{path.name}: not an exact pin: {line!r}"
            out[normalise(match.group(1))] = match.group(3)
    return out


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve_wheels_only(requirements: str, platform: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    report = tmp_path / "report.json"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--only-binary",
            ":all:",
            *platform,
            "--report",
            str(report),
            "-r",
            str(ROOT / requirements),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("platform", PLATFORMS.values(), ids=PLATFORMS.keys())
def test_runtime_requirements_install_from_wheels_only(platform, tmp_path):
    result = resolve_wheels_only("requirements.txt", platform, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    chosen = {normalise(item["metadata"]["name"]): item for item in report["install"]}
    for name, version in pins(ROOT / "requirements.txt").items():
        assert chosen[name]["metadata"]["version"] == version, name
    not_wheels = [name for name, item in chosen.items() if not item["download_info"]["url"].endswith(".whl")]
    assert not not_wheels, not_wheels


def test_a_source_only_dependency_fails_the_check(tmp_path):
    """The check bites: python-ldap (the LDAP extra) has no wheel, which is why it is an extra."""
    result = resolve_wheels_only("requirements-ldap.txt", PLATFORMS["linux-x86_64"], tmp_path)
    assert result.returncode != 0
    assert "python-ldap" in result.stderr


def test_ldap_is_an_extra_that_make_test_installs():
    runtime = pins(ROOT / "requirements.txt")
    extra = pins(ROOT / "requirements-ldap.txt")
    assert set(extra) == {"python-ldap", "django-auth-ldap"}
    assert not set(extra) & set(runtime), "the LDAP extra stays out of requirements.txt"
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements.txt" in dev and "-r requirements-ldap.txt" in dev
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(VENV\)/\.installed-dev:.*requirements-ldap\.txt", makefile, re.MULTILINE)
