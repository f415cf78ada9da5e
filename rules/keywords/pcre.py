"""pcre:"/regex/flags" on the packet payload, run by PCRE2 as Suricata runs it.

The pattern goes to PCRE2 (the `pcre2` binding, JIT-compiled) as written, in
8-bit non-UTF mode, with PCRE2's own syntax rules -- none of the binding's
Python-style changes (\\u escapes, no \\C).  Flags: i s m x -> CASELESS, DOTALL,
MULTILINE, EXTENDED; E -> DOLLAR_ENDONLY; G -> UNGREEDY; R makes the search
start at the end of the previous match (``^`` anchors there, as in Suricata); A
anchors at the start; B (rawbytes) has no effect on packet payloads.  Matching
is bounded as Suricata's default configuration bounds it (pcre.match-limit
3500, pcre.match-limit-recursion 1500, set in the pattern as
``(*LIMIT_MATCH=3500)(*LIMIT_DEPTH=1500)``); the O flag lifts those to PCRE2's
own defaults, as Suricata's O.  A match that hits a limit is no match, as in
Suricata, and is counted (`Pcre.limit_hits`, the engine's
`detect.pcre_limit_hits`): a ReDoS-shaped pattern costs microseconds, not the
seconds Python's `re` spent.  The HTTP flags move the pcre into an HTTP buffer,
as the legacy content modifiers do (`_HTTP_FLAGS`: U http.uri, I http.uri.raw, P
http.request_body, Q http.response_body, H http.header, D http.header.raw, M http.method,
C http.cookie, S http.stat_code, Y http.stat_msg, V http.user_agent, W http.host,
Z http.host.raw); one such flag at most; after a sticky buffer only that buffer's
own flag (`http.uri; ... pcre:"/x/U"`, as ET writes it), as Suricata checks.
A pattern PCRE2 refuses is an invalid rule (Suricata refuses it too), with the
offset PCRE2 names.
"""
from __future__ import annotations

import re

import pcre2
from pcre2 import _cy as _pcre2_cy

from rules.keywords._base import REQUIRED, Ctx, Keyword
from rules.payload import Content, Pcre

# PCRE2 compile options (pcre2.h)
PCRE2_CASELESS = 0x00000008
PCRE2_DOTALL = 0x00000020
PCRE2_MULTILINE = 0x00000400
PCRE2_EXTENDED = 0x00000080
PCRE2_DOLLAR_ENDONLY = 0x00000010
PCRE2_UNGREEDY = 0x00040000
PCRE2_ALT_BSUX = 0x00000002            # the binding turns these two on for Python's sake;
PCRE2_NEVER_BACKSLASH_C = 0x00100000   # Suricata's PCRE2 has neither
_FLAGS = {"i": PCRE2_CASELESS, "s": PCRE2_DOTALL, "m": PCRE2_MULTILINE, "x": PCRE2_EXTENDED,
          "E": PCRE2_DOLLAR_ENDONLY, "G": PCRE2_UNGREEDY}
_NOOP = {"B"}
_HTTP_FLAGS = {"U": "http.uri", "I": "http.uri.raw", "P": "http.request_body", "Q": "http.response_body",
               "H": "http.header", "D": "http.header.raw", "M": "http.method", "C": "http.cookie",
               "S": "http.stat_code", "Y": "http.stat_msg", "V": "http.user_agent", "W": "http.host",
               "Z": "http.host.raw"}
_SAME = {"Q": ("http.response_body", "file.data")}     # after these sticky buffers the flag repeats them
# Suricata modifiers that pick an app-layer buffer ipsbridge does not have yet
_UNSUPPORTED = set("UPHDMCSYVWQIKJ")
MATCH_LIMIT = 3500                      # Suricata's default pcre.match-limit
DEPTH_LIMIT = 1500                      # Suricata's default pcre.match-limit-recursion
LIMITS = f"(*LIMIT_MATCH={MATCH_LIMIT})(*LIMIT_DEPTH={DEPTH_LIMIT})".encode()


_MINLESS = re.compile(r"\{,[0-9]+\}")


def pcre_10_42(body: str) -> str:
    """The bundled PCRE2 is newer than Suricata 7's (10.42): since 10.43 ``{,n}`` is a
    quantifier, in 10.42 it is the literal text.  Escape such a brace outside character
    classes and \\Q..\\E, so the pattern means what it means to Suricata."""
    out = []
    i, n = 0, len(body)
    in_class = False
    while i < n:
        c = body[i]
        if c == "\\":
            if body.startswith("\\Q", i):
                j = body.find("\\E", i + 2)
                j = n if j < 0 else j + 2
                out.append(body[i:j])
                i = j
                continue
            out.append(body[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            elif body.startswith("[:", i):            # a POSIX class inside: skip to its ':]'
                j = body.find(":]", i + 2)
                if j > 0:
                    out.append(body[i:j + 2])
                    i = j + 2
                    continue
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            j = i + 1
            if j < n and body[j] == "^":
                j += 1
            if j < n and body[j] == "]":             # a leading ']' is a member
                j += 1
            out.append(body[i:j])
            i = j
            continue
        if c == "{" and _MINLESS.match(body, i):
            out.append("\\{")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


class PcreRegex:
    """A compiled PCRE2 pattern with the two calls the payload matcher makes, each answering
    the (start, end) of the whole match or None; a match limit hit is no match, counted in
    `limit_hits` and in each cell of `tallies` (the detectors that use it,
    rules.detect.Detector.stats: one read per report).  The binding's compiled `match` is
    called directly: its Python layer (pcre2.Pattern.search) checked and copied the subject
    and built a Match object on every call, 2-3 us of a 4-5 us pcre on an HTTP buffer."""

    __slots__ = ("_options", "_pattern", "_code", "limit_hits", "tallies")

    def __init__(self, pattern: bytes, options: int) -> None:
        code = _pcre2_cy.compile(pattern, options, PCRE2_ALT_BSUX | PCRE2_NEVER_BACKSLASH_C)
        _pcre2_cy.jit_compile(code)
        self._pattern = pattern
        self._code = code
        self._options = options
        self.limit_hits = 0
        self.tallies: tuple[list[int], ...] = ()

    def __reduce__(self):
        """Pickled (a rule reload ships the compiled rules, bridge.reload) as its source: the
        compiled code cannot be, so the pattern is compiled again here, with our options
        (CASELESS, ...)."""
        return _unpickle_regex, (self._pattern, self._options, self.limit_hits)

    def search(self, buf, pos: int = 0) -> tuple[int, int] | None:
        """The first match in `buf` (bytes-like) from `pos` on: its (start, end), or None."""
        return self._run(buf, pos, 0)

    def match(self, buf, pos: int = 0) -> tuple[int, int] | None:
        """A match starting at `pos`: its (start, end), or None."""
        return self._run(buf, pos, _ANCHORED)

    def _run(self, buf, pos: int, options: int) -> tuple[int, int] | None:
        subject = buf if type(buf) is bytes else bytes(buf)
        n = len(subject)
        try:
            md = _pcre2_cy.match(self._code, subject, n, pos if pos < n else n, _NO_CONTEXT, options)[0]
        except pcre2.LibraryError:
            self._limit_hit()
            return None
        return _span(md, subject, 0) if md else None

    def _limit_hit(self) -> None:
        self.limit_hits += 1
        for cell in self.tallies:
            cell[0] += 1


_ANCHORED = int(_pcre2_cy.MatchOption.ANCHORED)
_NO_CONTEXT = _pcre2_cy.create_match_context()      # (no callout; the limits are in the pattern)
_span = _pcre2_cy.match_substring_span_bynumber


def _unpickle_regex(pattern: bytes, options: int, limit_hits: int) -> PcreRegex:
    rx = PcreRegex(pattern, options)
    rx.limit_hits = limit_hits
    return rx


def _pcre(value: str, ctx: Ctx):
    v = value
    if not v.startswith("/"):
        raise ctx.error("pcre must look like \"/regex/flags\"")
    end = v.rfind("/")
    if end == 0:
        raise ctx.error("pcre is missing its closing '/'")
    body, mods = v[1:end], v[end + 1:]
    flags = 0
    relative = anchored = override = False
    target = None                     # (flag, buffer) of an HTTP flag
    for k, m in enumerate(mods):
        at = end + 1 + k
        if m in _FLAGS:
            flags |= _FLAGS[m]
        elif m == "R":
            relative = True
        elif m == "A":
            anchored = True
        elif m == "O":
            override = True
        elif m in _NOOP:
            pass
        elif m in _HTTP_FLAGS:
            if target is not None:
                raise ctx.error(f"pcre modifier '{m}' after '{target[0]}': one HTTP buffer per pcre", at)
            if ctx.buffer != "pkt" and ctx.buffer.split("#")[0] not in _SAME.get(m, (_HTTP_FLAGS[m],)):
                raise ctx.error(f"pcre modifier '{m}' selects {_HTTP_FLAGS[m]}, but the sticky buffer "
                                f"'{ctx.buffer}' is set (write the pcre after '{_HTTP_FLAGS[m]};' instead)", at)
            # (after that buffer's own sticky keyword, the flag just repeats it: Suricata accepts it)
            target = (m, _HTTP_FLAGS[m]) if ctx.buffer == "pkt" else None
        else:                         # every flag Suricata 7 knows is handled above: a typo
            raise ctx.error(f"unknown pcre modifier '{m}' (Suricata's are i s m x A E G R O B and the HTTP "
                            f"flags {''.join(_HTTP_FLAGS)})", at)
    if not body:
        raise ctx.error("pcre regex is empty", 1)
    items = ctx.items if target is None else ctx.buffers.get(target[1], [])
    if relative and not any(isinstance(i, (Content, Pcre)) for i in items):
        # Suricata refuses this too (byte_jump/isdataat do not count as a match)
        raise ctx.error("pcre with R (relative) needs a content or pcre before it")
    prefix = b"" if override else LIMITS
    try:
        rx = PcreRegex(prefix + pcre_10_42(body).encode("latin-1", "backslashreplace"), flags)
    except pcre2.PatternError as e:
        # "compilation failed at position N; why": N counts from our prefix
        text = str(e)
        pos = 0
        if text.startswith("compilation failed at position "):
            num, _, why = text[len("compilation failed at position "):].partition(";")
            pos = max(0, int(num) - len(prefix)) if num.isdigit() else 0
            text = why.strip()
        raise ctx.error(f"invalid pcre: {text} (at offset {pos} of the regex)", 1 + min(pos, len(body))) from None
    p = Pcre(regex=rx, source=v, negated=ctx.negated, relative=relative, anchored=anchored)
    if target is None:
        ctx.items.append(p)
    else:
        ctx.need_app("http")
        ctx.buffers.setdefault(target[1], []).append(p)
    return p


pcre = Keyword("pcre", _pcre, REQUIRED, quotes="mandatory", negation=True)
