"""SIGHUP and EVE files, on the live bridge: logrotate's way of working.

`kill -HUP` (Debian's logrotate recipe for Suricata) makes the workers reopen
the EVE file and never stops the bridge; an EVE file that cannot be written
loses the events of that moment (counted) and is tried again, never switched
off for good.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import time

from netnslab import SERVER4

RULE = 'alert icmp any any -> any any (msg:"ping seen"; itype:8; sid:4242;)\n'


def wait_for(cond, timeout: float = 20.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def alerts(path) -> int:
    try:
        with open(path) as fh:
            return sum(1 for line in fh if json.loads(line).get("event_type") == "alert")
    except FileNotFoundError:
        return 0


def test_sighup_reopens_the_eve_file_and_the_bridge_keeps_forwarding(lab):
    rules = lab.write("ping.rules", RULE)
    eve = lab.workdir / "eve.json"
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--eve", str(eve))
    lab.ping("client", SERVER4, count=2, interval=0.2)
    assert wait_for(lambda: alerts(eve) >= 2)
    rotated = lab.workdir / "eve.json.1"
    os.rename(eve, rotated)                            # what logrotate does
    os.kill(bridge.pid, signal.SIGHUP)
    assert wait_for(lambda: bridge.events("reopen") != [])
    time.sleep(0.5)                                    # the workers act on it at their next loop turn
    lab.ping("client", SERVER4, count=3, interval=0.2)   # forwarding goes on
    assert wait_for(lambda: alerts(eve) >= 3), bridge.log()
    assert bridge.proc.poll() is None
    totals = bridge.stop()
    assert alerts(rotated) == 2 and alerts(eve) == 3
    assert totals["inspector"]["eve.errors"] == 0
    assert len(bridge.events("eve_reopened")) >= 1


def test_an_eve_file_that_cannot_be_written_is_retried_not_given_up(lab):
    rules = lab.write("ping.rules", RULE)
    d = lab.workdir / "evedir"
    d.mkdir()
    eve = d / "eve.json"
    bridge = lab.start_bridge("--bridge", "eth0:eth1", "-S", str(rules), "--eve", str(eve))
    lab.ping("client", SERVER4, count=1)
    assert wait_for(lambda: alerts(eve) >= 1)
    shutil.rmtree(d)                                   # the directory is gone ...
    os.kill(bridge.pid, signal.SIGHUP)                 # ... and the reopen cannot create the file
    assert wait_for(lambda: bridge.events("reopen") != [])
    time.sleep(0.5)
    lab.ping("client", SERVER4, count=2, interval=0.2)
    assert wait_for(lambda: bridge.events("eve_write_failed") != []), bridge.log()
    d.mkdir()                                          # back: the next events after the retry delay land
    time.sleep(1.2)
    lab.ping("client", SERVER4, count=2, interval=0.2)
    assert wait_for(lambda: alerts(eve) >= 1), bridge.log()
    totals = bridge.stop()
    assert totals["inspector"]["eve.errors"] >= 1 and totals["inspector"]["eve.events_lost"] >= 2
