"""The kernel offload's programs, run by the kernel on byte-literal frames (BPF_PROG_TEST_RUN).

No traffic and no namespace, but the bpf() syscall: these tests need root (or CAP_BPF +
CAP_NET_ADMIN) and fail, never skip, without it.  The tc program run here is the one
the bridge loads (a tc test run starts at L2, as on traffic).  A socket filter's test
run starts at L3 (the kernel pulls the Ethernet header with eth_type_trans and sets
skb->protocol) while AF_PACKET runs it at L2, so the socket filter tested here is the
bridge's assembled with l3=0 -- the same instructions but for the five immediates that
count from skb->data (test_socket_filter_variant_differs_only_in_its_l3_offsets) --
on the bridge's maps.  The test skb arrives on lo (ifindex 1) with no stripped VLAN
tag, so entries here use ifindex 1 and VLAN 0.
"""
from __future__ import annotations

import os
import time

import pytest

from bridge import ebpf
from bridge.ebpf import (
    DW,
    FP,
    R0,
    R1,
    R2,
    R8,
    SOCKET_KEEP_WHOLE,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    TC_ACT_SHOT,
    Asm,
    KernelOffload,
)

LO = 1
PEER = 7              # a redirect target: the test run returns TC_ACT_REDIRECT without sending
C4, S4 = bytes.fromhex("c6336401"), bytes.fromhex("c6336402")             # 198.51.100.1, .2
C6 = bytes.fromhex("20010db8000000000000000000000001")                   # 2001:db8::1
S6 = bytes.fromhex("20010db8000000000000000000000002")                   # 2001:db8::2

ETH4 = bytes.fromhex("020000000002" "020000000001" "0800")
ETH6 = bytes.fromhex("020000000002" "020000000001" "86dd")

# ------------------------------------------------------------------ frames
# IPv4: 45 | tos | total length | id | flags+offset | ttl | proto | csum | src | dst
V4_TCP_ACK = ETH4 + bytes.fromhex(
    "45 00 0032 0001 4000 40 06 0000 c6336401 c6336402"      # DF, TCP, total length 50
    "9c40 0050 00000001 00000002 50 10 ffff 0000 0000"       # 40000 -> 80, ACK
    "30313233343536373839")                                  # 10 bytes of data
V4_TCP_PSH = ETH4 + bytes.fromhex(
    "45 00 002c 0002 0000 40 06 0000 c6336401 c6336402"      # no DF, total length 44
    "9c40 0050 00000011 00000002 50 18 ffff 0000 0000"       # PSH|ACK
    "41424344")
V4_UDP_PADDED = ETH4 + bytes.fromhex(
    "45 00 0020 0003 0000 40 11 0000 c6336401 c6336402"      # UDP, total length 32
    "14e9 0035 000c 0000"                                    # 5353 -> 53, length 12
    "71727374") + bytes(14)                                  # Ethernet padding to 60 bytes
V4_UDP_SHORT = V4_UDP_PADDED[:14 + 32]                      # the same, unpadded: 32 bytes from L3
V6_TCP_ACK = ETH6 + bytes.fromhex(
    "60000000 001c 06 40"                                    # payload 28, next header TCP
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
    "9c40 0050 00000001 00000002 50 10 ffff 0000 0000"       # 40000 -> 80, ACK
    "6162636465666768")
V6_UDP = ETH6 + bytes.fromhex(
    "60000000 000a 11 40"                                    # payload 10, next header UDP
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
    "14e9 0035 000a 0000 7a7a")                              # 5353 -> 53

V4_ICMP_ECHO = ETH4 + bytes.fromhex(
    "45 00 0020 0006 0000 40 01 0000 c6336401 c6336402"      # ICMP, total length 32
    "0800 0000 9c40 0050 61626364")                          # echo request, id 40000, seq 80
V4_ICMP_REPLY = ETH4 + bytes.fromhex(
    "45 00 001c 0007 0000 40 01 0000 c6336402 c6336401"      # total length 28: the header alone
    "0000 0000 9c40 0050")                                   # echo reply
V6_ICMP_ECHO = ETH6 + bytes.fromhex(
    "60000000 000c 3a 40"                                    # payload 12, next header ICMPv6
    "20010db8000000000000000000000001"
    "20010db8000000000000000000000002"
    "8000 0000 0001 0002 61626364")                          # echo request 128

KEYED = {
    # name: (frame, ipver, proto, src, dst, sport, dport, IP packet length)
    "v4-tcp-ack-df": (V4_TCP_ACK, 4, 6, C4, S4, 40000, 80, 50),
    "v4-tcp-psh": (V4_TCP_PSH, 4, 6, C4, S4, 40000, 80, 44),
    "v4-udp-padded": (V4_UDP_PADDED, 4, 17, C4, S4, 5353, 53, 32),
    "v4-udp-short": (V4_UDP_SHORT, 4, 17, C4, S4, 5353, 53, 32),     # under 34 bytes: the short load
    "v6-tcp-ack": (V6_TCP_ACK, 6, 6, C6, S6, 40000, 80, 68),
    "v6-udp": (V6_UDP, 6, 17, C6, S6, 5353, 53, 50),
    # ICMP echo: the "ports" are the type and its counterpart (bridge.fastpath)
    "v4-icmp-echo-request": (V4_ICMP_ECHO, 4, 1, C4, S4, 8, 0, 32),
    "v4-icmp-echo-reply": (V4_ICMP_REPLY, 4, 1, S4, C4, 0, 8, 28),      # under 34 bytes: the short load
    "v6-icmp-echo-request": (V6_ICMP_ECHO, 6, 58, C6, S6, 128, 129, 52),
}


def _tcp_flags(frame: bytes, flags: int) -> bytes:
    at = 14 + 20 + 13
    return frame[:at] + bytes([flags]) + frame[at + 1:]


NOT_KEYABLE = {
    # name: (frame, the entry that would match it if it were keyed)
    "v4-syn": (_tcp_flags(V4_TCP_ACK, 0x02), (4, 6, C4, S4, 40000, 80)),
    "v4-syn-ack": (_tcp_flags(V4_TCP_ACK, 0x12), (4, 6, C4, S4, 40000, 80)),
    "v4-fin-ack": (_tcp_flags(V4_TCP_ACK, 0x11), (4, 6, C4, S4, 40000, 80)),
    "v4-rst": (_tcp_flags(V4_TCP_ACK, 0x04), (4, 6, C4, S4, 40000, 80)),
    "v6-syn": (V6_TCP_ACK[:14 + 40 + 13] + b"\x02" + V6_TCP_ACK[14 + 40 + 14:], (6, 6, C6, S6, 40000, 80)),
    "v4-ip-options": (ETH4 + bytes.fromhex(
        "46 00 0036 0004 4000 40 06 0000 c6336401 c6336402 01010100"   # IHL 6: NOP NOP NOP EOL
        "9c40 0050 00000001 00000002 50 10 ffff 0000 0000"
        "30313233343536373839"), (4, 6, C4, S4, 40000, 80)),
    "v4-first-fragment-mf": (ETH4 + bytes.fromhex(
        "45 00 0032 0005 2000 40 06 0000 c6336401 c6336402"            # MF
        "9c40 0050 00000001 00000002 50 10 ffff 0000 0000"
        "30313233343536373839"), (4, 6, C4, S4, 40000, 80)),
    "v4-later-fragment": (ETH4 + bytes.fromhex(
        "45 00 0032 0005 0003 40 06 0000 c6336401 c6336402"            # offset 24 bytes, last
        "9c40 0050 00000001 00000002 50 10 ffff 0000 0000"
        "30313233343536373839"), (4, 6, C4, S4, 40000, 80)),
    "v4-icmp-echo-ports-as-tcp": (V4_ICMP_ECHO, (4, 1, C4, S4, 40000, 80)),      # its id/seq are no ports
    "v4-icmp-unreachable": (ETH4 + bytes.fromhex(
        "45 00 0024 0006 0000 40 01 0000 c6336401 c6336402"
        "0303 0000 00000000 45000014"), (4, 1, C4, S4, 3, 255)),      # errors: never offloaded
    "v4-icmp-echo-header-past-ip-length": (ETH4 + bytes.fromhex(
        "45 00 001b 0006 0000 40 01 0000 c6336401 c6336402"            # total length 27 < 20 + 8
        "0800 0000 9c40 0050"), (4, 1, C4, S4, 8, 0)),
    "v6-neighbor-solicitation": (ETH6 + bytes.fromhex(
        "60000000 0018 3a ff"
        "20010db8000000000000000000000001"
        "20010db8000000000000000000000002"
        "8700 0000 00000000 20010db8000000000000000000000002"), (6, 58, C6, S6, 135, 136)),
    "v6-next-header-icmpv4": (ETH6 + bytes.fromhex(
        "60000000 0008 01 40"                                          # ICMPv4's number in IPv6
        "20010db8000000000000000000000001"
        "20010db8000000000000000000000002"
        "0800 0000 0001 0001"), (6, 1, C6, S6, 8, 0)),
    "v4-truncated": (ETH4 + bytes.fromhex(
        "45 00 0064 0007 0000 40 11 0000 c6336401 c6336402"            # says 100 bytes, has 32
        "14e9 0035 000c 0000 71727374"), (4, 17, C4, S4, 5353, 53)),
    "v4-tcp-header-past-ip-length": (ETH4 + bytes.fromhex(
        "45 00 0027 0008 0000 40 06 0000 c6336401 c6336402"            # total length 39 < 20 + 20
        "9c40 0050 00000001 00000002 50 10 ffff 0000 0000"), (4, 6, C4, S4, 40000, 80)),
    "v4-version-6-nibble": (ETH4 + bytes.fromhex(
        "65 00 0020 0009 0000 40 11 0000 c6336401 c6336402"
        "14e9 0035 000c 0000 71727374"), (4, 17, C4, S4, 5353, 53)),
    "v6-hop-by-hop": (ETH6 + bytes.fromhex(
        "60000000 0024 00 40"                                          # next header 0
        "20010db8000000000000000000000001"
        "20010db8000000000000000000000002"
        "06 00 0104 00000000"                                          # HBH -> TCP, PadN
        "9c40 0050 00000001 00000002 50 10 ffff 0000 0000" "61626364"),
     (6, 6, C6, S6, 40000, 80)),
    "v6-truncated": (V6_UDP[:-2], (6, 17, C6, S6, 5353, 53)),
    # what the kernel leaves of a QinQ frame after stripping the outer tag: the inner tag
    "inner-8021q-tag": (bytes.fromhex("020000000002" "020000000001" "8100 0064 0800")
                        + V4_TCP_ACK[14:], (4, 6, C4, S4, 40000, 80)),
    "arp": (bytes.fromhex("ffffffffffff" "020000000001" "0806"
                          "0001 0800 06 04 0001 020000000001 c6336401 000000000000 c6336402"),
            (4, 6, C4, S4, 40000, 80)),
}


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def k():
    if os.geteuid() != 0:
        pytest.fail("the eBPF tests load programs with bpf(): run them as root", pytrace=False)
    try:
        off = KernelOffload.create(1024)
    except ebpf.OffloadUnavailable as e:
        pytest.fail(f"kernel offload unavailable on this machine: {e}", pytrace=False)
    off.test_sock_fd = _l3_socket_filter(off)
    yield off
    os.close(off.test_sock_fd)
    off.close()


def _l3_socket_filter(off: KernelOffload) -> int:
    """The bridge's socket filter on the same maps, for a test run that starts at L3."""
    asm = ebpf.socket_filter_program(off.flows.fd, off.totals_map.fd, off.heartbeat_map.fd, off.failopen.fd, l3=0,
                                     count_fd=off.count_map.fd)
    return ebpf.load_program(ebpf.BPF_PROG_TYPE_SOCKET_FILTER, asm.assemble(), "ipsb_sock_l3")


def sock(k: KernelOffload, frame: bytes) -> int:
    return ebpf.prog_test_run(k.test_sock_fd, frame).retval


def tc(k: KernelOffload, frame: bytes) -> int:
    return ebpf.prog_test_run(k.tc_fd, frame).retval


# ------------------------------------------------------------------ keys
def test_flow_key_layout_is_explicit():
    key = ebpf.flow_key(3, 4, 6, 0x2064, C4, S4, 40000, 80)
    assert key == (bytes.fromhex("03000000" "04" "06" "6400")              # ifindex, ipver, proto, VLAN id
                   + C4 + bytes(12) + S4 + bytes(12)
                   + bytes.fromhex("9c40" "0050"))                        # ports as on the wire
    assert len(ebpf.flow_key(3, 6, 17, 0, C6, S6, 1, 2)) == 44


@pytest.mark.parametrize("ipver,src", [(4, C6), (6, C4), (5, C4)], ids=["v4-16-bytes", "v6-4-bytes", "ipver5"])
def test_flow_key_refuses_mismatched_addresses(ipver, src):
    with pytest.raises(ValueError):
        ebpf.flow_key(1, ipver, 6, 0, src, src, 1, 2)


# ------------------------------------------------------------------ hits and misses
@pytest.mark.parametrize("name", list(KEYED))
def test_keyed_frame_of_a_pass_flow_leaves_the_ring_and_is_redirected(k, name):
    frame, ipver, proto, src, dst, sport, dport, ip_len = KEYED[name]
    assert sock(k, frame) == SOCKET_KEEP_WHOLE and tc(k, frame) == TC_ACT_OK     # not offloaded yet
    assert k.add(LO, ipver, proto, 0, src, dst, sport, dport, "pass", PEER)
    assert sock(k, frame) == 0
    assert tc(k, frame) == TC_ACT_REDIRECT
    packets, nbytes, _last = k.read(LO, ipver, proto, 0, src, dst, sport, dport)
    assert (packets, nbytes) == (1, len(frame))      # counted once (by the socket filter), frame length


@pytest.mark.parametrize("name", list(KEYED))
def test_drop_flow_is_shot_and_kept_out_of_the_ring(k, name):
    frame, ipver, proto, src, dst, sport, dport, ip_len = KEYED[name]
    assert k.add(LO, ipver, proto, 0, src, dst, sport, dport, "drop", 0)
    assert sock(k, frame) == 0
    assert tc(k, frame) == TC_ACT_SHOT
    assert k.totals() == {"bypass.kernel.pass_frames": 0, "bypass.kernel.pass_bytes": 0,
                          "bypass.kernel.drop_frames": 1, "bypass.kernel.drop_bytes": len(frame),
                          "failopen.frames": 0, "failopen.bytes": 0}


@pytest.mark.parametrize("name", list(NOT_KEYABLE))
def test_frame_that_is_not_keyable_passes_whole_even_when_its_flow_is_offloaded(k, name):
    frame, (ipver, proto, src, dst, sport, dport) = NOT_KEYABLE[name]
    assert k.add(LO, ipver, proto, 0, src, dst, sport, dport, "pass", PEER)
    for p in (6, 17, 1, 58):                         # whatever protocol byte it carries
        k.add(LO, ipver, p, 0, src, dst, sport, dport, "drop", 0)
    assert sock(k, frame) == SOCKET_KEEP_WHOLE
    assert tc(k, frame) == TC_ACT_OK
    assert k.totals()["bypass.kernel.pass_frames"] + k.totals()["bypass.kernel.drop_frames"] == 0


@pytest.mark.parametrize("change", ["ifindex", "vlan", "proto", "sport", "dport", "reversed", "src"])
def test_every_key_field_must_match(k, change):
    args = {"ifindex": LO, "ipver": 4, "proto": 6, "vlan": 0, "src": C4, "dst": S4, "sport": 40000, "dport": 80}
    if change == "ifindex":
        args["ifindex"] = 2
    elif change == "vlan":
        args["vlan"] = 100
    elif change == "proto":
        args["proto"] = 17
    elif change == "sport":
        args["sport"] = 40001
    elif change == "dport":
        args["dport"] = 81
    elif change == "reversed":
        args.update(src=S4, dst=C4, sport=80, dport=40000)
    elif change == "src":
        args["src"] = bytes.fromhex("cb007101")       # 203.0.113.1
    assert k.add(action="pass", redirect=PEER, **args)
    assert sock(k, V4_TCP_ACK) == SOCKET_KEEP_WHOLE
    assert tc(k, V4_TCP_ACK) == TC_ACT_OK


def test_pass_entry_without_a_redirect_target_goes_up_the_stack(k):
    k.add(LO, 4, 6, 0, C4, S4, 40000, 80, "pass", 0)      # IDS: no peer
    assert sock(k, V4_TCP_ACK) == 0
    assert tc(k, V4_TCP_ACK) == TC_ACT_OK


# ------------------------------------------------------------------ the map from user space
def test_add_read_remove_round_trip(k):
    key = (LO, 4, 6, 0, C4, S4, 40000, 80)
    assert k.read(*key) is None
    before = time.monotonic_ns()
    assert k.add(*key, "pass", PEER)
    packets, nbytes, last = k.read(*key)
    assert (packets, nbytes) == (0, 0) and before <= last <= time.monotonic_ns()
    for _ in range(3):
        assert sock(k, V4_TCP_ACK) == 0
    packets, nbytes, last2 = k.read(*key)
    assert (packets, nbytes) == (3, 3 * len(V4_TCP_ACK)) and last2 >= last
    assert k.add(*key, "pass", PEER)                  # the same decision again: counters kept
    assert k.read(*key)[:2] == (3, 3 * len(V4_TCP_ACK))
    assert k.add(*key, "drop", 0)                     # another decision: a new entry
    assert k.read(*key)[:2] == (0, 0)
    assert tc(k, V4_TCP_ACK) == TC_ACT_SHOT
    k.remove(*key)
    assert k.read(*key) is None
    k.remove(*key)                                    # gone already: no error
    assert sock(k, V4_TCP_ACK) == SOCKET_KEEP_WHOLE and tc(k, V4_TCP_ACK) == TC_ACT_OK


def test_the_offloaded_count_follows_the_entries(k):
    """KernelOffload.count: +1 before a new entry, nothing for the same key again (either
    decision), -1 after a delete that removed one, nothing for a key already gone."""
    a, b = (LO, 4, 6, 0, C4, S4, 40000, 80), (LO, 4, 6, 0, C4, S4, 40001, 80)
    assert k.offloaded() == 0
    assert k.add(*a, "pass", PEER) and k.offloaded() == 1
    assert k.add(*a, "pass", PEER) and k.add(*a, "drop", 0) and k.offloaded() == 1
    assert k.add(*b, "pass", PEER) and k.offloaded() == 2
    k.remove(*a)
    k.remove(*a)
    assert k.offloaded() == 1
    k.remove(*b)
    assert k.offloaded() == 0


def test_with_nothing_offloaded_both_programs_return_before_the_lookup(k):
    """While the count is 0 the programs do not look frames up: an entry put in the map
    behind the count's back is not seen until the count says there is one."""
    key = ebpf.flow_key(LO, 4, 6, 0, C4, S4, 40000, 80)
    k.flows.update(key, ebpf.FLOW_VALUE.pack(ebpf.ACTIONS["drop"], 0, time.monotonic_ns(), 0, 0))
    assert k.offloaded() == 0
    assert sock(k, V4_TCP_ACK) == SOCKET_KEEP_WHOLE and tc(k, V4_TCP_ACK) == TC_ACT_OK
    from bridge._ringpass import atomic_add
    assert atomic_add(k.count, 1) == 1                 # some flow, but no TCP flow: still not looked up
    assert sock(k, V4_TCP_ACK) == SOCKET_KEEP_WHOLE and tc(k, V4_TCP_ACK) == TC_ACT_OK
    assert atomic_add(k.count, 1, ebpf.COUNT_SLOTS[6] * 8) == 1
    assert sock(k, V4_TCP_ACK) == 0 and tc(k, V4_TCP_ACK) == TC_ACT_SHOT


def test_the_count_is_kept_per_protocol(k):
    """Offloaded UDP and ICMP flows do not make TCP frames pay the lookup: each protocol
    has its count, ICMPv6 shares ICMP's, and [0] is the sum."""
    tcp, udp = (LO, 4, 6, 0, C4, S4, 40000, 80), (LO, 4, 17, 0, C4, S4, 40000, 53)
    icmp6 = (LO, 6, 58, 0, C6, S6, 128, 129)
    assert k.add(*udp, "pass", PEER) and k.add(*icmp6, "pass", PEER)
    assert (k.offloaded(), k.offloaded(6), k.offloaded(17), k.offloaded(1), k.offloaded(58)) == (2, 0, 1, 1, 1)
    # a TCP entry behind the count's back: unseen while no TCP flow is counted
    k.flows.update(ebpf.flow_key(*tcp), ebpf.FLOW_VALUE.pack(ebpf.ACTIONS["drop"], 0, time.monotonic_ns(), 0, 0))
    assert sock(k, V4_TCP_ACK) == SOCKET_KEEP_WHOLE and tc(k, V4_TCP_ACK) == TC_ACT_OK
    k.flows.delete(ebpf.flow_key(*tcp))
    assert k.add(*tcp, "drop", 0) and (k.offloaded(), k.offloaded(6)) == (3, 1)
    assert sock(k, V4_TCP_ACK) == 0 and tc(k, V4_TCP_ACK) == TC_ACT_SHOT
    k.remove(*udp)
    k.remove(*icmp6)
    assert (k.offloaded(), k.offloaded(6), k.offloaded(17), k.offloaded(1)) == (1, 1, 0, 0)


def test_atomic_add_refuses_an_offset_outside_or_unaligned():
    from bridge._ringpass import atomic_add
    buf = bytearray(32)
    assert atomic_add(buf, 5, 24) == 5 and buf[24] == 5
    for bad in (-8, 25, 32, 4):
        with pytest.raises(ValueError):
            atomic_add(buf, 1, bad)


def test_the_count_is_shared_with_a_forked_worker(k):
    """The supervisor creates the offload; workers inherit it over fork and add entries:
    the count the programs read is the same memory in every process."""
    pid = os.fork()
    if pid == 0:                                       # the "worker"
        ok = k.add(LO, 4, 6, 0, C4, S4, 40000, 80, "pass", PEER)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert k.offloaded() == 1
    assert sock(k, V4_TCP_ACK) == 0 and tc(k, V4_TCP_ACK) == TC_ACT_REDIRECT


def test_vlan_id_is_masked_to_12_bits(k):
    key = (LO, 4, 6, 0x3064, C4, S4, 40000, 80)       # PCP 1 + VLAN 100
    assert k.add(*key, "pass", PEER)
    assert k.read(LO, 4, 6, 100, C4, S4, 40000, 80) is not None


def test_lru_map_is_bounded_by_max_flows():
    off = KernelOffload.create(64)
    try:
        assert off.flows.max_entries == 64
        for port in range(1, 1001):
            assert off.add(LO, 4, 17, 0, C4, S4, port, 53, "pass", PEER)
        alive = sum(off.read(LO, 4, 17, 0, C4, S4, port, 53) is not None for port in range(1, 1001))
        assert 0 < alive <= 64
        assert off.read(LO, 4, 17, 0, C4, S4, 1000, 53) is not None      # the newest stays
    finally:
        off.close()


def test_per_cpu_totals_are_summed_over_cpus(k):
    cpus = sorted(os.sched_getaffinity(0))[:2]
    saved = os.sched_getaffinity(0)
    k.add(LO, 4, 6, 0, C4, S4, 40000, 80, "pass", PEER)
    k.add(LO, 4, 17, 0, C4, S4, 5353, 53, "drop", 0)
    runs = {}
    try:
        for n, cpu in enumerate(cpus, start=1):
            os.sched_setaffinity(0, {cpu})
            for _ in range(n):
                sock(k, V4_TCP_ACK)
            sock(k, V4_UDP_PADDED)
            runs[cpu] = n
    finally:
        os.sched_setaffinity(0, saved)
    raw = k.totals_map.lookup(ebpf.INDEX.pack(0))
    per_cpu = [ebpf.TOTALS.unpack_from(raw, cpu * ebpf.TOTALS.size) for cpu in range(k.totals_map.cpus)]
    for cpu, n in runs.items():
        assert per_cpu[cpu] == (n, len(V4_TCP_ACK) * n, 1, len(V4_UDP_PADDED), 0, 0)
    total = sum(runs.values())
    assert k.totals() == {"bypass.kernel.pass_frames": total, "bypass.kernel.pass_bytes": len(V4_TCP_ACK) * total,
                          "bypass.kernel.drop_frames": len(runs),
                          "bypass.kernel.drop_bytes": len(V4_UDP_PADDED) * len(runs),
                          "failopen.frames": 0, "failopen.bytes": 0}


# ------------------------------------------------------------------ heartbeat
@pytest.mark.parametrize("age_s,offloaded", [(0.0, True), (0.9, True), (-0.5, True), (1.1, False), (3600, False)],
                         ids=["now", "0.9s", "a-hair-ahead", "1.1s-stale", "an-hour-stale"])
def test_heartbeat_older_than_one_second_turns_both_programs_off(k, age_s, offloaded):
    k.add(LO, 4, 6, 0, C4, S4, 40000, 80, "pass", PEER)
    # modulo 2**64: on a machine up for less than an hour, an hour ago is a "negative" clock
    # value, which the programs' 64-bit wrapping subtraction still makes an hour old
    k.heartbeat((time.monotonic_ns() - int(age_s * 1e9)) % 2**64)
    if offloaded:
        assert (sock(k, V4_TCP_ACK), tc(k, V4_TCP_ACK)) == (0, TC_ACT_REDIRECT)
    else:
        assert (sock(k, V4_TCP_ACK), tc(k, V4_TCP_ACK)) == (SOCKET_KEEP_WHOLE, TC_ACT_OK)
        assert k.read(LO, 4, 6, 0, C4, S4, 40000, 80)[:2] == (0, 0)


def test_step_aside_and_back(k):
    k.add(LO, 4, 6, 0, C4, S4, 40000, 80, "drop", 0)
    k.step_aside()
    assert (sock(k, V4_TCP_ACK), tc(k, V4_TCP_ACK)) == (SOCKET_KEEP_WHOLE, TC_ACT_OK)
    k.heartbeat()
    assert (sock(k, V4_TCP_ACK), tc(k, V4_TCP_ACK)) == (0, TC_ACT_SHOT)


# ------------------------------------------------------------------ fail-open
ANY_FRAME = {"offloadable": V4_TCP_ACK, "syn": NOT_KEYABLE["v4-syn"][0], "arp": NOT_KEYABLE["arp"][0],
             "v6-udp": V6_UDP}


@pytest.mark.parametrize("name", sorted(ANY_FRAME))
def test_an_armed_port_with_a_stale_heartbeat_forwards_every_frame_in_the_kernel(k, name):
    """Fail-open: the tc program redirects whatever arrives to the peer (counted), and the
    socket filter keeps it out of the ring so no worker forwards a second copy."""
    k.arm_failopen(LO, PEER)
    k.step_aside()
    assert (sock(k, ANY_FRAME[name]), tc(k, ANY_FRAME[name])) == (0, TC_ACT_REDIRECT)
    t = k.totals()
    assert (t["failopen.frames"], t["failopen.bytes"]) == (1, len(ANY_FRAME[name]))
    assert t["bypass.kernel.pass_frames"] == 0


@pytest.mark.parametrize("name", sorted(ANY_FRAME))
def test_an_armed_port_with_a_fresh_heartbeat_leaves_frames_to_the_workers(k, name):
    k.arm_failopen(LO, PEER)
    k.heartbeat()
    assert (sock(k, ANY_FRAME[name]), tc(k, ANY_FRAME[name])) == (SOCKET_KEEP_WHOLE, TC_ACT_OK)


def test_a_port_not_armed_does_not_fail_open(k):
    k.arm_failopen(2, PEER)                 # another port: the test skb arrives on lo
    k.step_aside()
    assert (sock(k, V4_TCP_ACK), tc(k, V4_TCP_ACK)) == (SOCKET_KEEP_WHOLE, TC_ACT_OK)


def test_a_new_offload_can_start_stale(k):
    """fresh=False: a bridge with fail-open starts with the kernel forwarding; its first
    heartbeat (once the workers are ready) hands the frames to them."""
    off = KernelOffload.create(16, fresh=False)
    try:
        assert ebpf.HEARTBEAT.unpack(off.heartbeat_map.lookup(ebpf.INDEX.pack(0)))[0] == 0
    finally:
        off.close()


# ------------------------------------------------------------------ programs and the assembler
def test_programs_pass_the_verifier_and_report_their_size(k):
    assert set(k.info) == {"ipsb_sock", "ipsb_tc"}
    for info in k.info.values():
        assert 0 < info.insns < 256
        assert info.xlated_bytes >= 8 * info.insns * 0.9      # the verifier's rewrites only grow it a little
        assert info.verified_insns >= info.insns * 0.5


def test_socket_filter_variant_differs_only_in_its_l3_offsets():
    live = ebpf.socket_filter_program(3, 4, 5).insns
    test = ebpf.socket_filter_program(3, 4, 5, l3=0).insns
    assert len(live) == len(test)
    diff = [(a, b) for a, b in zip(live, test) if a != b]
    # the IPv4 and IPv6 header loads (long, short), the L3 length, the frame length counted
    assert len(diff) == 6, diff
    for a, b in diff:
        assert (a.code, a.dst, a.src, a.off, a.target) == (b.code, b.dst, b.src, b.off, b.target)
        assert a.dst in (R2, R8) and abs(a.imm - b.imm) == ebpf.L3_OFFSET


def test_assembler_encodes_jumps_over_two_slot_loads():
    a = Asm()
    a.jeq(R1, 0, "end")           # slot 0: jumps over the ld_imm64 (slots 1-2) and slot 3
    a.ld_map_fd(R2, 5)            # slots 1-2
    a.movi(R0, 1)                 # slot 3
    a.label("end")
    a.exit()                      # slot 4
    code = a.assemble()
    assert len(a) == 5 and len(code) == 5 * 8
    assert code[0:8] == bytes.fromhex("1501" "0300" "00000000")      # jeq r1, 0, +3
    assert code[8:24] == bytes.fromhex("1812" "0000" "05000000" "0000000000000000")   # r2 = map fd 5
    assert code[24:32] == bytes.fromhex("b700" "0000" "01000000")     # r0 = 1
    assert code[32:40] == bytes.fromhex("9500" "0000" "00000000")     # exit


def test_assembler_refuses_unknown_labels_and_wide_immediates():
    a = Asm()
    a.ja("nowhere")
    with pytest.raises(ValueError, match="nowhere"):
        a.assemble()
    with pytest.raises(ValueError, match="32 bits"):
        Asm().movi(R0, 1 << 33)
    a = Asm()
    a.label("x")
    with pytest.raises(ValueError, match="twice"):
        a.label("x")


def test_refused_program_carries_the_verifier_log():
    if os.geteuid() != 0:
        pytest.fail("needs root", pytrace=False)
    a = Asm()
    a.mov(R0, R2)                 # R2 was never written (a socket filter gets only R1, the skb)
    a.exit()
    with pytest.raises(ebpf.ProgramRefused) as exc:
        ebpf.load_program(ebpf.BPF_PROG_TYPE_SOCKET_FILTER, a.assemble(), "ipsb_bad")
    assert "R2 !read_ok" in exc.value.log
    assert "verifier:" in str(exc.value)


def test_misaligned_stack_store_is_refused_with_the_reason():
    if os.geteuid() != 0:
        pytest.fail("needs root", pytrace=False)
    a = Asm()
    a.st(DW, FP, -12, 0)          # an 8-byte store at an offset not aligned to 8
    a.movi(R0, 0)
    a.exit()
    with pytest.raises(ebpf.ProgramRefused) as exc:
        ebpf.load_program(ebpf.BPF_PROG_TYPE_SCHED_CLS, a.assemble(), "ipsb_bad")
    assert "misaligned" in exc.value.log


def test_filter_names_identify_owner_and_start_time():
    me = ebpf.filter_name()
    assert me.startswith(f"ipsbridge:{os.getpid()}:")
    assert ebpf.filter_owner_alive(me)
    pid, start = me.split(":")[1:]
    assert not ebpf.filter_owner_alive(f"ipsbridge:{pid}:{int(start) + 1}")    # the PID, reused
    assert not ebpf.filter_owner_alive("ipsbridge:999999999:1")
    assert not ebpf.filter_owner_alive("someone-else")

