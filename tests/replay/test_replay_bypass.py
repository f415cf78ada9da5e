"""`ipsbridge replay --bypass user|off`: the fast path changes what inspection costs, never
what is decided.

Every differential fixture (tests/replay/differential) is replayed with the fast path in
front of the engine and without it: the EVE files (alerts, drop events with their reasons
and flow ids, anomalies, in order) and the pass/drop captures must be byte for byte the
same.  Crafted captures where flows really get decided (a pass rule on the stream, a drop
rule on the stream, an IP-only drop, stream.bypass at a small depth, flows with no rule
left to match, flows that time out and come back) show the fast path taking frames
(`bypass: user: N flows, M frames not inspected` in the summary, M > 0) with the same
output.  `run_stream` with a fake inspector shows the contract on its own: the fast path
answers a decided flow's frames, pushes their counts before each tick, and forgets a flow
the tick ended.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from scapy.all import ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, wrpcap
from scapy.layers.vxlan import VXLAN

from bridge import cli
from bridge.replay import run_stream
from rules.api import FORWARD, Bypass, Result, Verdict

HERE = Path(__file__).resolve().parent
DIFF = HERE / "differential"
EXPECTED = json.loads((DIFF / "expected.json").read_text())
SCENARIOS = sorted(EXPECTED["scenarios"])

C, S = "198.51.100.1", "203.0.113.2"
MAC_C, MAC_S = "02:00:00:00:00:01", "02:00:00:00:00:02"
BYPASS_LINE = re.compile(r"^bypass: user: (\d+) flows, (\d+) frames not inspected \(pass (\d+) frames \d+ bytes, "
                         r"drop (\d+) frames \d+ bytes\)$", re.MULTILINE)


def replay(tmp: Path, tag: str, bypass: str, pcap: Path, rules: Path, config: Path | None = None,
           mode: str = "ips") -> dict:
    """One in-process `ipsbridge replay`; its EVE, pass and drop captures, and summary."""
    out = {k: tmp / f"{tag}.{bypass}.{k}" for k in ("eve", "pass.pcap", "drop.pcap")}
    argv = ["replay", "-r", str(rules), "--mode", mode, "--bypass", bypass, "--eve", str(out["eve"]),
            "--write-pass", str(out["pass.pcap"]), "--write-drop", str(out["drop.pcap"]), str(pcap)]
    if config is not None:
        argv[1:1] = ["-c", str(config)]
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    assert rc == 0, f"{argv}: {rc}\n{buf.getvalue()}\n{err.getvalue()}"
    res = {k: p.read_bytes() for k, p in out.items()}
    res["summary"] = buf.getvalue()
    return res


def bypass_counts(summary: str) -> tuple[int, int, int, int]:
    """(flows, frames, pass frames, drop frames) from the summary's bypass line."""
    m = BYPASS_LINE.search(summary)
    assert m, summary
    return tuple(int(x) for x in m.groups())


def assert_same(user: dict, off: dict) -> None:
    assert "bypass: off (every frame inspected)" in off["summary"]
    for k in ("eve", "drop.pcap", "pass.pcap"):
        if user[k] != off[k]:
            if k == "eve":
                u, o = user[k].decode().splitlines(), off[k].decode().splitlines()
                only_u = [line for line in u if line not in o][:5]
                only_o = [line for line in o if line not in u][:5]
                pytest.fail(f"EVE differs ({len(u)} lines with bypass, {len(o)} without)\n"
                            f"with bypass only: {only_u}\nwithout only: {only_o}")
            pytest.fail(f"{k} differs with and without bypass")


# ---------------------------------------------------------------------- every differential fixture
@pytest.mark.parametrize("name", SCENARIOS)
def test_differential_fixture_same_with_and_without_bypass(name, tmp_path):
    sc = EXPECTED["scenarios"][name]
    args = {"pcap": DIFF / sc["pcap"], "rules": DIFF / sc["rules"],
            "config": DIFF / sc.get("config", "ipsbridge.yaml"), "mode": sc.get("mode", "ips")}
    user = replay(tmp_path, name, "user", **args)
    off = replay(tmp_path, name, "off", **args)
    assert_same(user, off)
    flows, frames, _, _ = bypass_counts(user["summary"])
    assert frames == 0 or flows > 0


# ---------------------------------------------------------------------- flows that get decided
class Session:
    """A TCP session as scapy packets with increasing times."""

    def __init__(self, sport, dport, t0, src=C, dst=S, vlan=0):
        self.c, self.s, self.sp, self.dp = src, dst, sport, dport
        self.cseq, self.sseq, self.t = 1000, 5000, t0
        self.vlan = vlan
        self.pkts = []

    def _eth(self, src, dst):
        e = Ether(src=src, dst=dst)
        return e / Dot1Q(vlan=self.vlan) if self.vlan else e

    def _add(self, p, dt=0.01):
        self.t += dt
        p.time = self.t
        self.pkts.append(p)

    def cli(self, flags, data=b"", dt=0.01):
        self._add(self._eth(MAC_C, MAC_S) / IP(src=self.c, dst=self.s) /
                  TCP(sport=self.sp, dport=self.dp, flags=flags, seq=self.cseq, ack=self.sseq) / data, dt)
        self.cseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self

    def srv(self, flags, data=b"", dt=0.01):
        self._add(self._eth(MAC_S, MAC_C) / IP(src=self.s, dst=self.c) /
                  TCP(sport=self.dp, dport=self.sp, flags=flags, seq=self.sseq, ack=self.cseq) / data, dt)
        self.sseq += len(data) + (1 if "S" in flags or "F" in flags else 0)
        return self

    def handshake(self):
        return self.cli("S").srv("SA").cli("A")

    def bulk(self, n, data, every=0.3):
        """n data segments from the client, each acknowledged; `every` seconds apart, so the
        replay ticks (and syncs the fast path) inside the flow."""
        for _ in range(n):
            self.cli("PA", data, dt=every).srv("A")
        return self

    def close(self):
        return self.cli("FA").srv("FA").cli("A")


def udp_pkt(t, sport, dport, data, src=C, dst=S):
    p = Ether(src=MAC_C if src == C else MAC_S, dst=MAC_S if src == C else MAC_C) / IP(src=src, dst=dst) / \
        UDP(sport=sport, dport=dport) / data
    p.time = t
    return p


DECIDED_RULES = """
pass tcp any any -> any 80 (msg:"pass the flow once GET is seen"; flow:to_server; content:"GET /ok"; sid:1;)
alert tcp any any -> any 80 (msg:"secret (never seen: the flow is passed)"; content:"secret"; sid:2;)
drop tcp any any -> any 8080 (msg:"evil: drop the flow"; flow:to_server; content:"evil"; sid:3;)
alert tcp any any -> any 8080 (msg:"more (never seen: dropped flow)"; content:"more"; sid:4;)
drop udp any any -> any 5353 (msg:"IP-only drop of every mDNS flow"; sid:5;)
alert udp any any -> any 9999 (msg:"hello on 9999"; content:"hello"; sid:6;)
pass udp any any -> any 53 (msg:"pass DNS flows"; sid:7;)
alert udp any any -> any any (msg:"x in any other UDP"; content:"x"; sid:8;)
alert tcp any any -> any 443 (msg:"only the first bytes of 443"; content:"HELLO"; sid:9;)
"""


def decided_traffic():
    pkts = []
    # a flow passed by a stream match: the rest of it (with "secret") takes the fast path
    pkts += Session(40001, 80, 1000.0).handshake().cli("PA", b"GET /ok HTTP/1.0\r\n\r\n").srv("A") \
        .bulk(12, b"secret " * 40).close().pkts
    # a flow dropped by a stream match: its later frames are dropped by the fast path (drop events)
    pkts += Session(40002, 8080, 1000.005).handshake().cli("PA", b"evil").bulk(8, b"more " * 50).pkts
    # TCP on 443: decided "no-rules"?  no -- sid 9 could match; plain inspection, and a FIN
    pkts += Session(40003, 443, 1000.007).handshake().cli("PA", b"HELLO").srv("PA", b"hi").bulk(4, b"data").close().pkts
    # UDP flows: an IP-only drop, DNS passed by an IP-only pass, a flow no rule can match
    for i in range(6):
        pkts.append(udp_pkt(1000.1 + i * 0.4, 40010, 5353, b"query %d" % i))
    pkts.append(udp_pkt(1000.2, 40011, 53, b"dns query"))
    pkts.append(udp_pkt(1000.3, 53, 40011, b"dns answer", src=S, dst=C))
    pkts.append(udp_pkt(1000.35, 40011, 53, b"dns query 2"))
    for i in range(6):
        pkts.append(udp_pkt(1000.15 + i * 0.4, 40012, 7777, b"zzz", src=C, dst=S))
        pkts.append(udp_pkt(1000.16 + i * 0.4, 7777, 40012, b"zzz", src=S, dst=C))
    # the mDNS flow after its timeout: a new flow, dropped by the rule again (reason rule, sid 5)
    pkts.append(udp_pkt(1200.0, 40010, 5353, b"query again"))
    pkts.append(udp_pkt(1200.1, 40010, 5353, b"and again"))
    pkts.sort(key=lambda p: float(p.time))
    return pkts


def test_decided_flows_take_the_fast_path_with_the_same_output(tmp_path):
    pcap = tmp_path / "decided.pcap"
    wrpcap(str(pcap), decided_traffic())
    rules = tmp_path / "decided.rules"
    rules.write_text(DECIDED_RULES.strip() + "\n")
    # at least (flows, pass frames, drop frames) taken by the fast path: inline, stream matches
    # decide on the segment that completes them; tap and ids inspect acknowledged stream data
    # later (so the passed flow is decided later), and a tap offloads pass flows only
    least = {"ips": (5, 20, 20), "tap": (2, 5, 0), "ids": (4, 5, 6)}
    for mode in ("ips", "tap", "ids"):
        user = replay(tmp_path, f"decided-{mode}", "user", pcap, rules, mode=mode)
        off = replay(tmp_path, f"decided-{mode}", "off", pcap, rules, mode=mode)
        assert_same(user, off)
        flows, frames, passed, dropped = bypass_counts(user["summary"])
        assert frames == passed + dropped, user["summary"]
        assert flows >= least[mode][0] and passed >= least[mode][1] and dropped >= least[mode][2], user["summary"]
        if mode == "tap":
            assert dropped == 0, user["summary"]
        if mode == "ips":
            eve = [json.loads(line) for line in off["eve"].decode().splitlines()]
            sids = {e["alert"]["signature_id"] for e in eve if e["event_type"] == "alert"}
            assert {3, 5, 9} <= sids and not {1, 2, 4, 8} & sids    # the decisions held (a pass is not logged)
            reasons = {e["drop"]["reason"] for e in eve if e["event_type"] == "drop"}
            assert reasons == {"rules", "flow drop"}


def test_vlans_keep_flows_apart(tmp_path):
    """The same 5-tuple in VLAN 10 (in-band 802.1Q tag, as a capture holds it) and untagged:
    the tagged flow is dropped (its later frames by the fast path), the untagged one, at the
    same times, is still forwarded and inspected (sid 4 alerts on it) -- with and without
    the fast path alike."""
    tagged = Session(40200, 8080, 3000.0, vlan=10).handshake().cli("PA", b"evil").bulk(6, b"more " * 20)
    plain = Session(40200, 8080, 3000.001).handshake().cli("PA", b"fine").bulk(6, b"more " * 20)
    pcap = tmp_path / "vlan.pcap"
    wrpcap(str(pcap), sorted(tagged.pkts + plain.pkts, key=lambda p: float(p.time)))
    rules = tmp_path / "vlan.rules"
    rules.write_text(DECIDED_RULES.strip() + "\n")
    user = replay(tmp_path, "vlan", "user", pcap, rules)
    off = replay(tmp_path, "vlan", "off", pcap, rules)
    assert_same(user, off)
    flows, _, passed, dropped = bypass_counts(user["summary"])
    assert flows == 1 and dropped >= 10 and passed == 0, user["summary"]
    eve = [json.loads(line) for line in off["eve"].decode().splitlines()]
    assert {e["alert"]["signature_id"] for e in eve if e["event_type"] == "alert" and "vlan" not in e} == {4}
    assert {e.get("vlan", [0])[0] for e in eve if e["event_type"] == "drop"} == {10}


def ping_traffic() -> list:
    """Pings 198.51.100.1 -> 203.0.113.2 (untagged and in VLAN 20) and 2001:db8::1 -> ::2,
    each 12 requests and replies, interleaved, with one echo reply for an ICMP rule to find."""
    out, t = [], 5000.0
    for i in range(12):
        for vlan, (ip, req, rep) in ((0, (IP, ICMP(type=8, id=7, seq=i), ICMP(type=0, id=7, seq=i))),
                                     (20, (IP, ICMP(type=8, id=8, seq=i), ICMP(type=0, id=8, seq=i))),
                                     (0, (IPv6, ICMPv6EchoRequest(id=9, seq=i), ICMPv6EchoReply(id=9, seq=i)))):
            c, srv = (C, S) if ip is IP else ("2001:db8::1", "2001:db8::2")
            for src, dst, mc, ms, msg in ((c, srv, MAC_C, MAC_S, req), (srv, c, MAC_S, MAC_C, rep)):
                eth = Ether(src=mc, dst=ms)
                p = (eth / Dot1Q(vlan=vlan) if vlan else eth) / ip(src=src, dst=dst) / msg / (b"PING-%02d" % i)
                p.time = t
                t += 0.001
                out.append(p)
    return out


@pytest.mark.parametrize("mode", ["ips", "tap", "ids"])
def test_ping_flows_no_rule_applies_to_take_the_fast_path_with_the_same_output(tmp_path, mode):
    """ICMP echo flows (the engine keys them on the type pair): with only TCP and UDP rules
    each is decided on its first request (no rule of either direction applies) and the rest,
    replies included, takes the fast path; with ICMP
    rules nothing does, and they alert on every reply.  Same output either way."""
    pcap = tmp_path / "ping.pcap"
    wrpcap(str(pcap), ping_traffic())
    rules = tmp_path / "ping.rules"
    rules.write_text(DECIDED_RULES.strip() + "\n")
    user = replay(tmp_path, f"ping-{mode}", "user", pcap, rules, mode=mode)
    assert_same(user, replay(tmp_path, f"ping-{mode}", "off", pcap, rules, mode=mode))
    flows, frames, passed, dropped = bypass_counts(user["summary"])
    assert (flows, frames, passed, dropped) == (3, 69, 69, 0), user["summary"]   # 72 frames, the first of each flow inspected
    rules.write_text(DECIDED_RULES.strip() + '\nalert icmp any any -> any any (msg:"reply"; itype:0; sid:70;)\n'
                     'alert ip any any -> any any (msg:"v6 reply"; itype:129; sid:71;)\n')
    user = replay(tmp_path, f"ping-icmp-{mode}", "user", pcap, rules, mode=mode)
    off = replay(tmp_path, f"ping-icmp-{mode}", "off", pcap, rules, mode=mode)
    assert_same(user, off)
    assert bypass_counts(user["summary"])[1] == 0, user["summary"]
    eve = [json.loads(line) for line in off["eve"].decode().splitlines()]
    hits = [e["alert"]["signature_id"] for e in eve if e["event_type"] == "alert" and e["alert"]["signature_id"] >= 70]
    assert sorted(hits) == [70] * 24 + [71] * 12, hits


STREAM_BYPASS_YAML = """
stream:
  midstream: false
  bypass: yes
  reassembly:
    randomize-chunk-size: false
    depth: 1kb
"""


def test_stream_bypass_at_a_small_depth(tmp_path):
    """stream.bypass: yes -- once a direction reaches the depth the flow needs no more
    inspection: its later segments (with a pattern past the depth) take the fast path."""
    pcap = tmp_path / "depth.pcap"
    s = Session(40100, 7001, 2000.0).handshake().bulk(20, b"A" * 200)
    s.cli("PA", b"CCCCCCCC").srv("A").bulk(10, b"B" * 300).close()
    wrpcap(str(pcap), s.pkts)
    rules = tmp_path / "depth.rules"
    rules.write_text('alert tcp any any -> any 7001 (msg:"C past the depth"; content:"CCCCCCCC"; sid:11;)\n'
                     'alert tcp any any -> any 7001 (msg:"A"; content:"AAAA"; sid:12;)\n')
    config = tmp_path / "depth.yaml"
    config.write_text(STREAM_BYPASS_YAML)
    for mode in ("ips", "ids"):
        user = replay(tmp_path, f"depth-{mode}", "user", pcap, rules, config, mode=mode)
        off = replay(tmp_path, f"depth-{mode}", "off", pcap, rules, config, mode=mode)
        assert_same(user, off)
        flows, _, passed, _ = bypass_counts(user["summary"])
        assert flows == 1 and passed >= 20, user["summary"]
        assert "stream-depth 1" in off["summary"]


def test_workers_report_the_fast_path_too(tmp_path):
    pcap = tmp_path / "decided.pcap"
    wrpcap(str(pcap), decided_traffic())
    rules = tmp_path / "decided.rules"
    rules.write_text(DECIDED_RULES.strip() + "\n")
    one = replay(tmp_path, "w1", "user", pcap, rules)
    buf = io.StringIO()
    eve2 = tmp_path / "w2.eve"
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["replay", "-r", str(rules), "--workers", "2", "--eve", str(eve2), str(pcap)]) == 0
    assert bypass_counts(buf.getvalue()) == bypass_counts(one["summary"])
    assert sorted(eve2.read_bytes().splitlines()) == sorted(one["eve"].splitlines())


def one_datagram(tmp: Path) -> list[str]:
    """`-r RULES PCAP` for one UDP datagram and one rule."""
    pcap = tmp / "x.pcap"
    wrpcap(str(pcap), [udp_pkt(1.0, 1, 2, b"a")])
    rules = tmp / "x.rules"
    rules.write_text('alert udp any any -> any any (msg:"a"; sid:1;)\n')
    return ["-r", str(rules), str(pcap)]


def test_bypass_kernel_refused_in_one_line(tmp_path, capsys):
    assert cli.main(["replay", "--bypass", "kernel", *one_datagram(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bypass kernel" in err and "--bypass user" in err


def test_bypass_off_summary_says_so(tmp_path, capsys):
    assert cli.main(["replay", "--bypass", "off", *one_datagram(tmp_path)]) == 0
    assert "bypass: off (every frame inspected)" in capsys.readouterr().out


# ---------------------------------------------------------------------- the contract, with a fake inspector
class Decided:
    """A fake inspector: every UDP flow is decided on its first frame (pass, or drop for port
    666), ends when `tick` passes `ends_at`; records what it sees."""

    def __init__(self, ends_at: float):
        self.ends_at = ends_at
        self.flows: dict[tuple, object] = {}
        self.inspected: list[int] = []
        self.pushed: list[tuple] = []
        self.ticks: list[float] = []
        self.ended: set[int] = set()

    class Flow:
        def __init__(self, flow_id):
            self.flow_id = flow_id

    def inspect(self, frame, meta):
        self.inspected.append(meta.pcap_cnt)
        sport, dport = int.from_bytes(frame[34:36], "big"), int.from_bytes(frame[36:38], "big")
        key = tuple(sorted((sport, dport)))
        f = self.flows.get(key)
        if f is None:
            f = self.flows[key] = self.Flow(len(self.flows) + 1)
        action = "drop" if 666 in key else "pass"
        verdict = Verdict.DROP if action == "drop" else Verdict.FORWARD
        if verdict == Verdict.FORWARD and id(f) in self.ended:
            return FORWARD
        return Result(verdict, (), "flow" if action == "drop" else "", (), None,
                      Bypass(f, action, sport < dport, action))

    def bypassed(self, flow, ts, ps, bs, pc, bc):
        self.pushed.append((flow.flow_id, ts, ps, bs, pc, bc))
        return id(flow) not in self.ended

    def tick(self, now):
        self.ticks.append(now)
        if now >= self.ends_at:
            for key, f in list(self.flows.items()):
                self.ended.add(id(f))
                del self.flows[key]
        return ()

    def finish(self):
        return ()

    def stats(self):
        return {}


def test_run_stream_with_a_fake_inspector(tmp_path):
    pkts = []
    for i in range(10):                            # 1000.0 .. 1004.5, every 0.5 s, both directions
        pkts.append(udp_pkt(1000.0 + i * 0.5, 1000, 2000, b"ab"))
        pkts.append(udp_pkt(1000.25 + i * 0.5, 2000, 1000, b"abcd", src=S, dst=C))
    pkts.append(udp_pkt(1004.9, 1000, 666, b"x"))
    pkts.append(udp_pkt(1004.95, 1000, 666, b"x"))
    pkts.append(udp_pkt(1010.0, 1000, 2000, b"after the end"))   # tick at 1010 ends every flow first
    pcap = tmp_path / "fake.pcap"
    wrpcap(str(pcap), pkts)
    insp = Decided(ends_at=1010.0)
    t = run_stream(insp, [str(pcap)], bypass="user", mode="ips")
    assert insp.inspected == [1, 21, 23]          # the first frame of each flow, and the one after the end
    assert t.dropped == [21, 22]
    assert t.drops_by_reason["flow"] == 1           # the fast path's drop of frame 22 (the engine's own: no event)
    assert t.stats["bypass.pass_frames"] == 19 and t.stats["bypass.drop_frames"] == 1
    assert t.stats["bypass.pass_bytes"] == 9 * 44 + 10 * 46          # frame lengths: 14 + 20 + 8 + payload
    pushed = sum(p[2] + p[4] for p in insp.pushed if p[0] == 1)
    assert pushed == 19                              # every fast-path frame reached bypassed() before the end
    # before the tick at 1010 (the first tick past the flow's last frame) the last counts went out
    assert insp.ticks and insp.ticks[-1] == 1010.0
    last = [p for p in insp.pushed if p[0] == 1 and (p[2] or p[4])][-1]
    assert last[1] == 1004.75


def test_run_stream_bypass_off_inspects_everything(tmp_path):
    pkts = [udp_pkt(1000.0 + i * 0.5, 1000, 2000, b"ab") for i in range(5)]
    pcap = tmp_path / "fake.pcap"
    wrpcap(str(pcap), pkts)
    insp = Decided(ends_at=1e12)
    t = run_stream(insp, [str(pcap)], bypass="off", mode="ips")
    assert insp.inspected == [1, 2, 3, 4, 5] and not insp.pushed
    assert "bypass.installed" not in t.stats


def test_the_engine_hears_of_every_fast_path_frame(tmp_path):
    """With the real engine: every frame the fast path answered reached Engine.bypassed
    (its `bypass.frames` and `bypass.prefiltered` counters) before the flows ended, and the
    flows are the same."""
    from conf.build import engine_settings, load_rules
    from conf.model import Config
    from rules.engine import Engine

    pcap = tmp_path / "decided.pcap"
    wrpcap(str(pcap), decided_traffic())
    rules = tmp_path / "decided.rules"
    rules.write_text(DECIDED_RULES.strip() + "\n")
    config = Config()
    res = load_rules(config, [str(rules)])
    stats = {}
    for bypass in ("user", "off"):
        eng = Engine(res.rules, engine_settings(config, "ips"))
        stats[bypass] = run_stream(eng, [str(pcap)], bypass=bypass, mode="ips").stats
    user, off = stats["user"], stats["off"]
    decided = user["bypass.pass_frames"] + user["bypass.drop_frames"]
    scanned = user["bypass.scan_frames"]                            # prefiltered UDP datagrams
    fast = decided + scanned
    assert decided >= 40 and scanned > 0 and off["bypass.frames"] == off["bypass.prefiltered"] == 0
    assert user["bypass.frames"] + user["bypass.prefiltered"] == fast
    assert user["packets"] + fast == off["packets"]                 # the engine inspected the rest
    assert user["flow.created"] == off["flow.created"] and user["bypass.active"] == 0


def test_udp_flow_answered_by_the_fast_path_keeps_its_established_timeout(tmp_path):
    """A UDP flow passed on its first packet: the answers go by in the fast path, so the
    engine learns of the second direction only through bypassed().  The flow must still
    become established (timeout 300 s, not the new state's 30 s): an answer after 100 s of
    silence belongs to the passed flow -- no alert -- with and without the fast path."""
    pkts = [udp_pkt(1000.2, 40011, 53, b"dns query"),
            udp_pkt(1000.3, 53, 40011, b"dns answer", src=S, dst=C),
            udp_pkt(1001.5, 53, 40011, b"dns answer 2", src=S, dst=C),
            udp_pkt(1100.3, 53, 40011, b"x late answer", src=S, dst=C)]
    pcap = tmp_path / "dns.pcap"
    wrpcap(str(pcap), pkts)
    rules = tmp_path / "dns.rules"
    rules.write_text(DECIDED_RULES.strip() + "\n")
    user = replay(tmp_path, "dns", "user", pcap, rules)
    off = replay(tmp_path, "dns", "off", pcap, rules)
    assert_same(user, off)
    assert bypass_counts(user["summary"])[2] >= 2
    assert b'"signature_id":8' not in off["eve"]


def test_vxlan_port_flows_are_never_bypassed(tmp_path):
    """A UDP flow on the VXLAN port whose first datagrams are not VXLAN is decided (no UDP
    rule can match it); its later datagrams carry VXLAN with an inner packet a drop rule
    matches.  The engine decodes and drops them; the fast path must not get the flow."""
    p = []

    def add(pk, t):
        pk.time = t
        p.append(pk)
    add(Ether() / IP(src=C, dst=S) / UDP(sport=5000, dport=4789) / b"\x00garbage-not-vxlan", 1.0)
    add(Ether() / IP(src=S, dst=C) / UDP(sport=4789, dport=5000) / b"\x00reply", 1.1)
    inner = Ether() / IP(src="198.51.100.7", dst="203.0.113.8") / UDP(sport=1234, dport=53) / b"attack"
    for i in range(3):
        add(Ether() / IP(src=C, dst=S) / UDP(sport=5000, dport=4789) / VXLAN(vni=5) / inner, 1.2 + i * 0.1)
    pcap = tmp_path / "vx.pcap"
    wrpcap(str(pcap), p)
    rules = tmp_path / "vx.rules"
    rules.write_text('drop udp any any -> any 53 (msg:"attack"; content:"attack"; sid:1;)\n')
    user = replay(tmp_path, "vx", "user", pcap, rules)
    off = replay(tmp_path, "vx", "off", pcap, rules)
    assert_same(user, off)
    assert off["summary"].count("dropped frames: 3")


PREFILTER_LINE = re.compile(r"^prefilter: (\d+) UDP flow directions, (\d+) datagrams passed on the fast path's "
                            r"pattern scan alone, (\d+) with a fast pattern inspected$", re.MULTILINE)


def prefiltered_replay(tmp_path, tag: str, pcap, rules, mode: str):
    """Replay with the fast path and without: the same output; (the run with it, the
    counts of its prefilter line (directions, datagrams passed on the scan, hits), the alert
    sids in order)."""
    user = replay(tmp_path, tag, "user", pcap, rules, mode=mode)
    off = replay(tmp_path, tag, "off", pcap, rules, mode=mode)
    assert_same(user, off)
    m = PREFILTER_LINE.search(user["summary"])
    assert m, user["summary"]
    eve = [json.loads(line) for line in off["eve"].decode().splitlines()]
    return user, tuple(int(x) for x in m.groups()), [e["alert"]["signature_id"] for e in eve
                                                      if e["event_type"] == "alert"]


def test_prefiltered_udp_datagrams_same_output_with_and_without_the_fast_path(tmp_path):
    """UDP flows whose rules all need a fast pattern: the fast path scans their datagrams
    itself and hands over only those holding one (alerts, a datagram drop, an alert the
    second time a pattern is seen in a flow: flowbits, a 2-byte pattern, one its content
    anchors at the start), every output the same as with every datagram inspected, in all
    three modes."""
    rules = tmp_path / "scan.rules"
    rules.write_text(
        'drop udp any any -> any 7000 (msg:"evil"; content:"EVIL"; sid:1;)\n'
        'alert udp any any -> any any (msg:"attack seen"; content:"attack"; nocase; flowbits:set,seen; sid:2;)\n'
        'alert udp any any -> any any (msg:"attack again"; content:"again"; flowbits:isset,seen; sid:3;)\n'
        'alert udp any any -> any 7000 (msg:"a short pattern"; content:"Q!"; sid:4;)\n'
        'drop udp any any -> any 7000 (msg:"an anchored short pattern"; content:"|18 03|"; depth:2; sid:5;)\n')
    pkts = []
    for i in range(30):
        data = b"EVIL payload" if i in (5, 17) else b"ATTACK" if i == 9 else b"again" if i in (3, 20) \
            else b"Q!" if i == 12 else b"\x18\x03 first" if i == 14 else b"..\x18\x03 inside" if i == 15 \
            else b"data %d" % i
        pkts.append(udp_pkt(1000.0 + i * 0.01, 40020, 7000, data))
        pkts.append(udp_pkt(1000.005 + i * 0.01, 7000, 40020, b"reply %d" % i, src=S, dst=C))
    pcap = tmp_path / "scan.pcap"
    wrpcap(str(pcap), pkts)
    for mode in ("ips", "tap", "ids"):
        user, (directions, passed, hits), sids = prefiltered_replay(tmp_path, f"scan-{mode}", pcap, rules, mode)
        # (the scan hands over both datagrams with |18 03|; the engine drops the one where the
        # content can match)
        assert directions == 2 and hits == 8 and passed == 60 - 2 - hits, user["summary"]
        assert sorted(sids) == [1, 1, 2, 3, 4, 5], (mode, sids)


def test_udp_transaction_rules_wait_for_the_other_direction_with_and_without_the_fast_path(tmp_path):
    """A UDP flow to port 53 whose client speaks no DNS first: its direction refused every
    protocol, so only a fast pattern can make a rule match its datagrams (the scan offer)
    -- until the server's first datagram is DNS.  From then on the client's queries are
    parsed, and a dns.query rule must fire on them with the fast path in front (its scan
    entry hands them over) as without it.  A flow whose other direction never speaks DNS
    keeps the scan all along."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    rules = tmp_path / "dns.rules"
    rules.write_text(
        'alert dns any any -> any any (msg:"evil query"; dns.query; content:"evil.example"; nocase; sid:1;)\n'
        'alert udp any any -> any any (msg:"marker"; content:"MARKER"; sid:2;)\n')

    def query(i, name):
        return bytes(DNS(id=i, rd=1, qd=DNSQR(qname=name)))

    def answer(i, name):
        return bytes(DNS(id=i, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata="203.0.113.9")))

    pkts = []
    t = 1000.0
    for i in range(6):                               # junk first: the client's direction refuses DNS
        pkts.append(udp_pkt(t, 40053, 53, b"hello %d" % i)); t += 0.01
    pkts.append(udp_pkt(t, 40053, 53, b"a MARKER")); t += 0.01
    pkts.append(udp_pkt(t, 53, 40053, answer(1, "good.example"), src=S, dst=C)); t += 0.01   # DNS: a parser
    for i in range(4):
        name = "evil.example" if i in (1, 3) else "good.example"
        pkts.append(udp_pkt(t, 40053, 53, query(10 + i, name))); t += 0.01
    for i in range(8):                               # another flow: no reply ever, the scan all along
        pkts.append(udp_pkt(t, 40054, 53, b"MARKER" if i == 5 else b"junk %d" % i)); t += 0.01
    pcap = tmp_path / "dns.pcap"
    wrpcap(str(pcap), pkts)
    for mode in ("ips", "ids"):
        user, (directions, passed, _hits), sids = prefiltered_replay(tmp_path, f"dns-{mode}", pcap, rules, mode)
        assert directions >= 2 and passed >= 8, user["summary"]       # both flows' junk took the scan
        assert sorted(sids) == [1, 1, 2, 2], (mode, sids)
