"""`ipsbridge run` refuses, for real, setups that cannot work: exit 2, one line per problem.

Each case runs `python3 -m bridge run ...` in the lab's bridge namespace
(ports eth0 and eth1 are real veths) and expects exit status 2, exactly one
`refused:` line naming interface, key and fix, and no `ready` event.
"""
from __future__ import annotations

import os
import sys
import textwrap

import pytest

import netnslab

pytestmark = pytest.mark.lab


def ipsbridge(lab, *argv: str):
    return lab.run("bridge", sys.executable, "-m", "bridge", *argv, check=False, timeout=60,
                   cwd=str(netnslab.REPO), env={**os.environ, "PYTHONPATH": str(netnslab.REPO)})


def yaml_pair(eth0: str = "", eth1: str = "", extra: str = "") -> str:
    ind = lambda s: textwrap.indent(textwrap.dedent(s), "    ")  # noqa: E731
    return ("af-packet:\n"
            "  - interface: eth0\n    copy-mode: ips\n    copy-iface: eth1\n" + ind(eth0) +
            "  - interface: eth1\n    copy-mode: ips\n    copy-iface: eth0\n" + ind(eth1) + extra)


def refused_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("refused: ")]


def assert_refused(proc, *fragments: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    lines = refused_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert '"ready"' not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert " -- fix: " in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def rlab():
    """One lab for the module: every case here refuses before touching a socket."""
    lab = netnslab.Lab("ipsbr")
    lab.up()
    try:
        yield lab
    finally:
        lab.down()


YAML_CASES = [
    ("unequal-threads", yaml_pair(eth0="threads: 2\n", eth1="threads: 1\n"),
     ("ipsbridge.yaml:2: eth0: threads: 2 here but 1 on its peer eth1", "set the same 'threads'")),
    ("shared-cluster-id", yaml_pair(eth0="cluster-id: 7\n", eth1="cluster-id: 7\n"),
     ("eth1: cluster-id: 7 is also used by eth0", "own 'cluster-id'")),
    ("missing-peer-entry",
     "af-packet:\n  - interface: eth0\n    copy-mode: ips\n    copy-iface: eth1\n",
     ("eth0: copy-iface: peer 'eth1' has no af-packet entry", "add an af-packet entry for eth1")),
    ("copy-mode-without-copy-iface",
     "af-packet:\n  - interface: eth0\n    copy-mode: ips\n",
     ("eth0: copy-mode: 'ips' set but no copy-iface", "copy-iface: PEER")),
    ("ips-without-mmap", yaml_pair(eth1="use-mmap: no\n"),
     ("eth1: use-mmap: off, but copy-mode 'ips'", "use-mmap: yes")),
    ("no-promisc-inline", yaml_pair(eth1="disable-promisc: yes\n"),
     ("eth1: disable-promisc: on an inline interface", "disable-promisc: no")),
    ("bpf-filter-inline", yaml_pair(eth0="bpf-filter: tcp port 80\n"),
     ("eth0: bpf-filter:", "silent blackhole")),
]


@pytest.mark.parametrize("text,fragments", [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES])
def test_static_refusal_from_file(rlab, text, fragments):
    path = rlab.write("ipsbridge.yaml", text)
    assert_refused(ipsbridge(rlab, "run", "-c", str(path)), *fragments)


def test_missing_interface(rlab):
    line = assert_refused(ipsbridge(rlab, "run", "--bridge", "eth0:eth9"),
                          "eth9: interface: no such network interface")
    assert "ip -br link" in line


def test_unequal_mtu(rlab):
    rlab.set_mtu("bridge", "eth1", 1400)
    try:
        assert_refused(ipsbridge(rlab, "run", "--bridge", "eth0:eth1"),
                       "eth0: mtu: 1500 here but 1400 on its peer eth1",
                       "fix: ip link set eth0 mtu 1400")
    finally:
        rlab.set_mtu("bridge", "eth1", 1500)


def test_loopback_is_not_ethernet(rlab):
    assert_refused(ipsbridge(rlab, "run", "--ids", "lo"),
                   "lo: interface: not an Ethernet device (loopback, ARPHRD 772)")


def test_tun_is_not_ethernet(rlab):
    rlab.run("bridge", "ip", "tuntap", "add", "tun0", "mode", "tun")
    try:
        assert_refused(ipsbridge(rlab, "run", "--bridge", "eth0:tun0"),
                       "tun0: interface: not an Ethernet device")
    finally:
        rlab.run("bridge", "ip", "link", "del", "tun0")


def test_unequal_threads_quick_form_on_top_of_file(rlab):
    """--threads overrides every interface, so it cures a file with unequal threads."""
    path = rlab.write("uneq.yaml", yaml_pair(eth0="threads: 2\n", eth1="threads: 1\n"))
    proc = ipsbridge(rlab, "run", "-c", str(path), "--threads", "2", "--stats-interval", "-1")
    # the threads problem is gone; what is left is the negative stats interval
    assert_refused(proc, "ipsbridge: stats-interval: -1.0 is not 0..86400 seconds")


def test_every_problem_is_listed(rlab):
    path = rlab.write("many.yaml", yaml_pair(eth0="threads: 2\nuse-mmap: no\ncluster-id: 5\n", eth1="cluster-id: 5\n"))
    proc = ipsbridge(rlab, "run", "-c", str(path))
    assert proc.returncode == 2
    keys = sorted(line.split(": ")[3] for line in refused_lines(proc))
    assert keys == ["cluster-id", "threads", "use-mmap"], proc.stderr


def test_config_that_does_not_parse_exits_2(rlab):
    path = rlab.write("bad.yaml", "af-packet:\n  - interface: eth0\n    treads: 2\n")
    proc = ipsbridge(rlab, "run", "-c", str(path))
    assert proc.returncode == 2
    assert "bad.yaml:3: eth0: treads: unknown key (did you mean 'threads'?)" in proc.stderr


def test_clean_setup_is_not_refused(rlab):
    """The refusal checks do not reject a good pair: the bridge comes up and stops cleanly."""
    bridge = rlab.start_bridge("--bridge", "eth0:eth1", "--threads", "2")
    totals = bridge.stop()
    assert isinstance(totals, dict)
    assert "refused" not in bridge.log()


@pytest.mark.parametrize("how", ["quick-form", "yaml-defrag-yes"])
def test_inline_defrag_is_forced_off_so_fragments_pass(lab, how):
    """With the fanout defrag flag the kernel hands over reassembled datagrams larger than
    the MTU, which cannot be forwarded: conf turns defrag off on ips/tap interfaces."""
    if how == "quick-form":
        bridge = lab.start_bridge("--bridge", "eth0:eth1")
    else:
        path = lab.write("defrag.yaml", yaml_pair(eth0="defrag: yes\n", eth1="defrag: yes\n"))
        bridge = lab.start_bridge("-c", str(path))
        assert len(bridge.events("config_defrag_forced_off")) == 2
    lab.ping("client", netnslab.SERVER4, count=2, size=4000)  # 3 fragments each way; raises on loss
    totals = bridge.stop()
    oversize = sum(w["interfaces"][p]["oversize"] for w in totals["workers"] for p in ("eth0", "eth1"))
    assert oversize == 0, totals
