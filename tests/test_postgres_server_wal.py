"""The benchmarks' PostgreSQL servers start with WAL segments ready (tests.support.postgres,
`wal_segments`): a commit that moves into the next 16 MB segment must find it made, as on a
server in steady state, instead of creating and zero-filling it while every commit waits."""

from __future__ import annotations

import psycopg
import pytest

from tests.support.postgres import PostgresServer, start_or_skip

pytestmark = pytest.mark.postgres


def _server(**options) -> PostgresServer:
    server = PostgresServer(**options)
    if server.external_url:
        pytest.skip("RELAIS_TEST_POSTGRES_URL : les réglages d'un serveur externe ne sont pas les nôtres")
    return start_or_skip(server)


def _segments(conn) -> tuple[str, list[str]]:
    current = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
    names = [row[0] for row in conn.execute("SELECT name FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'")]
    return current, sorted(names)


def test_the_next_wal_segments_exist_before_any_commit_needs_them():
    server = _server(wal_segments=3)
    try:
        with psycopg.connect(server.conninfo(server.url("postgres")), autocommit=True) as conn:
            current, names = _segments(conn)
            ahead = [name for name in names if name > current]
            assert len(ahead) >= 3, (current, names)
            files = len(names)
            conn.execute("CREATE TABLE filler (body bytea)")
            conn.execute("ALTER TABLE filler ALTER body SET STORAGE EXTERNAL")  # written uncompressed
            # 20 MB of WAL: the commits move past the current segment into the next one
            for _ in range(10):
                conn.execute("INSERT INTO filler SELECT decode(repeat('ab', 4096), 'hex') FROM generate_series(1, 500)")
            moved, names = _segments(conn)
            assert moved > current
            assert len(names) == files  # reused, none created
    finally:
        server.stop()

