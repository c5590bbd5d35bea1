"""Protected mode seen from another address, for real.

The test makes a network namespace joined to this one by a veth pair
(iproute2: `ip netns`, `ip link add ... type veth`), starts `agentwatch serve`
on 0.0.0.0 here and sends requests from a Python process inside the
namespace, so the server sees a genuine non-loopback peer (10.213.x.2) on a
real TCP connection. Needs root (CAP_NET_ADMIN); skipped with the reason
elsewhere, a failure under AGENTWATCH_REQUIRE_ALL=1.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, need
from tests.server.test_auth import bearer, create_key, stored, wait_for
from tests.server.test_ingest import ev


@dataclass
class Netns:
    name: str
    host_ip: str  # this side of the pair
    peer_ip: str  # inside the namespace

    def request(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: Any = None
    ) -> tuple[int, Any]:
        """One HTTP request made from inside the namespace: (status, JSON or text)."""
        code = (
            "import httpx, json, sys\n"
            "a = json.loads(sys.argv[1])\n"
            "r = httpx.request(a['method'], a['url'], headers=a['headers'], json=a['body'],\n"
            "                  timeout=10)\n"
            "try:\n    out = r.json()\nexcept ValueError:\n    out = r.text[:200]\n"
            "print(json.dumps([r.status_code, out]))\n"
        )
        args = json.dumps({"method": method, "url": url, "headers": headers or {}, "body": body})
        p = subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", code, args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr
        status, out = json.loads(p.stdout)
        return int(status), out


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns() -> Iterator[Netns]:
    need(shutil.which("ip") is not None, "iproute2 (`ip`) not installed")
    tag = uuid.uuid4().hex[:6]
    name, here, there = f"awt{tag}", f"awh{tag}", f"awn{tag}"
    net = random.randint(1, 250)
    host_ip, peer_ip = f"10.213.{net}.1", f"10.213.{net}.2"
    made = _ip("netns", "add", name)
    need(made.returncode == 0, f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        steps = [
            ("link", "add", here, "type", "veth", "peer", "name", there),
            ("link", "set", there, "netns", name),
            ("addr", "add", f"{host_ip}/30", "dev", here),
            ("link", "set", here, "up"),
            ("-n", name, "addr", "add", f"{peer_ip}/30", "dev", there),
            ("-n", name, "link", "set", there, "up"),
            ("-n", name, "link", "set", "lo", "up"),
        ]
        for s in steps:
            r = _ip(*s)
            need(
                r.returncode == 0,
                f"cannot set up the veth pair (ip {' '.join(s)}): {r.stderr.strip()}",
            )
        yield Netns(name, host_ip, peer_ip)
    finally:
        _ip("link", "del", here)  # takes its peer with it
        _ip("netns", "del", name)


def _remote(srv: ServerProcess, ns: Netns) -> str:
    return f"http://{ns.host_ip}:{srv.port}"


def test_protected_mode_refuses_other_addresses(
    netns: Netns, server_factory: type[ServerProcess], db_url: str
) -> None:
    srv = server_factory(None, "--host", "0.0.0.0").start()
    url = _remote(srv, netns)

    status, body = netns.request("GET", url + "/api/events")
    assert status == 403
    assert "protected mode" in body["detail"] and "agentwatch keys create" in body["detail"]
    status, body = netns.request("POST", url + "/api/events", body={"events": [ev()]})
    assert status == 403
    assert stored(srv.url) == []  # nothing written from there
    # The page shell and the health check are public, so the dashboard can say why.
    assert netns.request("GET", url + "/api/health")[0] == 200
    status, page = netns.request("GET", url + "/")
    assert status == 200 and "AgentWatch" in page
    status, info = netns.request("GET", url + "/api/session")
    assert status == 200
    assert info["auth"] == "protected" and info["required"] is True and info["local"] is False
    # Meanwhile this machine is served as before.
    assert httpx.get(srv.url + "/api/events").status_code == 200

    # Once a key exists it is what counts, from everywhere.
    ingest = create_key(db_url, "ingest", "remote-sdk")
    read = create_key(db_url, "read", "remote-read")  # seen with it: one table, one reload
    wait_for(lambda: netns.request("GET", url + "/api/events", bearer(read))[0] == 200)
    status, body = netns.request("GET", url + "/api/events")
    assert status == 401 and "Authorization: Bearer" in body["detail"]
    status, _ = netns.request(
        "POST", url + "/api/events", bearer(ingest), {"events": [ev(agent_name="far")]}
    )
    assert status == 200
    status, body = netns.request("GET", url + "/api/events", bearer(read))
    assert status == 200 and [e["agent_name"] for e in body["events"]] == ["far"]
    assert httpx.get(srv.url + "/api/events").status_code == 401  # and loopback too


def test_auth_off_serves_other_addresses(netns: Netns, server_factory: type[ServerProcess]) -> None:
    srv = server_factory(None, "--host", "0.0.0.0", "--auth", "off").start()
    url = _remote(srv, netns)
    status, _ = netns.request("POST", url + "/api/events", body={"events": [ev(agent_name="open")]})
    assert status == 200
    status, body = netns.request("GET", url + "/api/events")
    assert status == 200 and body["events"][0]["agent_name"] == "open"
    assert "authentication is off" in srv.log()
