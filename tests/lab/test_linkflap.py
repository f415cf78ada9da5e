"""Link flap under load: the server-side port (eth1, and the server's veth0
behind it) goes down and comes back in the middle of a TCP transfer.

The bridge must survive it in place (same PID, no restart), count what it
could not send while the link was down (send_errors ENETDOWN/ENXIO, or
link_errors), and resume forwarding on its own: TCP retransmits, the transfer
completes with the right sha256, and a fresh ping passes.
"""
from __future__ import annotations

import time

import pytest

from netnslab import CLIENT4, SERVER4, TcpTransfer

pytestmark = pytest.mark.lab

SIZE = 20 * 1024 * 1024
RATE = 8 * 1024 * 1024            # bytes/s: about 2.5 s of transfer, the flap lands in the middle


def unaccounted(c: dict) -> int:
    return c["received"] - c["forwarded"] - sum(c["dropped"].values()) - sum(c["send_errors"].values())


@pytest.mark.parametrize("where", ["bridge-and-server", "bridge-only"])
def test_transfer_survives_link_flap(lab, where):
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    pid = bridge.pid
    lab.ping("client", SERVER4, count=1)
    xfer = TcpTransfer(lab, SERVER4, SIZE, rate=RATE, port=5002)
    time.sleep(0.8)
    lab.set_link("bridge", "eth1", up=False)
    if where == "bridge-and-server":
        lab.set_link("server", "veth0", up=False)
    time.sleep(1.0)                                   # the client keeps sending into a dead port
    if where == "bridge-and-server":
        lab.set_link("server", "veth0", up=True)
    lab.set_link("bridge", "eth1", up=True)
    sent, received = xfer.result(timeout=120)

    assert sent == received, "transfer corrupted or cut across the flap"
    assert sent.split()[0] == str(SIZE)
    assert bridge.proc.poll() is None and bridge.pid == pid, "the bridge did not survive the flap"
    lab.ping("client", SERVER4, count=3)
    lab.ping("server", CLIENT4, count=3)
    totals = bridge.stop()

    assert len(bridge.events("ready")) == 1, "workers restarted instead of riding out the flap"
    eth0, eth1 = totals["interfaces"]["eth0"], totals["interfaces"]["eth1"]
    lost_to_link = sum(eth0["send_errors"].get(e, 0) for e in ("ENETDOWN", "ENXIO")) + eth1["link_errors"]
    assert lost_to_link > 0, (eth0, eth1)
    assert set(eth0["send_errors"]) <= {"ENETDOWN", "ENXIO"}, eth0["send_errors"]
    assert eth0["dropped"] == {} and eth1["dropped"] == {}
    assert unaccounted(eth0) == 0 and unaccounted(eth1) == 0, (eth0, eth1)
    assert eth0["forwarded"] > SIZE // 1500             # forwarding resumed: the whole transfer crossed
