"""pcre:"/regex/flags" on the packet payload, run with Python's `re` on bytes.

Flags i s m x map to re flags; R makes the search start at the end of the
previous match (and ``^`` anchor there, as in Suricata); A anchors at the
start; B (rawbytes) and O (match-limit override) are accepted with no effect.
The HTTP/buffer flags (U, P, H, ...) select app-layer buffers ipsbridge does
not have yet -> "unsupported pcre modifier".  A few PCRE-only spellings are
translated (``(?<name>``, ``\\z``, ``\\Z``, ``\\x{..}``, ``\\Q..\\E``, ``\\e``, ``\\h``,
POSIX classes ``[[:digit:]]``, a literal ``{,n}``, ``[`` inside a class);
anything Python's `re` still refuses is reported as unsupported pcre syntax.
"""
from __future__ import annotations

import re
import warnings

from rules.keywords._base import REQUIRED, Ctx, Keyword
from rules.payload import Content, Pcre

_FLAGS = {"i": re.IGNORECASE, "s": re.DOTALL, "m": re.MULTILINE, "x": re.VERBOSE}
_NOOP = {"B", "O"}
# Suricata modifiers that pick an app-layer buffer or change PCRE semantics we do not emulate
_UNSUPPORTED = set("UPHDMCSYVWQIKGEJ")


def _bytes(*spans: str) -> frozenset[int]:
    out: set[int] = set()
    for sp in spans:
        if len(sp) == 3 and sp[1] == "-":
            out.update(range(ord(sp[0]), ord(sp[2]) + 1))
        else:
            out.update(map(ord, sp))
    return frozenset(out)


# PCRE's POSIX classes, ASCII (no UCP), as byte sets
_POSIX = {
    "alnum": _bytes("a-z", "A-Z", "0-9"),
    "alpha": _bytes("a-z", "A-Z"),
    "ascii": _bytes("\x00-\x7f"),
    "blank": _bytes(" \t"),
    "cntrl": _bytes("\x00-\x1f", "\x7f"),
    "digit": _bytes("0-9"),
    "graph": _bytes("!-~"),
    "lower": _bytes("a-z"),
    "print": _bytes(" -~"),
    "punct": _bytes("!-/", ":-@", "[-`", "{-~"),
    "space": _bytes(" \t\n\v\f\r"),
    "upper": _bytes("A-Z"),
    "word": _bytes("a-z", "A-Z", "0-9", "_"),
    "xdigit": _bytes("0-9", "a-f", "A-F"),
}


def _class_body(values: frozenset[int]) -> str:
    """Byte set as character-class ranges (\\xHH-\\xHH), for inside [...]."""
    out, vals, k = [], sorted(values), 0
    while k < len(vals):
        j = k
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        out.append("\\x%02x" % vals[k] if j == k else "\\x%02x-\\x%02x" % (vals[k], vals[j]))
        k = j + 1
    return "".join(out)


def translate(body: str, multiline: bool = False) -> str:
    """PCRE spelling -> Python `re` spelling.  Tracks character classes, where
    PCRE differs again: POSIX ``[:name:]`` / ``[:^name:]`` (expanded to byte
    ranges), a literal ``[``, ``\\h`` as two members.  Outside classes, ``{,n}``
    is literal text in PCRE2 10.42 (Suricata 7's) but a quantifier in Python.
    With `multiline` (the m flag), ``^`` does not match after a newline that
    ends the subject in PCRE (it does in Python)."""
    out = []
    i = 0
    n = len(body)
    in_class = False
    while i < n:
        c = body[i]
        if c == "\\" and i + 1 < n:
            d = body[i + 1]
            if d == "z":
                out.append(r"\Z")
            elif d == "Z":
                out.append(r"(?=\n?\Z)")
            elif d == "e":
                out.append(r"\x1b")
            elif d == "h":
                out.append(r" \t" if in_class else r"[ \t]")
            elif d == "x" and i + 2 < n and body[i + 2] == "{":
                end = body.find("}", i + 3)
                if end < 0:
                    out.append(body[i:i + 2])
                else:
                    out.append(r"\x%02x" % int(body[i + 3:end] or "0", 16))
                    i = end + 1
                    continue
            elif d == "Q":
                end = body.find(r"\E", i + 2)
                lit = body[i + 2:] if end < 0 else body[i + 2:end]
                out.append(re.escape(lit))
                i = n if end < 0 else end + 2
                continue
            else:
                out.append(body[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "[" and body.startswith(":", i + 1):
                end = body.find(":]", i + 2)
                if end > 0:
                    name = body[i + 2:end]
                    neg = name.startswith("^")
                    vals = _POSIX.get(name[1:] if neg else name)
                    if vals is None:
                        raise re.error(f"unknown POSIX class name [:{name}:]")
                    out.append(_class_body(frozenset(range(256)) - vals if neg else vals))
                    i = end + 2
                    continue
            if c == "]":
                in_class = False
            elif c == "[":
                c = "\\["                     # literal in PCRE; Python would warn (nested sets)
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and body[i] == "^":
                out.append("^")
                i += 1
            if i < n and body[i] == "]":     # a leading ] is a member
                out.append("\\]")
                i += 1
            continue
        if c == "^" and multiline:
            out.append(r"(?:\A|(?<=\n)(?!\Z))")
            i += 1
            continue
        if c == "{" and body.startswith(",", i + 1):
            out.append("\\{")
            i += 1
            continue
        if body.startswith("(?<", i) and i + 3 < n and body[i + 3] not in "=!":
            out.append("(?P<")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _pcre(value: str, ctx: Ctx):
    v = value
    if not v.startswith("/"):
        raise ctx.error("pcre must look like \"/regex/flags\"")
    end = v.rfind("/")
    if end == 0:
        raise ctx.error("pcre is missing its closing '/'")
    body, mods = v[1:end], v[end + 1:]
    flags = 0
    relative = anchored = False
    for k, m in enumerate(mods):
        at = end + 1 + k
        if m in _FLAGS:
            flags |= _FLAGS[m]
        elif m == "R":
            relative = True
        elif m == "A":
            anchored = True
        elif m in _NOOP:
            pass
        elif m in _UNSUPPORTED:
            raise ctx.error(f"unsupported pcre modifier '{m}'", at, unsupported=f"pcre-modifier:{m}")
        else:
            raise ctx.error(f"unsupported pcre modifier '{m}'", at, unsupported=f"pcre-modifier:{m}")
    if not body:
        raise ctx.error("pcre regex is empty", 1)
    if relative and not any(isinstance(i, (Content, Pcre)) for i in ctx.items):
        # Suricata refuses this too (byte_jump/isdataat do not count as a match)
        raise ctx.error("pcre with R (relative) needs a content or pcre before it")
    try:
        with warnings.catch_warnings():
            # Python warns about PCRE-valid classes such as [--/] (future set syntax); PCRE reads them literally
            warnings.simplefilter("ignore", FutureWarning)
            rx = re.compile(translate(body, bool(flags & re.MULTILINE)).encode("latin-1", "backslashreplace"), flags)
    except (re.error, OverflowError, ValueError, RecursionError) as e:
        raise ctx.error(f"unsupported pcre syntax (Python re: {e})", 1, unsupported="pcre-syntax") from None
    p = Pcre(regex=rx, source=v, negated=ctx.negated, relative=relative, anchored=anchored)
    ctx.items.append(p)
    return p


pcre = Keyword("pcre", _pcre, REQUIRED, quotes="mandatory", negation=True)
