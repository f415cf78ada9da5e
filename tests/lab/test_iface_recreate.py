"""An interface deleted and created again is bound again without a restart.

A packet socket stays bound to the device it was bound to; a new device under the
same name has a new ifindex.  The supervisor notices within a second, stops the
workers of that pair and starts them on new sockets; traffic flows again and no
other pair stops.
"""
from __future__ import annotations

import time

from pyroute2 import NetNS

from netnslab import PREFIX4, SERVER4


def wait_for(cond, timeout: float = 20.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def recreate_server_link(lab) -> None:
    """Delete eth1 (its veth peer in the server namespace goes with it) and make both again."""
    with NetNS(lab.ns["server"]) as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname="veth0")[0])
    lab._veth("server", "veth0", "bridge", "eth1", lab.server_mtu)
    lab._addr("server", "veth0", SERVER4, PREFIX4)
    for role, ifname in (("server", "veth0"), ("bridge", "eth1")):
        lab.set_offloads(role, ifname, on=False)
    lab.run("client", "ip", "neigh", "flush", "dev", "veth0")   # the server's new veth has a new MAC


def test_a_recreated_interface_is_bound_again_and_traffic_flows(lab):
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--threads", "2", "--stats-interval", "0")
    assert lab.ping("client", SERVER4, count=2, interval=0.2).returncode == 0
    (ready,) = bridge.events("ready")
    recreate_server_link(lab)
    assert wait_for(lambda: bridge.events("interface_rebound") != []), bridge.log()
    (ev,) = bridge.events("interface_recreated")
    assert ev["interfaces"] == ["eth0", "eth1"] and ev["ifindex"]["eth1"][0] != ev["ifindex"]["eth1"][1]
    lab.ping("client", SERVER4, count=3, interval=0.2, extra=("-w", "20"))
    assert bridge.proc.poll() is None
    totals = bridge.stop()
    assert totals["interfaces"]["eth0"]["forwarded"] >= 5           # before and after, kept in the totals
    assert not bridge.events("worker_died")
