"""rules.applayer.http_body: HTTP/1.x bodies as Suricata 7.0.10 (libhtp 0.5.50) decodes them.

SURICATA records what Suricata itself did with each case of suricata_cases():
every case was one TCP flow (`suricata -r`, stock suricata.yaml, IDS mode,
randomize-inspection-sizes off, stream depth 0), its headers in one segment,
its body in the segments given by `splits` (1400 bytes by default), a
pipelined next message in its own segment; rules probed the body buffer
(http.request_body, file.data) for each marker, http.uri / http.header for the
next message, app-layer-event for the events.  LIBHTP records exact body bytes
from the libhtp 0.5.50 Suricata links (called through ctypes with Suricata's
settings) for feed boundaries Suricata's pcap runs cannot pin down.  Neither
program is run here.
"""
from __future__ import annotations

import gzip
import random
import time
import tracemalloc
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.applayer.http_body import (
    BODY_LIMIT,
    FIELD_LIMIT,
    Body,
    content_codings,
    parse_chunk_size,
    parse_content_length,
)

# ---------------------------------------------------------------- building bodies

def gz(b: bytes) -> bytes:
    return gzip.compress(b, mtime=0)


def zl(b: bytes) -> bytes:
    return zlib.compress(b)


def raw(b: bytes) -> bytes:
    c = zlib.compressobj(wbits=-15)
    return c.compress(b) + c.flush()


def chunk(*parts: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n" + trailer + b"\r\n"


def pieces(data: bytes, splits: tuple | None, default: int = 1400) -> list[bytes]:
    out, pos = [], 0
    for s in splits or ():
        if pos >= len(data):
            break
        out.append(data[pos:pos + s])
        pos += s
    while pos < len(data):
        out.append(data[pos:pos + default])
        pos += default
    return out


def run(body: Body, data: bytes, splits: tuple | None = None, boundary: bool = True) -> int:
    """Feed `data` in pieces as a stream delivers them; the bytes the body took."""
    if boundary:
        body.feed(b"")
    taken = 0
    for p in pieces(data, splits):
        n = body.feed(p)
        taken += n
        if n < len(p):
            break
    return taken


TEXT = b"The quick brown fox jumps over the lazy dog. " * 4
BIG = random.Random(7).randbytes(204800)            # incompressible, no repeats
# corrupt gzip streams as the oracle saw them (another zlib could compress differently):
# gz(b"GZC1MARK " + bytes(range(256)) * 4 + b"GZC2MARK") with bytes 40..47 set to ff, and
# gz(b"GZCSMARK " + bytes(range(256)) * 40 + b"GZCTMARK") with bytes 30..37 set to ff
GZ_CORRUPT = bytes.fromhex(
    "1f8b0800000000000203738f7236f4750cf2566060646266616563e7e0e4e2e6e1e5e31710141216ffffffffffffffff9195"
    "935750545256515553d7d0d4d2d6d1d5d33730343236313533b7b0b4b2b6b1b5b37770747276717573f7f0f4f2f6f1f5f30f"
    "080c0a0e090d0b8f888c8a8e898d8b4f484c4a4e494d4bcfc8cccacec9cdcb2f282c2a2e292d2bafa8acaaaea9adab6f686c"
    "6a6e696d6befe8eceaeee9edeb9f3071d2e42953a74d9f3173d6ec3973e7cd5fb070d1e2254b972d5fb172d5ea356bd7addf"
    "b071d3e62d5bb76ddfb173d7ee3d7bf7ed3f70f0d0e123478f1d3f71f2d4e93367cf9dbf70f1d2e52b57af5dbf71f3d6ed3b"
    "77efdd7ff0f0d1e3274f9f3d7ff1f2d5eb376fdfbdfff0f1d3e72f5fbf7dfff1f3d7ef3f7ffffd1ff5ffa8ff47b2ffdda39c"
    "8d400501008e0f6cf011040000"
)
GZ_CORRUPT_EARLY = bytes.fromhex(
    "1f8b0800000000000203738f720ef6750cf2566060646266616563e7e0e4ffffffffffffffff121611151397909492969195"
    "935750545256515553d7d0d4d2d6d1d5d33730343236313533b7b0b4b2b6b1b5b37770747276717573f7f0f4f2f6f1f5f30f"
    "080c0a0e090d0b8f888c8a8e898d8b4f484c4a4e494d4bcfc8cccacec9cdcb2f282c2a2e292d2bafa8acaaaea9adab6f686c"
    "6a6e696d6befe8eceaeee9edeb9f3071d2e42953a74d9f3173d6ec3973e7cd5fb070d1e2254b972d5fb172d5ea356bd7addf"
    "b071d3e62d5bb76ddfb173d7ee3d7bf7ed3f70f0d0e123478f1d3f71f2d4e93367cf9dbf70f1d2e52b57af5dbf71f3d6ed3b"
    "77efdd7ff0f0d1e3274f9f3d7ff1f2d5eb376fdfbdfff0f1d3e72f5fbf7dfff1f3d7ef3f7ffffd1ff5ffa8ff47fd3feaff51"
    "ff8ffa7fd4ffa3fe1ff5ffa8ff47fd3feaff51ff8ffa7fd4ffa3fe1ff5ffa8ff47fd3feaff51ff8ffa7fd4ffa3fe1ff5ffa8"
    "ff47fd3feaff51ff8ffa7fd4ffa3fe1ff5ffa8ff47fd3feaff51ff8ffa7f28fadf3dca3904b410100009ce6cc111280000"
)


@dataclass(frozen=True)
class Case:
    name: str
    to_server: bool
    wire: bytes                      # the body as sent
    markers: tuple = ()              # bytes looked for in the inspected body
    chunked: bool = False
    length: int | None = None
    encodings: tuple = ()
    splits: tuple | None = None      # the body's TCP segments (1400 bytes past them)
    pipelined: bool = True           # a next message follows in its own segment
    header_markers: tuple = ()       # looked for in http.header (trailers)


def suricata_cases() -> dict[str, Case]:
    c: list[Case] = []
    for ts in (True, False):
        d = "q" if ts else "s"

        def case(name, wire, markers, d=d, ts=ts, **kw):
            c.append(Case(d + name, ts, wire, markers, **kw))

        def coded(name, plain, enc, mark, **kw):
            case(name, enc(plain), (mark,) + kw.pop("more", ()), length=len(enc(plain)), **kw)

        case("cl_plain", b"AAAAMK" + d.encode() + b"clZZZZ", (b"MK" + d.encode() + b"cl",), length=13)
        case("ch_basic", chunk(b"hel", b"lo wor", b"ld"), (b"hello world", b"lo wo"), chunked=True)
        case("ch_ext", b'5;foo=bar\r\nHELLO\r\n6 ; x="y"\r\n WORLD\r\n0;z\r\n\r\n', (b"HELLO WORLD",), chunked=True)
        case("ch_ws", b" 5 \r\nHELLO\r\n\t6\t\r\n WORLD\r\n0 \r\n\r\n", (b"HELLO WORLD",), chunked=True)
        case("ch_upper", b"A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", (b"0123456789abcdefghijk",), chunked=True)
        case("ch_zeros", b"0005\r\nHELLO\r\n00\r\n\r\n", (b"HELLO",), chunked=True)
        case("ch_bad", b"zz\r\nBADLEN1\r\n0\r\n\r\n", (b"BADLEN1", b"zz\r\nBADLEN1"), chunked=True)
        case("ch_bad2", b"5\r\nGOOD1\r\nqq\r\nBADLEN2\r\n0\r\n\r\n", (b"GOOD1", b"BADLEN2", b"qq\r\nBADLEN2", b"GOOD1qq"),
             chunked=True)
        case("ch_lf", b"5\nHELLO\n6\n WORLD\n0\n\n", (b"HELLO WORLD",), chunked=True)
        case("ch_nocrlf", b"5\r\nHELLOXYZ\r\n6\r\n WORLD\r\n0\r\n\r\n", (b"HELLO WORLD", b"HELLOXYZ"), chunked=True)
        case("ch_nocrlf2", b"5\r\nHELLO6\r\n WORLD\r\n0\r\n\r\n", (b"HELLO WORLD", b"HELLO W", b"HELLO"), chunked=True)
        case("ch_lfcr", b"5\n\rHELLO\r\n0\r\n\r\n", (b"HELLO", b"\rHELL"), chunked=True)
        case("ch_crcr", b"5\r\r\nHELLO\r\n0\r\n\r\n", (b"HELLO",), chunked=True)
        case("ch_trailer", chunk(b"TRAILBODY", trailer=b"X-Trl: TRLMARK" + d.encode() + b"\r\n"), (b"TRAILBODY", b"TRLMARK"),
             chunked=True, header_markers=(b"TRLMARK" + d.encode(),))
        case("ch_blank_first", b"\r\n5\r\nBLANK\r\n0\r\n\r\n", (b"BLANK",), chunked=True)
        case("ch_blank_mid", b"5\r\nHELLO\r\n\r\n6\r\n WORLD\r\n0\r\n\r\n", (b"HELLO WORLD", b"HELLO"), chunked=True)
        case("ch_huge", b"ffffffff\r\nHUGE1\r\n0\r\n\r\n", (b"HUGE1",), chunked=True)
        case("ch_int32", b"7fffffff\r\nHUGE2\r\n0\r\n\r\n", (b"HUGE2",), chunked=True, pipelined=False)
        case("ch_0x", b"0x5\r\nHEXX5\r\n0\r\n\r\n", (b"HEXX5",), chunked=True)
        case("ch_junk_after", b"5zz\r\nJUNKA\r\n0\r\n\r\n", (b"JUNKA",), chunked=True)
        case("ch_bytewise", chunk(b"BYTE", b"WISE", trailer=b"T: v\r\n"), (b"BYTEWISE",), chunked=True, splits=(1,) * 64)
        case("ch_longline", b"5;" + b"e" * 20000 + b"\r\nLONGL\r\n0\r\n\r\n", (b"LONGL",), chunked=True)
        for n in (17996, 17997):   # the line with its CRLF: 18000 and 18001 bytes, in one segment
            case(f"ch_ext{n}", b"5;" + b"e" * n + b"\r\nLONGL\r\n0\r\n\r\n", (b"LONGL",), chunked=True, splits=(60000,))
        case("ch_notchunked", b"<html>NOTCHUNKED body here</html>", (b"NOTCHUNKED", b"<html>NOT"), chunked=True, pipelined=False)
        case("cl_trunc", b"TRUNCATED-BODY", (b"TRUNCATED",), length=100, pipelined=False)
        case("ch_trunc", b"20\r\nCHUNKTRUNC", (b"CHUNKTRUNC",), chunked=True, pipelined=False)
        big_marks = (b"EARLYM", b"LATEM", BIG[102353:102393], BIG[102373:102413], BIG[102354:102394])
        case("cl_big", b"EARLYM" + d.encode() + BIG[:150000] + b"LATEM", big_marks, length=150012)
        case("ch_big", b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in
                                [b"EARLYM" + d.encode() + BIG[:60000], BIG[60000:120000], BIG[120000:150000] + b"LATEM"])
             + b"0\r\n\r\n", big_marks, chunked=True)
        coded("gz", b"GZMARK " + TEXT, gz, b"GZMARK", encodings=(b"gzip",), more=(b"\x1f\x8b",))
        coded("xgz", b"XGZMARK " + TEXT, gz, b"XGZMARK", encodings=(b"x-gzip",))
        coded("gz_upper", b"GZUPMARK " + TEXT, gz, b"GZUPMARK", encodings=(b"GZIP",))
        coded("defl_raw", b"DRAWMARK " + TEXT, raw, b"DRAWMARK", encodings=(b"deflate",))
        coded("defl_zlib", b"DZLMARK " + TEXT, zl, b"DZLMARK", encodings=(b"deflate",))
        coded("xdefl", b"XDEFMARK " + TEXT, raw, b"XDEFMARK", encodings=(b"x-deflate",))
        coded("gz_label_raw", b"GLRMARK " + TEXT, raw, b"GLRMARK", encodings=(b"gzip",))
        coded("gz_label_zlib", b"GLZMARK " + TEXT, zl, b"GLZMARK", encodings=(b"gzip",))
        coded("defl_label_gz", b"DLGMARK " + TEXT, gz, b"DLGMARK", encodings=(b"deflate",))
        for i, plain in enumerate([b"beta PLAINB not compressed " + TEXT, b"b" * 61 + TEXT, b"j" * 20 + b" Q" + TEXT]):
            garbage = {0: b"\x05\x01D\x00", 1: b"\x02" * 8, 2: b"\x82" * 8}[i]   # what raw inflate makes of it
            coded(f"plain{i}_gz", plain, bytes, plain[:11], encodings=(b"gzip",), more=(garbage,))
            coded(f"plain{i}_defl", plain, bytes, plain[:11], encodings=(b"deflate",), more=(garbage,))
        coded("gz_defl", b"GDMARK " + TEXT, lambda b: raw(gz(b)), b"GDMARK", encodings=(b"gzip", b"deflate"))
        coded("gz_defl_rev", b"GDRMARK " + TEXT, lambda b: gz(raw(b)), b"GDRMARK", encodings=(b"gzip", b"deflate"))
        coded("gz_gz", b"GGMARK " + TEXT, lambda b: gz(gz(b)), b"GGMARK", encodings=(b"gzip", b"gzip"))
        coded("gz_gz_gz", b"GGGMARK " + TEXT, lambda b: gz(gz(gz(b))), b"GGGMARK", encodings=(b"gzip", b"gzip", b"gzip"))
        coded("ce_unknown", b"BRMARK raw", bytes, b"BRMARK", encodings=(b"br",))
        coded("ce_identity", b"IDMARK raw", bytes, b"IDMARK", encodings=(b"identity",))
        coded("ce_unknown_gz", b"UGZMARK " + TEXT, gz, b"UGZMARK", encodings=(b"br", b"gzip"))
        coded("ce_lzma", b"LZMAMARK raw", bytes, b"LZMAMARK", encodings=(b"lzma",))
        coded("ce_gz_lzma", b"GZLZMARK " + TEXT, gz, b"GZLZMARK", encodings=(b"gzip", b"lzma"))
        coded("ce_inflate", b"INFLMARK " + TEXT, gz, b"INFLMARK", encodings=(b"inflate",))
        coded("ce_GZ_defl", b"UPGDMARK " + TEXT, lambda b: raw(gz(b)), b"UPGDMARK", encodings=(b"GZIP", b"deflate"))
        coded("ce_2space", b"SP2MARK " + TEXT, lambda b: raw(gz(b)), b"SP2MARK", encodings=(b"gzip, ", b"deflate"))
        coded("ce_gzipx", b"GZXMARK " + TEXT, gz, b"GZXMARK", encodings=(b"gzipx",))
        coded("ce_none_gz", b"NONEGMARK " + TEXT, gz, b"NONEGMARK", encodings=(b"none", b"gzip"))
        zc = gz(b"GZCHMARK " + TEXT)
        case("gz_chunked", chunk(zc[:7], zc[7:30], zc[30:]), (b"GZCHMARK",), chunked=True, encodings=(b"gzip",))
        case("gz_corrupt", GZ_CORRUPT, (b"GZC1MARK", b"GZC2MARK"), length=len(GZ_CORRUPT), encodings=(b"gzip",))
        case("gz_corrupt_early", GZ_CORRUPT_EARLY, (b"GZCSMARK", b"GZCTMARK", GZ_CORRUPT_EARLY[:20]),
             length=len(GZ_CORRUPT_EARLY), encodings=(b"gzip",), splits=(100,) * 200)
        coded("gz_trunc", b"GZTRMARK " + TEXT, lambda b: gz(b)[:-20], b"GZTRMARK", encodings=(b"gzip",))
        coded("gz_crc_bad", b"CRCMARK " + TEXT, lambda b: gz(b)[:-8] + bytes(8), b"CRCMARK", encodings=(b"gzip",))
        coded("gz_garbage_after", b"GZGAMARK " + TEXT, lambda b: gz(b) + b"GARBAGEAFTER", b"GZGAMARK", encodings=(b"gzip",),
              more=(b"GARBAGEAFTER",))
        coded("gz_two_members", b"MEMBER1 " + TEXT, lambda b: gz(b) + gz(b"MEMBER2 " + TEXT), b"MEMBER1", encodings=(b"gzip",),
              more=(b"MEMBER2",))
        coded("gz_big", b"GZBIGA" + BIG[:150000] + b"GZBIGZ", gz, b"GZBIGA", encodings=(b"gzip",),
              more=(b"GZBIGZ", BIG[102354:102394], BIG[102374:102414], BIG[102355:102395]))
        coded("gz_bomb2", b"BOMBMARK" + bytes(5_000_000), lambda b: gz(gz(b)), b"BOMBMARK", encodings=(b"gzip", b"gzip"))
        coded("gz_bomb1", b"BOMB1MARK" + bytes(5_000_000), gz, b"BOMB1MARK", encodings=(b"gzip",))
        coded("gz_split", b"GZSPLIT " + TEXT, gz, b"GZSPLIT", encodings=(b"gzip",), splits=(1,) * 40)
        coded("defl_zlib_split", b"DZSPLIT " + TEXT, zl, b"DZSPLIT", encodings=(b"deflate",), splits=(1,) * 40)
        coded("gz_plain_split", b"PLAINSPLIT not compressed " + TEXT, bytes, b"PLAINSPLIT", encodings=(b"gzip",),
              splits=(3,) * 40)
        z = gz(b"GZCUTMARK " + TEXT)
        case("gz_cut", z[:-20], (b"GZCUTMARK",), length=len(z) + 100, encodings=(b"gzip",), pipelined=False)
        case("gz_chunk_cut", b"%x\r\n" % len(z) + z[:-20], (b"GZCUTMARK",), chunked=True, encodings=(b"gzip",), pipelined=False)
        case("gz_gz_cut", gz(gz(b"GZ2CUTMARK " + TEXT))[:-30], (b"GZ2CUTMARK",), length=1000, encodings=(b"gzip", b"gzip"),
             pipelined=False)
    c.append(Case("s_close", False, b"CLOSEMARK and the rest", (b"CLOSEMARK",), pipelined=False))
    c.append(Case("s_close_gz", False, gz(b"CLOSEGZ " + TEXT), (b"CLOSEGZ",), encodings=(b"gzip",), pipelined=False))
    return {x.name: x for x in c}


CASES = suricata_cases()

# SURICATA[name] = (one flag per marker: found in the body buffer or not, the body
# events raised, whether the pipelined message after the body was parsed)
SURICATA: dict[str, tuple[str, tuple[str, ...], bool | None]] = {
    'qcl_plain': ('1', (), True),
    'qch_basic': ('11', (), True),
    'qch_ext': ('1', ('request_chunk_extension',), True),
    'qch_ws': ('1', (), True),
    'qch_upper': ('1', (), True),
    'qch_zeros': ('1', (), True),
    'qch_bad': ('00', ('invalid_request_chunk_len',), False),
    'qch_bad2': ('1000', ('invalid_request_chunk_len',), False),
    'qch_lf': ('1', (), True),
    'qch_nocrlf': ('10', (), True),
    'qch_nocrlf2': ('001', ('invalid_request_chunk_len',), False),
    'qch_lfcr': ('01', (), True),
    'qch_crcr': ('1', (), True),
    'qch_trailer': ('10', (), True),
    'qch_blank_first': ('0', ('invalid_request_chunk_len',), False),
    'qch_blank_mid': ('01', ('invalid_request_chunk_len',), False),
    'qch_huge': ('0', ('invalid_request_chunk_len',), False),
    'qch_int32': ('1', (), None),
    'qch_0x': ('0', ('request_field_missing_colon',), True),
    'qch_junk_after': ('1', (), True),
    'qch_bytewise': ('1', (), True),
    'qch_longline': ('0', ('request_field_too_long',), False),
    'qch_ext17996': ('1', ('request_chunk_extension',), True),
    'qch_ext17997': ('1', ('request_chunk_extension',), True),
    'qch_notchunked': ('00', (), None),
    'qcl_trunc': ('1', (), None),
    'qch_trunc': ('1', (), None),
    'qcl_big': ('10100', (), True),
    'qch_big': ('10100', (), True),
    'qgz': ('10', (), True),
    'qxgz': ('1', (), True),
    'qgz_upper': ('1', (), True),
    'qdefl_raw': ('1', (), True),
    'qdefl_zlib': ('1', ('gzip_decompression_failed',), True),
    'qxdefl': ('1', (), True),
    'qgz_label_raw': ('1', ('gzip_decompression_failed',), True),
    'qgz_label_zlib': ('1', (), True),
    'qdefl_label_gz': ('1', ('gzip_decompression_failed',), True),
    'qplain0_gz': ('10', ('gzip_decompression_failed',), True),
    'qplain0_defl': ('01', ('gzip_decompression_failed',), True),
    'qplain1_gz': ('10', ('gzip_decompression_failed',), True),
    'qplain1_defl': ('01', ('gzip_decompression_failed',), True),
    'qplain2_gz': ('10', ('gzip_decompression_failed',), True),
    'qplain2_defl': ('01', ('gzip_decompression_failed',), True),
    'qgz_defl': ('0', (), True),
    'qgz_defl_rev': ('0', (), True),
    'qgz_gz': ('0', (), True),
    'qgz_gz_gz': ('0', (), True),
    'qce_unknown': ('1', (), True),
    'qce_identity': ('1', (), True),
    'qce_unknown_gz': ('0', (), True),
    'qce_lzma': ('1', (), True),
    'qce_gz_lzma': ('0', (), True),
    'qce_inflate': ('0', (), True),
    'qce_GZ_defl': ('0', (), True),
    'qce_2space': ('0', (), True),
    'qce_gzipx': ('0', (), True),
    'qce_none_gz': ('0', (), True),
    'qgz_chunked': ('1', (), True),
    'qgz_corrupt': ('10', ('gzip_decompression_failed',), True),
    'qgz_corrupt_early': ('100', ('gzip_decompression_failed',), True),
    'qgz_trunc': ('1', (), True),
    'qgz_crc_bad': ('1', ('gzip_decompression_failed',), True),
    'qgz_garbage_after': ('10', (), True),
    'qgz_two_members': ('10', (), True),
    'qgz_big': ('10100', (), True),
    'qgz_bomb2': ('0', (), True),
    'qgz_bomb1': ('1', ('compression_bomb',), True),
    'qgz_split': ('1', (), True),
    'qdefl_zlib_split': ('0', ('gzip_decompression_failed',), True),
    'qgz_plain_split': ('0', ('gzip_decompression_failed',), True),
    'qgz_cut': ('0', (), None),
    'qgz_chunk_cut': ('0', (), None),
    'qgz_gz_cut': ('0', (), None),
    'scl_plain': ('1', (), True),
    'sch_basic': ('11', (), True),
    'sch_ext': ('1', ('request_chunk_extension',), True),
    'sch_ws': ('1', (), True),
    'sch_upper': ('1', (), True),
    'sch_zeros': ('1', (), True),
    'sch_bad': ('11', ('invalid_response_chunk_len',), False),
    'sch_bad2': ('1111', ('invalid_response_chunk_len',), False),
    'sch_lf': ('1', (), True),
    'sch_nocrlf': ('10', (), True),
    'sch_nocrlf2': ('111', ('invalid_response_chunk_len',), False),
    'sch_lfcr': ('01', (), True),
    'sch_crcr': ('1', (), True),
    'sch_trailer': ('10', (), True),
    'sch_blank_first': ('1', (), True),
    'sch_blank_mid': ('11', (), True),
    'sch_huge': ('1', ('invalid_response_chunk_len',), False),
    'sch_int32': ('1', (), None),
    'sch_0x': ('0', ('response_field_missing_colon',), True),
    'sch_junk_after': ('1', (), True),
    'sch_bytewise': ('1', (), True),
    'sch_longline': ('0', (), False),
    'sch_ext17996': ('1', ('request_chunk_extension',), True),
    'sch_ext17997': ('0', (), False),
    'sch_notchunked': ('11', (), None),
    'scl_trunc': ('1', (), None),
    'sch_trunc': ('1', (), None),
    'scl_big': ('10100', (), True),
    'sch_big': ('10100', (), True),
    'sgz': ('10', (), True),
    'sxgz': ('1', (), True),
    'sgz_upper': ('1', (), True),
    'sdefl_raw': ('1', (), True),
    'sdefl_zlib': ('1', ('gzip_decompression_failed',), True),
    'sxdefl': ('1', (), True),
    'sgz_label_raw': ('1', ('gzip_decompression_failed',), True),
    'sgz_label_zlib': ('1', (), True),
    'sdefl_label_gz': ('1', ('gzip_decompression_failed',), True),
    'splain0_gz': ('10', ('gzip_decompression_failed',), True),
    'splain0_defl': ('01', ('gzip_decompression_failed',), True),
    'splain1_gz': ('10', ('gzip_decompression_failed',), True),
    'splain1_defl': ('01', ('gzip_decompression_failed',), True),
    'splain2_gz': ('10', ('gzip_decompression_failed',), True),
    'splain2_defl': ('01', ('gzip_decompression_failed',), True),
    'sgz_defl': ('1', ('gzip_decompression_failed',), True),
    'sgz_defl_rev': ('1', (), True),
    'sgz_gz': ('1', (), True),
    'sgz_gz_gz': ('0', ('too_many_encoding_layers',), True),
    'sce_unknown': ('1', ('abnormal_ce_header',), True),
    'sce_identity': ('1', ('abnormal_ce_header',), True),
    'sce_unknown_gz': ('1', ('abnormal_ce_header',), True),
    'sce_lzma': ('1', (), True),
    'sce_gz_lzma': ('1', ('compression_bomb',), True),
    'sce_inflate': ('0', (), True),
    'sce_GZ_defl': ('1', ('abnormal_ce_header', 'gzip_decompression_failed'), True),
    'sce_2space': ('1', ('gzip_decompression_failed', 'too_many_encoding_layers'), True),
    'sce_gzipx': ('1', ('abnormal_ce_header',), True),
    'sce_none_gz': ('1', (), True),
    'sgz_chunked': ('1', (), True),
    'sgz_corrupt': ('10', ('gzip_decompression_failed',), True),
    'sgz_corrupt_early': ('100', ('gzip_decompression_failed',), True),
    'sgz_trunc': ('1', (), True),
    'sgz_crc_bad': ('1', ('gzip_decompression_failed',), True),
    'sgz_garbage_after': ('10', (), True),
    'sgz_two_members': ('10', (), True),
    'sgz_big': ('10100', (), True),
    'sgz_bomb2': ('1', ('compression_bomb',), True),
    'sgz_bomb1': ('1', (), True),
    'sgz_split': ('1', (), True),
    'sdefl_zlib_split': ('0', ('gzip_decompression_failed',), True),
    'sgz_plain_split': ('0', ('gzip_decompression_failed',), True),
    'sgz_cut': ('1', (), None),
    'sgz_chunk_cut': ('1', (), None),
    'sgz_gz_cut': ('0', (), None),
    's_close': ('1', (), None),
    's_close_gz': ('1', (), None),

}


# ---------------------------------------------------------------- libhtp's exact bytes
# (id, to_server, chunked, length, Content-Encoding, the body's pieces, headers in the same
# piece as the body, the stream ends after the body instead of a next message)
Z = raw(b"HELLOWORLD" * 3)
LIBHTP_CASES = [
    ("res_carried_line_loses_earlier_pieces", False, True, None, None, [b"5\r\nHELLO\r\n", b"zz1", b"zz2", b"zz3\r\nREST"], False, False),
    ("res_unbuffered_line_ends_at_junk", False, True, None, None, [b"5\r\nHELLO\r\nyy", b"zz1", b"zz2", b"zz3\r\nREST"], False, False),
    ("res_blank_line_spanning_pieces", False, True, None, None, [b"5\r\nHELLO\r\n \r", b"\nyy", b"zz1", b"zz3\r\nREST"], False, False),
    ("res_blank_then_bad_line", False, True, None, None, [b"5\r\nHELLO\r\n \r", b"\nyyzz3\r\nREST"], False, False),
    ("res_blank_at_piece_start", False, True, None, None, [b"5\r\nHELLO\r\n", b" \r\nyyzz3\r\nREST"], False, False),
    ("res_long_line_piece_start", False, True, None, None, [b"5;" + b"e" * 17997 + b"\r\nLONGL\r\n0\r\n\r\n"], False, False),
    ("res_long_line_joined", False, True, None, None, [b"5;" + b"e" * 17997 + b"\r\nLONGL\r\n0\r\n\r\n"], True, False),
    ("res_long_line_mid_piece", False, True, None, None, [b"5\r\nHELLO\r\n5;" + b"e" * 30000 + b"\r\nLONGL\r\n0\r\n\r\n"], False, False),
    ("res_long_line_after_piece", False, True, None, None, [b"5\r\nHELLO\r\n", b"5;" + b"e" * 17997 + b"\r\nLONGL\r\n0\r\n\r\n"], False, False),
    ("res_long_line_spanning", False, True, None, None, [b"5\r\nHELLO\r\n5;" + b"e" * 10000, b"e" * 8001 + b"\r\nLONGL\r\n0\r\n\r\n"], False, False),
    ("req_long_line_one_piece", True, True, None, None, [b"5;" + b"e" * 17997 + b"\r\nLONGL\r\n0\r\n\r\n"], False, False),
    ("req_long_line_spanning", True, True, None, None, [b"5;" + b"e" * 10000, b"e" * 7997 + b"\r\nLONGL\r\n0\r\n\r\n"], False, False),
    ("req_line_spanning_at_limit", True, True, None, None, [b"5;" + b"e" * 10000, b"e" * 7996 + b"\r\nLONGL\r\n0\r\n\r\n"], False, False),
    ("res_ext_after_junk", False, True, None, None, [b"5\r\nHELLO\r\nzz;x\r\nABCDE\r\n0\r\n\r\n"], False, False),
    ("res_ext_semicolon_first", False, True, None, None, [b"5\r\nHELLO\r\n;x\r\nABCDE\r\n0\r\n\r\n"], False, False),
    ("req_ext_after_junk", True, True, None, None, [b"5\r\nHELLO\r\nzz;x\r\nABCDE\r\n0\r\n\r\n"], False, False),
    ("res_close_in_size_line", False, True, None, None, [b"5\r\nHELLO\r\n5"], False, True),
    ("res_close_in_carried_line", False, True, None, None, [b"<" * 30], False, True),
    ("res_close_in_trailer", False, True, None, None, [b"5\r\nHELLO\r\n0\r\nX-A: b"], False, True),
    ("res_close_in_data_end", False, True, None, None, [b"5\r\nHELLOxyz"], False, True),
    ("res_close_size_line_decoded", False, True, None, b"deflate", [b"%x\r\n" % len(Z) + Z + b"\r\n5"], False, True),
    ("req_close_in_size_line", True, True, None, None, [b"5\r\nHELLO\r\n5"], False, True),
    ("req_close_in_trailer_flushes", True, True, None, b"gzip", [b"%x\r\n" % len(gzip.compress(b"\x9a" * 1559, mtime=0)[:-8]) + gzip.compress(b"\x9a" * 1559, mtime=0)[:-8] + b"\r\n0\r\nX-Long: v"], False, True),
    ("req_close_in_data_no_flush", True, False, 500, b"gzip", [gzip.compress(b"FLUSHME" * 20, mtime=0)[:-10]], False, True),
    ("res_close_in_data_flushes", False, False, 500, b"gzip", [gzip.compress(b"FLUSHME" * 20, mtime=0)[:-10]], False, True),
    ("res_trailer_fold_piece_end", False, True, None, None, [b"5\r\nHELLO\r\n0\r\nX-A: b\r\n", b" c\r\n\r\n"], False, False),
    ("req_trailer_fold_piece_end", True, True, None, None, [b"5\r\nHELLO\r\n0\r\nX-A: b\r\n", b" c\r\n\r\n"], False, False),
    ("zlib_labelled_deflate_one_piece", False, False, len(zlib.compress(b"ZLIBDEFL" * 9)), b"deflate", [zlib.compress(b"ZLIBDEFL" * 9)], False, False),
    ("zlib_labelled_deflate_bytewise", False, False, len(zlib.compress(b"ZLIBDEFL" * 9)), b"deflate", [bytes([c]) for c in zlib.compress(b"ZLIBDEFL" * 9)], False, False),
    ("plain_labelled_gzip_3_byte_pieces", True, False, 39, b"gzip", [b"PLAINSPLIT not compressed 0123456789abc"[i:i + 3] for i in range(0, 39, 3)], False, False),
]

# gz(b"CORRUPT1 " + TEXT * 10 + b"CORRUPT2" + bytes(range(256)) * 8) with 6 bytes in the middle set to ff
GZ_CORRUPT_MID = bytes.fromhex(
    "1f8b080000000000020373f60f0a0a0d08315408c94855282ccd4cce56482aca2fcf5348cbaf50c82acd2d2856c82f4b2d52"
    "28014ae72456552aa4e4a7eb8d2a1e553caa7854f1a8e251c5c34db133a442346260646266616563e7e0e4e2e6e1e5e31710"
    "14121611151397909492969195935750545256515553d7d0d4d2d6d1d5d33730343236313533b7b0b4b2b6b1b5b377707472"
    "76717573f7f0f4f2f6f1f5f30f080c0a0e090d0b8f888c8a8e898d8b4f484c4a4e494d4bcfc8ccffffffffffff282c2a2e29"
    "2d2bafa8acaaaea9adab6f686c6a6e696d6befe8eceaeee9edeb9f3071d2e42953a74d9f3173d6ec3973e7cd5fb070d1e225"
    "4b972d5fb172d5ea356bd7addfb071d3e62d5bb76ddfb173d7ee3d7bf7ed3f70f0d0e123478f1d3f71f2d4e93367cf9dbf70"
    "f1d2e52b57af5dbf71f3d6ed3b77efdd7ff0f0d1e3274f9f3d7ff1f2d5eb376fdfbdfff0f1d3e72f5fbf7dfff1f3d7ef3f7f"
    "fffd1ff5ffa8ff47fd3feaff51ff8ffa7f24fa1f0092decf21190f0000"
)
CORRUPT_MID_PLAIN = b"CORRUPT1 " + TEXT * 10 + b"CORRUPT2" + bytes(range(256)) * 8
ZR = gz(b"RESERVED " + TEXT * 10)
ZR = ZR[:3] + b"\x20" + ZR[4:]                       # a reserved gzip flag set: zlib refuses the header
LIBHTP_CASES += [
    ("trailer_blank_line_folds", True, True, None, None, [b"5\r\nHELLO\r\n0\r\nX: a\r\n \r\nY: b\r\n\r\n"], False, False),
    ("res_trailer_blank_line_folds", False, True, None, None, [b"5\r\nHELLO\r\n0\r\nX: a\r\n \r\nY: b\r\n\r\n"], False, False),
    ("gzip_reserved_flag_skipped_header", False, False, len(ZR), b"gzip", [ZR], False, False),
    ("corrupt_after_output_drops_the_rest", False, False, 379, b"gzip", [GZ_CORRUPT_MID[:209], GZ_CORRUPT_MID[209:]], False,
     False),
    ("req_corrupt_after_output_drops_the_rest", True, False, 379, b"gzip", [GZ_CORRUPT_MID[:209], GZ_CORRUPT_MID[209:]], False,
     False),
]
LIBHTP_CASES += [
    ("req_trailer_nul_before_colon", True, True, None, None, [b"5\r\nHELLO\r\n0\r\nX\0: y\r\n\r\n"], False, False),
    ("res_close_size_line_passthrough", False, True, None, b"gzip", [b"1b\r\nplain text, not gzip at all\r\n5"], False,
     True),
]
CORRUPT_MID_OUT = CORRUPT_MID_PLAIN[:1923] + b"o\xff\xff\xff\xff\xfffghio\xff\xff\xff\xff\xfffgh"

# LIBHTP[id] = (the body bytes libhtp handed on, the body events, the next message parsed)
LIBHTP: dict[str, tuple[bytes, tuple[str, ...], bool | None]] = {
    'res_carried_line_loses_earlier_pieces': (b'HELLOzz3\r\nRESTHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT', ('invalid_response_chunk_len',), False),
    'res_unbuffered_line_ends_at_junk': (b'HELLOyyzz1zz2zz3\r\nRESTHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT', ('invalid_response_chunk_len',), False),
    'res_blank_line_spanning_pieces': (b'HELLOzz3\r\nRESTHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT', ('invalid_response_chunk_len',), False),
    'res_blank_then_bad_line': (b'HELLO\nyyzz3\r\nRESTHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT', ('invalid_response_chunk_len',), False),
    'res_blank_at_piece_start': (b'HELLO \r\nyyzz3\r\nRESTHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT', ('invalid_response_chunk_len',), False),
    'res_long_line_piece_start': (b'', (), False),
    'res_long_line_joined': (b'LONGL', ('request_chunk_extension',), True),
    'res_long_line_mid_piece': (b'HELLOLONGL', ('request_chunk_extension',), True),
    'res_long_line_after_piece': (b'HELLO', (), False),
    'res_long_line_spanning': (b'HELLO', (), False),
    'req_long_line_one_piece': (b'LONGL', ('request_chunk_extension',), True),
    'req_long_line_spanning': (b'', ('request_field_too_long',), False),
    'req_line_spanning_at_limit': (b'LONGL', ('request_chunk_extension',), True),
    'res_ext_after_junk': (b'HELLOzz;x\r\nABCDE\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT', ('invalid_response_chunk_len',), False),
    'res_ext_semicolon_first': (b'HELLO;x\r\nABCDE\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT', ('invalid_response_chunk_len', 'request_chunk_extension'), False),
    'req_ext_after_junk': (b'HELLO', ('invalid_request_chunk_len', 'request_chunk_extension'), False),
    'res_close_in_size_line': (b'HELLO5', (), None),
    'res_close_in_carried_line': (b'<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<', (), None),
    'res_close_in_trailer': (b'HELLOX-A: b', (), None),
    'res_close_in_data_end': (b'HELLO', (), None),
    'res_close_size_line_decoded': (b'HELLOWORLDHELLOWORLDHELLOWORLD', (), None),
    'req_close_in_size_line': (b'HELLO', (), None),
    'req_close_in_trailer_flushes': (b'\x9a' * 1559, (), None),
    'req_close_in_data_no_flush': (b'', (), None),
    'res_close_in_data_flushes': (b'FLUSHMEF', (), None),
    'res_trailer_fold_piece_end': (b'HELLO', ('invalid_response_field_folding', 'response_field_missing_colon'), True),
    'req_trailer_fold_piece_end': (b'HELLO', (), True),
    'zlib_labelled_deflate_one_piece': (b'ZLIBDEFLZLIBDEFLZLIBDEFLZLIBDEFLZLIBDEFLZLIBDEFLZLIBDEFLZLIBDEFLZLIBDEFL', ('gzip_decompression_failed',), True),
    'zlib_labelled_deflate_bytewise': (b'\x06\x00\xf5Y\x14\xad', ('gzip_decompression_failed',), True),
    'plain_labelled_gzip_3_byte_pieces': (b'INSPLIT not compressed 0123456789abc', ('gzip_decompression_failed',), True),
    'trailer_blank_line_folds': (b'HELLO', (), True),
    'res_trailer_blank_line_folds': (b'HELLO', (), True),
    'gzip_reserved_flag_skipped_header': (b"RESERVED " + TEXT * 10, ('gzip_decompression_failed',), True),
    'corrupt_after_output_drops_the_rest': (CORRUPT_MID_OUT, ('gzip_decompression_failed',), True),
    'req_corrupt_after_output_drops_the_rest': (CORRUPT_MID_OUT, ('gzip_decompression_failed',), True),
    'req_trailer_nul_before_colon': (b'HELLO', ('request_field_missing_colon',), True),
    'res_close_size_line_passthrough': (b'plain text, not gzip at all', ('gzip_decompression_failed',), None),
}

NXT_REQ = b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nNXT"
NXT_RES = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nNXT"
BODY_EVENTS = {"gzip_decompression_failed", "invalid_request_chunk_len", "invalid_response_chunk_len",
               "request_field_too_long", "response_field_too_long", "compression_bomb", "abnormal_ce_header",
               "too_many_encoding_layers", "request_chunk_extension", "request_field_missing_colon",
               "response_field_missing_colon", "invalid_request_field_folding", "invalid_response_field_folding"}


def events(body: Body) -> tuple[str, ...]:
    return tuple(sorted(e.removeprefix("http.") for e in body.events))


# ---------------------------------------------------------------- against the recordings

@pytest.mark.parametrize("name", sorted(SURICATA))
def test_suricata_recording(name):
    case = CASES[name]
    flags, want_events, want_next = SURICATA[name]
    body = Body(case.chunked, case.length, case.encodings, to_server=case.to_server)
    run(body, case.wire, case.splits)
    if case.pipelined:
        nm = case.name.encode()
        nxt = (b"GET /NXT_" + nm + b" HTTP/1.1\r\nHost: example.com\r\n\r\n" if case.to_server
               else b"HTTP/1.1 200 OK\r\nX-Nxt: NXT_" + nm + b"\r\nContent-Length: 2\r\n\r\nok")
        done_before = body.done and not body.failed
        taken = body.feed(nxt)
        assert (done_before and taken == 0) == want_next
    else:
        body.finish()
        assert body.done or body.failed
    found = "".join("1" if m in body.data else "0" for m in case.markers)
    assert found == flags
    assert tuple(e for e in events(body) if e in BODY_EVENTS) == want_events
    for m in case.header_markers:       # Suricata matched every trailer marker in http.header
        assert any(m in value for _, value in body.trailers)


@pytest.mark.parametrize("case", LIBHTP_CASES, ids=[c[0] for c in LIBHTP_CASES])
def test_libhtp_recording(case):
    cid, to_server, chunked, length, ce, parts, joined, close = case
    want_data, want_events, want_next = LIBHTP[cid]
    body = Body(chunked, length, ce or b"", 0, to_server=to_server)
    if not joined:
        body.feed(b"")
    for p in parts:
        if body.feed(p) < len(p):
            break
    if not close:
        taken = body.feed(NXT_REQ if to_server else NXT_RES)
        assert (body.done and not body.failed and taken == 0) == want_next
    body.finish()
    assert bytes(body.data) == want_data
    assert events(body) == want_events


# ---------------------------------------------------------------- framing

@pytest.mark.parametrize("kind,to_server", [
    (kind, ts) for kind in ("length", "chunked", "chunked_lf_trailers", "gzip_length", "gzip_chunked", "deflate_chunked",
                            "close") for ts in (True, False) if not (kind == "close" and ts)   # a request needs a length
], ids=lambda v: v if isinstance(v, str) else ("request" if v else "response"))
def test_split_at_every_boundary(kind, to_server):
    """Any cut of a well-formed body into two or three pieces, or into single bytes,
    gives what one piece gives: the same bytes, events, trailers and end."""
    plain = b"<html>evil " + TEXT + b"</html>"
    params = {
        "length": (False, len(plain), (), plain),
        "chunked": (True, None, (), chunk(plain[:7], plain[7:100], plain[100:])),
        # (no folded trailer: libhtp takes a response field at the end of a piece as it is)
        "chunked_lf_trailers": (True, None, (), b"a;x=1\n" + plain[:10] + b"\n0\nX-T: 1\nY: z\n\n"),
        "gzip_length": (False, len(gz(plain)), (b"gzip",), gz(plain)),
        "gzip_chunked": (True, None, (b"gzip",), chunk(gz(plain)[:5], gz(plain)[5:])),
        "deflate_chunked": (True, None, (b"deflate",), chunk(raw(plain))),
        "close": (False, None, (), plain),
    }
    chunked, length, enc, wire = params[kind]
    tail = NXT_REQ if to_server else NXT_RES

    def outcome(parts):
        b = Body(chunked, length, enc, to_server=to_server)
        taken = sum(b.feed(p) for p in parts)
        b.finish()
        return bytes(b.data), b.events, b.trailers, b.done, b.failed, taken

    whole = outcome([wire + tail])
    assert whole[0].startswith(b"<html>evil") and whole[3] and not whole[4]
    assert whole[5] == len(wire) + (len(tail) if kind == "close" else 0)
    for i in range(len(wire) + 1):
        assert outcome([wire[:i], wire[i:] + tail]) == whole, i
    for i in range(0, len(wire), 7):
        for j in range(i, len(wire), 11):
            assert outcome([wire[:i], wire[i:j], wire[j:] + tail]) == whole, (i, j)
    assert outcome([wire[k:k + 1] for k in range(len(wire))] + [tail]) == whole


@pytest.mark.parametrize("to_server", [True, False], ids=["request", "response"])
@pytest.mark.parametrize("wire,chunked,length", [
    (b"hello", False, 5),
    (b"5\r\nhello\r\n0\r\n\r\n", True, None),
    (b"5\nhello\n0\nTrailer: x\n\n", True, None),
    (b"5\r\nhello\r\n0\r\n\r\n", True, 3),          # chunked wins over Content-Length
], ids=["length", "chunked", "chunked_lf_trailer", "chunked_and_length"])
def test_pipelined_rest_is_left(wire, chunked, length, to_server):
    body = Body(chunked, length, (), to_server=to_server)
    nxt = NXT_REQ if to_server else NXT_RES
    assert body.feed(wire + nxt) == len(wire)
    assert body.done and not body.failed and body.data == b"hello"
    assert body.raw_len == len(wire)
    assert body.feed(nxt) == 0                  # a done body takes nothing more
    body.finish()
    assert body.data == b"hello" and not body.truncated


def test_chunk_extension_whitespace_and_case():
    body = Body(True, None, (), to_server=True)
    body.feed(b"  A ; name=value\r\n0123456789\r\n0000B\t\r\nABCDEFGHIJK\r\n0;last\r\n\r\n")
    assert body.done and body.data == b"0123456789ABCDEFGHIJK"
    assert body.events == ["http.request_chunk_extension"]


def test_trailers_parsed_and_kept_as_sent():
    body = Body(True, None, (), to_server=False)
    assert body.feed(b"3\r\nabc\r\n0\r\nX-A:  one \r\n two\r\nnocolon\r\nX-B:\r\n\r\nREST") == 46
    assert body.trailers == [(b"X-A", b"one  two"), (b"", b"nocolon"), (b"X-B", b"")]
    assert body.trailer_lines == [b"X-A:  one  two", b"nocolon", b"X-B:"]
    assert body.events == ["http.response_field_missing_colon"]


@pytest.mark.parametrize("to_server", [True, False], ids=["request", "response"])
def test_blank_trailer_line_folds_into_the_previous_field(to_server):
    body = Body(True, None, (), to_server=to_server)
    wire = b"5\r\nHELLO\r\n0\r\nX: a\r\n \r\nY: b\r\n\r\n"
    assert body.feed(wire + b"NEXT") == len(wire)
    assert body.done and body.trailers == [(b"X", b"a"), (b"Y", b"b")] and body.events == []


def test_trailer_fields_are_bounded_and_kept_as_sent():
    body = Body(True, None, (), to_server=False)
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(3000))
    wire = b"0\r\n" + fields + b"Bad\0Name: w\r\n\r\n"
    assert body.feed(wire) == len(wire) and body.done
    assert len(body.trailers) == len(body.trailer_lines) == 1024
    assert body.trailers[5] == (b"X-5", b"v") and body.trailer_lines[5] == b"X-5: v"
    names = Body(True, None, (), to_server=False)
    names.feed(b"0\r\nBad\0Name: w\r\n\r\n")
    # a response field name is not checked here (libhtp: "not a token"): the header parser sees the line
    assert names.trailer_lines == [b"Bad\0Name: w"] and names.events == []


def test_request_chunk_error_fails_and_swallows_the_rest():
    body = Body(True, None, (), to_server=True)
    assert body.feed(b"5\r\nhello\r\nzz\r\nmore" + NXT_REQ) == len(b"5\r\nhello\r\nzz\r\nmore" + NXT_REQ)
    assert body.failed and not body.done and body.data == b"hello"
    assert body.events == ["http.invalid_request_chunk_len"]
    assert body.feed(b"anything") == 8
    body.finish()
    assert body.failed and not body.done


def test_response_chunk_error_runs_to_the_end_of_the_stream():
    body = Body(True, None, (), to_server=False)
    wire = b"5\r\nhello\r\nzz\r\nmore\r\n0\r\n\r\n" + NXT_RES
    assert body.feed(wire) == len(wire) and not body.done
    body.finish()
    assert body.done and body.data == b"hellozz\r\nmore\r\n0\r\n\r\n" + NXT_RES
    assert body.events == ["http.invalid_response_chunk_len"]


@pytest.mark.parametrize("to_server", [True, False], ids=["request", "response"])
def test_truncated_body_is_complete_without_event(to_server):
    body = Body(False, 100, (), to_server=to_server)
    assert body.feed(b"partial") == 7
    body.finish()
    assert body.done and body.truncated and body.data == b"partial" and body.events == []


def test_close_delimited_response():
    body = Body(False, None, (b"gzip",), to_server=False)
    z = gz(b"CLOSE " + TEXT)
    assert body.feed(z[:10]) == 10 and body.feed(z[10:]) == len(z) - 10 and not body.done
    body.finish()
    assert body.done and not body.truncated and body.data == b"CLOSE " + TEXT


def test_zero_length_body_is_done_at_once():
    body = Body(False, 0, (b"gzip",), to_server=True)
    assert body.done and body.feed(b"GET") == 0 and body.data == b""


# ---------------------------------------------------------------- limits

@pytest.mark.parametrize("to_server", [True, False], ids=["request", "response"])
@pytest.mark.parametrize("enc", [(), (b"gzip",)], ids=["plain", "gzip"])
def test_body_limit_keeps_the_start_and_parses_to_the_end(enc, to_server):
    plain = BIG[:150000]
    coded = gz(plain) if enc else plain
    wire = chunk(*[coded[i:i + 4000] for i in range(0, len(coded), 4000)])
    body = Body(True, None, enc, to_server=to_server)
    nxt = NXT_REQ if to_server else NXT_RES
    assert run(body, wire + nxt, boundary=False) == len(wire)
    assert body.done and bytes(body.data) == plain[:BODY_LIMIT] and body.raw_len == len(wire)
    small = Body(True, None, enc, 1000, to_server=to_server)
    run(small, wire, boundary=False)
    assert small.done and bytes(small.data) == plain[:1000]
    unlimited = Body(True, None, enc, 0, to_server=to_server)
    run(unlimited, wire, boundary=False)
    assert bytes(unlimited.data) == plain


def test_chunk_line_limit_counts_only_lines_spanning_pieces():
    line = b"5;" + b"e" * (FIELD_LIMIT - 4) + b"\r\n"            # FIELD_LIMIT bytes with its CRLF
    ok = Body(True, None, (), to_server=True)
    run(ok, line + b"hello\r\n0\r\n\r\n", splits=(10000,))
    assert ok.done and ok.data == b"hello"
    over = Body(True, None, (), to_server=True)
    run(over, b"5;e" + line + b"hello\r\n0\r\n\r\n", splits=(10000,))
    assert over.failed and over.events == ["http.request_field_too_long"]
    in_one = Body(True, None, (), to_server=True)
    in_one.feed(b"5;" + b"e" * 30000 + b"\r\nhello\r\n0\r\n\r\n")
    assert in_one.done and in_one.data == b"hello"


def test_a_partial_line_is_bounded():
    body = Body(True, None, (), to_server=True)
    for _ in range(100):
        body.feed(b"1" * 1000)                  # a chunk-size line that never ends
    assert body.failed and body.events == ["http.request_field_too_long"]


# ---------------------------------------------------------------- decompression

@pytest.mark.parametrize("value,to_server,layers,evts", [
    (b"gzip", True, ["gzip"], []),
    (b"X-GZip", False, ["gzip"], []),
    (b"de\0flate", True, ["deflate"], []),
    (b"lzma", False, ["lzma"], []),
    (b"inflate", False, [], []),
    (b"gzip, gzip", True, [], []),                       # a request: the whole value only
    (b"gzip, deflate", False, ["gzip", "deflate"], []),
    (b"GZIP, deflate", False, ["gzip", "deflate"], ["http.abnormal_ce_header"]),
    (b"br", False, [], ["http.abnormal_ce_header"]),
    (b"identity", False, [], ["http.abnormal_ce_header"]),
    (b"none, gzip", False, ["gzip"], []),
    (b"gzip, lzma", False, ["gzip"], ["http.compression_bomb"]),
    (b"gzip, gzip, gzip", False, ["gzip", "gzip"], ["http.too_many_encoding_layers"]),
    (b"gzip, , deflate", False, ["gzip", "deflate"], ["http.too_many_encoding_layers"]),
], ids=lambda v: v.decode(errors="replace") if isinstance(v, bytes) else None)
def test_content_codings(value, to_server, layers, evts):
    assert content_codings(value, to_server) == (layers, evts)


def test_content_codings_tokenizer_and_layer_limit_zero():
    # libhtp steps one byte past a token counted from before skipped separators: "p" is a token
    assert content_codings(b"gzip, gzip, gzip", False, 0) == (["gzip", "gzip", "gzip"], ["http.abnormal_ce_header"])


@pytest.mark.parametrize("to_server", [True, False], ids=["request", "response"])
def test_decompress_off_keeps_the_wire_bytes(to_server):
    z = gz(b"hello")
    body = Body(False, len(z), (b"gzip", b"br"), BODY_LIMIT, False, to_server=to_server)
    body.feed(z)
    assert body.done and body.data == z and body.events == []


def test_gzip_header_with_file_name_and_bad_crc_keeps_the_data():
    z = b"\x1f\x8b\x08\x08\0\0\0\0\0\x03name.txt\0" + raw(b"FNAME " + TEXT) + bytes(8)
    body = Body(False, len(z), (b"gzip",), to_server=False)
    body.feed(z)
    assert body.data == b"FNAME " + TEXT and body.events == ["http.gzip_decompression_failed"]


@pytest.mark.parametrize("to_server", [True, False], ids=["request", "response"])
def test_gzip_bomb_is_bounded(to_server):
    inner = gz(bytes(50_000_000))
    z = gz(inner)                                        # 50 MB in a few hundred bytes
    body = Body(False, len(z), (b"gzip",) if to_server else (b"gzip", b"gzip"), to_server=to_server)
    start = time.process_time()
    body.feed(z)
    assert time.process_time() - start < 2.0
    assert body.done
    if to_server:               # a request is decoded one layer deep: the inner gzip is its body
        assert body.data == inner and body.events == []
    else:
        assert body.data == bytes(BODY_LIMIT) and body.events == ["http.compression_bomb"]


def test_single_layer_bomb_request_piece_versus_response():
    z = gz(bytes(3_000_000))                             # about 3 KB: one request piece inflates past 1 MiB
    req = Body(False, len(z), (b"gzip",), to_server=True)
    req.feed(z)
    res = Body(False, len(z), (b"gzip",), to_server=False)
    res.feed(z)
    assert req.events == ["http.compression_bomb"] and res.events == []
    assert req.data == res.data == bytes(BODY_LIMIT)


def test_decoding_stops_after_the_budget_once_the_body_is_full():
    z = gz(bytes(40_000_000))
    z = z[:-8] + bytes(8)                    # a bad CRC at the very end: only a full decode sees it
    body = Body(False, len(z), (b"gzip",), to_server=False)
    start = time.process_time()
    body.feed(z)                             # one piece: the budget holds within it too
    assert time.process_time() - start < 0.5
    assert body.done and body.data == bytes(BODY_LIMIT) and body.events == []
    unlimited = Body(False, len(z), (b"gzip",), 0, to_server=False)       # no limit, no budget: decoded to the end
    run(unlimited, z, boundary=False)
    assert len(unlimited.data) == 40_000_000 and unlimited.events == ["http.gzip_decompression_failed"]


# ---------------------------------------------------------------- robustness

def test_memory_stays_bounded():
    """Megabytes through one body keep at most the limit plus a small constant."""
    cases = [
        (True, None, (b"gzip", b"gzip"), chunk(*[gz(gz(bytes(4_000_000)))] * 3)),
        (False, 8_000_000, (b"deflate",), BIG * 40),          # not deflate: passed through, past the limit
        (True, None, (), b"f" * 5_000_000),                    # a chunk-size line that never ends
        (False, None, (b"gzip",), gz(BIG * 10)),
    ]
    for chunked, length, enc, wire in cases:
        tracemalloc.start()
        body = Body(chunked, length, enc, to_server=False)
        for i in range(0, len(wire), 65536):
            body.feed(wire[i:i + 65536])
        body.finish()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < BODY_LIMIT + 1_500_000, (chunked, length, enc, peak)
        assert len(body.data) <= BODY_LIMIT


def test_parse_content_length():
    # libhtp's reading, checked in Suricata: junk around the digits is skipped, no digit is invalid
    assert [parse_content_length(v) for v in (b"11", b"x11", b"11abc", b"-11", b"+11", b"1 1", b"11, 11", b" 11 ",
                                              b"0x11", b"011")] == [11, 11, 11, 11, 11, 1, 11, 11, 0, 11]
    assert parse_content_length(b"") is None and parse_content_length(b"abc") is None
    assert parse_content_length(b"99999999999999999999") is None


def test_parse_chunk_size():
    assert parse_chunk_size(b" \t5 ; x\r\n") == (5, True)
    assert parse_chunk_size(b"0x5\r\n") == (0, False)
    assert parse_chunk_size(b"00000000000007fffffff\r\n") == (0x7FFFFFFF, False)
    assert parse_chunk_size(b"80000000\r\n") == (None, False)
    assert parse_chunk_size(b"zz;x\r\n") == (None, True)
    assert parse_chunk_size(b"\r\n") == (-1, False)


PARAMS = st.fixed_dictionaries({
    "chunked": st.booleans(),
    "length": st.one_of(st.none(), st.integers(0, 3000)),
    "encodings": st.sampled_from([b"", b"gzip", b"deflate", b"gzip, deflate", b"br, gzip", b"lzma", b"gzip, gzip, gzip"]),
    "limit": st.sampled_from([0, 1, 64, 1000, BODY_LIMIT]),
    "decompress": st.booleans(),
    "to_server": st.booleans(),
})
BODIES = st.one_of(
    st.binary(max_size=600),
    st.lists(st.sampled_from([b"5\r\n", b"hello", b"\r\n", b"0\r\n", b"\n", b";x", b"zz", b" ", b"X: y\r\n",
                              b"\x1f\x8b\x08\x00", gz(b"abc" * 50), raw(TEXT), b"ffffffff", b"\r"]),
             max_size=30).map(b"".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PARAMS, BODIES, st.lists(st.integers(1, 64), max_size=20), st.booleans())
def test_fuzz_never_raises_and_stays_bounded(params, data, cuts, boundary):
    body = Body(params["chunked"], params["length"], params["encodings"], params["limit"], params["decompress"],
                to_server=params["to_server"])
    if boundary:
        body.feed(b"")
    pos, taken = 0, 0
    for c in cuts + [len(data)]:
        piece = data[pos:pos + c]
        pos += c
        n = body.feed(piece)
        assert 0 <= n <= len(piece)
        taken += n
        if n < len(piece):
            assert body.done
            break
    body.finish()
    body.finish()
    assert body.done or body.failed
    assert body.raw_len == taken
    assert not params["limit"] or len(body.data) <= params["limit"]
    assert body.feed(b"more") == (4 if body.failed else 0)
    assert len(set(body.events)) == len(body.events)
