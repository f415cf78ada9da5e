"""pcap / pcapng reading (orders, resolutions, interfaces, link types, truncation) and writing."""
from __future__ import annotations

import struct

import pytest
from scapy.all import IP, UDP, Ether, wrpcap, wrpcapng

from bridge.pcap import PcapError, PcapngWriter, PcapWriter, iter_pcaps, linktypes, open_writer, read_file


def frames(n, base=1000.0):
    out = []
    for i in range(n):
        p = Ether() / IP(src="198.51.100.1", dst="198.51.100.2") / UDP(sport=1000 + i, dport=53) / (b"x" * i)
        p.time = base + i * 0.5 + 0.000001
        out.append(p)
    return out


def classic(records, *, order="<", nano=False, linktype=1):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for ts, data in records:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nano else 1e6))
        out += struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data
    return out


@pytest.mark.parametrize("order,nano", [("<", False), (">", False), ("<", True), (">", True)],
                         ids=["le-us", "be-us", "le-ns", "be-ns"])
def test_classic_orders_and_resolutions(tmp_path, order, nano):
    recs = [(1000.25, b"\x01" * 20), (1001.000001, b"\x02" * 30)]
    p = tmp_path / "x.pcap"
    p.write_bytes(classic(recs, order=order, nano=nano))
    got = [(ts, d) for ts, d, _ in iter_pcaps(p)]
    assert [d for _, d in got] == [d for _, d in recs]
    assert [round(ts, 6) for ts, _ in got] == [1000.25, 1001.000001]


def test_pcapng_from_scapy(tmp_path):
    pk = frames(4)
    wrpcapng(str(tmp_path / "x.pcapng"), pk)
    got = list(iter_pcaps(tmp_path / "x.pcapng"))
    assert [d for _, d, _ in got] == [bytes(p) for p in pk]
    assert [round(t, 6) for t, _, _ in got] == [round(float(p.time), 6) for p in pk]


def _blk(btype, body):
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _opt(code, val):
    return struct.pack("<HH", code, len(val)) + val + b"\x00" * (-len(val) % 4)


def test_pcapng_two_interfaces_names_and_tsresol(tmp_path):
    shb = _blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb0 = _blk(1, struct.pack("<HHI", 1, 0, 65535) + _opt(2, b"eth0") + _opt(9, b"\x09") + _opt(0, b""))
    idb1 = _blk(1, struct.pack("<HHI", 1, 0, 65535) + _opt(2, b"eth1") + _opt(0, b""))
    def epb(iface, ts_units, data):
        return _blk(6, struct.pack("<IIIII", iface, ts_units >> 32, ts_units & 0xFFFFFFFF, len(data), len(data)) + data)
    data = shb + idb0 + idb1 + epb(0, 1_500_000_000_123_456_789, b"A" * 14) + epb(1, 1_500_000_001_000_000, b"B" * 15)
    data += _blk(3, struct.pack("<I", 16) + b"C" * 16)       # simple packet block: interface 0, no time
    (tmp_path / "m.pcapng").write_bytes(data)
    got = list(iter_pcaps(tmp_path / "m.pcapng", with_iface=True))
    assert [(d, i) for _, d, _, i in got] == [(b"A" * 14, "eth0"), (b"B" * 15, "eth1"), (b"C" * 16, "eth0")]
    assert got[0][0] == pytest.approx(1_500_000_000.123456789)
    assert got[1][0] == pytest.approx(1_500_000_001.0)


@pytest.mark.parametrize("linktype", [0, 1, 101, 108, 113, 228, 229, 276])
def test_every_link_type_we_decode_is_read_and_carried(tmp_path, linktype):
    p = tmp_path / "x.pcap"
    p.write_bytes(classic([(1.0, b"E" * 20), (2.0, b"F" * 24)], linktype=linktype))
    recs = list(iter_pcaps(p).records())
    assert [(r.ts, r.data, r.source, r.iface, r.linktype) for r in recs] == [
        (1.0, b"E" * 20, str(p), "", linktype), (2.0, b"F" * 24, str(p), "", linktype)]
    assert linktypes(p) == {linktype}
    assert [d for _, d, _ in iter_pcaps(p)] == [b"E" * 20, b"F" * 24]      # the short form is unchanged


def test_fcs_bits_above_the_link_type_are_ignored(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(classic([(1.0, b"E" * 20)], linktype=0x1000_0000 | 113))     # F bit: frames carry an FCS
    assert [r.linktype for r in iter_pcaps(p).records()] == [113]


@pytest.mark.parametrize("linktype,name", [(127, "IEEE802_11_RADIOTAP"), (9, "PPP"), (4242, "unknown")])
def test_unsupported_link_type_is_refused_with_its_name(tmp_path, linktype, name):
    p = tmp_path / "wifi.pcap"
    p.write_bytes(classic([(1.0, b"E" * 20)], linktype=linktype))
    for read in (lambda: list(iter_pcaps(p)), lambda: linktypes(p)):
        with pytest.raises(PcapError) as e:
            read()
        msg = str(e.value)
        assert msg.startswith(f"{p}: link type {linktype} ({name}")
        assert "113 LINUX_SLL" in msg and "276 LINUX_SLL2" in msg and "tcpdump -i any" in msg


def _pcapng(*ifaces, packets) -> bytes:
    """A pcapng section: interfaces [(linktype, name)], packets [(iface, µs, data)]."""
    out = _blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for lt, name in ifaces:
        out += _blk(1, struct.pack("<HHI", lt, 0, 65535) + _opt(2, name.encode()) + _opt(0, b""))
    for iface, us, data in packets:
        out += _blk(6, struct.pack("<IIIII", iface, us >> 32, us & 0xFFFFFFFF, len(data), len(data)) + data)
    return out


def test_pcapng_mixes_link_types_per_interface(tmp_path):
    p = tmp_path / "mix.pcapng"
    p.write_bytes(_pcapng((1, "eth0"), (113, "any"), (101, "tun0"),
                          packets=[(0, 1_000_000, b"A" * 14), (1, 2_000_000, b"B" * 16), (2, 3_000_000, b"C" * 20),
                                   (1, 4_000_000, b"D" * 16)]))
    recs = list(iter_pcaps(p).records())
    assert [(r.data[:1], r.iface, r.linktype, r.ts) for r in recs] == [
        (b"A", "eth0", 1, 1.0), (b"B", "any", 113, 2.0), (b"C", "tun0", 101, 3.0), (b"D", "any", 113, 4.0)]
    assert linktypes(p) == {1, 101, 113}


def test_pcapng_interface_of_an_unsupported_type_is_refused_when_used(tmp_path):
    unused = tmp_path / "unused.pcapng"
    unused.write_bytes(_pcapng((1, "eth0"), (127, "wlan0mon"), packets=[(0, 1, b"A" * 14)]))
    assert [r.linktype for r in iter_pcaps(unused).records()] == [1] and linktypes(unused) == {1}
    used = tmp_path / "used.pcapng"
    used.write_bytes(_pcapng((1, "eth0"), (127, "wlan0mon"), packets=[(0, 1, b"A" * 14), (1, 2, b"R" * 30)]))
    for read in (lambda: list(iter_pcaps(used)), lambda: linktypes(used)):
        with pytest.raises(PcapError, match=r"used.pcapng: link type 127 \(IEEE802_11_RADIOTAP.* on interface 1 "
                                            r"\(wlan0mon\) is not supported"):
            read()


def test_linktypes_of_a_big_endian_pcapng_and_of_junk(tmp_path):
    shb = struct.pack(">II", 0x0A0D0D0A, 28) + struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1) + struct.pack(">I", 28)
    idb = struct.pack(">IIHHI", 1, 20, 276, 0, 0) + struct.pack(">I", 20)
    epb = struct.pack(">IIIIIII", 6, 32 + 20, 0, 0, 1, 20, 20) + b"S" * 20 + struct.pack(">I", 32 + 20)
    p = tmp_path / "be.pcapng"
    p.write_bytes(shb + idb + epb)
    assert linktypes(p) == {276} and [r.linktype for r in iter_pcaps(p).records()] == [276]
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"hello world, not a capture")
    with pytest.raises(PcapError, match="not a pcap or pcapng"):
        linktypes(junk)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    for read in (lambda: list(iter_pcaps(empty)), lambda: linktypes(empty)):
        with pytest.raises(PcapError, match="empty.pcap: empty or too short to be a pcap/pcapng file"):
            read()


def test_not_a_capture(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello world")
    with pytest.raises(PcapError, match="not a pcap or pcapng"):
        list(read_file(p))


@pytest.mark.parametrize("cut", [3, 10, 16 + 5], ids=["in-last-body", "in-last-header", "mid-body"])
def test_truncated_file_warns_and_keeps_whole_records(tmp_path, cut):
    recs = [(1.0, b"a" * 40), (2.0, b"b" * 40), (3.0, b"c" * 40)]
    raw = classic(recs)
    if cut == 10:
        raw = raw + b"\x00" * 10                     # a partial record header after the last packet
        expect = 3
    else:
        raw = raw[:-cut] if cut == 3 else raw[:24 + 2 * 56 + cut]
        expect = 2
    p = tmp_path / "t.pcap"
    p.write_bytes(raw)
    warnings = []
    got = list(iter_pcaps(p, on_warning=warnings.append))
    assert len(got) == expect
    assert len(warnings) == 1 and "t.pcap" in warnings[0] and "trunc" in warnings[0]


def test_several_files_and_directory_are_one_sorted_stream(tmp_path):
    d = tmp_path / "caps"
    d.mkdir()
    pk = frames(6)
    wrpcap(str(d / "b.pcap"), pk[3:])
    wrpcap(str(d / "a.pcap"), pk[:3])
    got = list(iter_pcaps(d))
    assert [x[1] for x in got] == [bytes(p) for p in pk]
    assert [x[2].rsplit("/", 1)[1] for x in got] == ["a.pcap"] * 3 + ["b.pcap"] * 3
    s = iter_pcaps([d / "a.pcap", d / "b.pcap"])
    assert len(list(s)) == 6 and s.bytes_read == s.total_bytes - 2 * 24


def test_writer_round_trip(tmp_path):
    p = tmp_path / "w.pcap"
    with PcapWriter(p) as w:
        w.write(1234.5, b"\xaa" * 60)
        w.write(1235.9999999, b"\xbb" * 61)
    got = list(iter_pcaps(p))
    assert [d for _, d, _ in got] == [b"\xaa" * 60, b"\xbb" * 61]
    assert got[0][0] == 1234.5 and got[1][0] == pytest.approx(1236.0)
    from scapy.all import rdpcap
    assert len(rdpcap(str(p))) == 2


@pytest.mark.parametrize("linktype", [113, 276, 101, 0])
def test_writer_keeps_the_link_type(tmp_path, linktype):
    p = tmp_path / "w.pcap"
    with PcapWriter(p, linktype=linktype) as w:
        w.write(5.25, b"\x00" * 40, linktype)
        with pytest.raises(PcapError, match=r"a pcap file holds one link type"):
            w.write(6.0, b"\x00" * 40, 1 if linktype != 1 else 113)
    assert [(r.ts, r.linktype) for r in iter_pcaps(p).records()] == [(5.25, linktype)]
    assert p.read_bytes()[20:24] == struct.pack("<I", linktype)


def test_pcapng_writer_one_interface_per_link_type(tmp_path):
    p = tmp_path / "w.pcapng"
    with PcapngWriter(p) as w:
        w.write(1.5, b"E" * 60, 1)
        w.write(2.000001, b"S" * 44, 113)
        w.write(3.0, b"E" * 61, 1)
        w.write(4.0, b"R" * 20, 101)
    recs = list(iter_pcaps(p).records())
    assert [(r.data[:1], len(r.data), r.linktype) for r in recs] == [(b"E", 60, 1), (b"S", 44, 113), (b"E", 61, 1),
                                                                      (b"R", 20, 101)]
    assert [round(r.ts, 6) for r in recs] == [1.5, 2.000001, 3.0, 4.0]
    assert linktypes(p) == {1, 113, 101}
    raw = p.read_bytes()
    assert raw.count(struct.pack("<IIHHI", 1, 20, 113, 0, 262144)) == 1       # one IDB per link type
    from scapy.all import rdpcap
    assert len(rdpcap(str(p))) == 4


def test_open_writer_picks_the_format_and_refuses_a_mix_in_pcap(tmp_path):
    with open_writer(tmp_path / "one.pcap", {113: "a.pcap"}) as w:
        assert isinstance(w, PcapWriter) and w.linktype == 113
    with open_writer(tmp_path / "none.pcap", {}) as w:
        assert isinstance(w, PcapWriter) and w.linktype == 1
    with open_writer(tmp_path / "mix.pcapng", {1: "a.pcap", 113: "b.pcap"}) as w:
        assert isinstance(w, PcapngWriter)
    with pytest.raises(PcapError) as e:
        open_writer(tmp_path / "mix.pcap", {1: "a.pcap", 113: "b.pcap"})
    assert str(e.value) == (f"{tmp_path / 'mix.pcap'}: the captures mix link types -- 1 (ETHERNET) in a.pcap; "
                            "113 (LINUX_SLL, Linux cooked capture) in b.pcap -- and a pcap file holds one link type: "
                            "give a .pcapng name (one interface per link type), or replay the captures separately")
    assert not (tmp_path / "mix.pcap").exists()


def test_missing_path():
    with pytest.raises(PcapError, match="no such file"):
        iter_pcaps(["/nonexistent/x.pcap"])
