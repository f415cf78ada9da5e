"""byte_test and byte_jump: read an integer out of the payload (binary, or
ASCII with ``string,dec|hex|oct``), then compare it (byte_test) or move the
relative position by it (byte_jump).  ``dce`` needs DCERPC state ->
unsupported; values taken from byte_extract variables are not supported
(byte_extract is not a keyword here yet)."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_int, split_commas
from rules.payload import ByteJump, ByteTest

_OPS = ("<=", ">=", "<", ">", "=", "&", "^")
_BASES = {"dec": 10, "hex": 16, "oct": 8}


def _common(p: str, at: int, ctx: Ctx, st: dict) -> bool:
    """Options shared by both keywords; True when `p` was one of them."""
    if p == "relative":
        st["relative"] = True
    elif p in ("big", "little"):
        if "endian" in st:
            raise ctx.error("endianness given twice", at)
        st["endian"] = p
    elif p == "dce":
        raise ctx.error(f"unsupported {ctx.keyword} option 'dce' (needs DCERPC state)", at,
                        unsupported=f"{ctx.keyword}:dce")
    elif p == "string":
        st["string"] = True
    elif p in _BASES:
        st["base"] = _BASES[p]
    elif p.startswith("bitmask"):
        st["bitmask"] = parse_int(p[len("bitmask"):], ctx, lo=1, hi=(1 << 32) - 1, what="bitmask",
                                  at=at + len("bitmask"))
    else:
        return False
    return True


def _base(st: dict, ctx: Ctx, nbytes: int) -> int | None:
    if st.get("base") and not st.get("string"):
        raise ctx.error("dec/hex/oct need 'string' before them")
    if st.get("string"):
        if nbytes > 23:                # Suricata 7 accepts up to 23 characters (checked with suricata -T)
            raise ctx.error(f"{ctx.keyword} converts at most 23 bytes as a string")
        return st.get("base", 10)
    if nbytes > 8:
        raise ctx.error(f"{ctx.keyword} reads at most 8 bytes without 'string'")
    return None


def _byte_test(value: str, ctx: Ctx):
    parts = split_commas(value)
    if len(parts) < 4:
        raise ctx.error("byte_test needs at least: bytes, operator, value, offset")
    # 0 with `string`: the number is the rest of the buffer (Suricata 7, checked with suricata -r:
    # http.content_len; byte_test:0,>,450000,0,string,dec; matches "450001")
    nbytes = parse_int(parts[0][0], ctx, lo=0, hi=23, what="byte count", at=parts[0][1])
    op, op_at = parts[1]
    negated = op.startswith("!")
    if negated:
        op = op[1:].strip() or "="
    if op == "!=":
        negated, op = True, "="
    if op not in _OPS:
        raise ctx.error(f"unknown byte_test operator '{parts[1][0]}' (use < > = <= >= & ^, optionally with !)",
                        op_at)
    ref = parse_int(parts[2][0], ctx, lo=0, hi=(1 << 64) - 1, what="byte_test value", at=parts[2][1])
    off = parse_int(parts[3][0], ctx, lo=-65535, hi=65535, what="byte_test offset", at=parts[3][1])
    st: dict = {}
    for p, at in parts[4:]:
        if not _common(p, at, ctx, st):
            raise ctx.error(f"unknown byte_test option '{p}'", at)
    if nbytes == 0 and not st.get("string"):
        raise ctx.error("byte count 0 (the rest of the buffer) needs 'string'", parts[0][1])
    item = ByteTest(nbytes=nbytes, op=op, negated=negated, value=ref, offset=off,
                    relative=st.get("relative", False), little=st.get("endian") == "little",
                    base=_base(st, ctx, nbytes), bitmask=st.get("bitmask"))
    ctx.items.append(item)
    return item


def _byte_jump(value: str, ctx: Ctx):
    parts = split_commas(value)
    if len(parts) < 2:
        raise ctx.error("byte_jump needs at least: bytes, offset")
    nbytes = parse_int(parts[0][0], ctx, lo=1, hi=23, what="byte count", at=parts[0][1])
    off = parse_int(parts[1][0], ctx, lo=-65535, hi=65535, what="byte_jump offset", at=parts[1][1])
    st: dict = {}
    item = ByteJump(nbytes=nbytes, offset=off)
    for p, at in parts[2:]:
        if _common(p, at, ctx, st):
            continue
        if p == "align":
            item.align = True
        elif p == "from_beginning":
            item.from_beginning = True
        elif p == "from_end":
            item.from_end = True
        elif p.startswith("multiplier"):
            item.multiplier = parse_int(p[len("multiplier"):], ctx, lo=1, hi=65535, what="multiplier",
                                        at=at + len("multiplier"))
        elif p.startswith("post_offset"):
            item.post_offset = parse_int(p[len("post_offset"):], ctx, lo=-65535, hi=65535, what="post_offset",
                                         at=at + len("post_offset"))
        else:
            raise ctx.error(f"unknown byte_jump option '{p}'", at)
    if item.from_beginning and item.from_end:
        raise ctx.error("byte_jump: from_beginning and from_end exclude each other")
    item.relative = st.get("relative", False)
    item.little = st.get("endian") == "little"
    item.base = _base(st, ctx, nbytes)
    item.bitmask = st.get("bitmask")
    ctx.items.append(item)
    return item


byte_test = Keyword("byte_test", _byte_test, REQUIRED)
byte_jump = Keyword("byte_jump", _byte_jump, REQUIRED)
