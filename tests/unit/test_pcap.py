"""pcap / pcapng reading (orders, resolutions, interfaces, truncation) and writing."""
from __future__ import annotations

import struct

import pytest
from scapy.all import IP, UDP, Ether, wrpcap, wrpcapng

from bridge.pcap import PcapError, PcapWriter, iter_pcaps, read_file


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


def test_non_ethernet_linktype_is_a_clear_error(tmp_path):
    p = tmp_path / "raw.pcap"
    p.write_bytes(classic([(1.0, b"E" * 20)], linktype=101))
    with pytest.raises(PcapError, match=r"link type 101 \(raw IP\).*Ethernet"):
        list(iter_pcaps(p))


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


def test_missing_path():
    with pytest.raises(PcapError, match="no such file"):
        iter_pcaps(["/nonexistent/x.pcap"])
