"""Refusals that apply to both interfaces of a pair, tested from both sides.

conf.validate refuses a pair whose `threads` (or copy-mode, or cluster-type) differ, and
bridge.syscheck refuses peers with unequal MTUs.  Each is a comparison written once
with a "report it once" guard, so a `>` where `!=` belongs, or a guard that keeps the
wrong side, fails only one way round: every case here runs A>B, B>A, equal, and with
the pair listed in either order in the file."""
from __future__ import annotations

import textwrap

import pytest

import conf
from bridge import syscheck
from conf import Config, ConfigError

IFACES = ("eth0", "eth1")


def config(a: dict, b: dict, *, reverse: bool = False, extra: str = "") -> Config:
    """An ips pair eth0 <-> eth1 with `a` / `b` as extra keys; `reverse`: eth1 listed first."""
    def entry(name, peer, keys):
        lines = [f"  - interface: {name}", "    copy-mode: " + keys.pop("copy-mode", "ips"), f"    copy-iface: {peer}"]
        lines += [f"    {k}: {v}" for k, v in keys.items()]
        return "\n".join(lines)
    entries = [entry("eth0", "eth1", dict(a)), entry("eth1", "eth0", dict(b))]
    if reverse:
        entries.reverse()
    text = "af-packet:\n" + "\n".join(entries) + "\n" + textwrap.dedent(extra)
    return conf.load_text(text, "test.yaml", "/")


def problems(c: Config, key: str) -> list:
    return [p for p in conf.validate(c) if p.key == key]


@pytest.mark.parametrize("reverse", [False, True], ids=["eth0-first", "eth1-first"])
@pytest.mark.parametrize("t0,t1", [(2, 4), (4, 2), (1, 2), (2, 1)], ids=["2<4", "4>2", "1<2", "2>1"])
def test_unequal_threads_refused_either_way_round_once(t0, t1, reverse):
    c = config({"threads": t0}, {"threads": t1}, reverse=reverse)
    (p,) = problems(c, "threads")
    first, mine, theirs, peer = ("eth1", t1, t0, "eth0") if reverse else ("eth0", t0, t1, "eth1")
    assert p.where == first                           # reported once, on the entry listed first
    assert f"{mine} here but {theirs} on its peer {peer}" in p.message
    assert p.fix == "set the same 'threads' on both interfaces"


@pytest.mark.parametrize("reverse", [False, True], ids=["eth0-first", "eth1-first"])
def test_equal_threads_are_not_refused(reverse):
    assert problems(config({"threads": 3}, {"threads": 3}, reverse=reverse), "threads") == []


@pytest.mark.parametrize("bad_side", [0, 1], ids=IFACES)
def test_a_thread_count_out_of_bounds_is_refused_on_whichever_side_it_is(bad_side):
    keys = [{"threads": 2}, {"threads": 2}]
    keys[bad_side] = {"threads": 0}
    with pytest.raises(ConfigError) as info:
        config(*keys)
    assert [(p.where, p.key) for p in info.value.problems] == [(IFACES[bad_side], "threads")]
    assert "0 is below the minimum 1" in info.value.problems[0].message


@pytest.mark.parametrize("reverse", [False, True], ids=["eth0-first", "eth1-first"])
@pytest.mark.parametrize("m0,m1", [("ips", "tap"), ("tap", "ips")], ids=["ips-tap", "tap-ips"])
def test_unequal_copy_mode_refused_either_way_round_once(m0, m1, reverse):
    c = config({"copy-mode": m0}, {"copy-mode": m1}, reverse=reverse)
    (p,) = problems(c, "copy-mode")
    first, mine, theirs = ("eth1", m1, m0) if reverse else ("eth0", m0, m1)
    assert p.where == first and f"'{mine}' here but '{theirs}' on its peer" in p.message


@pytest.mark.parametrize("reverse", [False, True], ids=["eth0-first", "eth1-first"])
@pytest.mark.parametrize("c0,c1", [("cluster_flow", "cluster_qm"), ("cluster_qm", "cluster_flow")],
                         ids=["flow-qm", "qm-flow"])
def test_unequal_cluster_type_refused_either_way_round_once(c0, c1, reverse):
    c = config({"cluster-type": c0}, {"cluster-type": c1}, reverse=reverse)
    (p,) = problems(c, "cluster-type")
    first, mine, theirs = ("eth1", c1, c0) if reverse else ("eth0", c0, c1)
    assert p.where == first and f"'{mine}' here but '{theirs}' on its peer" in p.message


# ------------------------------------------------------------------ MTU (bridge.syscheck)

def links(**mtu) -> dict:
    return {name: {"index": i + 2, "type": syscheck.ARPHRD_ETHER, "flags": 0, "mtu": m, "master": None,
                   "kind": "veth", "operstate": "UP"} for i, (name, m) in enumerate(mtu.items())}


@pytest.mark.parametrize("reverse", [False, True], ids=["eth0-first", "eth1-first"])
@pytest.mark.parametrize("m0,m1", [(1500, 1400), (1400, 1500), (9000, 1500), (1500, 9000), (1500, 1499), (1499, 1500)],
                         ids=lambda m: str(m))
def test_unequal_mtu_refused_either_way_round_once(m0, m1, reverse):
    c = config({}, {}, reverse=reverse)
    got = [p for p in syscheck._interface_problems(c, links(eth0=m0, eth1=m1)) if p.key == "mtu"]
    (p,) = got
    first = "eth1" if reverse else "eth0"
    mtu = {"eth0": m0, "eth1": m1}
    other = "eth0" if first == "eth1" else "eth1"
    big, small = ("eth0", "eth1") if m0 > m1 else ("eth1", "eth0")
    low = min(m0, m1)
    assert p.where == first
    assert p.message == (f"{mtu[first]} here but {mtu[other]} on its peer {other}: frames larger than {low} "
                         f"bytes cannot be forwarded to {small}")
    assert p.fix == f"ip link set {big} mtu {low} (or raise {small}'s MTU)"


@pytest.mark.parametrize("reverse", [False, True], ids=["eth0-first", "eth1-first"])
def test_equal_mtu_is_not_refused(reverse):
    assert syscheck._interface_problems(config({}, {}, reverse=reverse), links(eth0=1500, eth1=1500)) == []


def test_each_pair_is_checked_on_its_own():
    text = textwrap.dedent("""\
        af-packet:
          - {interface: eth0, copy-mode: ips, copy-iface: eth1}
          - {interface: eth1, copy-mode: ips, copy-iface: eth0}
          - {interface: eth2, copy-mode: ips, copy-iface: eth3}
          - {interface: eth3, copy-mode: ips, copy-iface: eth2}
        """)
    c = conf.load_text(text, "test.yaml", "/")
    got = syscheck._interface_problems(c, links(eth0=1500, eth1=1500, eth2=1400, eth3=1500))
    assert [(p.where, p.key) for p in got] == [("eth2", "mtu")]
    got = syscheck._interface_problems(c, links(eth0=1500, eth1=1400, eth2=1500, eth3=1400))
    assert [(p.where, p.key) for p in got] == [("eth0", "mtu"), ("eth2", "mtu")]


def test_a_missing_peer_is_refused_but_no_mtu_is_compared():
    got = syscheck._interface_problems(config({}, {}), links(eth0=1500))
    assert [(p.where, p.key) for p in got] == [("eth1", "interface")]
