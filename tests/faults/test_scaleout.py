"""Scale-out, the correctness half (the throughput half is bench/bench_scaleout.py): four worker
processes and two API processes on one PostgreSQL database. Workers share the queue with
`FOR UPDATE SKIP LOCKED` and leases; each person's items leave one at a time, in order.

1. Three items queued per person at once, four workers started together: the peer receives
   each person's items in queue order, each once, and the work is spread over the workers.
2. Then, with the workers running, clients store new plan versions and ask for their sync
   through both API processes: every exchange ends sent or superseded by a newer version, no
   Bundle is posted twice, each person's versions reach the peer in increasing order and the
   newest last.
"""

from __future__ import annotations

import datetime as dt
import itertools
import signal
import os
import time

import httpx
import pytest

from connectors.sandbox.server import ThreadedServer, free_port
from gateway.delivery.worker import Worker
from tests.faults.harness import (claim_owners, connector, delivered_exactly_once, fork, in_child, local_id,
                                  new_version, platform, queue_direct, reap, recording_peer, rows,
                                  share_plain_http_tls_context)

pytestmark = pytest.mark.postgres
PERSONS, WORKERS, APIS = 24, 4, 2


def worker_process(store, peer_url: str) -> None:
    in_child(store)
    Worker(store, {"eparcours": connector(peer_url)}, lease=dt.timedelta(seconds=30), batch=4).serve(idle=0.02)


def api_process(store, port: int) -> None:
    import uvicorn

    from gateway.api.app import create_app

    in_child(store)
    uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_config=None,
                                  access_log=False)).run()


def settled(store, tenant) -> bool:
    return all(r.status in ("sent", "superseded") for r in rows(store, tenant))


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "délai dépassé"
        time.sleep(0.05)


def test_four_workers_and_two_apis_on_one_database_keep_order_and_send_nothing_twice(postgres_server, monkeypatch):
    share_plain_http_tls_context(monkeypatch)
    store_url = postgres_server.create_database("relais_scaleout")
    from gateway.storage import Store

    store = Store(store_url)
    store.migrate()
    tenant = platform(store, PERSONS)
    _, token = store.create_api_key(tenant.slug, "clients")
    peer = recording_peer(gate=False)
    children: list[int] = []
    try:
        with ThreadedServer(peer.app) as server:
            for version in (1, 2, 3):
                for i in range(PERSONS):
                    if version > 1:
                        new_version(store, tenant, i)
                    queue_direct(store, tenant, i, version)
            children += [fork(lambda: worker_process(store, server.url)) for _ in range(WORKERS)]
            wait_for(lambda: settled(store, tenant), 120)
            assert peer.store.order_by_person() == {local_id(i): [1, 2, 3] for i in range(PERSONS)}
            assert max(peer.store.posts.values()) == 1
            busy = claim_owners(store)
            assert len(busy) == WORKERS, busy  # all four took a share

            ports = [free_port() for _ in range(APIS)]
            children += [fork(lambda port=port: api_process(store, port)) for port in ports]
            clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for port in ports]
            wait_for(lambda: all(_up(c) for c in clients), 60)
            api = itertools.cycle(clients)
            for i in list(range(PERSONS)) * 2:
                new_version(store, tenant, i)  # versions 4, then 5
                answer = next(api).post("/exchanges", headers={"Authorization": f"Bearer {token}"}, json={
                    "person": local_id(i), "system": "eparcours", "purpose": "COC", "payload_kind": "tddui-bundle",
                    "recipient": {"kind": "system", "identifier": "eparcours"}})
                assert answer.status_code == 201, answer.text
            wait_for(lambda: settled(store, tenant), 120)
            for client in clients:
                client.close()
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            reap(pid, 30)
    figures = delivered_exactly_once(store, tenant, peer)
    assert max(peer.store.posts.values()) == 1  # no crash here: not even a recognised resend
    newest = {local_id(i): store.get_plan(tenant, local_id(i)).version for i in range(PERSONS)}
    assert figures["newest_sent"] == newest
    store.close()
    postgres_server.drop_database("relais_scaleout")


def _up(client: httpx.Client) -> bool:
    try:
        return client.get("/persons").status_code == 401
    except httpx.TransportError:
        return False
