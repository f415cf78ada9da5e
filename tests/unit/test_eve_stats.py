"""bridge.stats.eve_stats: the counters in the shape of Suricata 7's EVE stats record."""
from __future__ import annotations

from bridge.stats import empty, eve_stats, merge


def test_counters_land_under_suricatas_names_and_the_rest_under_ipsbridge():
    eth0 = merge(empty(), {"received": 10, "forwarded": 7, "dropped": {"rule": 2, "flow": 1},
                           "kernel_packets": 11, "kernel_drops": 1, "send_errors": {"ENOBUFS": 0}})
    eth1 = merge(empty(), {"received": 5, "forwarded": 5, "kernel_packets": 5, "injected": 1})
    totals = {"interfaces": {"eth0": eth0, "eth1": eth1},
              "inspector": {"packets": 15, "alerts": 4, "flow.created": 3, "flow.active": 2,
                            "stream.sessions": 1, "defrag.reassembled": 0, "rules.loaded": 9}}
    s = eve_stats(totals, 12.7)
    assert s["uptime"] == 12
    assert s["capture"] == {"kernel_packets": 16, "kernel_drops": 1, "errors": 0}
    assert s["decoder"] == {"pkts": 15}
    assert s["ips"] == {"accepted": 12, "blocked": 3, "rejected": 1, "drop_reason": {"rule": 2, "flow": 1}}
    assert s["detect"] == {"alert": 4}
    assert s["flow"] == {"total": 3, "active": 2}
    assert s["tcp"] == {"sessions": 1}
    assert s["defrag"] == {"reassembled": 0}
    assert s["ipsbridge"]["inspector"] == {"rules.loaded": 9}
    assert s["ipsbridge"]["interfaces"]["eth0"]["received"] == 10
