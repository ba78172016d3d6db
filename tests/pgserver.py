"""A throwaway PostgreSQL server for tests: its own data folder, 127.0.0.1 only, gone afterwards.

The ledger promises "PostgreSQL by URL" with the same code path as SQLite, and only a real server
shows that the SQL, the locking (``FOR UPDATE SKIP LOCKED``) and the URL handling hold. So the tests
run the distribution's own ``initdb``/``pg_ctl`` in a temporary folder instead of needing a server
set up beforehand.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from glob import glob
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

USER = "botkit"
# Characters that must be quoted in a URL, so a test fails if any code builds URLs by hand.
PASSWORD = "p@ss:w/rd%1"
# initdb refuses to run as root; Debian's package creates this unprivileged user for the server.
SYSTEM_USER = "postgres"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run here (no binaries, or no user to run them as); tests skip on it."""


def find_bindir() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``: PATH first, else Debian's newest version folder.

    Debian keeps the server binaries off PATH under /usr/lib/postgresql/<version>/bin.
    """
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = glob("/usr/lib/postgresql/*/bin/initdb")
    if not versions:
        raise PostgresUnavailable("initdb not found on PATH or under /usr/lib/postgresql/*/bin (install postgresql)")
    newest = max(versions, key=lambda p: [int(n) for n in re.findall(r"\d+", Path(p).parent.parent.name)])
    return Path(newest).parent


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One PostgreSQL server in a temporary folder, with a password-protected superuser ``botkit``.

    Use as a context manager: entering runs initdb and starts the server; leaving stops it
    (immediately: the data is thrown away anyway) and removes the folder.
    """

    def __init__(self) -> None:
        self.password = PASSWORD
        self.port = 0
        self._bindir = find_bindir()
        self._as_user: list[str] = []
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                raise PostgresUnavailable(f"running as root, and there is no {SYSTEM_USER!r} user to run the server as") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailable("running as root, and runuser (util-linux) is missing to drop to the postgres user")
            self._as_user = [runuser, "-u", SYSTEM_USER, "--"]
        self._root: Path | None = None

    @property
    def _data(self) -> Path:
        assert self._root is not None, "start the server first"
        return self._root / "data"

    def _run(self, tool: str, *args: str) -> None:
        """Run a PostgreSQL program as the server's user; on failure, say why with its output and the log."""
        assert self._root is not None
        done = subprocess.run(
            [*self._as_user, str(self._bindir / tool), *args],
            check=False,  # a failure is raised below, with the output and the server log
            cwd=self._root,  # the postgres user may not be allowed into the caller's folder
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            log = self._root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}")

    def start(self) -> Self:
        self._root = Path(tempfile.mkdtemp(prefix="botkit-pg-"))
        pwfile = self._root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._owner is not None:
            for path in (self._root, pwfile):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
        try:
            # Password checked on TCP (what the ledger uses); the socket sits in our private folder.
            self._run(
                "initdb",
                "-D",
                str(self._data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            pwfile.unlink()
            self.port = free_port()
            with open(self._data / "postgresql.conf", "a") as conf:
                conf.write(
                    "listen_addresses = '127.0.0.1'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self._root}'\n"
                    "max_connections = 100\n"
                    "shared_buffers = '16MB'\n"
                    # Durability is pointless for a folder deleted afterwards; skipping it is faster.
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                )
            self._run("pg_ctl", "-D", str(self._data), "-l", str(self._root / "log"), "-w", "-t", "60", "start")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server if it runs and remove its folder, even when stopping fails."""
        if self._root is None:
            return
        try:
            if (self._data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL of database ``dbname``, with the password URL-quoted."""
        return f"postgresql+psycopg://{USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its URL."""
        # Imported here so the rest of the suite still runs where the test extra was not reinstalled.
        import psycopg
        from psycopg import sql

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=self.password, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
