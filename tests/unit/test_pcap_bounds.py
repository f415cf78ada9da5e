"""pcap / pcapng lengths a damaged or hostile file can claim are refused as libpcap refuses
them, in one line naming the file and the packet, before anything of that size is read.

libpcap 1.10 (sf-pcap.c pcap_next_packet, sf-pcapng.c read_block / pcap_ng_next_packet,
pcap-common.c max_snaplen_for_dlt, savefile.c pcap_adjust_snapshot), and what tcpdump 4.99.3
with libpcap 1.10.3 answered for the same files:

- pcap: a record whose captured length is above 262144 (MAXIMUM_SNAPLEN, the maximum of every
  link type we read) is an error, "invalid packet capture length N, bigger than snaplen of S"
  (tcpdump -r, for a file of snaplen 65535 and a record of 4294967280 bytes);
- pcap: above the file's snapshot length but within 262144: the first `snapshot` bytes, the
  rest of the record skipped;
- a snapshot length of 0 (or above INT_MAX) means 262144;
- pcapng: a packet above its interface's snapshot length is an error (tcpdump: "invalid
  packet capture length 43, bigger than snaplen of 40"); a simple packet block is cut to it;
- pcapng: a block above 16 MiB (INITIAL_MAX_BLOCKSIZE) and a section header above 1 MiB
  (BT_SHB_INSANE_MAX) are errors.
"""
from __future__ import annotations

import importlib
import struct
import tracemalloc

import pytest

from bridge.pcap import (
    MAX_NG_BLOCK,
    MAX_SNAPLEN,
    PcapError,
    iter_pcaps,
    linktypes,
    read_file,
)

pcap_mod = importlib.import_module("bridge.pcap")

FRAME = bytes(range(256)) * 4      # 1024 bytes; what it holds does not matter to the reader


def classic(records, *, snaplen=65535, order="<") -> bytes:
    """A pcap: `records` are (captured length, data) -- the length as the header claims it."""
    out = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1)
    for i, (incl, data) in enumerate(records):
        out += struct.pack(order + "IIII", 1000 + i, 0, incl, max(incl, len(data))) + data
    return out


def whole(n: int) -> tuple[int, bytes]:
    return n, (FRAME * (n // len(FRAME) + 1))[:n]


def read_all(path):
    return [r.data for r in read_file(path, on_warning=lambda m: None)]


@pytest.mark.parametrize("order", ["<", ">"], ids=["le", "be"])
def test_a_record_above_262144_is_refused_naming_file_and_packet(tmp_path, order):
    p = tmp_path / "x.pcap"
    p.write_bytes(classic([whole(60), whole(60), (MAX_SNAPLEN + 1, b"")], order=order, snaplen=0))
    got = []
    with pytest.raises(PcapError) as info:
        for rec in read_file(p):
            got.append(rec.data)
    assert len(got) == 2                                     # the packets before it were read
    assert str(info.value) == (f"{p}: packet 3: captured length 262145 is bigger than the snapshot length "
                               f"262144; {pcap_mod.DAMAGED}")          # snaplen 0: 262144


def test_the_message_says_the_snapshot_length_as_libpcap_does(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(classic([(0xFFFFFFF0, b"x" * 100)]))
    with pytest.raises(PcapError, match=r"x\.pcap: packet 1: captured length 4294967280 is bigger than the "
                                        r"snapshot length 65535;"):
        read_all(p)


def test_an_absurd_length_allocates_nothing(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(classic([whole(60), (0xFFFFFFFF, b"")]))
    tracemalloc.start()
    try:
        with pytest.raises(PcapError):
            read_all(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("snaplen,incl,kept", [
    (0, MAX_SNAPLEN, MAX_SNAPLEN),              # snaplen 0 means 262144: a record at the maximum is whole
    (2 ** 31, MAX_SNAPLEN, MAX_SNAPLEN),        # above INT_MAX: the same
    (65535, 65535, 65535),                      # at the snapshot length: whole
    (65535, 65536, 65535),                      # above it but within 262144: cut to the snapshot length
    (30, 60, 30),
    (MAX_SNAPLEN * 2, MAX_SNAPLEN, MAX_SNAPLEN),
], ids=["snap0-max", "snap-above-int-max", "at-snap", "above-snap", "small-snap", "big-snap"])
def test_lengths_within_the_maximum_read_as_libpcap_reads_them(tmp_path, snaplen, incl, kept):
    p = tmp_path / "x.pcap"
    n, data = whole(incl)
    p.write_bytes(classic([(n, data), whole(50)], snaplen=snaplen))
    got = read_all(p)
    assert got == [data[:kept], whole(50)[1][:min(50, pcap_mod.snapshot_length(snaplen))]]


@pytest.mark.parametrize("snaplen,limit", [
    (MAX_SNAPLEN * 2, "the maximum 262144"),              # a big snapshot length does not lift the maximum
    (2 ** 31, "the snapshot length 262144"),              # above INT_MAX: taken as 262144
], ids=["big-snap", "snap-above-int-max"])
def test_above_the_maximum_whatever_the_snapshot_length(tmp_path, snaplen, limit):
    p = tmp_path / "x.pcap"
    p.write_bytes(classic([(MAX_SNAPLEN + 1, b"")], snaplen=snaplen))
    with pytest.raises(PcapError, match=f"captured length 262145 is bigger than {limit};"):
        read_all(p)


# ------------------------------------------------------------------ pcapng
def blk(btype: int, body: bytes, *, length: int | None = None) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body) if length is None else length
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


SHB = blk(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(snaplen: int) -> bytes:
    return blk(1, struct.pack("<HHI", 1, 0, snaplen))


def epb(data: bytes, caplen: int | None = None) -> bytes:
    cap = len(data) if caplen is None else caplen
    return blk(6, struct.pack("<IIIII", 0, 0, 1000, cap, len(data)) + data)


def spb(data: bytes) -> bytes:
    return blk(3, struct.pack("<I", len(data)) + data)


@pytest.mark.parametrize("snaplen,size,ok", [
    (40, 40, True), (40, 41, False),
    (0, MAX_SNAPLEN, True), (0, MAX_SNAPLEN + 1, False),          # 0: the maximum, 262144
], ids=["at-snap", "above-snap", "snap0-at-max", "snap0-above-max"])
def test_pcapng_packet_above_its_interface_snapshot_length(tmp_path, snaplen, size, ok):
    p = tmp_path / "x.pcapng"
    data = whole(size)[1]
    p.write_bytes(SHB + idb(snaplen) + epb(FRAME[:20]) + epb(data))
    if ok:
        assert read_all(p) == [FRAME[:20], data]
        return
    with pytest.raises(PcapError) as info:
        read_all(p)
    limit = pcap_mod.snapshot_length(snaplen)
    assert str(info.value).startswith(f"{p}: packet 2: captured length {size} is bigger than the snapshot "
                                      f"length {limit};")


def test_pcapng_simple_packet_is_cut_to_the_snapshot_length(tmp_path):
    p = tmp_path / "x.pcapng"
    p.write_bytes(SHB + idb(40) + spb(FRAME[:100]) + spb(FRAME[:40]))
    assert read_all(p) == [FRAME[:40], FRAME[:40]]


@pytest.mark.parametrize("blen,ok", [(64, True), (68, False)], ids=["at-max", "above-max"])
def test_pcapng_block_size_bound(tmp_path, monkeypatch, blen, ok):
    monkeypatch.setattr(pcap_mod, "MAX_NG_BLOCK", 64)
    p = tmp_path / "x.pcapng"
    data = FRAME[:blen - 32]                               # 12 block + 20 EPB header bytes
    p.write_bytes(SHB + idb(0) + epb(FRAME[:8]) + epb(data))
    if ok:
        assert read_all(p) == [FRAME[:8], data]
        assert linktypes(p) == {1}
        return
    message = f"{p}: packet 2: pcapng block of {blen} bytes is bigger than the maximum 64;"
    with pytest.raises(PcapError) as info:
        read_all(p)
    assert str(info.value).startswith(message)
    with pytest.raises(PcapError) as info:               # before the first packet is inspected
        linktypes(p)
    assert str(info.value).startswith(message)


def test_an_absurd_pcapng_block_is_refused_before_reading_it(tmp_path):
    p = tmp_path / "x.pcapng"
    p.write_bytes(SHB + idb(0) + epb(FRAME[:8]) + struct.pack("<II", 6, 0x7FFFFFF0) + b"x" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(PcapError, match=f"packet 2: pcapng block of {0x7FFFFFF0} bytes is bigger than the "
                                            f"maximum {MAX_NG_BLOCK};"):
            list(iter_pcaps(p).records())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("blen,ok", [(pcap_mod.MAX_NG_SHB, True), (pcap_mod.MAX_NG_SHB + 4, False)],
                         ids=["at-max", "above-max"])
def test_pcapng_section_header_bound(tmp_path, blen, ok):
    p = tmp_path / "x.pcapng"
    body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    shb = blk(0x0A0D0D0A, body + b"\0" * (blen - 12 - len(body)))
    assert len(shb) == blen
    p.write_bytes(shb + idb(0) + epb(FRAME[:8]))
    if ok:
        assert read_all(p) == [FRAME[:8]] and linktypes(p) == {1}
        return
    for read in (read_all, linktypes):
        with pytest.raises(PcapError, match=f"pcapng section header block of {blen} bytes is bigger than "
                                            f"the maximum {pcap_mod.MAX_NG_SHB};"):
            read(p)
