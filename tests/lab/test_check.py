"""`ipsbridge check` against a real namespace: each bad condition is created and must be reported.

Runs `python3 -m bridge check --bridge eth0:eth1` in the lab's bridge
namespace; every case makes one thing wrong and expects the problem line
(interface, key, exact fix), exit 1, and exit 0 once it is undone.
"""
from __future__ import annotations

import os
import sys

import pytest

import netnslab

pytestmark = pytest.mark.lab

BRIDGE = ("--bridge", "eth0:eth1")


def ipsbridge(lab, *argv: str, prefix: tuple[str, ...] = ()):
    return lab.run("bridge", *prefix, sys.executable, "-m", "bridge", *argv, check=False, timeout=60,
                   cwd=str(netnslab.REPO), env={**os.environ, "PYTHONPATH": str(netnslab.REPO)})


def check(lab, *argv: str, prefix: tuple[str, ...] = ()):
    return ipsbridge(lab, "check", *(argv or BRIDGE), prefix=prefix)


def problem_lines(proc) -> list[str]:
    return [l for l in proc.stdout.splitlines() if l.startswith(("error: ", "warning: "))]


def assert_clean(proc):
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert problem_lines(proc) == [] and "check: OK (eth0, eth1)" in proc.stdout


def assert_reports(proc, *fragments: str) -> str:
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    for line in problem_lines(proc):
        if all(f in line for f in fragments):
            assert " -- fix: " in line
            return line
    raise AssertionError(f"no line with {fragments} in:\n{proc.stdout}")


def ethtool_k(lab, ifname: str) -> dict[str, str]:
    out = lab.run("bridge", "ethtool", "-k", ifname).stdout
    return {k.strip(): v.strip() for k, _, v in (l.partition(":") for l in out.splitlines()[1:]) if v}


def test_clean_setup_exits_0(lab):
    assert_clean(check(lab))


def test_offloads_on_by_default_on_veth_are_reported_with_exact_fix(lab_factory):
    lab = lab_factory(offloads=True)  # veth defaults: TSO, GSO, tx and rx checksum offload on
    proc = check(lab)
    for port in ("eth0", "eth1"):
        line = assert_reports(proc, f"error: {port}: offloads: on:", "tx-tcp-segmentation", "rx-checksum")
        assert line.endswith(f"-- fix: ethtool -K {port} tso off gso off tx off rx off"), line


def test_gro_on_is_reported(lab):
    lab.run("bridge", "ethtool", "-K", "eth1", "gro", "on")
    line = assert_reports(check(lab), "eth1: offloads: on: gro (rx-gro)")
    assert line.endswith("-- fix: ethtool -K eth1 gro off"), line


def test_fix_turns_offloads_off(lab_factory):
    lab = lab_factory(offloads=True)
    lab.run("bridge", "ethtool", "-K", "eth0", "gro", "on")
    before = ethtool_k(lab, "eth0")
    assert before["tcp-segmentation-offload"] == "on" and before["generic-receive-offload"] == "on"
    proc = check(lab, *BRIDGE, "--fix")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fix: eth0: offloads turned off via pyroute2 Ethtool (fixed)" in proc.stdout
    assert "fix: eth1: offloads turned off via pyroute2 Ethtool (fixed)" in proc.stdout
    for port in ("eth0", "eth1"):
        after = ethtool_k(lab, port)
        for feature in ("rx-checksumming", "tx-checksumming", "tcp-segmentation-offload",
                        "generic-segmentation-offload", "generic-receive-offload"):
            assert after[feature].startswith("off"), (port, feature, after[feature])
    assert_clean(check(lab))


def test_port_enslaved_to_kernel_bridge(lab):
    lab.run("bridge", "ip", "link", "add", "br0", "type", "bridge")
    lab.run("bridge", "ip", "link", "set", "eth0", "master", "br0")
    line = assert_reports(check(lab), "error: eth0: master: enslaved to bridge br0")
    assert line.endswith("-- fix: ip link set eth0 nomaster")
    lab.run("bridge", "ip", "link", "set", "eth0", "nomaster")
    assert_clean(check(lab))


def test_ip_address_on_bridged_port(lab):
    lab.run("bridge", "ip", "addr", "add", "203.0.113.7/24", "dev", "eth1")
    line = assert_reports(check(lab), "error: eth1: address: has IP address 203.0.113.7/24")
    assert line.endswith("-- fix: ip addr del 203.0.113.7/24 dev eth1")


def test_ip_address_on_ids_port_is_fine(lab):
    lab.run("bridge", "ip", "addr", "add", "203.0.113.7/24", "dev", "eth1")
    proc = check(lab, "--ids", "eth1")
    assert proc.returncode == 0, proc.stdout


def test_ip_forward_in_the_namespace(lab):
    lab.sysctl("bridge", "net.ipv4.ip_forward", "1")
    line = assert_reports(check(lab), "warning: system: ip_forward: is 1")
    assert line.endswith("-- fix: sysctl -w net.ipv4.ip_forward=0 (unless this host must also route other traffic)")
    lab.sysctl("bridge", "net.ipv4.ip_forward", "0")
    assert_clean(check(lab))


def test_link_down(lab):
    lab.set_link("bridge", "eth1", up=False)
    line = assert_reports(check(lab), "error: eth1: link: is down")
    assert line.endswith("-- fix: ip link set eth1 up")


def test_no_carrier_when_the_far_end_is_down(lab):
    lab.set_link("client", "veth0", up=False)
    assert_reports(check(lab), "warning: eth0: link: is up but has no carrier")


def test_unequal_mtu_and_missing_and_non_ethernet(lab):
    lab.set_mtu("bridge", "eth1", 1400)
    proc = check(lab, "--bridge", "eth0:eth1", "--ids", "lo", "--ids", "nope0")
    assert_reports(proc, "error: eth0: mtu: 1500 here but 1400 on its peer eth1", "ip link set eth0 mtu 1400")
    assert_reports(proc, "error: lo: interface: not an Ethernet device (loopback")
    assert_reports(proc, "error: nope0: interface: no such network interface")


def test_missing_capabilities_and_af_packet_socket(lab):
    drop = ("setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-net_raw,-net_admin")
    proc = check(lab, prefix=drop)
    assert_reports(proc, "error: system: capabilities: missing CAP_NET_RAW and CAP_NET_ADMIN",
                   "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN")
    assert_reports(proc, "error: system: af-packet socket: cannot open an AF_PACKET socket")


def test_static_problems_are_reported_too(lab):
    path = lab.write("c.yaml", "af-packet:\n  - {interface: eth0, copy-mode: ips, copy-iface: eth1, threads: 2}\n"
                               "  - {interface: eth1, copy-mode: ips, copy-iface: eth0}\n")
    assert_reports(check(lab, "-c", str(path)), "eth0: threads: 2 here but 1 on its peer eth1")


def test_config_that_does_not_parse_exits_2(lab):
    path = lab.write("bad.yaml", "af-packet:\n  - interface: eth0\n    threads: many\n")
    proc = check(lab, "-c", str(path))
    assert proc.returncode == 2
    assert "bad.yaml:3: eth0: threads: 'many' is not a thread count" in proc.stderr


def test_fix_falls_back_to_ethtool_binary_when_pyroute2_cannot_set(lab_factory):
    lab = lab_factory(offloads=True)
    code = (
        "import pyroute2.ethtool as e, bridge.syscheck as s\n"
        "def refuse(self, ifname, features): raise OSError(95, 'not supported here')\n"
        "e.Ethtool.set_features = refuse\n"
        "how, left = s.fix_offloads('eth0')\n"
        "print(how); print(sorted(left.on))\n"
    )
    out = lab.python("bridge", code).stdout.splitlines()
    assert out[0].startswith("ethtool -K (pyroute2 Ethtool failed:") and out[1] == "[]", out
    assert ethtool_k(lab, "eth0")["tcp-segmentation-offload"] == "off"


def test_tpacket_v3_is_probed_for_ids_interfaces(lab):
    path = lab.write("v3.yaml", "af-packet:\n  - {interface: eth0, tpacket-v3: yes}\n")
    proc = check(lab, "-c", str(path))
    assert proc.returncode == 0 and "check: OK (eth0)" in proc.stdout, proc.stdout


def test_broken_and_unsupported_rules_are_reported(lab):
    rules = lab.write("t.rules", 'drop udp any any -> any 9999 (msg:"ok"; sid:1000001;)\n'
                                 'drop udp any any -> any 99999 (msg:"bad port"; sid:1000002;)\n'
                                 'alert tcp any any -> any any (msg:"typo"; conten:"x"; sid:1000003;)\n'
                                 'alert ssh any any -> any any (msg:"later"; ssh.proto; content:"x"; sid:1000004;)\n')
    proc = check(lab, *BRIDGE, "-S", str(rules))
    assert_reports(proc, f"error: rules: {rules}:2:25: port 99999 out of range")
    # a keyword no Suricata knows is a typo (an error); one Suricata knows is only not supported yet
    assert_reports(proc, f"error: rules: {rules}:3:43: unknown keyword 'conten' (did you mean 'content'?)")
    assert_reports(proc, f"warning: rules: {rules}:4:", "(not loaded)")


def test_shipped_example_config_checks_clean(lab):
    proc = check(lab, "-c", str(netnslab.REPO / "conf" / "ipsbridge.yaml"))
    assert_clean(proc)
