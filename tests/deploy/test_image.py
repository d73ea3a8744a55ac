"""The container image (Dockerfile) without a Docker daemon: its instructions parsed with
dockerfile-parse, and the wheel set its build stage installs built here, for the image's
platform, so a pin without a wheel or a system package missing from the build stage fails
in CI rather than at `docker build`.

- requirements.txt: `pip download --only-binary :all:` for CPython 3.11 on manylinux x86_64
  (python:3.11-slim-bookworm), the same flags as the Dockerfile's `pip install`.
- requirements-ldap.txt: python-ldap compiled from its source distribution (`--no-binary`, as
  the build stage does) on this Debian bookworm machine, with gcc listing every header it
  includes; each header's Debian package must be one that the build stage's `apt-get install`
  brings (apt's dependency closure), and each shared library the built module links must come
  with the final stage's runtime packages.

PyPI is reached through pip (with retries): this machine and CI both reach it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "python:3.11-slim-bookworm"
IMAGE_PLATFORM = [
    *("--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"),
    *("--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64"),
]
PIP_NETWORK = ["--retries", "5", "--timeout", "60", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    assert parser.structure, "the Dockerfile parses"
    return parser


def stages(parser: DockerfileParser) -> list[list[dict]]:
    """The instructions (dockerfile-parse's dicts: instruction, value), one list per FROM."""
    out: list[list[dict]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            out.append([])
        if item["instruction"] != "COMMENT":
            out[-1].append(item)
    return out


def values(stage: list[dict], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def apt_installed(stage: list[dict]) -> set[str]:
    """The packages a stage's RUN instructions `apt-get install`."""
    out: set[str] = set()
    for run in values(stage, "RUN"):
        for command in run.split("&&"):
            words = shlex.split(command)
            if "apt-get" in words and "install" in words:
                out |= {w for w in words[words.index("install") + 1 :] if not w.startswith("-")}
    return out


def pip_installs(stage: list[dict]) -> list[list[str]]:
    """Each `pip install` of a stage, as its words."""
    return [shlex.split(run) for run in values(stage, "RUN") if re.search(r"\bpip install\b", run)]


def test_two_stages_on_one_debian_release(dockerfile):
    builder, runtime = stages(dockerfile)
    assert values(builder, "FROM") == [f"{IMAGE} AS builder"]
    assert values(runtime, "FROM") == [f"{IMAGE} AS runtime"]
    assert dockerfile.baseimage == IMAGE


def test_headers_only_in_the_build_stage_and_runtime_libraries_in_the_final_one(dockerfile):
    builder, runtime = stages(dockerfile)
    assert {"build-essential", "libldap2-dev", "libsasl2-dev"} <= apt_installed(builder)
    assert apt_installed(runtime) == {"libldap-2.5-0", "libsasl2-2"}
    assert not [p for p in apt_installed(runtime) if p.endswith("-dev") or p in ("gcc", "build-essential")]
    # the final stage installs nothing with pip: it copies the builder's virtualenv whole
    assert pip_installs(runtime) == []
    assert [c for c in values(runtime, "COPY") if c.startswith("--from=builder")] == [
        "--from=builder /opt/venv /opt/venv"
    ]
    assert any("import ldap" in run for run in values(runtime, "RUN")), "the final stage imports the LDAP extra"


def test_the_build_stage_installs_wheels_only_then_python_ldap_from_source(dockerfile):
    builder, _ = stages(dockerfile)
    runtime_pins, ldap_pins = pip_installs(builder)
    assert Path(runtime_pins[-1]).name == "requirements.txt" and "--only-binary" in runtime_pins
    assert runtime_pins[runtime_pins.index("--only-binary") + 1] == ":all:"
    assert Path(ldap_pins[-1]).name == "requirements-ldap.txt"
    assert ldap_pins[ldap_pins.index("--no-binary") + 1] == "python-ldap"


def test_non_root_with_a_healthcheck_and_gunicorn(dockerfile):
    _, runtime = stages(dockerfile)
    users = values(runtime, "USER")
    assert users == ["10001:10001"], "the final image runs as a fixed non-root uid (runAsNonRoot checks it)"
    (healthcheck,) = values(runtime, "HEALTHCHECK")
    assert "/health/live" in healthcheck and "--interval=" in healthcheck
    cmd = json.loads(values(runtime, "CMD")[-1])
    assert cmd[:2] == ["gunicorn", "config.wsgi:application"]
    assert cmd[cmd.index("--bind") + 1] == "0.0.0.0:8000"
    assert values(runtime, "EXPOSE") == ["8000"]
    assert dockerfile.envs["WEB_CONCURRENCY"] and dockerfile.envs["DJANGO_SETTINGS_MODULE"] == "config.settings"


def test_the_runtime_wheel_set_downloads_for_the_images_platform(tmp_path):
    """Every pin of requirements.txt, direct or not, as a wheel for CPython 3.11 manylinux x86_64."""
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", *PIP_NETWORK),
            *("--only-binary", ":all:", *IMAGE_PLATFORM, "--dest", str(tmp_path)),
            *("-r", str(ROOT / "requirements.txt")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = sorted(p.name for p in tmp_path.iterdir())
    assert wheels and all(name.endswith(".whl") for name in wheels), wheels
    pinned = {
        re.split(r"[=<>\[; ]", line, maxsplit=1)[0].lower().replace("-", "_") for line in _pins("requirements.txt")
    }
    got = {name.split("-", 1)[0].lower() for name in wheels}
    assert pinned <= got, pinned - got
    assert not [n for n in wheels if re.search(r"-(cp3\d+)-", n) and "-cp311-" not in n and "abi3" not in n]


def _pins(name: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def _apt_closure(packages: set[str]) -> set[str]:
    """The packages apt installs for `packages` (Depends and PreDepends, recursively)."""
    result = subprocess.run(
        [
            *("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests"),
            *("--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *sorted(packages)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"apt-cache needs the package lists (apt-get update): {result.stderr}"
    return {line.strip() for line in result.stdout.splitlines() if line and not line.startswith(" ")}


def _debian_package(path: str) -> str:
    """The Debian package that ships `path` (dpkg -S), trying the /usr-merged spelling too."""
    for candidate in dict.fromkeys([path, os.path.realpath(path), re.sub(r"^/usr/lib/", "/lib/", path)]):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0].split(",")[0].strip()
    pytest.fail(f"no Debian package ships {path}")


def _python_ldap_pin() -> str:
    (pin,) = [p for p in _pins("requirements-ldap.txt") if p.lower().startswith("python-ldap==")]
    return pin


@pytest.mark.skipif(not Path("/etc/debian_version").exists(), reason="maps headers to Debian packages (dpkg)")
def test_python_ldap_builds_from_source_with_the_build_stages_packages(tmp_path, dockerfile):
    """Compiles python-ldap as the build stage does; every system header the compiler includes
    is shipped by a package the build stage installs, and every library the module links by one
    the final stage installs (or the base image's libc)."""
    builder, runtime = stages(dockerfile)
    env = {**os.environ, "CFLAGS": "-H"}  # gcc prints each header it includes
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--verbose", "--no-cache-dir", "--no-deps", *PIP_NETWORK),
            *("--no-binary", "python-ldap", "--wheel-dir", str(tmp_path), _python_ldap_pin()),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    headers = {
        m.group(1)
        for m in re.finditer(r"^\s*\.+ (/\S+\.h)$", result.stdout + result.stderr, re.M)
        if not m.group(1).startswith((sys.base_prefix, sys.prefix, str(tmp_path)))
        and "/python3." not in m.group(1)  # the image's own CPython headers
    }
    assert any(h.endswith("/ldap.h") for h in headers), "gcc -H listed the OpenLDAP header"
    from_packages = {_debian_package(h) for h in headers}
    assert {"libldap-dev", "libsasl2-dev"} <= from_packages, from_packages
    missing = from_packages - _apt_closure(apt_installed(builder))
    assert not missing, f"the build stage's apt-get install lacks what ships {missing}"

    (wheel,) = tmp_path.glob("python_ldap-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        (module,) = [n for n in zf.namelist() if n.startswith("_ldap") and n.endswith(".so")]
        zf.extract(module, tmp_path)
    dynamic = subprocess.run(["readelf", "-d", str(tmp_path / module)], capture_output=True, text=True, timeout=30)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic.stdout)
    assert "libldap-2.5.so.0" in needed, needed
    libraries = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    runtime_closure = _apt_closure(apt_installed(runtime)) | {"libc6"}  # libc6: the base image's
    for soname in needed:
        found = re.search(rf"^\s*{re.escape(soname)} \(libc6,x86-64\) => (\S+)$", libraries, re.M)
        assert found, f"{soname} is not installed here"
        assert _debian_package(found.group(1)) in runtime_closure, f"the final stage lacks {soname}"


def test_the_image_bakes_in_no_signing_key(dockerfile):
    """Settings refuse to load without a strong key outside DEBUG; the build's collectstatic gets a
    random one for that RUN alone, and no ENV or ARG of the image sets a key."""
    _, runtime = stages(dockerfile)
    (collect,) = [run for run in values(runtime, "RUN") if "collectstatic" in run]
    assert "SECRET_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(50))')\"" in collect, collect
    assert "DEBUG" not in collect
    assert not [v for v in values(runtime, "ENV") + values(runtime, "ARG") if re.search(r"SECRET|SIGNING|TOKEN", v)]
