"""MTU mismatch appearing while the bridge runs: frames larger than the
egress port's MTU cannot be sent (EMSGSIZE).  The bridge must count every one
of them (send_errors.EMSGSIZE and oversize), keep running, and lose nothing else.

The peers start equal (MTU 1500, so the startup check passes); eth1's MTU is
then lowered to 1400 behind the bridge's back, as an operator or a DHCP/RA
option might do.
"""
from __future__ import annotations

import pytest

from netnslab import CLIENT4, SERVER4, SERVER6

pytestmark = pytest.mark.lab


def unaccounted(c: dict) -> int:
    return c["received"] - c["forwarded"] - sum(c["dropped"].values()) - sum(c["send_errors"].values())


def test_frames_over_peer_mtu_counted_as_emsgsize_and_nothing_else_lost(lab):
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "--stats-interval", "0")
    lab.ping("client", SERVER4, count=2, size=1472)          # full-size frames pass at equal MTU
    lab.set_mtu("bridge", "eth1", 1400)
    out = lab.run("bridge", "ip", "-o", "link", "show", "eth1").stdout
    assert "mtu 1400" in out, out

    big4, big6 = 5, 4
    p4 = lab.ping("client", SERVER4, count=big4, size=1472, check=False)    # 1514-byte frames
    p6 = lab.ping("client", SERVER6, count=big6, size=1452, check=False)    # 1514-byte frames
    assert p4.returncode != 0 and f"{big4} packets transmitted, 0 received" in p4.stdout, p4.stdout
    assert p6.returncode != 0 and f"{big6} packets transmitted, 0 received" in p6.stdout, p6.stdout

    small = lab.ping("client", SERVER4, count=5, size=1000)  # 1042-byte frames still fit
    assert "5 packets transmitted, 5 received" in small.stdout
    lab.ping("client", SERVER6, count=3)
    lab.ping("server", CLIENT4, count=3)
    assert bridge.proc.poll() is None, "bridge died on EMSGSIZE"
    totals = bridge.stop()

    eth0, eth1 = totals["interfaces"]["eth0"], totals["interfaces"]["eth1"]
    assert eth0["send_errors"] == {"EMSGSIZE": big4 + big6}, eth0
    assert eth0["oversize"] == big4 + big6, eth0
    assert eth0["dropped"] == {} and eth1["dropped"] == {}
    assert eth1["send_errors"] == {}, eth1
    assert unaccounted(eth0) == 0 and unaccounted(eth1) == 0, (eth0, eth1)
    assert eth0["kernel_drops"] == 0 and eth1["kernel_drops"] == 0
