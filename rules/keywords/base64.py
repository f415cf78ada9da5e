"""base64_decode and base64_data: decode base64 out of a buffer, then inspect what it gave.

    base64_decode[:bytes <n>][, offset <n>][, relative];
    base64_data;  content:"..."; ...

`base64_decode` is an item of the buffer it follows (the current sticky buffer, or the
buffer of the last content; the packet payload otherwise).  It takes the buffer from the
end of the previous match (`relative`) or from its start, skips `offset` bytes (no match
when nothing is left), decodes at most `bytes` bytes of it (default 65535), and the keywords
after `base64_data` inspect the decoded bytes (`B64Decode.items`).

Suricata 7.0.10's behaviour (detect-base64-decode.c, detect-base64-data.c,
detect-engine-content-inspection.c, util-base64.c), checked with suricata -r
(tests/replay/differential app_keywords):
- decoding is util-base64's RFC 4648 mode (`decode`): the standard alphabet; it stops at the
  first byte outside the alphabet and '=' -- a partial block before that byte still gives
  its bytes (one or two characters one byte, three characters two); '=' anywhere counts as
  padding (a block of four with p '=' gives 3 - p bytes, also in the middle of the data);
  at the end of the data a partial block gives its characters less one, padding or not
  ("Zg=" is "f\\x00");
- nothing decoded is no match; base64_decode without base64_data, or base64_data with
  nothing after it, never matches;
- a match ends the buffer's inspection: keywords after base64_decode in its own buffer are
  not inspected, and the content before it is not retried at a later occurrence when the
  decoded data does not match (base64_decode does not flag it relative-next);
- the value is matched with Suricata's expression (`_SYNTAX`, anchored at the start only):
  `bytes` must come before `offset`, which comes before `relative`; what follows a part it
  cannot read is ignored ("bytes 4 , offset 3" is bytes 4 alone); a word that is not
  "relative" is an error; bytes up to 65535 (0: the default), offset up to 4294967295;
- base64_data needs a base64_decode before it; no sticky buffer may follow it ("Rule
  buffer cannot be reset after base64_data"), pkt_data may.
Left out: a second base64_decode in a rule (refused as unsupported: after base64_data
Suricata decodes the decoded data in place and inspects its base64_data list again from
its start).  The decoded buffer is bounded by the largest `bytes` of the rule set in
Suricata, which matters only below 3 bytes; here it is never a bound.
"""
from __future__ import annotations

import binascii
import re

from rules.keywords._base import NONE, OPTIONAL, Ctx, Keyword
from rules.payload import PayloadChain, Step

DECODE_MAX = 65535        # BASE64_DECODE_MAX: bytes decoded at most (the default of `bytes`)
_U32 = (1 << 32) - 1

# detect-base64-decode.c decode_pattern (PCRE, \s and \w ASCII; matched at the start)
_SYNTAX = re.compile(r"\s*(bytes\s+(\d+),?)?\s*(offset\s+(\d+),?)?\s*(\w+)?", re.ASCII)

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_VALUE = [-1] * 256
for _i, _c in enumerate(_ALPHABET):
    _VALUE[_c] = _i
_PAD = 0x3D
_NOT_B64 = re.compile(rb"[^A-Za-z0-9+/=]")


def _block(b: list[int]) -> bytes:
    return bytes(((b[0] << 2 | b[1] >> 4) & 0xFF, (b[1] << 4 | b[2] >> 2) & 0xFF, (b[2] << 6 | b[3]) & 0xFF))


def decode_reference(src: bytes) -> bytes:
    """util-base64.c DecodeBase64 in BASE64_MODE_RFC4648, byte by byte (the specification
    `decode` is tested against)."""
    out = bytearray()
    b = [0, 0, 0, 0]
    n = padding = 0
    valid = True
    for c in src:
        v = _VALUE[c]
        if v < 0:
            if c != _PAD:
                valid = False
                break
            padding += 1
        b[n] = v if v > 0 else 0
        n += 1
        if n == 4:
            out += _block(b)[:3 - (padding if padding < 4 else 3)]
            b = [0, 0, 0, 0]
            n = padding = 0
    if 0 < n < 4 and not valid:
        out += _block(b)[:3 - (4 - n if n > 1 else 2)]
    if valid and n > 0:
        out += _block(b)[:n - 1]
    return bytes(out)


def decode(src: bytes) -> bytes:
    """What Suricata's base64_decode gives for `src` (see the module docstring); whole
    blocks without padding go through binascii, the rest as `decode_reference`."""
    bad = _NOT_B64.search(src)
    end = bad.start() if bad is not None else len(src)
    if b"=" in src[:end]:
        return decode_reference(src)
    whole = end - end % 4
    out = binascii.a2b_base64(src[:whole]) if whole else b""
    tail = src[whole:end]
    if not tail:
        return out
    b = [_VALUE[c] for c in tail] + [0] * (4 - len(tail))
    n = len(tail)
    if bad is not None:                  # stopped by an invalid byte: 1-2 characters 1 byte, 3 two
        return out + _block(b)[:3 - (4 - n if n > 1 else 2)]
    return out + _block(b)[:n - 1]       # the end of the data: the characters less one


class B64Decode(Step):
    """The base64_decode item; `items` are the keywords after base64_data."""

    __slots__ = ("nbytes", "offset", "rel", "items", "_chain")

    def __init__(self, nbytes: int, offset: int, rel: bool) -> None:
        self.nbytes = nbytes
        self.offset = offset
        self.rel = rel                     # from the end of the previous match
        self.items: list | None = None     # None: no base64_data
        self._chain: PayloadChain | None = None

    def __repr__(self) -> str:
        return f"B64Decode(bytes={self.nbytes}, offset={self.offset}, relative={self.rel}, items={self.items!r})"

    def decoded(self, buf: bytes, prev: int) -> bytes:
        data = memoryview(buf)[prev:] if self.rel else memoryview(buf)
        if self.offset:
            if self.offset >= len(data):
                return b""
            data = data[self.offset:]
        return decode(bytes(data[:self.nbytes]))

    def step(self, chain, i: int, buf: bytes, prev: int, state: list) -> bool:
        if not self.items:
            return False
        dec = self.decoded(buf, prev)
        if not dec:
            return False
        sub = self._chain
        if sub is None:
            sub = self._chain = PayloadChain(self.items)
        return sub.match_buffer(dec)       # a match ends this buffer's inspection


class _Sealed(dict):
    """The rule's buffers once base64_data was given: no other buffer may be selected (the
    packet payload may, with pkt_data)."""

    def __init__(self, buffers: dict, ctx: Ctx) -> None:
        super().__init__(buffers)
        self.ctx = ctx

    def setdefault(self, key, default=None):
        if key != "pkt":
            raise self.ctx.error(f"'{self.ctx.keyword}' selects a buffer after base64_data (Suricata: the rule "
                                 "buffer cannot be reset after base64_data)")
        return super().setdefault(key, default)


def _base64_decode(value: str | None, ctx: Ctx):
    if "_b64" in ctx.fields:
        raise ctx.error("a second base64_decode in a rule is not supported", unsupported="base64_decode:second")
    nbytes, offset, rel = 0, 0, False
    if value:
        m = _SYNTAX.match(value)
        if all(g is None for g in m.groups()):
            raise ctx.error("base64_decode: expected [bytes <n>][, offset <n>][, relative]")
        if m.group(2) is not None:
            nbytes = int(m.group(2))
            if nbytes > DECODE_MAX:
                raise ctx.error(f"base64_decode: bytes {nbytes} out of range (0..{DECODE_MAX})", m.start(2))
        if m.group(4) is not None:
            offset = int(m.group(4))
            if offset > _U32:
                raise ctx.error(f"base64_decode: offset {offset} out of range (0..{_U32})", m.start(4))
        if m.group(5) is not None:
            if m.group(5) != "relative":
                raise ctx.error(f"base64_decode: unknown option '{m.group(5)}' (expected bytes <n>, offset <n>, "
                                "relative, in that order)", m.start(5))
            rel = True
    item = B64Decode(nbytes or DECODE_MAX, offset, rel)
    target = ctx.items
    if ctx.moved is not None:              # after a legacy modifier: that content's buffer
        target = next(items for items in ctx.buffers.values() if any(it is ctx.moved for it in items))
    target.append(item)
    ctx.fields["_b64"] = item
    return item


def _base64_data(value, ctx: Ctx):
    item = ctx.fields.get("_b64")
    if item is None:
        raise ctx.error("base64_data needs a base64_decode before it")
    ctx.pkt_items()                        # the packet payload's items stay where they are
    if item.items is None:
        item.items = []
    if not isinstance(ctx.buffers, _Sealed):
        ctx.buffers = _Sealed(ctx.buffers, ctx)
    ctx.items = item.items
    ctx.buffer = "base64_data"
    ctx.moved = None
    return True


base64_decode = Keyword("base64_decode", _base64_decode, OPTIONAL)
base64_data = Keyword("base64_data", _base64_data, NONE)
