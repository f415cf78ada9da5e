"""The worker's one per-frame path with the user-space fast path (bridge.fastpath), on
rings in byte buffers and fake sockets (no kernel): a decided flow's later frames, both
directions, are forwarded or dropped without the inspector and counted so that
`received == forwarded + sum(dropped) + sum(send_errors)` (ips/tap) and
`received == inspected + bypassed` (every mode) still hold; counts reach
`Inspector.bypassed` at each tick, before `tick(now)`; `bypass: off` and inspectors
that never decide flows have no fast path; the port's FrameMeta is reused frame after
frame; EVE gets one write per drain."""
from __future__ import annotations

import dataclasses
import struct
from types import SimpleNamespace

import pytest
from scapy.all import IP, UDP, Ether

from bridge import afpacket as afp
from bridge.ring import SLL_PKTTYPE_V2, V2_HDR, V2Ring
from bridge.stats import unaccounted, uninspected
from bridge.worker import FLOW_REASON, Worker, _Port
from conf.model import Config, Interface
from rules.api import FORWARD, Bypass, PredicateInspector, Result, Verdict

C, S = "203.0.113.10", "198.51.100.20"
MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x" * 18) -> bytes:
    return bytes(Ether(**MACS) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


TO_SERVER = udp(C, S, 40000, 53)
TO_CLIENT = udp(S, C, 53, 40000)
OTHER = udp(C, S, 40001, 53)


class FakeSock:
    def __init__(self):
        self.sent: list[bytes] = []

    def send(self, data, flags=0):
        self.sent.append(bytes(data))
        return len(data)

    def fileno(self):
        return -1


class FakePS:
    def __init__(self, iface: str, ifindex: int):
        self.iface, self.ifindex, self.sock, self.ignore_outgoing = iface, ifindex, FakeSock(), True


def ring(frames: list[bytes], vlan_tci: int | None = None, nslots: int = 16, frame_size: int = 2048) -> V2Ring:
    """A V2 ring whose first slots hold `frames` (tp_mac 80, 4 bytes of headroom before it)."""
    buf = bytearray(nslots * frame_size)
    status = afp.TP_STATUS_USER
    tci = tpid = 0
    if vlan_tci is not None:
        status |= afp.TP_STATUS_VLAN_VALID | afp.TP_STATUS_VLAN_TPID_VALID
        tci, tpid = vlan_tci, 0x8100
    for i, data in enumerate(frames):
        off = i * frame_size
        V2_HDR.pack_into(buf, off, status, len(data), len(data), 80, 94, 1700000000 + i, 0, tci, tpid)
        buf[off + SLL_PKTTYPE_V2] = afp.PACKET_HOST
        buf[off + 80:off + 80 + len(data)] = data
    return V2Ring(memoryview(buf), afp.RingGeometry(afp.TPACKET_V2, nslots * frame_size, 1, frame_size, nslots))


class Decider:
    """An inspector that decides each flow on its first frame (`action`), verdict and reason
    as the engine gives them, and implements `bypassed`."""

    def __init__(self, action: str = "pass"):
        self.action = action
        self.flows: dict[frozenset, object] = {}
        self.inspected: list[bytes] = []
        self.pushed: list[tuple] = []          # bypassed(...) calls
        self.calls: list[str] = []             # "bypassed" / "tick" / "finish", in order
        self.ended: set[int] = set()           # id(handle) of flows this inspector ended

    def inspect(self, frame, meta) -> Result:
        data = bytes(frame)
        self.inspected.append(data)
        ip = Ether(data)[IP]
        key = frozenset([(ip.src, ip[UDP].sport), (ip.dst, ip[UDP].dport)])
        first = key not in self.flows
        flow = self.flows.setdefault(key, SimpleNamespace(flow_id=1000 + len(self.flows), app=None))
        to_server = ip[UDP].dport == 53
        if self.action == "drop":
            return Result(Verdict.DROP, reason="rule" if first else FLOW_REASON,
                          bypass=Bypass(flow, "drop", to_server, "drop"))
        return Result(Verdict.FORWARD, bypass=Bypass(flow, "pass", to_server, "pass"))

    def bypassed(self, flow, ts, ps, bs, pc, bc) -> bool:
        self.pushed.append((flow, ts, ps, bs, pc, bc))
        self.calls.append("bypassed")
        return id(flow) not in self.ended

    def tick(self, now):
        self.calls.append("tick")
        return ()

    def finish(self):
        self.calls.append("finish")
        return ()

    def stats(self):
        return {}


def pair(to_server: list[bytes], to_client: list[bytes], inspector, mode: str = "ips", config=None,
         vlan_tci: int | None = None) -> tuple[Worker, _Port, _Port]:
    """A worker bridging eth0 (client side) and eth1 (server side), plain sends."""
    a, b = FakePS("eth0", 11), FakePS("eth1", 12)
    p0 = _Port("eth0", a, ring(to_server, vlan_tci), mode, b.sock)
    p1 = _Port("eth1", b, ring(to_client, vlan_tci), mode, a.sock)
    return Worker([p0, p1], inspector, config or Config()), p0, p1


def frames_of(port: _Port) -> list[bytes]:
    return port.peer.sent


def counters(port: _Port) -> dict:
    return port.counters.as_dict()


def test_a_passed_flow_is_forwarded_both_ways_without_the_inspector():
    insp = Decider("pass")
    w, p0, p1 = pair([TO_SERVER] * 3 + [OTHER], [TO_CLIENT] * 2, insp)
    w.drain(p0)
    w.drain(p1)
    assert insp.inspected == [TO_SERVER, OTHER]        # the first frame of each flow, nothing else
    assert frames_of(p0) == [TO_SERVER] * 3 + [OTHER] and frames_of(p1) == [TO_CLIENT] * 2
    c0, c1 = counters(p0), counters(p1)
    assert (c0["received"], c0["forwarded"], c0["inspected"], c0["bypassed"]) == (4, 4, 2, 2)
    assert (c1["received"], c1["forwarded"], c1["inspected"], c1["bypassed"]) == (2, 2, 0, 2)
    for c in (c0, c1):
        assert unaccounted(c) == 0 and uninspected(c) == 0
    st = w.fast.stats()
    assert st["bypass.installed"] == 2 and st["bypass.active"] == 2 and st["bypass.pass_frames"] == 4
    assert st["bypass.pass_bytes"] == 4 * len(TO_SERVER)            # frame lengths, as the engine counts


def test_a_dropped_flow_is_dropped_as_flow_in_ips():
    w, p0, p1 = pair([TO_SERVER] * 3, [TO_CLIENT], Decider("drop"))
    w.drain(p0)
    w.drain(p1)
    assert frames_of(p0) == [] and frames_of(p1) == []
    c0, c1 = counters(p0), counters(p1)
    assert c0["dropped"] == {"rule": 1, FLOW_REASON: 2} and c0["bypassed"] == 2
    assert c1["dropped"] == {FLOW_REASON: 1} and c1["inspected"] == 0
    for c in (c0, c1):
        assert unaccounted(c) == 0 and uninspected(c) == 0
    assert w.fast.stats()["bypass.drop_frames"] == 3


def test_tap_never_installs_a_drop_and_counts_each_frame_as_would_drop():
    insp = Decider("drop")
    w, p0, _p1 = pair([TO_SERVER] * 3, [], insp, mode="tap")
    w.drain(p0)
    c = counters(p0)
    assert len(insp.inspected) == 3 and c["bypassed"] == 0
    assert c["forwarded"] == 3 and c["would_drop"] == {"rule": 1, FLOW_REASON: 2} and c["dropped"] == {}
    assert w.fast.stats()["bypass.installed"] == 0


def test_ids_stops_inspecting_a_decided_flow():
    insp = Decider("pass")
    ps = FakePS("eth2", 13)
    port = _Port("eth2", ps, ring([TO_SERVER, TO_CLIENT, TO_SERVER]), None, None)
    w = Worker([port], insp, Config())
    w.drain(port)
    c = counters(port)
    assert insp.inspected == [TO_SERVER] and c["bypassed"] == 2 and c["forwarded"] == 0
    assert uninspected(c) == 0 and ps.sock.sent == []


@pytest.mark.parametrize("setting", ["off"], ids=["bypass-off"])
def test_bypass_off_inspects_every_frame(setting):
    config = Config(af_packet=[Interface("eth0", bypass=setting), Interface("eth1", bypass="user")])
    insp = Decider("pass")
    w, p0, _p1 = pair([TO_SERVER] * 3, [], insp, config=config)
    assert w.fast is None
    w.drain(p0)
    assert len(insp.inspected) == 3 and counters(p0)["bypassed"] == 0


def test_an_inspector_that_never_decides_flows_has_no_fast_path():
    w, p0, _p1 = pair([TO_SERVER], [], PredicateInspector(lambda frame, meta: False))
    assert w.fast is None
    w.drain(p0)
    assert counters(p0)["inspected"] == 1


def test_the_kernel_offload_is_used_only_when_every_port_says_kernel():
    class Kernel:
        def __init__(self):
            self.added = []

        def add(self, *args):
            self.added.append(args)
            return True

        def read(self, *args):
            return None

        def remove(self, *args):
            pass

        def totals(self):
            return {"bypass.kernel.pass_frames": 7}

    k = Kernel()
    a, b = FakePS("eth0", 11), FakePS("eth1", 12)
    ports = [_Port("eth0", a, ring([TO_SERVER]), "ips", b.sock), _Port("eth1", b, ring([]), "ips", a.sock)]
    w = Worker(ports, Decider("pass"), Config(), kernel=k)
    assert w.fast.kernel is k
    w.drain(ports[0])
    # the kernel entries wait until the loop has drained every ring (Worker.run commits them)
    assert k.added == [] and w.fast.defer_kernel and w.fast.pending
    assert w.fast.commit() == 1
    assert [(x[0], x[-1]) for x in k.added] == [(11, 12), (12, 11)]     # ingress ifindex, redirect
    user = Config(af_packet=[Interface("eth0", bypass="user"), Interface("eth1")])
    assert Worker(pair([], [], Decider())[0].ports, Decider(), user, kernel=k).fast.kernel is None


def test_tick_pushes_counts_before_the_inspector_ticks_and_forgets_ended_flows():
    insp = Decider("pass")
    w, p0, p1 = pair([TO_SERVER] * 3, [TO_CLIENT] * 2, insp)
    w.drain(p0)
    w.drain(p1)
    w.tick(w.last_ts_mono + 1.0)
    assert insp.calls[:2] == ["bypassed", "tick"]
    flow, ts, ps, bs, pc, bc = insp.pushed[0]
    assert (ps, pc) == (2, 2) and bs == 2 * len(TO_SERVER) and ts == 1700000002.0    # the latest frame
    # the inspector ends the flow: the next tick forgets it and its next frame is inspected again
    insp.ended.add(id(flow))
    w.tick(w.last_ts_mono + 2.0)
    assert w.fast.stats()["bypass.active"] == 0
    p0.ring = ring([TO_SERVER])
    before = len(insp.inspected)
    w.drain(p0)
    assert len(insp.inspected) == before + 1


def test_shutdown_pushes_the_last_counts_finishes_then_clears():
    insp = Decider("pass")
    w, p0, _p1 = pair([TO_SERVER] * 2, [], insp)
    w.drain(p0)
    w.shutdown()
    assert insp.calls == ["bypassed", "finish"] and insp.pushed[0][2] == 1
    assert w.fast.stats()["bypass.active"] == 0 and w.fast.stats()["bypass.removed"] == 1


def test_a_tagged_flow_is_keyed_by_its_vlan_and_the_tag_is_put_back():
    insp = Decider("pass")
    w, p0, _p1 = pair([TO_SERVER] * 2, [], insp, vlan_tci=0x2064)     # PCP 1, VID 100
    w.drain(p0)
    tagged = TO_SERVER[:12] + bytes.fromhex("81002064") + TO_SERVER[12:]
    assert frames_of(p0) == [tagged, tagged] and counters(p0)["bypassed"] == 1
    assert counters(p0)["vlan_reinserted"] == 2


# ------------------------------------------------------------------ FrameMeta reuse, EVE batching
class Spy:
    def __init__(self, events_per_frame: int = 0):
        self.metas: list = []
        self.events = events_per_frame

    def inspect(self, frame, meta):
        self.metas.append((id(meta), dataclasses.replace(meta)))
        return Result(Verdict.FORWARD, events=("e",) * self.events) if self.events else FORWARD

    def tick(self, now):
        return ()

    def stats(self):
        return {}


def test_the_port_meta_is_reused_with_each_frames_own_fields():
    spy = Spy()
    w, p0, _p1 = pair([TO_SERVER, OTHER], [], spy)
    w.drain(p0)
    (id1, m1), (id2, m2) = spy.metas
    assert id1 == id2 == id(p0.meta)
    assert (m1.ts, m2.ts) == (1700000000.0, 1700000001.0) and m1.iface == "eth0" and m1.vlan == ()
    p0.ring = ring([TO_SERVER], vlan_tci=0x0064)
    w.drain(p0)
    assert spy.metas[-1][1].vlan == (100,) and spy.metas[-1][1].tpid == (0x8100,)
    p0.ring = ring([TO_SERVER])
    w.drain(p0)
    assert spy.metas[-1][1].vlan == () and spy.metas[-1][1].tpid == ()


class Writer:
    def __init__(self, fail: bool = False):
        self.batches: list[list] = []
        self.fail = fail

    def write(self, events):
        if self.fail:
            raise OSError(28, "No space left on device")
        self.batches.append(list(events))

    def close(self):
        pass


def test_eve_gets_one_write_per_drain():
    w, p0, _p1 = pair([TO_SERVER] * 3, [], Spy(events_per_frame=2), config=Config(eve_log="/nonexistent/eve.json"))
    w.eve = Writer()
    w.drain(p0)
    assert [len(b) for b in w.eve.batches] == [6]


def test_a_failed_eve_write_counts_every_event_of_the_drain_as_lost():
    w, p0, _p1 = pair([TO_SERVER] * 3, [], Spy(events_per_frame=2), config=Config(eve_log="/nonexistent/eve.json"))
    w.eve = Writer(fail=True)
    w.log = type("Quiet", (), {"warning": lambda *a, **k: None})()
    w.drain(p0)
    assert (w.eve_errors, w.eve_lost) == (1, 6) and w.eve is None
    assert counters(p0)["forwarded"] == 3


def test_the_frame_is_released_after_it_was_forwarded():
    w, p0, _p1 = pair([TO_SERVER], [], Decider("pass"))
    w.drain(p0)
    assert struct.unpack_from("=I", p0.ring.view, 0)[0] == afp.TP_STATUS_KERNEL and p0.ring.head == 1


# ------------------------------------------------------------------ a dropped flow's EVE records
def test_a_frame_the_fast_path_drops_gets_the_engines_flow_drop_record():
    w, p0, _p1 = pair([TO_SERVER] * 3, [], Decider("drop"), config=Config(eve_log="/nonexistent/eve.json"))
    w.eve = Writer()
    w.drain(p0)
    (batch,) = w.eve.batches
    assert counters(p0)["bypassed"] == 2 and len(batch) == 2
    for ev in batch:
        assert ev.reason == FLOW_REASON and ev.pkt.sport == 40000 and ev.pkt.dport == 53
        assert ev.pkt.to_server is True and ev.pkt.iface == "eth0" and ev.pkt.length == len(TO_SERVER)
        assert ev.pkt.flow_id == 1000
    assert [ev.pkt.ts for ev in batch] == [1700000001.0, 1700000002.0]


@pytest.mark.parametrize("eve", [None, "/nonexistent/eve.json"], ids=["no-eve", "eve"])
def test_with_eve_a_dropped_flow_stays_in_user_space(eve):
    class Kernel:
        def __init__(self):
            self.added = []

        def add(self, *args):
            self.added.append(args[8])
            return True

        def read(self, *args):
            return None

        def remove(self, *args):
            pass

        def totals(self):
            return {}

    k = Kernel()
    w, p0, _p1 = pair([TO_SERVER, OTHER], [], Decider("drop"), config=Config(eve_log=eve))
    w = Worker(w.ports, Decider("drop"), Config(eve_log=eve), kernel=k)
    w.eve = Writer()
    w.drain(p0)
    w.fast.commit()                                         # as Worker.run does once the rings are drained
    assert k.added == ([] if eve else ["drop", "drop", "drop", "drop"])
    assert w.fast.stats()["bypass.active"] == 2            # the user-space entries either way
    k2 = Kernel()
    w2, q0, _q1 = pair([TO_SERVER], [], Decider("pass"), config=Config(eve_log=eve))
    w2 = Worker(w2.ports, Decider("pass"), Config(eve_log=eve), kernel=k2)
    w2.eve = Writer()
    w2.drain(q0)
    w2.fast.commit()
    assert k2.added == ["pass", "pass"]                     # pass flows go to the kernel either way
