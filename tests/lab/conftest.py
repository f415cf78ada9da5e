"""Lab tests: real AF_PACKET sockets in real network namespaces.

They never skip.  Without root or namespace support they fail, loudly, at the
fixture: a lab test that did not run is a failure, not a pass.
"""
from __future__ import annotations

import os

import pytest

import netnslab


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session", autouse=True)
def _lab_preconditions():
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, AF_PACKET); run the suite as root", pytrace=False)
    netnslab.cleanup_stale()  # namespaces left by crashed earlier runs (owner PID gone)


@pytest.fixture
def lab_factory():
    """Build labs with custom options: `lab_factory(mtu=9000)`; all torn down after the test."""
    made: list[netnslab.Lab] = []

    def make(**kw) -> netnslab.Lab:
        lab = netnslab.Lab(kw.pop("prefix", "ipsbt"), **kw)
        made.append(lab)
        return lab.up()

    yield make
    for lab in made:
        lab.down()


@pytest.fixture
def lab(lab_factory) -> netnslab.Lab:
    """A default lab: client <-> bridge(eth0, eth1) <-> server, MTU 1500, offloads off."""
    return lab_factory()
