"""A real PostgreSQL streaming replica of the test primary, for the replica tests.

`Standby.start()` takes a `pg_basebackup -R -X stream` of the primary (DATABASE_URL's
server, whole cluster) into a temporary directory, writes a configuration of its own (a free
loopback port, its own socket directory, the primary's hot-standby limits) and starts it with
`pg_ctl`; `stop()` stops it and removes the directory. PostgreSQL refuses to run as root, so
as root every PostgreSQL program runs as the `postgres` OS user (runuser) and the directory
is theirs; as another user, as that user.

The primary must let 127.0.0.1 make replication connections. When its pg_hba.conf has no such
line and this process may write the file (root on a Debian cluster), `allow_replication()`
appends `host replication all 127.0.0.1/32 trust` and reloads the primary (README, "Read
replicas"); otherwise the fixture fails saying so.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HBA_LINE = "host replication all 127.0.0.1/32 trust"
# The settings a hot standby must have at least as high as its primary.
HOT_STANDBY_LIMITS = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


class StandbyError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_cluster_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


class Standby:
    def __init__(self, primary_cursor, *, host: str, port: int, user: str):
        self.primary = primary_cursor  # a cursor on the primary, as a superuser
        self.primary_host, self.primary_port, self.primary_user = host, port, user
        self.bindir = self._bindir()
        self.port = free_port()
        self.root: Path | None = None

    def _show(self, name: str) -> str:
        self.primary.execute(f"SHOW {name}")
        return self.primary.fetchone()[0]

    def _bindir(self) -> Path:
        major = int(self._show("server_version_num")) // 10000
        for candidate in (Path(f"/usr/lib/postgresql/{major}/bin"), Path(shutil.which("pg_ctl") or "").parent):
            if (candidate / "pg_basebackup").is_file() and (candidate / "pg_ctl").is_file():
                return candidate
        raise StandbyError(
            f"the replica tests run a real PostgreSQL {major} standby: pg_basebackup and pg_ctl of that "
            f"version were not found (Debian: apt-get install postgresql-{major})"
        )

    def _run(self, *argv, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [*_as_cluster_owner(), str(self.bindir / argv[0]), *map(str, argv[1:])]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def allow_replication(self) -> bool:
        """Add the replication line to the primary's pg_hba.conf if it may; True if it did."""
        hba = Path(self._show("hba_file"))
        if not os.access(hba, os.W_OK):
            return False
        text = hba.read_text()
        if HBA_LINE not in text:
            hba.write_text(
                text.rstrip("\n") + "\n# Workstream's replica tests (README, Read replicas)\n" + HBA_LINE + "\n"
            )
        self.primary.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the postmaster rereads pg_hba.conf on SIGHUP
        return True

    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"ws-replica-{self.port}-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        backup = [
            "pg_basebackup",
            *("-h", self.primary_host, "-p", self.primary_port, "-U", self.primary_user),
            *("-D", data, "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        ]
        done = self._run(*backup)
        if done.returncode and "pg_hba.conf" in done.stderr and self.allow_replication():
            shutil.rmtree(data, ignore_errors=True)
            done = self._run(*backup)
        if done.returncode:
            raise StandbyError(
                f"pg_basebackup of the primary failed: {done.stderr.strip()}\n"
                f"The primary's pg_hba.conf ({self._show('hba_file')}) needs `{HBA_LINE}` and a reload "
                "(the test adds it itself when it runs as root; README, Read replicas)."
            )
        limits = "\n".join(f"{name} = {self._show(name)}" for name in HOT_STANDBY_LIMITS)
        config = {
            "postgresql.conf": f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.root}'\nhot_standby = on\nshared_buffers = 32MB\n"
            f"fsync = off\nlogging_collector = off\n{limits}\n",
            "pg_hba.conf": "host all all 127.0.0.1/32 trust\nlocal all all trust\n",
            "pg_ident.conf": "",
        }
        for name, text in config.items():
            (data / name).write_text(text)
            if os.geteuid() == 0:
                shutil.chown(data / name, "postgres", "postgres")
        started = self._run("pg_ctl", "-D", data, "-l", self.root / "log", "-w", "-t", "60", "start", timeout=90)
        if started.returncode:
            raise StandbyError(f"the standby did not start: {started.stdout}{started.stderr}\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        log = self.root / "log" if self.root else None
        return log.read_text(errors="replace")[-chars:] if log and log.exists() else ""

    def stop(self) -> None:
        if self.root is None:
            return
        data = self.root / "data"
        running = (data / "postmaster.pid").exists()
        if running and self._run("pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "stop", timeout=60).returncode:
            self._run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
