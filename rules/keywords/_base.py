"""What every keyword module shares: the `Keyword` table entry, the parse
context `Ctx` the parser hands to each keyword, and small value parsers.

A keyword module exposes one `Keyword` per keyword name; the table in
`rules/keywords/__init__.py` lists them all.  Each entry also carries the
flags the engine needs (`iponly`, `requires`), so the engine keeps no lists
of keyword names of its own.  `Keyword.parse(value, ctx)`
validates the value and records its effect on the rule being built through
`ctx` (a check, a payload item, a Rule field).  Errors go through
`ctx.error(...)` so they carry the exact column.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from rules.errors import RuleError

# value modes
NONE = "none"            # bare keyword: `nocase;`
REQUIRED = "required"    # `sid:1;`
OPTIONAL = "optional"    # `fast_pattern;` or `fast_pattern:only;`


@dataclass(frozen=True, slots=True)
class Keyword:
    name: str
    parse: Callable[[str | None, "Ctx"], Any]
    value: str = REQUIRED
    quotes: str = "no"           # "mandatory" | "optional" | "no": surrounding quotes
    negation: bool = False       # `keyword:!value` allowed
    # engine flags, as Suricata's sigmatch table carries them:
    iponly: bool = False         # a rule made only of such keywords (and a header) is IP-only:
                                 # decided on the first packet of each flow direction, for the flow
    requires: str = ""           # "packet": the rule inspects packet payloads, never the TCP stream
                                 # "stream": only the reassembled stream; "both": the stream, then the
                                 # packet; "": no say (Suricata's SIG_FLAG_REQUIRE_PACKET / _STREAM)


@dataclass(slots=True)
class Ctx:
    """Parse state of one rule: what keywords read and write."""

    vars: dict
    classification: dict          # name -> (description, priority)
    file: str = ""
    line: int = 1
    # set by the parser for each option
    keyword: str = ""
    column: int = 0               # 1-based column of the value (or of the keyword when no value)
    negated: bool = False
    # rule being built
    fields: dict = field(default_factory=dict)    # Rule field name -> value
    checks: list = field(default_factory=list)    # (cost, order, fn)
    items: list = field(default_factory=list)     # payload items in order, of the current buffer
    buffer: str = "pkt"                            # current buffer: "pkt" or a sticky buffer ("dns.query")
    buffers: dict = field(default_factory=dict)   # sticky buffer name -> its item list
    transforms: dict = field(default_factory=dict)  # sticky buffer name -> [bytes -> bytes]
    flowbits: list = field(default_factory=list)  # post-match FlowbitOp
    options: list = field(default_factory=list)   # (keyword, spec)
    ip_protos: frozenset | None = None
    proto: str = ""
    seen: set = field(default_factory=set)         # keywords seen (for "only once" rules)
    # app layer (rules.applayer): the protocol the rule's app keywords need ("" none), and the
    # conditions on a transaction that are not buffers (urilen, tls.version, dns.opcode, ...):
    # (to_server, progress, fn(tx) -> bool), see app_check
    app_proto: str = ""
    app_checks: list = field(default_factory=list)
    moved: Any = None            # the content a legacy modifier (http_uri, ...) just moved to its buffer

    def error(self, message: str, at: int = 0, *, unsupported: str | None = None) -> RuleError:
        return RuleError(message, file=self.file, line=self.line, column=self.column + at,
                         keyword=self.keyword, unsupported=unsupported)

    def add_check(self, fn: Callable[[Any], bool], cost: int = 1) -> None:
        self.checks.append((cost, len(self.checks), fn))

    def once(self) -> None:
        if self.keyword in self.seen:
            raise self.error(f"'{self.keyword}' can only be used once per rule")
        self.seen.add(self.keyword)

    def pkt_items(self) -> list:
        return self.buffers.setdefault("pkt", self.items if self.buffer == "pkt" else [])

    def switch(self, name: str) -> None:
        """Make `name` the buffer later payload keywords apply to."""
        self.pkt_items()
        self.items = self.buffers.setdefault(name, [])
        self.buffer = name
        self.moved = None

    def need_app(self, proto: str) -> None:
        """The rule's keyword needs app-layer protocol `proto`: refused when the rule already
        needs another one (the header's protocol or an earlier keyword's)."""
        if self.app_proto and self.app_proto != proto:
            raise self.error(f"'{self.keyword}' is a {proto} keyword, the rule already inspects {self.app_proto}")
        self.app_proto = proto

    def app_check(self, proto: str, to_server: bool | None, progress: int, fn: Callable[[Any], bool]) -> None:
        """A condition on the transaction (not a buffer): `fn(tx)` is tested once the
        transaction's `to_server` side reached `progress` (rules.applayer.base.Tx);
        None: either side, the direction the rule is evaluated on."""
        self.need_app(proto)
        self.app_checks.append((to_server, progress, fn))

    def last_content(self):
        from rules.payload import Content
        # the most recent content of the current buffer, even with other
        # keywords (bsize, isdataat, ...) in between, as Suricata looks it up; or the one a
        # legacy modifier moved to its buffer (`content:"x"; http_uri; nocase;`)
        if self.moved is not None:
            return self.moved
        for it in reversed(self.items):
            if isinstance(it, Content):
                return it
        raise self.error(f"'{self.keyword}' needs a preceding content")


def unescape(value: str) -> str:
    """`\\;` `\\"` `\\\\` (and `\\:`/`\\,`) become the bare character."""
    if "\\" not in value:
        return value
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_int(text: str, ctx: Ctx, *, lo: int | None = None, hi: int | None = None, what: str = "value",
              at: int = 0) -> int:
    t = text.strip()
    lead = len(text) - len(text.lstrip())
    try:
        if t.lower().startswith(("0x", "-0x")):
            n = int(t, 16)
        else:
            if not t.lstrip("-+").isdigit():
                raise ValueError
            n = int(t, 10)
    except ValueError:
        raise ctx.error(f"{what} '{t}' is not a number", at + lead) from None
    if lo is not None and n < lo or hi is not None and n > hi:
        rng = f"{lo if lo is not None else ''}..{hi if hi is not None else ''}"
        raise ctx.error(f"{what} {n} out of range ({rng})", at + lead)
    return n


def split_commas(value: str) -> list[tuple[str, int]]:
    """Split on commas, returning (stripped part, offset of the part in value)."""
    out = []
    pos = 0
    for part in value.split(","):
        lead = len(part) - len(part.lstrip())
        out.append((part.strip(), pos + lead))
        pos += len(part) + 1
    return out


def parse_uint_cmp(value: str, ctx: Ctx, *, hi: int, what: str) -> tuple[str, Callable[[int], bool]]:
    """Suricata's integer comparison forms: ``N``, ``=N``, ``!N``, ``!=N``,
    ``<N``, ``<=N``, ``>N``, ``>=N`` and the exclusive ranges ``A<>B`` / ``A-B``.
    Returns (normalised text, predicate)."""
    v = value.strip()
    lead = len(value) - len(value.lstrip())

    def num(t: str, at: int) -> int:
        return parse_int(t, ctx, lo=0, hi=hi, what=what, at=lead + at)

    if not v:
        raise ctx.error(f"{what}: missing value")
    for sep in ("<>", "-"):
        if sep in v and not v.startswith(("<", ">", "!", "=")):
            a, _, b = v.partition(sep)
            lo_, hi_ = num(a, 0), num(b, len(a) + len(sep))
            if lo_ >= hi_:
                raise ctx.error(f"{what}: range {lo_}{sep}{hi_} is empty (the bounds are exclusive)", lead)
            return f"{lo_}<>{hi_}", (lambda x, a=lo_, b=hi_: a < x < b)
    for op in ("<=", ">=", "!=", "<", ">", "=", "!"):
        if v.startswith(op):
            n = num(v[len(op):], len(op))
            if op == "<":
                return f"<{n}", (lambda x, n=n: x < n)
            if op == "<=":
                return f"<={n}", (lambda x, n=n: x <= n)
            if op == ">":
                return f">{n}", (lambda x, n=n: x > n)
            if op == ">=":
                return f">={n}", (lambda x, n=n: x >= n)
            if op in ("!", "!="):
                return f"!{n}", (lambda x, n=n: x != n)
            return f"{n}", (lambda x, n=n: x == n)
    n = num(v, 0)
    return f"{n}", (lambda x, n=n: x == n)
