"""The configuration file: validated at start-up, a bad key named with its file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import wsconfig
from config.wsconfig import ConfigError

BASE_DIR = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "workstream.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("colour: blue\n", "colour (unknown key)"),
        ("features:\n  restAPI: true\n", "features.restAPI (unknown key)"),
        ("features:\n  events:\n    publish: 'yes'\n", "features.events.publish"),
        (
            "features:\n  distribution:\n    strategies:\n      roundrobin: true\n",
            "features.distribution.strategies.roundrobin",
        ),
        ("performance:\n  outboxBatchSize: many\n", "performance.outboxBatchSize"),
        ("performance:\n  maxPageSize: 0\n", "performance.maxPageSize"),
        ("eventBus:\n  exchange: ''\n", "eventBus.exchange"),
        ("roles:\n  admin: 7\n", "roles.admin"),
        ("features: true\n", "features"),
        ("- a\n- list\n", "<root>"),
    ],
)
def test_a_bad_key_is_named_with_the_file(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        wsconfig.load(path)
    message = str(info.value)
    assert str(path) in message
    assert f"invalid configuration at {key}" in message


def test_unreadable_and_missing_files(tmp_path):
    broken = write(tmp_path, "features: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read configuration") as info:
        wsconfig.load(broken)
    assert str(broken) in str(info.value)
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="not found") as info:
        wsconfig.load(missing)
    assert str(missing) in str(info.value)


def test_a_partial_file_is_merged_over_the_defaults(tmp_path):
    cfg = wsconfig.load(write(tmp_path, "features:\n  events:\n    publish: true\nperformance:\n  maxPageSize: 50\n"))
    assert cfg.features.events.publish is True
    assert cfg.features.events.subscribe is False  # the sibling keeps its default
    assert cfg.performance.maxPageSize == 50
    assert cfg.performance.outboxBatchSize == wsconfig.DEFAULTS["performance"]["outboxBatchSize"]
    assert cfg.eventBus.exchange == "workstream.events"
    assert cfg.path == tmp_path / "workstream.yaml"


def test_an_empty_file_is_all_defaults(tmp_path):
    cfg = wsconfig.load(write(tmp_path, ""))
    assert cfg.as_dict() == wsconfig.DEFAULTS
    assert cfg.strategy_enabled("round_robin") and not cfg.strategy_enabled("no-such-strategy")


def test_the_shipped_file_is_valid():
    cfg = wsconfig.load()
    assert cfg.path == wsconfig.DEFAULT_PATH
    assert cfg.features.restApi is True


def _manage_check(config_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKSTREAM_CONFIG": str(config_path), "DATABASE_URL": ""}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_django_does_not_start_with_a_bad_file(tmp_path):
    bad = write(tmp_path, "features:\n  escalation: sometimes\n")
    proc = _manage_check(bad)
    assert proc.returncode != 0
    assert "ConfigError" in proc.stderr
    assert "features.escalation" in proc.stderr and str(bad) in proc.stderr

    good = write(tmp_path, "features:\n  escalation: false\n", name="good.yaml")
    proc = _manage_check(good)
    assert proc.returncode == 0, proc.stderr
    assert "no issues" in proc.stdout
