"""Every acknowledged event survives SIGKILL of the server mid-ingest."""

from __future__ import annotations

import threading
import time

import httpx

from tests.conftest import ServerProcess
from tests.server.test_ingest import ev


def test_sigkill_mid_ingest_loses_no_acknowledged_event(server: ServerProcess) -> None:
    acked: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=10) as c:
            b = 0
            while not stop.is_set():
                batch = [ev(id=f"c{n}-b{b}-{i}") for i in range(200)]
                try:
                    r = c.post(server.url + "/api/events", json={"events": batch})
                except httpx.HTTPError:
                    return  # the server died mid-request: not acknowledged
                if r.status_code == 200:
                    acked.extend(e["id"] for e in batch)
                b += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # SIGKILL: no shutdown code runs
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) >= 3000
    server.start()
    stored: set[str] = set()
    offset = 0
    while True:
        page = httpx.get(
            server.url + "/api/events", params={"limit": 1000, "offset": offset}
        ).json()["events"]
        stored.update(e["id"] for e in page)
        if len(page) < 1000:
            break
        offset += 1000
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged events lost"
