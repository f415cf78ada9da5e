"""The decoded view of one frame, and the flow it belongs to.

`rules.decode` fills a `Packet`; `rules.flow` attaches a `Flow`; keyword match
functions (`rules.keywords.*`) read both.  Plain classes with __slots__: one
Packet is made per frame on the hot path, so no dataclass machinery, no
properties, and the payload is a memoryview into the frame (never a copy).

Addresses are kept as Python ints (`src`, `dst`) together with `ipver` (4 or 6):
rule address sets compile to integer ranges, which compare far faster than
ipaddress objects.  `rules.decode.ip_text(ipver, addr)` renders them.
"""
from __future__ import annotations

# IP protocol numbers used across the engine
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58

# TCP flag bits (as in the header byte 13, plus ECE/CWR)
TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG, TH_ECE, TH_CWR = 1, 2, 4, 8, 16, 32, 64, 128

EMPTY_VIEW = memoryview(b"")   # the payload of a packet without one: shared (a view of b"" never changes)


class Packet:
    """One decoded packet.  The common frame's Packet is built in C without __init__
    (rules/_hotpath.c decode_common stores every slot itself): a slot added here must be
    added to its SLOTS and set there too (rules.decode refuses the module until the names
    agree; tests/unit/test_decode_common.py compares every slot's value)."""

    __slots__ = (
        # capture metadata
        "ts", "iface", "pcap_cnt", "vlan", "frame", "length",
        # link layer
        "eth_type", "l3_off",
        # network layer (ipver 0 = no IP: ARP, unknown ethertype, ...)
        "ipver", "src", "dst", "proto", "ttl", "ip_id", "ip_len", "frag", "ip_off", "l4_off",
        # transport layer (sport/dport 0 when the protocol has none)
        "sport", "dport", "tcp_flags", "seq", "ack", "win", "tcp_opts",
        "icmp_type", "icmp_code", "icmp_id", "icmp_seq",
        # payload: memoryview of the L4 payload (b"" view when none)
        "payload",
        # checksum validity: None = not checked, True/False = checked
        "csum_ok",
        # decoder events (tuple of names like "ipv4.trunc_pkt"), empty when clean
        "events",
        # tunnels: the outer Packet when this one was decoded from GRE/VXLAN
        "outer",
        # set by the flow table
        "flow", "to_server",
    )

    def __init__(self) -> None:
        self.ts = 0.0
        self.iface = ""
        self.pcap_cnt = 0
        self.vlan = ()
        self.frame = b""
        self.length = 0
        self.eth_type = 0
        self.l3_off = 0
        self.ipver = 0
        self.src = 0
        self.dst = 0
        self.proto = 0
        self.ttl = 0
        self.ip_id = 0
        self.ip_len = 0
        self.frag = False      # True for any IP fragment (first or later); L4 fields only on offset 0
        self.ip_off = 0
        self.l4_off = 0
        self.sport = 0
        self.dport = 0
        self.tcp_flags = 0
        self.seq = 0
        self.ack = 0
        self.win = 0
        self.tcp_opts = b""
        self.icmp_type = -1
        self.icmp_code = -1
        self.icmp_id = -1
        self.icmp_seq = -1
        self.payload = EMPTY_VIEW
        self.csum_ok = None
        self.events = ()
        self.outer = None
        self.flow = None
        self.to_server = True


class Flow:
    """State of one bidirectional conversation, keyed symmetrically.

    `to_server` direction is the initiator's (the first packet seen, or the SYN
    sender).  Detection state (flowbits, thresholds per flow, drop mark) lives
    here so it dies with the flow."""

    __slots__ = (
        "key", "flow_id", "ipver", "proto",
        "cli", "srv", "cli_port", "srv_port", "vlan",
        "first_ts", "last_ts",
        "state",            # rules.flow state name: "new", "syn_sent", "syn_recv", "established", "closing", "closed"
        "pkts_toserver", "pkts_toclient", "bytes_toserver", "bytes_toclient",
        "flowbits",         # set[str]
        "dropped",          # None, or the reason string once a drop verdict hit this flow
        "action_pass",      # True once a pass rule matched: the rest of the flow skips detection
        "tcp",              # rules.stream.TcpSession: the reassembled directions of a TCP flow
        "decided",          # "" or why the flow needs no more inspection (rules.api.Bypass.reason)
        "ended",            # True once the engine ended the flow (timeout, eviction, end of input)
        "prefilter",        # None, or per direction [to client, to server] the Bypass "scan" offer (rules.engine._offer_scan)
        "app",              # None, or rules.applayer.AppState: the flow's app-layer protocol and parser
    )

    def __init__(self, key, flow_id: int, ts: float) -> None:
        self.key = key
        self.flow_id = flow_id
        self.ipver = 0
        self.proto = 0
        self.cli = 0
        self.srv = 0
        self.cli_port = 0
        self.srv_port = 0
        self.vlan = ()
        self.first_ts = ts
        self.last_ts = ts
        self.state = "new"
        self.pkts_toserver = 0
        self.pkts_toclient = 0
        self.bytes_toserver = 0
        self.bytes_toclient = 0
        self.flowbits = set()
        self.dropped = None
        self.app = None
        self.action_pass = False
        self.tcp = None
        self.decided = ""
        self.ended = False
        self.prefilter = None

    @property
    def established(self) -> bool:
        return self.state == "established"
