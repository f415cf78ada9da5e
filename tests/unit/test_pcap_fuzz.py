"""The pcap and pcapng readers take any bytes: records, warnings (a truncated tail), or
a PcapError -- never another exception.  Random bytes behind each magic, and real
files (classic pcap in both byte orders and resolutions, pcapng with several
interfaces, options, simple and obsolete packet blocks, two sections) mutated:
bytes edited, lengths rewritten, blocks cut, duplicated, spliced.  `linktypes`
(the header walk a command refuses with before it starts) gets the same files.
IPSBRIDGE_FUZZ_SCALE=N runs N times the examples."""
from __future__ import annotations

import atexit
import math
import os
import shutil
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.pcap import PcapError, iter_pcaps, linktypes, read_file
from rules.decode import LINKTYPES

SCALE = int(os.environ.get("IPSBRIDGE_FUZZ_SCALE", "1"))
FUZZ = {"deadline": None, "derandomize": True, "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
FILE = Path(tempfile.mkdtemp(prefix="ipsbridge-pcap-fuzz-")) / "x.pcap"
atexit.register(shutil.rmtree, FILE.parent, ignore_errors=True)

FRAME = bytes.fromhex("020000000002020000000001080045000021000100004011f665c6336401c633640203e8003500"
                      "0d0000") + b"query"


def classic(order: str = "<", nano: bool = False, linktype: int = 1, snaplen: int = 65535,
            frames=(FRAME, FRAME[:20], b"")) -> bytes:
    out = struct.pack(order + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)
    for i, f in enumerate(frames):
        out += struct.pack(order + "IIII", 1_700_000_000 + i, 999_999 if not nano else 999_999_999, len(f), len(f)) + f
    return out


def _blk(btype: int, body: bytes, order: str = "<") -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def _opt(code: int, val: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(val)) + val + b"\x00" * (-len(val) % 4)


def pcapng(order: str = "<") -> bytes:
    shb = _blk(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _opt(3, b"fuzz", order)
               + _opt(0, b"", order), order)
    idb0 = _blk(1, struct.pack(order + "HHI", 1, 0, 65535) + _opt(2, b"eth0", order) + _opt(9, b"\x09", order)
                + _opt(0, b"", order), order)
    idb1 = _blk(1, struct.pack(order + "HHI", 101, 0, 0) + _opt(9, b"\x86", order), order)
    epb = _blk(6, struct.pack(order + "IIIII", 0, 395_812, 1_234_567_890, len(FRAME), len(FRAME)) + FRAME
               + _opt(1, b"comment", order), order)
    epb1 = _blk(6, struct.pack(order + "IIIII", 1, 0, 7, 20, 20) + FRAME[14:34], order)
    spb = _blk(3, struct.pack(order + "I", len(FRAME)) + FRAME, order)
    opb = _blk(2, struct.pack(order + "HHIIII", 0, 0, 0, 9, len(FRAME), len(FRAME)) + FRAME, order)
    other = _blk(5, b"\x00" * 12, order) + _blk(4, _opt(0, b"", order), order)
    return shb + idb0 + idb1 + epb + epb1 + spb + opb + other + shb + idb0 + epb


SEEDS = [classic(), classic(">"), classic("<", True), classic(">", True, 113), classic(linktype=276, snaplen=0),
         classic(linktype=0x0FFF0001), pcapng(), pcapng(">")]


def check(data: bytes) -> None:
    FILE.write_bytes(data)
    warnings: list[str] = []
    try:
        recs = list(read_file(FILE, warnings.append))
    except PcapError as e:
        assert str(FILE) in str(e)
    else:
        for r in recs:
            assert isinstance(r.data, bytes) and r.linktype in LINKTYPES and r.source == str(FILE)
            assert isinstance(r.ts, float) and math.isfinite(r.ts)
            assert isinstance(r.iface, str)
    assert all(isinstance(w, str) and str(FILE) in w for w in warnings)
    try:
        lts = linktypes(FILE)
    except PcapError as e:
        assert str(FILE) in str(e)
    else:
        assert lts <= set(LINKTYPES)
    try:
        stream = iter_pcaps([FILE], on_warning=lambda _m: None, with_iface=True)
        for _ts, frame, _src, _iface in stream:
            assert isinstance(frame, bytes)
        assert 0 <= stream.bytes_read
    except PcapError:
        pass


@settings(max_examples=300 * SCALE, **FUZZ)
@given(st.binary(max_size=200))
def test_random_bytes(data):
    check(data)


@settings(max_examples=400 * SCALE, **FUZZ)
@given(st.sampled_from([s[:4] for s in SEEDS] + [s[:12] for s in SEEDS]), st.binary(max_size=200))
def test_random_bytes_behind_each_magic(head, body):
    check(head + body)


@st.composite
def mutated(draw) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["byte", "byte", "u32", "u16", "truncate", "duplicate", "delete", "splice"]))
        if op == "byte":
            raw[i] = draw(st.integers(0, 255))
        elif op in ("u32", "u16"):          # lengths, interface ids, option lengths, time resolutions
            n = 4 if op == "u32" else 2
            v = draw(st.one_of(st.sampled_from([0, 1, 3, 4, 7, 8, 11, 12, 16, 20, 28, 32, 0x7F, 0x80, 0xFF,
                                                0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 262144, 262145]),
                               st.integers(0, 256 ** n - 1)))
            raw[i:i + n] = (v & (256 ** n - 1)).to_bytes(n, draw(st.sampled_from(["little", "big"])))
        elif op == "truncate":
            del raw[i:]
        elif op == "duplicate":
            j = draw(st.integers(i, min(len(raw), i + 64)))
            raw[j:j] = raw[i:j]
        elif op == "delete":
            del raw[i:i + draw(st.integers(1, 16))]
        else:
            other = draw(st.sampled_from(SEEDS))
            raw[i:] = other[draw(st.integers(0, len(other))):]
    return bytes(raw)


@settings(max_examples=1000 * SCALE, **FUZZ)
@given(mutated())
def test_mutated_captures(data):
    check(data)


# pcapng built block by block from fields: option codes and lengths, interface ids, captured
# lengths that disagree with the data, time resolutions -- where byte mutations rarely land
u32s = st.one_of(st.sampled_from([0, 1, 2, 4, 8, 20, 0xFFFF, 262144, 262145, 0x7FFFFFFF, 0xFFFFFFFF]),
                 st.integers(0, 0xFFFFFFFF))
options = st.lists(st.tuples(st.sampled_from([0, 1, 2, 3, 9, 14, 0x8000]) | st.integers(0, 0xFFFF),
                             st.binary(max_size=9), st.none() | st.integers(0, 16) | st.integers(0, 0xFFFF)),
                   max_size=4)


def _options(opts, order: str) -> bytes:
    out = b""
    for code, val, declared in opts:
        out += struct.pack(order + "HH", code, len(val) if declared is None else declared) + val
        out += b"\x00" * (-len(val) % 4)
    return out


@st.composite
def pcapng_blocks(draw) -> bytes:
    order = draw(st.sampled_from(["<", ">"]))
    out = b""
    for i in range(draw(st.integers(1, 8))):       # a section header first: else it is no pcapng
        kind = "shb" if i == 0 else draw(st.sampled_from(["shb", "idb", "idb", "epb", "epb", "spb", "opb", "other"]))
        if kind == "shb":
            body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(draw(options), order)
            out += _blk(0x0A0D0D0A, body, order)
        elif kind == "idb":
            lt = draw(st.sampled_from(sorted(LINKTYPES) + [105, 0xFFFF]))
            body = struct.pack(order + "HHI", lt, 0, draw(u32s)) + _options(draw(options), order)
            out += _blk(1, body, order)
        elif kind in ("epb", "opb"):
            data = draw(st.sampled_from([FRAME, FRAME[:14], b""]))
            cap, orig = draw(st.none() | u32s), draw(u32s)
            cap = len(data) if cap is None else cap
            if kind == "epb":
                head = struct.pack(order + "IIIII", draw(st.integers(0, 3)), draw(u32s), draw(u32s), cap, orig)
            else:
                head = struct.pack(order + "HHIIII", draw(st.integers(0, 3)), 0, draw(u32s), draw(u32s), cap, orig)
            out += _blk(6 if kind == "epb" else 2, head + data + _options(draw(options), order), order)
        elif kind == "spb":
            out += _blk(3, struct.pack(order + "I", draw(st.none() | u32s) or len(FRAME)) + FRAME, order)
        else:
            out += _blk(draw(st.integers(4, 0xFFFF)), draw(st.binary(max_size=16)), order)
    return out


@settings(max_examples=600 * SCALE, **FUZZ)
@given(pcapng_blocks())
def test_pcapng_from_fields(data):
    check(data)


def test_seeds_read():
    for s in SEEDS[:5] + SEEDS[6:]:
        FILE.write_bytes(s)
        assert len(list(read_file(FILE, lambda m: (_ for _ in ()).throw(AssertionError(m))))) >= 3
