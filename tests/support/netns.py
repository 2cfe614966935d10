"""A LAN neighbour for tests: a network namespace joined to this host by a veth pair on a private /30.

Tests send traffic only to loopback or to such a test host, never to this machine's real interfaces. The
namespace and both veth ends carry a per-run name; the /30 comes from 10.231.0.0/16, chosen from the pid
under a lock file so concurrent runs on one machine never share an address, and skipping any network this
machine already has. Teardown always deletes the veth pair and the namespace. Creating a namespace needs root
(CAP_NET_ADMIN): without it the tests that use it are skipped with the reason.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

POOL = ipaddress.IPv4Network("10.231.0.0/16")
LOCK = Path(tempfile.gettempdir()) / "evidence-test-netns.lock"


@dataclass(frozen=True)
class NetnsHost:
    """A test host: ``name`` is its namespace, ``host_addr`` this machine's end of the /30, ``ns_addr`` its own."""

    name: str
    host_addr: str
    ns_addr: str

    def python(self, script: Path, request: dict[str, Any], timeout: float = 120) -> Any:
        """Run ``script`` with this interpreter inside the namespace, ``request`` as JSON on stdin; its JSON
        result (the last line it prints). A script that fails fails the test with its stderr."""
        proc = subprocess.run(["ip", "netns", "exec", self.name, sys.executable, str(script)],
                              input=json.dumps(request), capture_output=True, text=True, timeout=timeout,
                              check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise AssertionError(f"{script.name} in {self.name} exited {proc.returncode}: {proc.stderr.strip()}")
        return json.loads(lines[-1])


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)


def _must(*args: str) -> None:
    res = _ip(*args)
    if res.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {res.stderr.strip()}")


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine has an address or a route in."""
    nets = []
    for link in json.loads(_ip("-j", "-4", "addr").stdout or "[]"):
        for addr in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    for route in json.loads(_ip("-j", "-4", "route").stdout or "[]"):
        if route.get("dst", "default") != "default":
            nets.append(ipaddress.IPv4Network(route["dst"], strict=False))
    return nets


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 of POOL that overlaps nothing on this machine, starting from one derived from the pid."""
    used = _networks_in_use()
    subnets = list(POOL.subnets(new_prefix=30))
    start = os.getpid() % len(subnets)
    for i in range(len(subnets)):
        net = subnets[(start + i) % len(subnets)]
        if not any(net.overlaps(u) for u in used):
            return net
    raise AssertionError(f"no free /30 left in {POOL} for a test network namespace")


@contextmanager
def netns_host() -> Iterator[NetnsHost]:
    """Create the namespace and veth pair, yield the test host, and always tear both down."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed (apt-get install iproute2): no network namespace test host")
    token = secrets.token_hex(4)
    name, host_if, ns_if = f"evidence-test-{os.getpid()}-{token}", f"evh{token}", f"evn{token}"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        if "not permitted" in made.stderr or "denied" in made.stderr:
            pytest.skip(f"cannot create a network namespace (needs root / CAP_NET_ADMIN): {made.stderr.strip()}")
        raise AssertionError(f"ip netns add {name}: {made.stderr.strip()}")
    try:
        with LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # choosing and taking the /30 is one step across concurrent runs
            net = _free_subnet()
            host_addr, ns_addr = (str(a) for a in net.hosts())
            _must("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", name)
            _must("addr", "add", f"{host_addr}/30", "dev", host_if)
        _must("link", "set", host_if, "up")
        _must("-n", name, "addr", "add", f"{ns_addr}/30", "dev", ns_if)
        _must("-n", name, "link", "set", ns_if, "up")
        _must("-n", name, "link", "set", "lo", "up")
        yield NetnsHost(name, host_addr, ns_addr)
    finally:
        _ip("link", "del", host_if)  # takes its peer in the namespace with it
        _ip("netns", "del", name)


@pytest.fixture(scope="module")
def lan_neighbour() -> Iterator[NetnsHost]:
    """A network-namespace test host per test module (see :func:`netns_host`)."""
    with netns_host() as host:
        yield host
