#!/usr/bin/env python3
"""Craft the differential fixtures and record what Suricata 7 decides on them.

    python3 tests/replay/make_differential.py            # pcaps + rules + expected.json
    python3 tests/replay/make_differential.py --no-suricata   # pcaps + rules only
    python3 tests/replay/make_differential.py stream_ooo_ips stream_ooo_ids   # only these

For every scenario family below this writes, under tests/replay/differential/:

- NAME.pcap   crafted with scapy, deterministically (fixed timestamps, fixed
              IP ids / sequence numbers, seeded randomness: rerunning gives
              the same bytes);
- NAME.rules  the rules of that family;
- NAME.yaml   (TCP stream families only) the config our replay gets; Suricata
              gets the same stream section;
- expected.json  Suricata's decisions per scenario: the alerts as
              [pcap_cnt, sid, action] (action "allowed"/"blocked" as in EVE)
              and the pcap_cnt of every dropped packet, the files and the mode
              of the scenario, plus the version of Suricata that produced them.

Suricata is run as `suricata -r NAME.pcap -S NAME.rules --simulate-ips -k none
--runmode single -c <our yaml> -l <tmp>` with a small config written here
(`suricata_yaml`): the same vars and stream settings as
differential/ipsbridge.yaml, the config our replay uses, so both engines see
the same HOME_NET and the same stream policy.

The TCP stream families (stream_scenarios.py) are two scenarios each on the
same files: stream_<what>_ips (Suricata with --simulate-ips, so the stream is
inline; our replay --mode ips) and stream_<what>_ids (Suricata without it; our
replay --mode ids).  Their stream section is STREAM plus
STREAM_SCENARIO_BASE (chunk sizes not randomized, depth explicit) plus the
family's own settings (depth, chunk sizes, midstream, async-oneside), written
to both engines' configs.  IDS mode inspects the stream data left at a flow's
end on a pseudo packet that has no pcap_cnt: those alerts are pcap_cnt 0.

Design rules for the traffic, so that the comparison tests rule semantics and
not incidental engine differences:
- every TCP session starts with a full three-way handshake (midstream: false
  in both configs), but for the stream families that test midstream pick-up
  and async-oneside;
- outside the stream families, a payload that a TCP content rule inspects is
  the first data segment of its direction, so stream offsets and packet
  offsets coincide;
- packets testing header-only rules (addresses, ports) each open their own
  flow (distinct source port), so Suricata's once-per-flow "IP-only" rules and
  a per-packet evaluation see the same thing.

CI does not need Suricata: the fixtures and expected.json are committed and
tests/replay/test_differential.py compares our replay against them.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import stream_scenarios   # tests/replay/stream_scenarios.py (this script's directory is on sys.path)
import app_scenarios      # tests/replay/app_scenarios.py: HTTP, TLS, DNS, ... families

HERE = Path(__file__).resolve().parent
OUT = HERE / "differential"
CLASSIFICATION = "/work/shared/corpus/rules/et-open/classification.config"

# Addresses (documentation ranges only)
C1, C2, C3 = "198.51.100.1", "198.51.100.2", "198.51.100.3"   # HOME_NET
S1, S2, S3 = "203.0.113.1", "203.0.113.2", "203.0.113.3"      # EXTERNAL
C6, S6 = "2001:db8:1::1", "2001:db8:2::2"                     # HOME_NET / EXTERNAL v6
CMAC, SMAC = "02:00:00:00:00:01", "02:00:00:00:00:02"

VARS = {
    "address-groups": {
        "HOME_NET": "[198.51.100.0/24,2001:db8:1::/48]",
        "EXTERNAL_NET": "!$HOME_NET",
        "DNS_SERVERS": "[203.0.113.53,2001:db8:2::53]",
    },
    "port-groups": {
        "HTTP_PORTS": "[80,8080]",
        "HIGH_PORTS": "1024:",
    },
}
# midstream off (every session is crafted with its handshake); checksums are
# correct in crafted packets, so validation stays on in both engines.
STREAM = {"midstream": False, "checksum-validation": True, "inline": "auto"}
BASE_TS = 1_700_000_000.0


# The stream scenarios (stream_scenarios.py) add their own settings to STREAM,
# the same in both engines' configs: chunk sizes not randomized (Suricata
# draws them at start-up otherwise) and the depth always explicit (Suricata's
# default without the key is 0 = unlimited, ours 1 MiB).
STREAM_SCENARIO_BASE = {"reassembly": {"randomize-chunk-size": False, "depth": 1048576}}


def merged_stream(overrides: dict | None) -> dict:
    """STREAM with `overrides` (nested dicts merged key by key)."""
    out = copy.deepcopy(STREAM)
    for layer in (STREAM_SCENARIO_BASE, overrides or {}):
        for k, v in layer.items():
            if isinstance(v, dict) and isinstance(out.get(k), dict):
                out[k] = {**out[k], **v}
            else:
                out[k] = copy.deepcopy(v)
    return out


def suricata_yaml(rule_dir: Path, rules_file: str, stream: dict | None = None) -> str:
    """A minimal Suricata config, written here from scratch (`stream`: the
    scenario's stream section, default STREAM)."""
    import yaml

    doc = {
        "vars": VARS,
        "default-rule-path": str(rule_dir),
        "rule-files": [rules_file],
        "classification-file": CLASSIFICATION,
        "action-order": ["pass", "drop", "reject", "alert"],
        "outputs": [{"eve-log": {
            "enabled": True, "filetype": "regular", "filename": "eve.json",
            "types": ["alert", {"drop": {"alerts": True, "flows": "all"}}],
        }}],
        "logging": {"default-log-level": "notice",
                    "outputs": [{"console": {"enabled": True}}]},
        "stream": STREAM if stream is None else stream,
        # Suricata keeps at most 15 alerts per packet by default (the highest
        # ranked); our engine has no cap, so the cap is lifted for comparison.
        "packet-alert-max": 255,   # the largest value Suricata 7 accepts
        "exception-policy": "auto",
        "pcap-file": {"checksum-checks": "auto"},
    }
    return "%YAML 1.1\n---\n" + yaml.safe_dump(doc, sort_keys=False)


def ipsbridge_yaml(stream: dict | None = None, name: str | None = None) -> str:
    """The config our replay gets: differential/ipsbridge.yaml, or with `stream`
    the per-family config of a stream scenario (differential/NAME.yaml)."""
    import yaml

    doc = {"vars": VARS, "stream": STREAM if stream is None else stream, "classification-file": CLASSIFICATION}
    if stream is None:
        head = ("# Config our replay uses for the differential scenarios; mirrors the\n"
                "# vars and stream settings given to Suricata by make_differential.py.\n")
    else:
        head = (f"# Config our replay uses for the {name}_* differential scenarios; Suricata\n"
                "# gets the same vars and stream section (make_differential.py, stream_scenarios.py).\n")
    return head + yaml.safe_dump(doc, sort_keys=False)


# ---------------------------------------------------------------- traffic helpers
class Capture:
    """An ordered list of frames with deterministic timestamps."""

    def __init__(self) -> None:
        self.frames = []
        self.t = BASE_TS

    def add(self, pkt, dt: float = 0.01, at: float | None = None):
        if at is not None:
            self.t = BASE_TS + at
        else:
            self.t += dt
        pkt.time = round(self.t, 6)
        self.frames.append(pkt)
        return len(self.frames)   # the pcap_cnt of this frame

    def write(self, path: Path) -> None:
        from scapy.utils import wrpcap

        wrpcap(str(path), self.frames, linktype=1)


def l2(vlan=None, rev=False):
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    src, dst = (SMAC, CMAC) if rev else (CMAC, SMAC)
    if vlan is None:
        return Ether(src=src, dst=dst)
    if isinstance(vlan, int):
        return Ether(src=src, dst=dst, type=0x8100) / Dot1Q(vlan=vlan)
    outer, inner = vlan
    return Ether(src=src, dst=dst, type=0x88A8) / Dot1AD(vlan=outer) / Dot1Q(vlan=inner)


def ip(src, dst, **kw):
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6

    if ":" in src:
        if "ttl" in kw:
            kw["hlim"] = kw.pop("ttl")
        return IPv6(src=src, dst=dst, **kw)
    kw.setdefault("id", 1)
    return IP(src=src, dst=dst, **kw)


class Tcp:
    """One TCP session; tracks sequence numbers in both directions."""

    def __init__(self, cap: Capture, cli, srv, sport, dport, vlan=None, isn=(1000, 5000)):
        self.cap, self.cli, self.srv, self.sport, self.dport, self.vlan = cap, cli, srv, sport, dport, vlan
        self.cseq, self.sseq = isn

    def _pkt(self, to_server: bool, flags: str, data: bytes = b"", **ipkw):
        from scapy.layers.inet import TCP

        if to_server:
            p = (l2(self.vlan) / ip(self.cli, self.srv, **ipkw)
                 / TCP(sport=self.sport, dport=self.dport, flags=flags, seq=self.cseq,
                       ack=self.sseq if "A" in flags else 0, window=8192))
        else:
            p = (l2(self.vlan, rev=True) / ip(self.srv, self.cli, **ipkw)
                 / TCP(sport=self.dport, dport=self.sport, flags=flags, seq=self.sseq,
                       ack=self.cseq if "A" in flags else 0, window=8192))
        if data:
            p = p / data
        return p

    def c(self, flags="PA", data=b"", dt=0.01, **ipkw):
        n = self.cap.add(self._pkt(True, flags, data, **ipkw), dt)
        self.cseq += len(data) + (1 if ("S" in flags or "F" in flags) else 0)
        return n

    def s(self, flags="PA", data=b"", dt=0.01, **ipkw):
        n = self.cap.add(self._pkt(False, flags, data, **ipkw), dt)
        self.sseq += len(data) + (1 if ("S" in flags or "F" in flags) else 0)
        return n

    def handshake(self):
        self.c("S")
        self.s("SA")
        self.c("A")
        return self

    def close(self):
        self.c("FA")
        self.s("FA")
        self.c("A")


def udp(cap, src, dst, sport, dport, data=b"", vlan=None, dt=0.01, at=None, rev=False, **ipkw):
    from scapy.layers.inet import UDP

    return cap.add(l2(vlan, rev) / ip(src, dst, **ipkw) / UDP(sport=sport, dport=dport) / data, dt, at)


def icmp4(cap, src, dst, type=8, code=0, id=0, seq=0, data=b"", vlan=None, dt=0.01, at=None, rev=False, **ipkw):
    from scapy.layers.inet import ICMP

    # timestamp fields pinned: scapy fills them from the clock otherwise
    icmp = ICMP(type=type, code=code, id=id, seq=seq, ts_ori=0, ts_rx=0, ts_tx=0)
    return cap.add(l2(vlan, rev) / ip(src, dst, **ipkw) / icmp / data, dt, at)


# ---------------------------------------------------------------- scenarios
# Each scenario: (rules text, function(Capture) filling the capture).

PAYLOAD_RULES = r"""
# content modifiers, negation, pcre, isdataat, byte_test and dsize on UDP
# (packet payload, no stream): every rule is tried on every packet.
alert udp any any -> any 7000 (msg:"offset 2 depth 5"; content:"abc"; offset:2; depth:5; sid:101;)
alert udp any any -> any 7000 (msg:"depth 3"; content:"abc"; depth:3; sid:102;)
alert udp any any -> any 7000 (msg:"offset 3"; content:"abc"; offset:3; sid:103;)
alert udp any any -> any 7000 (msg:"distance 2 within 5"; content:"abc"; content:"xyz"; distance:2; within:5; sid:104;)
alert udp any any -> any 7000 (msg:"distance 0"; content:"abc"; content:"xyz"; distance:0; sid:105;)
alert udp any any -> any 7000 (msg:"nocase"; content:"ABC"; nocase; sid:106;)
alert udp any any -> any 7000 (msg:"abc but not evil"; content:"abc"; content:!"evil"; sid:107;)
alert udp any any -> any 7000 (msg:"no abc at all"; content:!"abc"; sid:108;)
alert udp any any -> any 7000 (msg:"pcre i"; pcre:"/a.c/i"; sid:109;)
alert udp any any -> any 7000 (msg:"pcre s"; pcre:"/abc.+xyz/s"; sid:110;)
alert udp any any -> any 7000 (msg:"pcre R"; content:"abc"; pcre:"/^\d{3}/R"; sid:111;)
alert udp any any -> any 7000 (msg:"isdataat relative"; content:"abc"; isdataat:3,relative; sid:112;)
alert udp any any -> any 7000 (msg:"isdataat negated relative"; content:"abc"; isdataat:!2,relative; sid:113;)
alert udp any any -> any 7000 (msg:"isdataat absolute"; isdataat:10; sid:114;)
alert udp any any -> any 7000 (msg:"byte_test 2 bytes > 1000"; byte_test:2,>,1000,0; sid:115;)
alert udp any any -> any 7000 (msg:"byte_test string dec relative"; content:"len="; byte_test:3,=,123,0,relative,string,dec; sid:116;)
alert udp any any -> any 7000 (msg:"dsize > 20"; dsize:>20; sid:117;)
alert udp any any -> any 7000 (msg:"dsize 5<>10"; dsize:5<>10; sid:118;)
alert udp any any -> any 7000 (msg:"hex content"; content:"|00 01 02|"; sid:119;)
alert udp any any -> any 7000 (msg:"fast_pattern and within"; content:"abc"; fast_pattern; content:"def"; within:10; sid:120;)
alert udp any any -> any 7000 (msg:"two occurrences"; content:"abc"; depth:3; content:"abc"; distance:0; sid:121;)
alert udp any any -> any 7000 (msg:"pcre anchored"; pcre:"/^abc/"; sid:122;)
alert udp any any -> any 7000 (msg:"byte_test bitmask"; byte_test:1,&,0x80,0; sid:123;)
alert udp any any -> any 7000 (msg:"negated relative within"; content:"x"; depth:1; content:!"y"; distance:0; within:1; sid:124;)
alert udp any any -> any 7000 (msg:"dsize 0"; dsize:0; sid:125;)
alert udp any any -> any 7000 (msg:"pcre case-sensitive"; pcre:"/aBc/"; sid:126;)
alert udp any any -> any 7000 (msg:"content with pipe-escaped mix"; content:"ab|63 20|e"; sid:127;)
alert udp any any -> any 7000 (msg:"byte_test little endian"; byte_test:2,=,1001,0,little; sid:128;)
alert udp any any -> any 7000 (msg:"isdataat negated absolute"; content:"abc"; isdataat:!6; sid:129;)
alert udp any any -> any 7000 (msg:"distance negative"; content:"xyz"; content:"abc"; distance:-9; within:3; sid:130;)
"""

PAYLOADS = [
    b"abc", b"xxabcxx", b"xxxxxxabc", b"abc12xyz", b"abc123456xyz", b"ABCxyz", b"abc evil",
    b"hello", b"a\nc", b"abc\n\nxyz", b"abc123", b"abcde", b"abcdefghijklmnop",
    b"\x03\xe9zz", b"\x03\xe8zz", b"\xe9\x03zz", b"len=123;", b"len=124;", b"xxlen=123",
    b"\x00\x01\x02\x03", b"abc---abc", b"\x80x", b"xy", b"xz", b"", b"aBc", b"abc e",
    b"abc def", b"zzzabc", b"abcxyz-------------------", b"123abcxyz",
]


def s_payload(cap: Capture):
    for i, data in enumerate(PAYLOADS):
        udp(cap, C1, S1, 40000, 7000, data)


TCP_FLOW_RULES = r"""
# TCP handshake, flow direction/state, flags with modifiers, dsize on TCP.
# (sid 207 left out on purpose: Suricata 7.0.10 evaluates `flags:*SF` only on
# SYN packets and `flags:!SF` only on packets with S, F or R set, which are
# engine quirks rather than the documented meaning of * and !.)
alert tcp any any -> any 8080 (msg:"to_server established"; flow:established,to_server; content:"req"; sid:201;)
alert tcp any any -> any any (msg:"to_client established"; flow:established,to_client; content:"resp"; sid:202;)
alert tcp any any -> any any (msg:"req seen to_client (never)"; flow:to_client; content:"req"; sid:203;)
alert tcp any any -> any 8080 (msg:"SYN exactly"; flags:S; sid:204;)
alert tcp any 8080 -> any any (msg:"SYN-ACK"; flags:SA; sid:205;)
alert tcp any any -> any any (msg:"ACK plus anything"; flags:A+; sid:206;)
alert tcp any any -> any any (msg:"FIN or RST"; flags:*FR; sid:218;)
alert tcp any any -> any 8081 (msg:"not RST"; flags:!R; sid:208;)
alert tcp any any -> any any (msg:"FIN-ACK"; flags:FA; sid:209;)
alert tcp any any -> any 8080 (msg:"SYN ignoring ECN bits"; flags:S,CE; sid:210;)
alert tcp any any -> any any (msg:"pure ACK established"; flow:established; flags:A; dsize:0; sid:211;)
alert tcp any any -> any any (msg:"not established"; flow:not_established; sid:212;)
alert tcp any any -> any any (msg:"big to_server"; flow:to_server; dsize:>100; sid:213;)
alert tcp any any -> any any (msg:"RST stateless"; flow:stateless; flags:R+; sid:214;)
alert tcp any any -> any 8080 (msg:"req at start"; flow:established,to_server; content:"req"; depth:3; sid:215;)
alert tcp any any -> any any (msg:"from_server"; flow:from_server,established; dsize:>0; sid:216;)
alert tcp any any -> any any (msg:"URG or PSH exactly with ACK"; flags:PA; sid:217;)
"""


def s_tcp_flow(cap: Capture):
    a = Tcp(cap, C1, S1, 41000, 8080).handshake()
    a.c("PA", b"req one")
    a.s("A")
    a.s("PA", b"resp data")
    a.c("A")
    a.close()
    # a large first request in its own session (see "Design rules" above)
    d = Tcp(cap, C1, S1, 41003, 8080).handshake()
    d.c("PA", b"req" + b"x" * 150)
    d.s("A")
    # closed port: SYN answered by RST (seq 0, as a host stack sends it)
    b = Tcp(cap, C2, S1, 41001, 8081, isn=(1000, 0))
    b.c("S")
    b.s("RA")
    # SYN with ECN bits set (ECE+CWR)
    e = Tcp(cap, C3, S1, 41002, 8080)
    e.c("SEC")
    e.s("SAE")
    e.c("A")
    e.c("PA", b"req ecn")


IP_ICMP_RULES = r"""
# IP header keywords and ICMP fields
alert ip any any -> any any (msg:"ttl 1"; ttl:1; sid:301;)
alert ip any any -> any any (msg:"ttl < 5"; ttl:<5; sid:302;)
alert ip any any -> any any (msg:"ttl > 200"; ttl:>200; sid:303;)
alert icmp any any -> any any (msg:"echo request"; itype:8; sid:304;)
alert icmp any any -> any any (msg:"itype > 10"; itype:>10; sid:305;)
alert icmp any any -> any any (msg:"port unreachable"; itype:3; icode:3; sid:306;)
alert icmp any any -> any any (msg:"icmp_id 1234"; icmp_id:1234; sid:307;)
alert icmp any any -> any any (msg:"icmp_seq 7"; icmp_seq:7; sid:308;)
alert ip any any -> any any (msg:"ip_proto udp"; ip_proto:17; sid:309;)
alert ip any any -> any any (msg:"ip_proto 253"; ip_proto:253; sid:310;)
alert ip any any -> any any (msg:"sameip"; sameip; sid:311;)
alert icmp any any -> any any (msg:"icode > 0"; icode:>0; sid:312;)
alert ip any any -> any any (msg:"ip_proto not tcp"; ip_proto:!6; ttl:64; sid:313;)
alert icmp any any -> any any (msg:"echo reply with content"; itype:0; content:"ping"; sid:314;)
alert ip any any -> any any (msg:"ip_proto icmp by name"; ip_proto:icmp; sid:315;)
alert ip any any -> any any (msg:"ttl range"; ttl:10-20; sid:316;)
"""


def s_ip_icmp(cap: Capture):
    from scapy.layers.inet import IP, UDP

    icmp4(cap, C1, S1, type=8, id=1234, seq=7, data=b"ping data", ttl=64)
    icmp4(cap, S1, C1, type=0, id=1234, seq=7, data=b"ping data", ttl=250, rev=True)
    icmp4(cap, C1, S2, type=8, id=99, seq=1, data=b"other", ttl=3)
    # port unreachable quoting a UDP datagram
    inner = bytes(IP(src=C2, dst=S1, id=1) / UDP(sport=5555, dport=33434) / b"probe")
    icmp4(cap, S1, C2, type=3, code=3, data=inner, ttl=60, rev=True)
    icmp4(cap, C2, S2, type=13, code=0, id=5, seq=7, ttl=1)
    udp(cap, C1, S1, 42000, 9999, b"ttl one", ttl=1)
    udp(cap, C3, C3, 42001, 9999, b"same", ttl=64)
    udp(cap, C1, S3, 42002, 9999, b"ttl15", ttl=15)
    cap.add(l2() / IP(src=C1, dst=S1, proto=253, ttl=64, id=1) / b"experimental")
    icmp4(cap, C3, S3, type=8, code=4, id=1234, seq=8, data=b"odd code", ttl=255)


THRESHOLD_RULES = r"""
# threshold (limit / threshold / both) and detection_filter; one flow per packet
alert udp any any -> any 5001 (msg:"limit 2 per 10s by_src"; threshold:type limit, track by_src, count 2, seconds 10; sid:401;)
alert udp any any -> any 5002 (msg:"every 3rd in 5s by_src"; threshold:type threshold, track by_src, count 3, seconds 5; sid:402;)
alert udp any any -> any 5003 (msg:"both 2 in 10s by_dst"; threshold:type both, track by_dst, count 2, seconds 10; sid:403;)
alert udp any any -> any 5004 (msg:"detection_filter 3 in 5s"; detection_filter:track by_src, count 3, seconds 5; sid:404;)
alert udp any any -> any 5005 (msg:"limit 1 by_rule"; threshold:type limit, track by_rule, count 1, seconds 30; sid:405;)
drop udp any any -> any 5006 (msg:"drop with limit"; threshold:type limit, track by_src, count 1, seconds 60; sid:406;)
drop udp any any -> any 5007 (msg:"drop with detection_filter"; detection_filter:track by_src, count 2, seconds 60; sid:407;)
"""

THRESHOLD_TIMES = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0, 12.0, 13.5, 17.0, 30.0, 31.0]


def s_thresholds(cap: Capture):
    # interleave: (time, src, dport); two sources alternate on some ports
    events = []
    for port in range(5001, 5008):
        for i, t in enumerate(THRESHOLD_TIMES):
            src = C2 if (port in (5001, 5004) and i % 3 == 2) else C1
            dst = S1 if i % 4 else S2
            events.append((t + (port - 5001) * 0.01, src, dst, port, i))
    events.sort()
    for n, (t, src, dst, port, i) in enumerate(events):
        udp(cap, src, dst, 43000 + n, port, b"t", at=t)


FLOWBITS_RULES = r"""
# flowbits across packets of one flow (and their absence in another flow).
# TCP: the bit is set by the client's first data and checked on the server's
# first data.  The longer sequences run on UDP flows, where every packet is
# inspected alone (no stream window, see "Design rules" above).
alert tcp any any -> any 9000 (msg:"login"; flow:to_server,established; content:"LOGIN"; flowbits:set,logged_in; flowbits:noalert; sid:501;)
alert tcp any 9000 -> any any (msg:"ok after login"; flow:to_client,established; content:"OK"; flowbits:isset,logged_in; sid:502;)
alert udp any any -> any 9001 (msg:"login udp"; content:"LOGIN"; flowbits:set,logged_in; flowbits:noalert; sid:510;)
alert udp any any -> any 9001 (msg:"cmd without login"; content:"CMD"; flowbits:isnotset,logged_in; sid:503;)
alert udp any any -> any 9001 (msg:"do after login, logout"; content:"DO"; flowbits:isset,logged_in; flowbits:unset,logged_in; sid:504;)
alert udp any any -> any 9001 (msg:"toggle"; content:"TOG"; flowbits:toggle,t; sid:505;)
alert udp any any -> any 9001 (msg:"check toggled"; content:"CHK"; flowbits:isset,t; sid:506;)
alert udp any any -> any 9001 (msg:"either bit"; content:"ORX"; flowbits:isset,logged_in|t; sid:507;)
alert udp any 9001 -> any any (msg:"reply sees bit set by request"; flow:to_client; content:"R"; flowbits:isset,logged_in; sid:508;)
"""


def s_flowbits(cap: Capture):
    a = Tcp(cap, C1, S1, 44000, 9000).handshake()
    a.c("PA", b"LOGIN user")
    a.s("PA", b"OK welcome")
    a.close()
    b = Tcp(cap, C2, S1, 44001, 9000).handshake()
    b.s("PA", b"OK banner")          # no login in this session
    b.close()
    for data, to_server in [(b"CMD zero", True), (b"LOGIN u", True), (b"R1", False), (b"DO one", True),
                            (b"R2", False), (b"CMD two", True), (b"TOG", True), (b"CHK", True),
                            (b"ORX", True), (b"TOG", True), (b"CHK", True), (b"ORX", True),
                            (b"LOGIN again", True), (b"ORX", True)]:
        if to_server:
            udp(cap, C1, S1, 44002, 9001, data)
        else:
            udp(cap, S1, C1, 9001, 44002, data, rev=True)
    udp(cap, C2, S1, 44003, 9001, b"CHK")    # other flow: no bits
    udp(cap, C2, S1, 44003, 9001, b"CMD x")


ACTIONS_RULES = r"""
# action order (pass > drop > reject > alert), flow drop, reject
pass udp any any -> any 6000 (msg:"pass P"; content:"P"; sid:601;)
drop udp any any -> any 6000 (msg:"drop P"; content:"P"; sid:602;)
alert udp any any -> any 6000 (msg:"alert P"; content:"P"; sid:603;)
alert udp any any -> any 6000 (msg:"alert Q"; content:"Q"; sid:613;)
drop udp any any -> any 6001 (msg:"drop D"; content:"D"; sid:604;)
alert udp any any -> any 6001 (msg:"alert A"; content:"A"; sid:605;)
drop tcp any any -> any 6002 (msg:"drop bad"; flow:to_server; content:"bad"; sid:606;)
alert tcp any any -> any any (msg:"any reply data"; flow:to_client; dsize:>0; sid:614;)
reject tcp any any -> any 6003 (msg:"reject rej"; content:"rej"; sid:607;)
reject udp any any -> any 6004 (msg:"reject udp"; content:"rej"; sid:608;)
pass tcp any any -> any 6005 (msg:"pass SYN"; flags:S; sid:609;)
alert tcp any any -> any 6005 (msg:"later data"; content:"later"; sid:610;)
drop udp any any -> any 6006 (msg:"drop Z"; content:"Z"; sid:611;)
alert udp any any -> any 6006 (msg:"alert Z"; content:"Z"; sid:612;)
"""


def s_actions(cap: Capture):
    udp(cap, C1, S1, 45000, 6000, b"P")          # pass + drop + alert
    udp(cap, C1, S1, 45000, 6000, b"Q")          # same flow after a pass: is the flow passed?
    udp(cap, C1, S1, 45001, 6000, b"Q")          # new flow: only Q
    udp(cap, C1, S1, 45002, 6001, b"A first")    # alert only
    udp(cap, C1, S1, 45002, 6001, b"D")          # drop
    udp(cap, C1, S1, 45002, 6001, b"A again")    # flow dropped
    udp(cap, S1, C1, 6001, 45002, b"reply", rev=True)  # reverse direction of dropped flow
    udp(cap, C1, S1, 45003, 6001, b"A other")    # other flow untouched
    a = Tcp(cap, C1, S1, 45100, 6002).handshake()
    a.s("PA", b"banner")
    a.c("PA", b"bad stuff")
    a.s("PA", b"more from server")
    a.c("PA", b"client again")
    b = Tcp(cap, C2, S1, 45101, 6003).handshake()
    b.c("PA", b"rej this")
    b.c("PA", b"after reject")
    udp(cap, C2, S1, 45004, 6004, b"rej udp")
    udp(cap, C2, S1, 45004, 6004, b"rej udp again")
    c = Tcp(cap, C3, S1, 45102, 6005).handshake()
    c.c("PA", b"later data")
    udp(cap, C3, S1, 45005, 6006, b"Z")
    udp(cap, C3, S1, 45006, 6006, b"no")


ADDR_RULES = r"""
# address and port lists, negation, ranges, CIDR, vars, bidirectional
alert udp $EXTERNAL_NET any -> $HOME_NET 53 (msg:"external to home dns"; sid:701;)
alert udp [198.51.100.1,198.51.100.2] any -> any [53,5353] (msg:"list to list"; sid:702;)
alert udp !198.51.100.1 any -> any 1000:1010 (msg:"negated src, port range"; sid:703;)
alert udp 198.51.100.0/28 any -> any !53 (msg:"cidr src, not 53"; sid:704;)
alert udp any any -> any [1:1024,!53] (msg:"range minus one"; sid:705;)
alert udp any 1024: -> any :100 (msg:"open ranges"; sid:706;)
alert udp [198.51.100.0/24,!198.51.100.7] any -> 203.0.113.0/24 any (msg:"cidr minus host"; sid:707;)
alert udp $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"home to http ports"; sid:708;)
alert udp any any <> 203.0.113.9 7777 (msg:"bidirectional"; sid:709;)
alert udp any ![1000:2000,3000] -> any 4444 (msg:"negated sport list"; sid:710;)
alert udp 2001:db8:1::/48 any -> any 53 (msg:"v6 cidr"; sid:711;)
alert udp any any -> [2001:db8:2::1,203.0.113.5] any (msg:"mixed family list"; sid:712;)
alert udp any any -> $DNS_SERVERS 53 (msg:"dns servers var"; sid:713;)
alert udp any $HIGH_PORTS -> ![$HOME_NET,203.0.113.0/25] any (msg:"negated var list"; sid:714;)
"""


def s_addr_ports(cap: Capture):
    pkts = [
        (S1, C1, 50001, 53), (C1, S1, 50002, 53), (C2, S1, 50003, 5353), (C3, S1, 50004, 53),
        (C1, S1, 50005, 1005), (C2, S1, 50006, 1005), (C2, S1, 50007, 1011), (C2, S1, 50008, 999),
        (C3, S2, 50009, 100), (C3, S2, 50010, 101), ("198.51.100.20", S2, 50011, 80),
        ("198.51.100.7", S2, 50012, 8080), ("198.51.100.8", "203.0.113.200", 50013, 8081),
        (C1, "203.0.113.9", 50014, 7777), ("203.0.113.9", C1, 7777, 50015),
        ("203.0.113.9", C1, 50016, 7777), (C1, S1, 1500, 4444), (C1, S1, 3000, 4444),
        (C1, S1, 3001, 4444), (C1, S1, 999, 4444), (C1, "203.0.113.53", 50017, 53),
        (C1, "203.0.113.5", 50018, 9), ("203.0.113.200", "203.0.113.201", 50019, 9),
        (C6, S6, 50020, 53), (C6, "2001:db8:2::1", 50021, 9), (S6, C6, 50022, 53),
        (C6, "2001:db8:2::53", 50023, 53), ("2001:db8:3::1", "2001:db8:4::1", 50024, 9),
        (C1, S1, 50025, 0 + 1), (C1, S1, 50, 50),
    ]
    for src, dst, sp, dp in pkts:
        udp(cap, src, dst, sp, dp, b"x")


IPV6_RULES = r"""
# IPv6: TCP session, UDP, ICMPv6
alert tcp any any -> any 80 (msg:"v6 http request"; flow:established,to_server; content:"GET"; depth:3; sid:801;)
alert udp any any -> any 53 (msg:"v6 udp content"; content:"|00 01|"; sid:802;)
alert icmp any any -> any any (msg:"icmp proto on v6 echo"; itype:128; sid:803;)
alert icmpv6 any any -> any any (msg:"icmpv6 echo request"; itype:128; sid:804;)
alert ip 2001:db8::/32 any -> any any (msg:"ip_proto 58"; ip_proto:58; sid:805;)
alert ip any any -> any any (msg:"hop limit 7"; ttl:7; sid:806;)
alert tcp [2001:db8:1::/48] any -> ![2001:db8:1::/48] 80 (msg:"v6 syn out"; flags:S; sid:807;)
alert udp any any -> any 53 (msg:"v6 small udp"; dsize:<10; sid:808;)
alert icmpv6 any any -> any any (msg:"icmpv6 echo id/seq"; itype:128; icmp_id:77; icmp_seq:3; sid:809;)
alert tcp any 80 -> any any (msg:"v6 response"; flow:established,to_client; content:"200"; sid:810;)
drop icmpv6 any any -> any any (msg:"drop echo reply v6"; itype:129; sid:811;)
alert ip any any -> any any (msg:"v6 sameip"; sameip; sid:812;)
"""


def s_ipv6(cap: Capture):
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

    a = Tcp(cap, C6, S6, 46000, 80).handshake()
    a.c("PA", b"GET / HTTP/1.0\r\n\r\n")
    a.s("PA", b"HTTP/1.0 200 OK\r\n\r\n")
    a.close()
    udp(cap, C6, S6, 46001, 53, b"\x12\x34\x00\x01\x00\x00")
    udp(cap, C6, S6, 46002, 53, b"\x12\x34\x01\x00\x00\x00" + b"q" * 20, ttl=7)
    cap.add(l2() / IPv6(src=C6, dst=S6, hlim=64) / ICMPv6EchoRequest(id=77, seq=3, data=b"v6ping"))
    cap.add(l2(rev=True) / IPv6(src=S6, dst=C6, hlim=64) / ICMPv6EchoReply(id=77, seq=3, data=b"v6ping"))
    cap.add(l2() / IPv6(src=C6, dst=S6, hlim=7) / ICMPv6EchoRequest(id=78, seq=1, data=b"x"))
    udp(cap, "2001:db8:1::9", "2001:db8:1::9", 46003, 9, b"same")


VLAN_RULES = r"""
# 802.1Q and QinQ tagged traffic; flows are per VLAN
alert udp any any -> any 53 (msg:"udp in vlan"; content:"vlan"; sid:901;)
alert tcp any any -> any 80 (msg:"tagged tcp"; flow:established,to_server; content:"tagged"; sid:902;)
drop icmp any any -> any any (msg:"drop echo"; itype:8; sid:903;)
alert udp any any -> any 7100 (msg:"set bit"; content:"SET"; flowbits:set,v; sid:904;)
alert udp any any -> any 7100 (msg:"bit seen"; content:"GET"; flowbits:isset,v; sid:905;)
alert tcp any any -> any 80 (msg:"syn"; flags:S; sid:906;)
"""


def s_vlan(cap: Capture):
    udp(cap, C1, S1, 47000, 53, b"vlan query", vlan=10)
    udp(cap, C1, S1, 47001, 53, b"vlan qinq", vlan=(100, 20))
    a = Tcp(cap, C1, S1, 47002, 80, vlan=10).handshake()
    a.c("PA", b"tagged payload")
    a.s("A")
    b = Tcp(cap, C2, S1, 47003, 80, vlan=(100, 20)).handshake()
    b.c("PA", b"tagged twice")
    icmp4(cap, C1, S1, type=8, id=1, seq=1, vlan=10)
    icmp4(cap, C1, S1, type=8, id=1, seq=2, vlan=(200, 30))
    # the same 5-tuple on two VLANs: two flows, flowbit set on one only
    udp(cap, C3, S1, 47004, 7100, b"SET", vlan=10)
    udp(cap, C3, S1, 47004, 7100, b"GET", vlan=11)
    udp(cap, C3, S1, 47004, 7100, b"GET", vlan=10)
    udp(cap, C3, S1, 47004, 7100, b"GET")


IP_ONLY_RULES = r"""
# Suricata's IP-only rules (addresses only: no ports, no payload, no flow
# keywords) are evaluated once per flow and direction; the same header
# matched by a rule with ports or a packet keyword fires on every packet.
alert ip 198.51.100.1 any -> 203.0.113.0/24 any (msg:"ip-only to external"; sid:1001;)
alert ip 203.0.113.0/24 any -> 198.51.100.1 any (msg:"ip-only from external"; sid:1002;)
alert udp 198.51.100.1 any -> 203.0.113.0/24 53 (msg:"same with a port"; sid:1003;)
alert ip [198.51.100.1,198.51.100.2] any -> any any (msg:"ip-only list"; ip_proto:17; sid:1004;)
alert tcp 198.51.100.1 any -> any any (msg:"tcp header only"; sid:1005;)
alert ip any any -> any any (msg:"ip-only with ttl"; ttl:64; sid:1006;)
drop ip 198.51.100.3 any -> any any (msg:"ip-only drop"; sid:1007;)
"""


def s_ip_only(cap: Capture):
    for _ in range(3):
        udp(cap, C1, S1, 48000, 53, b"q")
        udp(cap, S1, C1, 53, 48000, b"r", rev=True)
    udp(cap, C2, S2, 48001, 53, b"q")
    udp(cap, C2, S2, 48001, 53, b"q")
    a = Tcp(cap, C1, S2, 48002, 80).handshake()
    a.c("PA", b"data")
    a.s("PA", b"reply")
    a.close()
    for _ in range(2):                      # a UDP flow hit by an IP-only drop rule
        udp(cap, C3, S3, 48003, 9, b"u", ttl=63)
        udp(cap, S3, C3, 9, 48003, b"v", rev=True, ttl=63)
    b = Tcp(cap, C3, S3, 48004, 80)         # and a TCP one
    b.c("S", ttl=63)
    b.s("SA", ttl=63)
    b.c("A", ttl=63)


FRAG_RULES = r"""
# IP fragments: rules see the reassembled datagram (IPv4 and IPv6, in order and out of order)
alert udp any any -> any 7200 (msg:"content across fragments"; content:"BOUNDARY"; sid:1101;)
alert udp any any -> any 7200 (msg:"content in last fragment"; content:"TAILMARK"; sid:1102;)
alert udp any any -> any 7200 (msg:"dsize of the datagram"; dsize:>1000; sid:1103;)
alert icmp any any -> any any (msg:"big echo"; itype:8; content:"ECHOEND"; sid:1104;)
drop udp any any -> any 7201 (msg:"drop fragmented"; content:"BAD"; sid:1105;)
"""


def _frag4(cap, pkt, size, order=None):
    from scapy.layers.inet import fragment

    frags = fragment(pkt, fragsize=size)
    for i in (order or range(len(frags))):
        cap.add(l2() / frags[i])


def _frag6(cap, pkt, size, order=None):
    from scapy.layers.inet6 import fragment6

    frags = fragment6(pkt, size)
    for i in (order or range(len(frags))):
        cap.add(l2() / frags[i])


def s_fragments(cap: Capture):
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment

    body = b"A" * 500 + b"BOUND" + b"ARY" + b"B" * 700 + b"TAILMARK"
    _frag4(cap, IP(src=C1, dst=S1, id=101) / UDP(sport=49000, dport=7200) / body, 504)
    _frag4(cap, IP(src=C1, dst=S1, id=102) / UDP(sport=49001, dport=7200) / body, 504, order=[2, 0, 1])
    _frag4(cap, IP(src=C1, dst=S1, id=103) / ICMP(type=8, id=9, seq=1) / (b"p" * 1600 + b"ECHOEND"), 800)
    _frag4(cap, IP(src=C2, dst=S1, id=104) / UDP(sport=49002, dport=7201) / (b"x" * 900 + b"BAD"), 400)
    udp(cap, C1, S1, 49003, 7200, b"small BOUNDARY")
    _frag6(cap, IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=201) / UDP(sport=49004, dport=7200) / body, 600)
    _frag6(cap, IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(id=202) / UDP(sport=49005, dport=7200) / body, 600,
           order=[1, 2, 0])


TUNNEL_RULES = r"""
# rules match the inner packet of GRE and VXLAN encapsulation
alert udp any any -> any 53 (msg:"inner udp content"; content:"inner-dns"; sid:1201;)
alert tcp any any -> any 80 (msg:"inner tcp syn"; flags:S; sid:1202;)
alert icmp 198.51.100.0/24 any -> any any (msg:"inner icmp from home"; itype:8; sid:1203;)
alert ip any any -> any any (msg:"outer gre"; ip_proto:47; sid:1204;)
drop udp any any -> any 53 (msg:"drop inner"; content:"drop-me"; sid:1205;)
"""


def s_tunnels(cap: Capture):
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import GRE, Ether
    from scapy.layers.vxlan import VXLAN

    outer_a, outer_b = "203.0.113.100", "203.0.113.101"
    inner_udp = IP(src=C1, dst=S1, id=1) / UDP(sport=49100, dport=53) / b"inner-dns query"
    inner_tcp = IP(src=C1, dst=S1, id=1) / TCP(sport=49101, dport=80, flags="S", seq=1)
    inner_icmp = IP(src=C2, dst=S2, id=1) / ICMP(type=8, id=3, seq=1) / b"tunneled"
    for inner in (inner_udp, inner_tcp, inner_icmp):
        cap.add(l2() / IP(src=outer_a, dst=outer_b, id=7) / GRE(proto=0x0800) / inner)
    for inner in (inner_udp, inner_tcp, inner_icmp):
        cap.add(l2() / IP(src=outer_a, dst=outer_b, id=8) / UDP(sport=49999, dport=4789) / VXLAN(vni=42)
                / Ether(src=CMAC, dst=SMAC) / inner)
    drop_inner = IP(src=C3, dst=S1, id=1) / UDP(sport=49102, dport=53) / b"drop-me"
    cap.add(l2() / IP(src=outer_a, dst=outer_b, id=9) / GRE(proto=0x0800) / drop_inner)
    cap.add(l2() / IP(src=outer_a, dst=outer_b, id=10) / UDP(sport=49998, dport=4789) / VXLAN(vni=42)
            / Ether(src=CMAC, dst=SMAC) / drop_inner)


MIDSTREAM_RULES = r"""
# TCP sessions picked up without their handshake, with stream.midstream: false
alert tcp any any -> any 7300 (msg:"data of a midstream session"; content:"mid"; sid:1301;)
alert tcp any any -> any 7300 (msg:"established midstream"; flow:established; content:"mid"; sid:1302;)
alert tcp any any -> any 7300 (msg:"ack only"; flags:A; sid:1303;)
alert tcp any any -> any 7301 (msg:"normal session"; flow:established,to_server; content:"full"; sid:1304;)
"""


def s_midstream(cap: Capture):
    a = Tcp(cap, C1, S1, 49200, 7300)      # no handshake
    a.c("PA", b"mid one")
    a.s("A")
    a.c("PA", b"mid two")
    b = Tcp(cap, C2, S1, 49201, 7301).handshake()
    b.c("PA", b"full data")


MORE_RULES = r"""
# byte_jump, startswith/endswith, pkt_data, and IP/TCP header fields
# (ipopts:any left out: Suricata 7.0.10 does not match it on a record-route packet)
alert udp any any -> any 7400 (msg:"byte_jump relative"; content:"LEN"; byte_jump:2,0,relative; content:"END"; within:3; sid:1401;)
alert udp any any -> any 7400 (msg:"byte_jump absolute then within"; byte_jump:1,0; content:"Z"; within:1; sid:1402;)
alert udp any any -> any 7400 (msg:"byte_jump string dec"; content:"n="; byte_jump:2,0,relative,string,dec; content:"X"; within:1; sid:1403;)
alert udp any any -> any 7400 (msg:"byte_jump multiplier"; byte_jump:1,0,multiplier 2; content:"M"; within:1; sid:1404;)
alert udp any any -> any 7400 (msg:"byte_jump from_beginning"; byte_jump:1,0,from_beginning; content:"F"; within:1; sid:1405;)
alert udp any any -> any 7400 (msg:"byte_jump post_offset"; byte_jump:1,0,post_offset 1; content:"P"; within:1; sid:1406;)
alert udp any any -> any 7400 (msg:"byte_jump little endian"; byte_jump:2,0,little; content:"L"; within:1; sid:1407;)
alert udp any any -> any 7400 (msg:"startswith"; content:"GET"; startswith; sid:1408;)
alert udp any any -> any 7400 (msg:"endswith"; content:"END"; endswith; sid:1409;)
alert udp any any -> any 7400 (msg:"pkt_data"; pkt_data; content:"abc"; sid:1410;)
alert udp any any -> any 7400 (msg:"byte_jump hex string"; content:"h="; byte_jump:2,0,relative,string,hex; content:"H"; within:1; sid:1411;)
alert udp any any -> any 7400 (msg:"byte_test string with trailing space"; content:"n="; byte_test:2,=,3,0,relative,string,dec; sid:1421;)
alert ip any any -> any 7401 (msg:"ip id"; id:4242; sid:1412;)
alert tcp any any -> any 7401 (msg:"DF set"; fragbits:D; sid:1413;)
alert tcp any any -> any 7401 (msg:"not DF"; fragbits:!D; sid:1414;)
alert tcp any any -> any 7401 (msg:"seq"; seq:12345; sid:1415;)
alert tcp any any -> any any (msg:"ack"; ack:12346; sid:1416;)
alert tcp any any -> any 7401 (msg:"window"; window:65535; sid:1417;)
alert tcp any any -> any 7401 (msg:"window not 1024"; window:!1024; flags:S; sid:1418;)
alert udp any any -> any 7402 (msg:"record route"; ipopts:rr; sid:1419;)
"""


def s_more(cap: Capture):
    from scapy.layers.inet import IP, IPOption_RR, TCP, UDP

    for data in [b"LEN\x00\x05xxxxxEND", b"LEN\x00\x04xxxxxEND", b"\x03abcZ", b"\x03abZc",
                 b"n=03abcX", b"n=3 abcX", b"\x02abcdM", b"\x02abM", b"\x04abcF", b"\x04abcdF",
                 b"\x02abPc", b"\x02abcP", b"\x03\x00abcL", b"\x00\x03abcL", b"GET /", b"x GET /",
                 b"the END", b"the END.", b"xxabcxx", b"h=0aabcdefghijH", b"h=0Aabcdefghij H"]:
        udp(cap, C1, S1, 49300, 7400, data)
    for i, (flags, seq, ack, win, ipid, df) in enumerate([
            ("S", 12345, 0, 65535, 4242, True), ("S", 1, 0, 1024, 1, False),
            ("S", 12345, 0, 1024, 4242, False), ("S", 7, 0, 8192, 2, True)]):
        cap.add(l2() / IP(src=C1, dst=S1, id=ipid, flags="DF" if df else 0)
                / TCP(sport=49310 + i, dport=7401, flags=flags, seq=seq, ack=ack, window=win))
        cap.add(l2(rev=True) / IP(src=S1, dst=C1, id=ipid, flags="DF" if df else 0)
                / TCP(sport=7401, dport=49310 + i, flags="SA", seq=999, ack=seq + 1, window=win))
    cap.add(l2() / IP(src=C1, dst=S1, id=3, options=[IPOption_RR(routers=["203.0.113.254"])])
            / UDP(sport=49320, dport=7402) / b"rr")
    cap.add(l2() / IP(src=C1, dst=S1, id=4) / UDP(sport=49321, dport=7402) / b"none")


def random_payload_rules(seed: int = 11, count: int = 400) -> str:
    """Seeded random content chains over a small alphabet, so that most rules
    match some of the random_payload packets and edge cases (overlaps, window
    ends, repeated literals) come up by themselves."""
    import random

    rng = random.Random(seed)
    alpha = "abcab0 "
    lines = ["# seeded random content chains (make_differential.random_payload_rules) on UDP payloads"]
    for i in range(count):
        opts = []
        for j in range(rng.choice([1, 1, 2, 2, 3])):
            lit = "".join(rng.choice(alpha) for _ in range(rng.randint(1, 3)))
            neg = "!" if (j > 0 and rng.random() < 0.15) else ""
            opts.append(f'content:{neg}"{lit}"')
            if rng.random() < 0.25:
                opts.append("nocase")
            r = rng.random()
            if j == 0:
                if r < 0.3:
                    opts.append(f"offset:{rng.randint(0, 6)}")
                if r < 0.15 or 0.3 <= r < 0.5:
                    opts.append(f"depth:{rng.randint(len(lit), len(lit) + 8)}")
            else:
                if r < 0.4:
                    opts.append(f"distance:{rng.randint(-3, 4)}")
                if r < 0.2 or 0.4 <= r < 0.6:
                    opts.append(f"within:{rng.randint(len(lit), len(lit) + 6)}")
        r = rng.random()
        if r < 0.15:
            opts.append(f"isdataat:{'!' if rng.random() < 0.4 else ''}{rng.randint(1, 4)},relative")
        elif r < 0.25:
            opts.append(f'pcre:"/{rng.choice(["[ab]{2}", "b0", "a.b", "c?a"])}/R"')
        elif r < 0.3:
            opts.append(f"dsize:>{rng.randint(3, 12)}")
        lines.append(f"alert udp any any -> any 7500 (msg:\"random {i}\"; {'; '.join(opts)}; sid:{10000 + i};)")
    return "\n".join(lines) + "\n"


def s_random_payload(cap: Capture):
    import random

    rng = random.Random(12)
    for i in range(100):
        data = bytes(rng.choice(b"abcAB0 ") for _ in range(rng.randint(0, 24)))
        udp(cap, C1, S1, 50000 + i, 7500, data)


PCRE_RULES = r"""
# PCRE syntax and semantics that differ between PCRE and other regex engines
# (modifiers D, E, G left out: D is an HTTP modifier in Suricata, and our
# engine does not support E and G yet)
alert udp any any -> any 7600 (msg:"dollar before final newline"; pcre:"/end$/"; sid:1601;)
alert udp any any -> any 7600 (msg:"multiline caret"; pcre:"/^two/m"; sid:1603;)
alert udp any any -> any 7600 (msg:"caret no m"; pcre:"/^two/"; sid:1604;)
alert udp any any -> any 7600 (msg:"hex escape"; pcre:"/\x41\x42/"; sid:1605;)
alert udp any any -> any 7600 (msg:"posix class"; pcre:"/^[[:digit:]]{3}/"; sid:1606;)
alert udp any any -> any 7600 (msg:"brace without min"; pcre:"/ab{,2}c/"; sid:1607;)
alert udp any any -> any 7600 (msg:"quote meta"; pcre:"/\Qa.b\E/"; sid:1608;)
alert udp any any -> any 7600 (msg:"named group"; pcre:"/(?<n>xy)z/"; sid:1609;)
alert udp any any -> any 7600 (msg:"possessive"; pcre:"/a++b/"; sid:1610;)
alert udp any any -> any 7600 (msg:"h escape"; pcre:"/a\hb/"; sid:1611;)
alert udp any any -> any 7600 (msg:"x extended"; pcre:"/a b c/x"; sid:1612;)
alert udp any any -> any 7600 (msg:"A anchored"; pcre:"/two/A"; sid:1613;)
alert udp any any -> any 7600 (msg:"negated pcre"; content:"one"; pcre:!"/two/"; sid:1616;)
alert udp any any -> any 7600 (msg:"backreference"; pcre:"/(ab)\1/"; sid:1617;)
alert udp any any -> any 7600 (msg:"lookahead"; pcre:"/a(?=bc)/"; sid:1618;)
alert udp any any -> any 7600 (msg:"unicode-ish byte"; pcre:"/\xff\xfe/"; sid:1619;)
alert udp any any -> any 7600 (msg:"dot no newline"; pcre:"/one.two/"; sid:1620;)
alert udp any any -> any 7600 (msg:"Z anchor"; pcre:"/end\Z/"; sid:1621;)
alert udp any any -> any 7600 (msg:"z anchor"; pcre:"/end\z/"; sid:1622;)
alert udp any any -> any 7600 (msg:"word boundary"; pcre:"/\bone\b/"; sid:1623;)
alert udp any any -> any 7600 (msg:"inline flag"; pcre:"/(?i)ONE/"; sid:1624;)
alert udp any any -> any 7600 (msg:"R after content"; content:"one"; pcre:"/^\s*two/R"; sid:1625;)
alert udp any any -> any 7600 (msg:"class with escape"; pcre:"/[\d\-]{5}/"; sid:1626;)
alert udp any any -> any 7600 (msg:"B rawbytes"; pcre:"/abc/B"; sid:1627;)
alert udp any any -> any 7600 (msg:"octal"; pcre:"/\101/"; sid:1628;)
alert udp any any -> any 7600 (msg:"slash escaped"; pcre:"/a\/b/"; sid:1629;)
alert udp any any -> any 7600 (msg:"semicolon escaped"; pcre:"/a\;b/"; sid:1630;)
"""


def s_pcre(cap: Capture):
    for data in [b"the end", b"the end\n", b"the end\n\n", b"one\ntwo", b"two one", b"ABC", b"123-x",
                 b"12a", b"abc", b"ac", b"abbbc", b"abbc", b"a.b", b"axb", b"xyz", b"aaab", b"a\tb",
                 b"a b", b"abc two", b"abab", b"abc\xff\xfe", b"one two", b"one\ntwo", b"onetwo",
                 b"ONE", b"one  two", b"12-34", b"A", b"a/b", b"a;b", b"none two"]:
        udp(cap, C1, S1, 49400, 7600, data)


_POS_ADDR = ["198.51.100.0/24", "198.51.100.0/28", "198.51.100.16/28", "203.0.113.0/24", "203.0.113.128/25",
             "198.51.100.5", "203.0.113.9", "2001:db8:1::/48", "2001:db8::/32", "$HOME_NET", "$EXTERNAL_NET",
             "$DNS_SERVERS"]
_NEG_ADDR = ["!198.51.100.5", "!198.51.100.0/30", "!203.0.113.9", "!2001:db8:1::1", "!203.0.113.128/26"]
_POS_PORT = ["80", "53", "1:1024", "1024:", ":100", "8000:8100", "$HTTP_PORTS", "5353"]
_NEG_PORT = ["!80", "!53", "!1000:1010", "!8080"]


def _expr(rng, pos, neg) -> str:
    r = rng.random()
    if r < 0.15:
        return "any"
    if r < 0.35:
        return rng.choice(pos)
    if r < 0.45:
        return "!" + rng.choice(pos)
    if r < 0.65:
        return "[" + ",".join(rng.sample(pos, 2)) + "]"
    if r < 0.8:
        return "[" + rng.choice(pos) + "," + rng.choice(neg) + "]"
    if r < 0.9:
        return "![" + ",".join(rng.sample(pos, 2)) + "]"
    return "[" + rng.choice(pos) + ",[" + rng.choice(pos) + "," + rng.choice(neg) + "]]"


# Generated rules Suricata 7.0.10 refuses ("Can't have a negated value in a
# range" for negations inside nested port lists, "no addresses/ports left after
# merging" e.g. for [$EXTERNAL_NET,$HOME_NET] or [80,!80]); our loader refuses
# a subset of them (25 40 66 71 96 105 112 114 179 192).  The rest is compared.
_HEADER_LEFT_OUT = {5, 13, 24, 25, 40, 46, 66, 71, 74, 81, 84, 96, 101, 102, 105, 110, 112, 114, 115, 127,
                    129, 144, 149, 151, 153, 156, 172, 179, 186, 192, 196}


def random_header_rules(seed: int = 21, count: int = 200) -> str:
    """Seeded random address/port expressions (lists, negation, nesting, vars,
    ranges, both directions); every packet of s_random_header is its own flow."""
    import random

    rng = random.Random(seed)
    lines = ["# seeded random header rules (make_differential.random_header_rules); generated",
             "# numbers left out: " + " ".join(map(str, sorted(_HEADER_LEFT_OUT)))]
    for i in range(count):
        src, dst = _expr(rng, _POS_ADDR, _NEG_ADDR), _expr(rng, _POS_ADDR, _NEG_ADDR)
        sp, dp = _expr(rng, _POS_PORT, _NEG_PORT), _expr(rng, _POS_PORT, _NEG_PORT)
        d = "<>" if rng.random() < 0.1 else "->"
        if i in _HEADER_LEFT_OUT:
            continue
        lines.append(f'alert udp {src} {sp} {d} {dst} {dp} (msg:"header {i}"; content:"h"; sid:{20000 + i};)')
    return "\n".join(lines) + "\n"


def s_random_header(cap: Capture):
    import random

    rng = random.Random(22)
    v4 = ["198.51.100.1", "198.51.100.5", "198.51.100.3", "198.51.100.17", "198.51.100.200",
          "203.0.113.9", "203.0.113.53", "203.0.113.130", "203.0.113.5", "203.0.113.200"]
    v6 = ["2001:db8:1::1", "2001:db8:1::9", "2001:db8:2::53", "2001:db8:ff::1", "2001:db8:2::2"]
    ports = [80, 53, 5353, 8080, 8050, 1005, 1024, 1023, 100, 101, 40000, 7]
    seen = set()
    while len(seen) < 120:
        fam = v6 if rng.random() < 0.25 else v4
        src, dst = rng.choice(fam), rng.choice(fam)
        sp, dp = rng.choice(ports), rng.choice(ports)
        key = tuple(sorted([(src, sp), (dst, dp)]))
        if key in seen or (src, sp) == (dst, dp):
            continue
        seen.add(key)
        udp(cap, src, dst, sp, dp, b"h")


def random_bytes_rules(seed: int = 31, count: int = 250) -> str:
    """Seeded random byte_test / byte_jump / pcre / isdataat chains after a
    content, over payloads of digits, a few letters and small binary bytes."""
    import random

    rng = random.Random(seed)
    lines = ["# seeded random byte_test/byte_jump/pcre chains (make_differential.random_bytes_rules)"]
    for i in range(count):
        opts = [f'content:"{rng.choice(["a", "b", "1", "|00|", "|01|", "ab", "0"])}"']
        for _ in range(rng.randint(1, 2)):
            r = rng.random()
            rel = ",relative" if rng.random() < 0.6 else ""
            if r < 0.35:
                n = rng.choice([1, 2, 3])
                if rng.random() < 0.4:
                    fmt, val = f",string,{rng.choice(['dec', 'hex'])}", rng.randint(0, 40)
                else:
                    fmt, val = (",little" if rng.random() < 0.3 else ""), rng.randint(0, 300)
                op = rng.choice(["<", ">", "=", "!=", "<=", ">=", "&"])
                opts.append(f"byte_test:{n},{op},{val},{rng.randint(-1, 3) if rel else rng.randint(0, 4)}{rel}{fmt}")
            elif r < 0.65:
                n = rng.choice([1, 2])
                extra = ""
                if rng.random() < 0.3:
                    extra += f",multiplier {rng.randint(2, 3)}"
                if rng.random() < 0.3:
                    extra += f",post_offset {rng.randint(-2, 2)}"
                if rng.random() < 0.2:
                    extra += ",string,dec"
                opts.append(f"byte_jump:{n},{rng.randint(0, 2)}{rel}{extra}")
                opts.append(f'content:"{rng.choice(["a", "b", "1", "|00|"])}"')
                opts.append(f"within:{rng.randint(1, 4)}")
            elif r < 0.85:
                rx = rng.choice(["^[0-9]", "a.?b", "^.{2}", "[ab]$", "\\x00", "b+"])
                opts.append(f'pcre:"/{rx}/{rng.choice(["", "R", "Rs", "s"])}"')
            else:
                opts.append(f"isdataat:{'!' if rng.random() < 0.4 else ''}{rng.randint(1, 5)}{rel}")
        lines.append(f"alert udp any any -> any 7700 (msg:\"bytes {i}\"; {'; '.join(opts)}; sid:{30000 + i};)")
    return "\n".join(lines) + "\n"


def s_random_bytes(cap: Capture):
    import random

    rng = random.Random(32)
    alphabet = b"0123ab\x00\x01\x02\x05\x10 "
    for i in range(100):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        udp(cap, C1, S1, 51000 + i, 7700, data)


@dataclass(frozen=True)
class Spec:
    """One scenario: its rules and crafting, the files they go to, how both engines run."""
    rules: str
    build: Callable
    mode: str = "ips"            # "ips": Suricata --simulate-ips, our replay --mode ips; "ids": neither
    stream: dict | None = None   # its own stream section (both engines); None: STREAM, ipsbridge.yaml
    files: str = ""              # NAME of NAME.pcap/.rules(/.yaml); the modes of one family share them

    @property
    def config(self) -> str:
        return "ipsbridge.yaml" if self.stream is None else f"{self.files}.yaml"


_BASIC = {
    "payload": (PAYLOAD_RULES, s_payload),
    "tcp_flow": (TCP_FLOW_RULES, s_tcp_flow),
    "ip_icmp": (IP_ICMP_RULES, s_ip_icmp),
    "thresholds": (THRESHOLD_RULES, s_thresholds),
    "flowbits": (FLOWBITS_RULES, s_flowbits),
    "actions": (ACTIONS_RULES, s_actions),
    "addr_ports": (ADDR_RULES, s_addr_ports),
    "ipv6": (IPV6_RULES, s_ipv6),
    "vlan": (VLAN_RULES, s_vlan),
    "ip_only": (IP_ONLY_RULES, s_ip_only),
    "fragments": (FRAG_RULES, s_fragments),
    "tunnels": (TUNNEL_RULES, s_tunnels),
    "midstream": (MIDSTREAM_RULES, s_midstream),
    "more_keywords": (MORE_RULES, s_more),
    "random_payload": (random_payload_rules(), s_random_payload),
    "pcre": (PCRE_RULES, s_pcre),
    "random_header": (random_header_rules(), s_random_header),
    "random_bytes": (random_bytes_rules(), s_random_bytes),
}
SCENARIOS = {name: Spec(rules, build, files=name) for name, (rules, build) in _BASIC.items()}
# TCP stream families: one scenario per mode, both on the family's files
for _fam in stream_scenarios.FAMILIES:
    for _mode in _fam.modes:
        SCENARIOS[f"{_fam.name}_{_mode}"] = Spec(_fam.rules, _fam.build, _mode, merged_stream(_fam.stream),
                                                 _fam.name)
# app-layer families (app_scenarios.py): default config, one scenario per mode (the first mode's
# is the family's name, the others NAME_<mode>)
for _fam in app_scenarios.families():
    for _mode in _fam.modes:
        SCENARIOS[_fam.name if _mode == _fam.modes[0] else f"{_fam.name}_{_mode}"] = Spec(
            _fam.rules, _fam.build, _mode, files=_fam.name)


# ---------------------------------------------------------------- EVE reading (shared with the test)
FLOW_END_PKT_SRC = "stream (flow timeout)"   # EVE pkt_src of a flow's end-of-flow pseudo packet


def eve_decisions(lines, by_ts: dict[str, int] | None = None) -> dict:
    """(alerts, drops) from EVE JSON lines: alerts as sorted [pcap_cnt, sid, action],
    drops as the sorted pcap_cnt of every `drop` event.

    Suricata logs events of pseudo-packets (a datagram rebuilt from IP
    fragments, a packet decoded from a tunnel) without pcap_cnt; `by_ts` maps
    their timestamp, which is the frame's that completed them, back to that
    frame's pcap_cnt (every frame of a scenario has a distinct timestamp).
    The exception: the pseudo packet a TCP flow's end is inspected on (IDS
    stream data left at flow timeout or exit; pkt_src "stream (flow
    timeout)", timestamp of the flow's last packet) is pcap_cnt 0, "end",
    for Suricata and for our EVE alike."""
    alerts, drops = set(), set()

    def cnt(ev):
        if ev.get("pkt_src") == FLOW_END_PKT_SRC:
            return 0
        if "pcap_cnt" in ev:
            return int(ev["pcap_cnt"])
        if by_ts is not None and ev.get("timestamp", "")[:26] in by_ts:
            return by_ts[ev["timestamp"][:26]]
        raise ValueError(f"event without pcap_cnt: {ev}")

    for line in lines:
        line = line.strip()
        if not line:
            continue
        ev = json.loads(line)
        if ev.get("event_type") == "alert":
            alerts.add((cnt(ev), int(ev["alert"]["signature_id"]), ev["alert"]["action"]))
        elif ev.get("event_type") == "drop":
            drops.add(cnt(ev))
    return {"alerts": [list(a) for a in sorted(alerts)], "drops": sorted(drops)}


def frame_times(pcap: Path) -> dict[str, int]:
    """EVE-style timestamp (UTC, microseconds) -> pcap_cnt, for the frames of `pcap`."""
    import datetime

    from scapy.utils import rdpcap

    out = {}
    for i, p in enumerate(rdpcap(str(pcap)), 1):
        ts = datetime.datetime.fromtimestamp(float(p.time), datetime.timezone.utc)
        out[ts.strftime("%Y-%m-%dT%H:%M:%S.%f")] = i
    return out


def run_suricata(name: str, workdir: Path) -> dict:
    spec = SCENARIOS[name]
    pcap, rules = OUT / f"{spec.files}.pcap", OUT / f"{spec.files}.rules"
    logdir = workdir / name
    logdir.mkdir()
    cfg = workdir / f"{name}.yaml"
    cfg.write_text(suricata_yaml(OUT, rules.name, spec.stream))
    cmd = ["suricata", "-v", "-r", str(pcap), "-S", str(rules), *(["--simulate-ips"] if spec.mode == "ips" else []),
           "-k", "none", "--runmode", "single", "-l", str(logdir), "-c", str(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"suricata failed on {name} ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    # a rule Suricata refused would silently shrink the expectation: refuse that
    text = proc.stdout + proc.stderr
    if "error parsing signature" in text.lower() or "E: detect" in text:
        sys.exit(f"suricata refused a rule in {rules.name}:\n{text}")
    loaded = [l for l in text.splitlines() if "rules successfully loaded" in l]
    if not loaded or "0 rules failed" not in loaded[0]:
        sys.exit(f"suricata did not load every rule of {rules.name}:\n{text}")
    eve = logdir / "eve.json"
    lines = eve.read_text().splitlines() if eve.exists() else []
    res = eve_decisions(lines, by_ts=frame_times(pcap))
    if not res["alerts"]:
        sys.exit(f"suricata raised no alert on {name}: the scenario tests nothing")
    res["rules_loaded"] = loaded[0].split("processed. ", 1)[-1].strip()
    return res


def suricata_version() -> str:
    out = subprocess.run(["suricata", "-V"], capture_output=True, text=True).stdout
    return out.strip().split("version ")[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-suricata", action="store_true", help="only write pcaps and rules")
    ap.add_argument("scenario", nargs="*", help="only these scenarios (default: all)")
    args = ap.parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(unknown)}")
    OUT.mkdir(exist_ok=True)
    (OUT / "ipsbridge.yaml").write_text(ipsbridge_yaml())
    written = set()
    for name in names:
        spec = SCENARIOS[name]
        if spec.files in written:        # the other mode of a stream family: same files
            continue
        written.add(spec.files)
        (OUT / f"{spec.files}.rules").write_text(spec.rules.lstrip())
        if spec.stream is not None:
            (OUT / spec.config).write_text(ipsbridge_yaml(spec.stream, spec.files))
        cap = Capture()
        spec.build(cap)
        cap.write(OUT / f"{spec.files}.pcap")
        print(f"{spec.files}: {len(cap.frames)} packets, {sum(1 for l in spec.rules.splitlines() if 'sid:' in l)} rules")
    if args.no_suricata:
        return 0
    if not shutil.which("suricata"):
        sys.exit("suricata not found: needed to regenerate expected.json (use --no-suricata for pcaps only)")
    exp_path = OUT / "expected.json"
    expected = json.loads(exp_path.read_text()) if exp_path.exists() else {"scenarios": {}}
    expected["suricata_version"] = suricata_version()
    expected["command"] = ("suricata -r PCAP -S RULES [--simulate-ips: mode ips] -k none --runmode single "
                           "-c <make_differential.suricata_yaml, stream section of CONFIG> -l DIR")
    expected["format"] = ("alerts: [pcap_cnt, signature_id, alert.action]; drops: pcap_cnt of each "
                          "event_type=drop (EVE drop logger with flows: all); events of Suricata's "
                          "pseudo-packets (defragmented datagrams, tunnel inner packets) carry no "
                          "pcap_cnt and are given the pcap_cnt of the frame with the same timestamp, "
                          "except those of a TCP flow's end (pkt_src 'stream (flow timeout)'), which "
                          "are pcap_cnt 0; mode: ips (--simulate-ips, replay --mode ips) or ids "
                          "(neither); config: the yaml our replay gets (-c)")
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        for name in names:
            res = run_suricata(name, Path(tmp))
            spec = SCENARIOS[name]
            expected["scenarios"][name] = {"pcap": f"{spec.files}.pcap", "rules": f"{spec.files}.rules",
                                           "config": spec.config, "mode": spec.mode, **res}
            print(f"{name}: suricata {len(res['alerts'])} alerts, {len(res['drops'])} drops ({res['rules_loaded']})")
    expected["scenarios"] = dict(sorted(expected["scenarios"].items()))
    exp_path.write_text(json.dumps(expected, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
