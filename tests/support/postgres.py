"""A throwaway PostgreSQL server for tests and benchmarks.

    with PostgresServer() as server:
        url = server.create_database("relais_t1")
        # → postgresql+psycopg://postgres@127.0.0.1:PORT/relais_t1

Finds `initdb`, `pg_ctl` and `postgres` on PATH or under /usr/lib/postgresql/<newest>/bin,
initialises a cluster in a temporary directory (trust authentication, no fsync), listens on
127.0.0.1 on a free port with its unix socket inside that directory, and removes everything
on `stop()`. When running as root (containers, CI) the cluster is owned by and run as the
`postgres` user, since PostgreSQL refuses to run as root.

With `RELAIS_TEST_POSTGRES_URL` set (any database of an existing server, as a
postgresql[+psycopg]:// URL of a role allowed to CREATE DATABASE), nothing is started: that
server is used, and the databases created here are dropped on `stop()`.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ENV_URL = "RELAIS_TEST_POSTGRES_URL"
_BINARIES = ("initdb", "pg_ctl", "postgres")
_DBNAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries on this machine (and no RELAIS_TEST_POSTGRES_URL)."""


class PostgresError(RuntimeError):
    """The binaries exist but the server could not be set up."""


def find_bindir() -> Path:
    """Directory holding initdb, pg_ctl and postgres: PATH first, else the newest
    /usr/lib/postgresql/<version>/bin."""
    found = [shutil.which(name) for name in _BINARIES]
    if all(found):
        dirs = {Path(p).resolve().parent for p in found}
        if len(dirs) == 1:
            return dirs.pop()
    candidates = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        if all((bindir / name).is_file() for name in _BINARIES):
            version = tuple(int(x) for x in re.findall(r"\d+", bindir.parent.name))
            candidates.append((version, bindir))
    if candidates:
        return max(candidates)[1]
    if all(found):  # scattered over PATH (e.g. wrappers): trust PATH
        return Path(found[0]).resolve().parent
    raise PostgresUnavailable(
        "PostgreSQL introuvable : ni initdb/pg_ctl/postgres sur le PATH, ni "
        f"/usr/lib/postgresql/*/bin (ou définir {ENV_URL})"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    raise PostgresError(f"{ENV_URL} doit être une URL postgresql://")


class PostgresServer:
    """A disposable PostgreSQL cluster (or an existing server named by RELAIS_TEST_POSTGRES_URL)."""

    def __init__(self, *, durable: bool = False, external_url: str | None = None, wal_segments: int | None = None):
        """`durable=True` keeps fsync/synchronous_commit on (benchmarks); tests leave it off.
        `wal_segments`: WAL segments (16 MB each) made ready before use, as on a server in steady
        state (see _prepare_wal); by default 32 on a durable server, none otherwise."""
        self.durable = durable
        self.wal_segments = (32 if durable else 0) if wal_segments is None else wal_segments
        self.external_url = external_url if external_url is not None else os.environ.get(ENV_URL)
        self.port: int | None = None
        self.host = "127.0.0.1"
        self.tmpdir: Path | None = None
        self.bindir: Path | None = None
        self._created: list[str] = []
        self._started = False
        self._as_postgres_user = False

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> PostgresServer:
        if self._started:
            return self
        if self.external_url:
            self._check_connect(self._admin_url())
            self._started = True
            return self
        self.bindir = find_bindir()  # PostgresUnavailable if absent
        self._as_postgres_user = os.geteuid() == 0
        self.tmpdir = Path(tempfile.mkdtemp(prefix="relais-pg-"))
        atexit.register(self.stop)
        try:
            if self._as_postgres_user:
                shutil.chown(self.tmpdir, user="postgres", group="postgres")
            self._initdb()
            last_error = None
            for _attempt in range(3):  # the free port may be taken between probe and bind
                self.port = _free_port()
                try:
                    self._configure_and_start()
                    break
                except PostgresError as exc:
                    last_error = exc
            else:
                raise last_error  # type: ignore[misc]
            self._wait_ready()
            if self.wal_segments:
                self._prepare_wal()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def stop(self) -> None:
        if self.external_url:
            if self._created:
                self._drop_all()
            self._started = False
            return
        if self.tmpdir is None:
            return
        data = self.tmpdir / "data"
        if (data / "postmaster.pid").exists():
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                check=False,
            )
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.tmpdir = None
        self._started = False
        self._created.clear()

    def restart(self, down: float = 0.0, *, mode: str = "immediate") -> None:
        """Stop the server (`pg_ctl stop -m immediate`: as a crash, every connection cut, no
        checkpoint), leave it down `down` seconds, start it again on the same data directory
        and port. For fault tests; not possible on an external server."""
        if self.external_url or self.tmpdir is None or self.bindir is None:
            raise PostgresError("seul un serveur démarré par ces tests peut être redémarré")
        data = self.tmpdir / "data"
        self._run([str(self.bindir / "pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop"])
        time.sleep(down)
        self._configure_and_start()
        self._wait_ready()

    # ------------------------------------------------------------------ databases

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of a database on this server."""
        if self.external_url:
            from sqlalchemy.engine import make_url

            base = make_url(_psycopg_url(self.external_url))
            return base.set(database=dbname).render_as_string(hide_password=False)
        if self.port is None:
            raise PostgresError("serveur PostgreSQL non démarré")
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{dbname}"

    def socket_url(self, dbname: str = "postgres") -> str | None:
        """SQLAlchemy URL of a database on this server through its Unix socket (libpq's `host` set
        to the socket's directory), as a gateway on the server's own host would connect; None for
        an external server."""
        if self.external_url:
            return None
        if self.port is None or self.tmpdir is None:
            raise PostgresError("serveur PostgreSQL non démarré")
        return f"postgresql+psycopg://postgres@/{dbname}?host={self.tmpdir}&port={self.port}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        if not _DBNAME.fullmatch(name):
            raise ValueError(f"nom de base invalide : {name!r}")
        self._admin(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        if not _DBNAME.fullmatch(name):
            raise ValueError(f"nom de base invalide : {name!r}")
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self._created:
            self._created.remove(name)

    # ------------------------------------------------------------------ internals

    def _admin_url(self) -> str:
        if self.external_url:
            return _psycopg_url(self.external_url)
        return self.url("postgres")

    def conninfo(self, url: str) -> str:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        parts = {
            "host": parsed.host or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": parsed.username or "postgres",
            "dbname": parsed.database or "postgres",
        }
        if parsed.password:
            parts["password"] = parsed.password
        return " ".join(f"{k}='{v}'" for k, v in parts.items())

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(self._admin_url()), autocommit=True) as conn:
            conn.execute(sql)

    def _drop_all(self) -> None:
        for name in list(self._created):
            try:
                self.drop_database(name)
            except Exception:  # best effort on a shared server
                pass

    def _check_connect(self, url: str) -> None:
        import psycopg

        try:
            psycopg.connect(self.conninfo(url), connect_timeout=5).close()
        except psycopg.Error as exc:
            raise PostgresError(f"{ENV_URL} : connexion impossible ({exc})") from exc

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
        if self._as_postgres_user:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        proc = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.tmpdir,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )
        if check and proc.returncode != 0:
            raise PostgresError(f"{' '.join(argv)} a échoué :\n{proc.stdout}")
        return proc

    def _initdb(self) -> None:
        assert self.tmpdir is not None and self.bindir is not None
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.tmpdir / "data"),
                "-A", "trust",
                "-U", "postgres",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )

    def _configure_and_start(self) -> None:
        assert self.tmpdir is not None and self.bindir is not None
        data = self.tmpdir / "data"
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.tmpdir}'",
            "max_connections": "100",
            "shared_buffers": "64MB",
            "logging_collector": "off",
        }
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        if self.wal_segments:  # kept for reuse at each checkpoint rather than removed
            settings |= {"min_wal_size": f"{32 * self.wal_segments}MB",
                         "max_wal_size": f"{max(1024, 64 * self.wal_segments)}MB"}
        # postgresql.auto.conf is read last and wins; rewritten on each start attempt.
        conf = data / "postgresql.auto.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        if self._as_postgres_user:
            shutil.chown(conf, user="postgres", group="postgres")
        proc = self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D", str(data),
                "-l", str(self.tmpdir / "server.log"),
                "-w", "-t", "60",
                "start",
            ],
            check=False,
        )
        if proc.returncode != 0:
            log = self.tmpdir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise PostgresError(f"pg_ctl start a échoué :\n{proc.stdout}\n{tail}")

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.conninfo(self.url("postgres")), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL ne répond pas : {exc}") from exc
                time.sleep(0.1)

    def _prepare_wal(self) -> None:
        """A fresh cluster has one WAL segment: each later one is created and zero-filled (16 MB
        written and synced) by the commit that first needs it, while every other commit waits
        (17-20 ms on the development machine, the whole tail of a benchmark's latencies). A server
        in steady state reuses the segments of past checkpoints instead (min_wal_size). So
        `wal_segments` segments are made now (a WAL record and a switch each) and a checkpoint
        recycles them as the next ones."""
        import psycopg

        with psycopg.connect(self.conninfo(self.url("postgres")), autocommit=True) as conn:
            for _ in range(self.wal_segments):
                conn.execute("SELECT pg_logical_emit_message(false, 'relais', 'wal')")  # else no switch
                conn.execute("SELECT pg_switch_wal()")
            conn.execute("CHECKPOINT")


def start_or_skip(server: PostgresServer) -> PostgresServer:
    """`server` started, or the calling test skipped when PostgreSQL cannot be started here
    (failed instead when RELAIS_REQUIRE_POSTGRES=1, as CI runs)."""
    import pytest

    try:
        return server.start()
    except PostgresUnavailable as exc:
        reason = f"PostgreSQL indisponible : {exc}"
        if os.environ.get("RELAIS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (RELAIS_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(reason)


def backend_pid(engine) -> int:
    """The server process behind a connection from `engine`'s pool."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def end_session(url, pid: int, timeout: float = 10.0) -> None:
    """pg_terminate_backend(pid) from an engine of its own on `url` (no pooled connection of the
    tests' engines is used), then wait until the session is gone.

    Autocommit: a transaction keeps its first read of pg_stat_activity until it ends, so polls
    inside one transaction would see the session forever once they had seen it once."""
    import sqlalchemy as sa

    other = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
            deadline = time.monotonic() + timeout
            while conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                               {"pid": pid}).scalar_one():
                assert time.monotonic() < deadline
                time.sleep(0.01)
    finally:
        other.dispose()
