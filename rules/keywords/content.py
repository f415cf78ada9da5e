"""content and its modifiers: nocase, depth, offset, distance, within,
startswith, endswith, fast_pattern, rawbytes.

``content:"a|0D 0A|b"`` mixes text and hex bytes between pipes; ``\\"``,
``\\;``, ``\\\\`` and ``\\:`` escape.  A modifier applies to the content right
before it, and the combinations Suricata refuses are refused here too
(absolute offset/depth together with relative distance/within, within or
depth shorter than the pattern, a modifier given twice)."""
from __future__ import annotations

from rules.keywords._base import NONE, OPTIONAL, REQUIRED, Ctx, Keyword, parse_int, split_commas
from rules.payload import Content

_HEX = "0123456789abcdefABCDEF"
_ESCAPABLE = '";\\:'


def decode_content(value: str, ctx: Ctx) -> bytes:
    out = bytearray()
    i = 0
    n = len(value)
    hexmode = False
    hex_start = 0
    digits = ""
    digits_at = 0
    while i < n:
        c = value[i]
        if hexmode:
            if c == "|":
                if digits:
                    raise ctx.error("odd number of hex digits in content", digits_at)
                hexmode = False
            elif c in _HEX:
                if not digits:
                    digits_at = i
                digits += c
                if len(digits) == 2:
                    out.append(int(digits, 16))
                    digits = ""
            elif c in " \t":
                if digits:
                    raise ctx.error("odd number of hex digits in content", digits_at)
            else:
                raise ctx.error(f"invalid character '{c}' in hex part of content", i)
            i += 1
            continue
        if c == "|":
            hexmode = True
            hex_start = i
            i += 1
            continue
        if c == "\\":
            if i + 1 >= n:
                raise ctx.error("content ends with a lone '\\'", i)
            nxt = value[i + 1]
            if nxt not in _ESCAPABLE:
                raise ctx.error(f"invalid escape '\\{nxt}' in content (only \\\" \\; \\\\ \\: are allowed; "
                                "use |hex| for other bytes)", i)
            out.append(ord(nxt))
            i += 2
            continue
        if c == '"':
            raise ctx.error("unescaped '\"' inside content (write \\\")", i)
        if ord(c) > 127:   # rule files are UTF-8: the bytes on the wire are the encoded ones
            out.extend(c.encode("utf-8", "surrogatepass"))
        else:
            out.append(ord(c))
        i += 1
    if hexmode:
        raise ctx.error("unterminated hex part in content: missing '|'", hex_start)
    if not out:
        raise ctx.error("content is empty")
    return bytes(out)


def _content(value: str, ctx: Ctx):
    pat = decode_content(value, ctx)
    c = Content(pattern=pat, negated=ctx.negated, text=value, column=ctx.column)
    ctx.items.append(c)
    ctx.moved = None
    return c


def _nocase(value, ctx: Ctx):
    c = ctx.last_content()
    if c.nocase:
        raise ctx.error("nocase given twice for the same content")
    c.nocase = True
    c.lpattern = c.pattern.lower()
    return True


def _check_mix(c: Content, ctx: Ctx, relative: bool) -> None:
    if relative and (c.offset is not None or c.depth is not None or c.startswith):
        raise ctx.error(f"'{ctx.keyword}' (relative) cannot be combined with offset/depth/startswith "
                        "(absolute) on the same content")
    if not relative and (c.distance is not None or c.within is not None):
        raise ctx.error(f"'{ctx.keyword}' (absolute) cannot be combined with distance/within "
                        "(relative) on the same content")
    if getattr(c, ctx.keyword.lower()) is not None:     # keywords are case-insensitive (Within:2)
        raise ctx.error(f"{ctx.keyword} given twice for the same content")


def _depth(value: str, ctx: Ctx):
    c = ctx.last_content()
    _check_mix(c, ctx, False)
    n = parse_int(value, ctx, lo=1, hi=65535, what="depth")
    if n < len(c.pattern):
        raise ctx.error(f"depth {n} is smaller than the content length {len(c.pattern)}")
    c.depth = n
    return n


def _offset(value: str, ctx: Ctx):
    c = ctx.last_content()
    _check_mix(c, ctx, False)
    c.offset = parse_int(value, ctx, lo=0, hi=65535, what="offset")
    return c.offset


def _distance(value: str, ctx: Ctx):
    c = ctx.last_content()
    _check_mix(c, ctx, True)
    c.distance = parse_int(value, ctx, lo=-65535, hi=65535, what="distance")
    return c.distance


def _within(value: str, ctx: Ctx):
    c = ctx.last_content()
    _check_mix(c, ctx, True)
    n = parse_int(value, ctx, lo=1, hi=65535, what="within")
    if n < len(c.pattern):
        raise ctx.error(f"within {n} is smaller than the content length {len(c.pattern)}")
    c.within = n
    return n


def _startswith(value, ctx: Ctx):
    c = ctx.last_content()
    if c.startswith:
        raise ctx.error("startswith given twice for the same content")
    if c.offset is not None or c.depth is not None or c.relative:
        raise ctx.error("startswith cannot be combined with offset/depth/distance/within")
    c.startswith = True
    c.offset = 0
    c.depth = len(c.pattern)
    return True


def _endswith(value, ctx: Ctx):
    c = ctx.last_content()
    c.endswith = True                 # repeating it changes nothing (Suricata accepts it)
    return True


def _fast_pattern(value: str | None, ctx: Ctx):
    c = ctx.last_content()
    if "fast_pattern" in ctx.seen:
        raise ctx.error("fast_pattern can only be set on one content per rule")
    ctx.seen.add("fast_pattern")
    c.fast_pattern = True
    if value is None:
        return True
    v = value.strip()
    if v == "only":
        c.fast_pattern_only = True
        return "only"
    parts = split_commas(value)
    if len(parts) != 2:
        raise ctx.error("fast_pattern takes no value, 'only', or 'offset,length'")
    off = parse_int(parts[0][0], ctx, lo=0, hi=65535, what="fast_pattern offset", at=parts[0][1])
    ln = parse_int(parts[1][0], ctx, lo=1, hi=65535, what="fast_pattern length", at=parts[1][1])
    if off + ln > len(c.pattern):
        raise ctx.error(f"fast_pattern {off},{ln} goes past the end of the {len(c.pattern)}-byte content")
    c.fast_pattern_chop = (off, ln)
    return (off, ln)


def _rawbytes(value, ctx: Ctx):
    # packet payloads are raw already: accepted, no effect (as in Suricata for packet rules)
    c = ctx.last_content()
    c.rawbytes = True
    return True


content = Keyword("content", _content, REQUIRED, quotes="mandatory", negation=True)
nocase = Keyword("nocase", _nocase, NONE)
depth = Keyword("depth", _depth)
offset = Keyword("offset", _offset)
distance = Keyword("distance", _distance)
within = Keyword("within", _within)
startswith = Keyword("startswith", _startswith, NONE)
endswith = Keyword("endswith", _endswith, NONE)
fast_pattern = Keyword("fast_pattern", _fast_pattern, OPTIONAL)
rawbytes = Keyword("rawbytes", _rawbytes, NONE)
