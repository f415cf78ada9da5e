"""Suricata rule text -> `Rule`.

``action proto src sport direction dst dport (keyword:value; keyword; ...)``

The header is split on whitespace outside ``[...]``; addresses and ports are
compiled by `rules.addr`.  Options are split at the first ``;`` not escaped by
``\\`` (so ``\\;`` and ``\\"`` may appear in values); each keyword is looked up
in the one table `rules.keywords.REGISTRY`, whose entry says whether a value
is required, whether quotes are mandatory and whether ``!`` may prefix it, and
compiles the value.  Every keyword missing from the table fails the rule with
"unsupported keyword 'x'" at its column (all missing ones are listed in
`RuleError.missing` so the loader can count them).

Columns in errors are 1-based positions in `text` as given (the loader maps
them back to physical lines for rules continued with a trailing ``\\``).
"""
from __future__ import annotations

import difflib

from rules import addr as _addr
from rules.errors import RuleError
from rules.keywords import REGISTRY, SURICATA_KEYWORDS
from rules.keywords._base import NONE, REQUIRED, Ctx
from rules.keywords.tcp import tcp_header
from rules.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from rules.payload import Content, PayloadChain, choose_fast_pattern
from rules.applayer import registry as _app
from rules.rule import ACTION_RANK, AppBuf, AppSpec, Rule
from rules.settings import DEFAULT_VARS

# sticky buffer -> extractor(payload, packet) -> buffers to inspect
EXTRACTORS = {"tcp.hdr": tcp_header}


# header protocol -> IP protocol numbers (None: any IP packet)
PROTOS: dict[str, frozenset[int] | None] = {
    "ip": None,
    "ipv4": None,
    "ipv6": None,
    "tcp": frozenset({IPPROTO_TCP}),
    "udp": frozenset({IPPROTO_UDP}),
    "icmp": frozenset({IPPROTO_ICMP, IPPROTO_ICMPV6}),   # Suricata: icmp covers ICMPv4 and ICMPv6
    "icmpv4": frozenset({IPPROTO_ICMP}),
    "icmpv6": frozenset({IPPROTO_ICMPV6}),
    "sctp": frozenset({132}),
    "pkthdr": None,          # any packet, whatever its protocol (decoder-event rules)
    "tcp-pkt": frozenset({IPPROTO_TCP}),     # TCP, payload keywords on packets only
    "tcp-stream": frozenset({IPPROTO_TCP}),  # TCP, payload keywords on the stream only
}
# app-layer protocols ipsbridge parses (rules.applayer.registry): the header name admits
# the IP protocols the app protocol runs over; the flow must be detected as that protocol
for _name, _proto in _app.HEADER_PROTOS.items():
    PROTOS.setdefault(_name, frozenset(_app.PROTOCOLS[_proto].IPPROTOS))
# header protocols that fix what payload keywords inspect (Suricata's tcp-pkt / tcp-stream)
PROTO_REQUIRES = {"tcp-pkt": "packet", "tcp-stream": "stream"}
# valid Suricata protocols ipsbridge cannot run yet
APP_LAYER = frozenset({
    "http", "http1", "http2", "ftp", "ftp-data", "tls", "ssl", "smb", "dcerpc", "smtp", "imap",
    "pop3", "ssh", "enip", "dnp3", "modbus", "nfs", "ntp", "tftp", "ike", "ikev2", "krb5", "dhcp", "snmp",
    "sip", "rfb", "mqtt", "pgsql", "quic", "telnet", "rdp", "bittorrent-dht", "websocket", "ldap",
    "template", "cip", "dnp3", "nfs3", "x509",
})
PACKET_VARIANTS = frozenset({"udp-pkt"})

_WS = " \t\r\n"


def _split_header(header: str) -> list[tuple[str, int]]:
    """Whitespace-separated tokens (ignoring whitespace inside [...]) with 0-based offsets."""
    toks = []
    i, n = 0, len(header)
    while i < n:
        while i < n and header[i] in _WS:
            i += 1
        if i >= n:
            break
        start = i
        depth = 0
        while i < n and (depth > 0 or header[i] not in _WS):
            if header[i] == "[":
                depth += 1
            elif header[i] == "]":
                depth -= 1
            i += 1
        toks.append((header[start:i], start))
    return toks


def split_options(body: str, base: int) -> list[tuple[str, str | None, int, int]]:
    """(name, raw value or None, name column, value column); `base` is the
    1-based column of body[0].  Raises RuleError with file/line unset."""
    out = []
    i, n = 0, len(body)
    while True:
        while i < n and body[i] in _WS:
            i += 1
        if i >= n:
            return out
        start = i
        while i < n and body[i] not in ":;" + _WS:
            i += 1
        name = body[start:i]
        if not name:
            raise RuleError(f"expected a keyword, found '{body[i]}'", column=base + i)
        j = i
        while j < n and body[j] in _WS:
            j += 1
        if j < n and body[j] == ";":
            out.append((name, None, base + start, base + start))
            i = j + 1
            continue
        if j < n and body[j] == ":":
            k = j + 1
            while k < n:
                c = body[k]
                if c == "\\":
                    k += 2
                    continue
                if c == ";":
                    break
                k += 1
            if k >= n:
                raise RuleError(f"option '{name}' is not terminated by ';'", column=base + n, keyword=name)
            out.append((name, body[j + 1:k], base + start, base + j + 1))
            i = k + 1
            continue
        if j >= n:
            raise RuleError(f"option '{name}' is not terminated by ';'", column=base + n, keyword=name)
        raise RuleError(f"expected ':' or ';' after keyword '{name}', found '{body[j]}'", column=base + j,
                        keyword=name)


def _extractor(name: str, transforms: list | None):
    extract = EXTRACTORS[name.split("#")[0]]
    if not transforms:
        return extract

    def transformed(buf: bytes, pkt) -> list[bytes]:
        out = []
        for b in extract(buf, pkt):
            for t in transforms:
                b = t(b)
            out.append(b)
        return out
    return transformed


def _literal(c: Content, buffer: str) -> bytes | None:
    lit = c.pattern
    if c.fast_pattern_chop:
        o, ln = c.fast_pattern_chop
        lit = lit[o:o + ln]
    return lit or None


# packet sticky buffers whose bytes lie in the payload the prefilter scans (none today: dns.query
# is an app-layer buffer, rules.applayer.dns); the others (tcp.hdr) give no fast pattern: their
# rules are always candidates
PREFILTERED_BUFFERS: frozenset = frozenset()


def _fast_pattern(pkt_items: list, subs: list) -> tuple[bytes | None, bool]:
    """Explicit fast_pattern wherever it is, else the sticky buffers' choice
    (app-layer buffers come first in Suricata), else the packet payload's."""
    if any(name.split("#")[0] not in PREFILTERED_BUFFERS for name, _, _ in subs):
        return None, False
    sticky = [(name, c) for name, _, sub in subs for c in sub.items if isinstance(c, Content)]
    plain = [("pkt", c) for c in pkt_items if isinstance(c, Content)]
    for name, c in sticky + plain:
        if c.fast_pattern:
            return (None, False) if c.negated else (_literal(c, name), c.nocase)
    for group in (sticky, plain):
        chosen = choose_fast_pattern([c for _, c in group])
        if chosen is not None:
            if chosen.negated:
                # Suricata looks a negated fast pattern up with its offset/depth but
                # not its endswith: found anywhere else, the rule does not match
                # (suricata -r: content:!"a1"; endswith; fails on "a1a").  A relative
                # negated content is never Suricata's fast pattern: it keeps endswith.
                if not chosen.relative:
                    chosen.endswith = False
                return None, False
            name = next(n for n, c in group if c is chosen)
            return _literal(chosen, name), chosen.nocase
    return None, False


def _require(proto: str, used: list, fields: dict, pkt_items: list, has_payload: bool, paren: int) -> str:
    """Which buffer the rule's payload keywords inspect on TCP, as Suricata types a
    signature: "packet" (a packet keyword, flow:no_stream or tcp-pkt), "stream"
    (tcp-stream or flow:only_stream), "both" (stream first, then the packet payload: a
    content with an absolute offset/depth, or stream_size), "" (no payload)."""
    explicit = {kw.requires for kw in used if kw.requires in ("packet", "stream")}
    if fields.get("_require"):
        explicit.add(fields["_require"])
    if proto in PROTO_REQUIRES:
        explicit.add(PROTO_REQUIRES[proto])
    if len(explicit) > 1:
        raise RuleError("packet keywords (dsize, flags, ttl, ... or tcp-pkt, flow:no_stream) cannot be "
                        "mixed with tcp-stream or flow:only_stream", column=paren + 1)
    if explicit:
        return explicit.pop()
    if not has_payload:
        return ""
    if any(kw.requires == "both" for kw in used) or any(
            isinstance(c, Content) and (c.offset is not None or c.depth is not None) for c in pkt_items):
        return "both"
    return "stream"


def _base(name: str) -> str:
    return name.split("#")[0]


def _on_app_proto(proto: str):
    """A rule of an app-layer protocol with no app buffer (`alert http ... content:"x";`):
    its packet keywords apply only to flows detected as that protocol."""
    def check(p) -> bool:
        f = p.flow
        return f is not None and f.app is not None and f.app.proto == proto
    return check


def _app_spec(ctx: Ctx, f: dict, paren: int) -> AppSpec | None:
    """The rule's app-layer part: its app buffers (each with its payload chain, the side
    of the transaction it reads) and conditions, the direction it is evaluated on, the
    progress it needs, and its fast pattern.  A rule without flow direction whose
    buffers exist on both sides (http.header, http.start, file.data, ...) and whose
    conditions apply to either side (dns.opcode) is evaluated on both, as Suricata
    does: `AppSpec.other` is its response-side form."""
    names = [n for n, items in ctx.buffers.items() if n != "pkt" and items and _base(n) in _app.BUFFERS]
    if not names and not ctx.app_checks:
        return None
    proto = ctx.app_proto
    # a buffer name several protocols have (file.data) is the rule's protocol's own
    own = {b.name: b for b in _app.PROTOCOLS[proto].BUFFERS} if proto in _app.PROTOCOLS else {}
    defs = {n: own.get(_base(n)) or _app.BUFFERS[_base(n)] for n in names}
    both = _app.PROTOCOLS[proto].__dict__.get("BOTH_SIDES", {})
    for d in defs.values():
        if d.proto != proto:
            raise RuleError(f"'{d.name}' is a {d.proto} buffer, the rule inspects {proto}", column=paren + 1)
    fts = f.get("flow_to_server")
    if fts is None and "http.header.raw" in {d.name for d in defs.values()}:
        raise RuleError("http.header.raw needs a direction: flow:to_server (request headers) or flow:to_client "
                        "(response headers)", column=paren + 1)
    one_sided = [d for d in defs.values() if d.name not in both]
    sided_checks = [c for c in ctx.app_checks if c[0] is not None]
    if fts is None and not one_sided and not sided_checks:
        return _app_side(ctx, names, defs, both, True, _app_side(ctx, names, defs, both, False, None))
    # buffers only one side has must agree with each other and with flow:to_server/to_client
    # (Suricata refuses the rule: "mixes keywords with conflicting directions")
    sides = {d.to_server for d in one_sided}
    if fts is not None:
        sides.add(fts)
    if len(sides) > 1:
        req = sorted(d.name for d in one_sided if d.to_server)
        resp = sorted(d.name for d in one_sided if not d.to_server)
        said = {True: "flow:to_server", False: "flow:to_client", None: ""}[fts]
        raise RuleError("the rule mixes keywords with conflicting directions: "
                        + ", ".join(x for x in (f"request side {', '.join(req)}" if req else "",
                                                f"response side {', '.join(resp)}" if resp else "", said) if x)
                        + " (Suricata refuses it too)", column=paren + 1)
    # the direction: to_client when the rule says so, or a buffer/condition only the
    # response side has; else to_server
    to_server = not (fts is False or any(not d.to_server for d in one_sided)
                     or any(not side for side, _, _ in sided_checks))
    return _app_side(ctx, names, defs, both, to_server, None)


def _fold_contents(ctx: Ctx, name: str, buffer: str) -> None:
    """Contents of a buffer Suricata compares in one case are folded to it, and contents
    it refuses in that buffer are refused (registry.CONTENT_CASE, content_problem).
    Folding the same Content twice (both directions) is harmless."""
    contents = [c for c in ctx.buffers[name] if isinstance(c, Content)]
    case = _app.CONTENT_CASE.get(buffer)
    if case is not None:
        for c in contents:
            c.pattern = c.pattern.upper() if case == "upper" else c.pattern.lower()
            if c.nocase:
                c.lpattern = c.pattern.lower()
    why = _app.content_problem(buffer, [c.pattern for c in contents if not c.nocase])
    if why is not None:
        raise RuleError(why, column=contents[0].column if contents else 1, keyword=buffer)


def _app_side(ctx: Ctx, names: list, defs: dict, both: dict, to_server: bool, other) -> AppSpec:
    bufs = []
    need = [0, 0]
    any_body = False
    for n in names:
        d = defs[n]
        _fold_contents(ctx, n, d.name)
        get, progress, side = d.get, d.progress, d.to_server
        if d.name in both and side != to_server:
            get, progress = both[d.name]
            side = to_server
        bufs.append(AppBuf(n, get, PayloadChain(ctx.buffers[n]), side, progress, d.multi, d.body,
                           tuple(ctx.transforms.get(n, ()))))
        need[side] = max(need[side], progress)
        any_body = any_body or d.body
    checks = tuple((to_server if side is None else side, progress, fn) for side, progress, fn in ctx.app_checks)
    for side, progress, _fn in checks:
        need[side] = max(need[side], progress)
    fp = None
    for i, b in enumerate(bufs):
        for c in b.chain.items:
            if isinstance(c, Content) and c.fast_pattern and not c.negated:
                fp = (i, _literal(c, b.name), c.nocase)
    if fp is None:
        best = None
        for i, b in enumerate(bufs):
            c = choose_fast_pattern([c for c in b.chain.items if isinstance(c, Content)])
            if c is not None and not c.negated and (best is None or len(c.pattern) > len(best[1].pattern)):
                best = (i, c)
        if best is not None:
            fp = (best[0], _literal(best[1], bufs[best[0]].name), best[1].nocase)
    if fp is not None and not fp[1]:
        fp = None
    return AppSpec(ctx.app_proto, to_server, (need[0], need[1]), tuple(bufs),
                   tuple((side, fn) for side, _, fn in checks), any_body, fp, other)


def _err(e: RuleError, file: str, line: int) -> RuleError:
    e.file = file
    e.line = line
    return e


def parse_rule(text: str, *, file: str = "", line: int = 1, vars: dict | None = None,
               classification: dict | None = None, cache: dict | None = None) -> Rule:
    """Parse one logical rule line.  `vars` are the config's address-groups /
    port-groups (default: Suricata's suricata.yaml values); `classification`
    maps classtype -> (description, priority) (default: none, so any classtype is
    unknown -- the loader passes the configured classification.config);
    `cache` is a dict shared by the rules of one load (same vars) so equal
    header fields compile once."""
    try:
        return _parse(text, file, line, DEFAULT_VARS if vars is None else vars, classification, cache)
    except RuleError as e:
        raise _err(e, file, line) from None


def _parse(text: str, file: str, line: int, vars: dict, classification: dict | None, cache: dict | None) -> Rule:
    if classification is None:
        classification = {}
    stripped = text.strip()
    if not stripped:
        raise RuleError("empty rule", column=1)
    lead = len(text) - len(text.lstrip())
    if stripped.startswith("#"):
        raise RuleError("not a rule: the line is a comment", column=lead + 1)
    paren = text.find("(")
    end = len(text.rstrip())
    if paren < 0:
        raise RuleError("missing '(' before the rule options", column=end + 1)
    if text[end - 1] != ")":
        raise RuleError("missing ')' at the end of the rule", column=end + 1)
    toks = _split_header(text[:paren])
    names = ("action", "protocol", "source address", "source port", "direction", "destination address",
             "destination port")
    if len(toks) < 7:
        raise RuleError(f"incomplete rule header: missing {names[len(toks)]} "
                        "(expected 'action proto src sport -> dst dport')", column=paren + 1)
    if len(toks) > 7:
        raise RuleError(f"unexpected '{toks[7][0]}' after the destination port in the rule header",
                        column=toks[7][1] + 1)
    (action, a_at), (proto, p_at), (src, s_at), (sport, sp_at), (direction, d_at), (dst, t_at), (dport, dp_at) = toks
    if action not in ACTION_RANK:
        if action == "config":
            raise RuleError("unsupported action 'config'", column=a_at + 1, unsupported="action:config")
        raise RuleError(f"unknown action '{action}' (expected {', '.join(ACTION_RANK)})", column=a_at + 1)
    proto_l = proto.lower()
    if proto_l not in PROTOS:
        if proto_l in APP_LAYER:
            raise RuleError(f"unsupported protocol '{proto}' (app-layer)", column=p_at + 1,
                            unsupported=f"proto:{proto_l}")
        if proto_l in PACKET_VARIANTS:
            raise RuleError(f"unsupported protocol '{proto}'", column=p_at + 1, unsupported=f"proto:{proto_l}")
        raise RuleError(f"unknown protocol '{proto}' (expected ip, tcp, udp, icmp, icmpv6, ...)", column=p_at + 1)
    if direction not in ("->", "<>"):
        hint = "; write '->' and swap source and destination" if direction == "<-" else ""
        raise RuleError(f"invalid direction '{direction}' (expected '->' or '<>'){hint}", column=d_at + 1)
    src_set = _addr.parse_addr(src, vars=vars, column=s_at + 1, cache=cache)
    sport_set = _addr.parse_ports(sport, vars=vars, column=sp_at + 1, cache=cache)
    dst_set = _addr.parse_addr(dst, vars=vars, column=t_at + 1, cache=cache)
    dport_set = _addr.parse_ports(dport, vars=vars, column=dp_at + 1, cache=cache)

    body = text[paren + 1:end - 1]
    opts = split_options(body, paren + 2)
    missing = []
    for name, _, col, _ in opts:
        if name.lower() not in REGISTRY and name.lower() not in missing:
            missing.append(name.lower())
    if missing:
        typo = next((o for o in opts if o[0].lower() in missing and o[0].lower() not in SURICATA_KEYWORDS), None)
        if typo is not None:            # no Suricata knows it: a misspelling, the rule is invalid
            near = difflib.get_close_matches(typo[0].lower(), sorted(REGISTRY.keys() | SURICATA_KEYWORDS), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise RuleError(f"unknown keyword '{typo[0]}'{hint}", column=typo[2], keyword=typo[0])
        first = next(o for o in opts if o[0].lower() == missing[0])
        raise RuleError(f"unsupported keyword '{first[0]}'", column=first[2], keyword=first[0],
                        unsupported=missing[0], missing=tuple(missing))

    ctx = Ctx(vars=vars, classification=classification, file=file, line=line, proto=proto_l,
              ip_protos=PROTOS[proto_l])
    if proto_l in _app.HEADER_PROTOS:
        ctx.app_proto = _app.HEADER_PROTOS[proto_l]
    packet_kw = None                  # the first keyword on the packet alone (dsize, ttl, flags, ...), its column
    for name, raw, ncol, vcol in opts:
        kname = name.lower()
        kw = REGISTRY[kname]
        if kw.requires == "packet" and packet_kw is None:
            packet_kw = (name, ncol)
        ctx.keyword = name
        ctx.negated = False
        if raw is None:
            if kw.value == REQUIRED:
                raise RuleError(f"'{name}' needs a value ({name}:...;)", column=ncol, keyword=name)
            ctx.column = ncol
            spec = kw.parse(None, ctx)
            ctx.options.append((kname, spec))
            continue
        if kw.value == NONE:
            raise RuleError(f"'{name}' takes no value", column=vcol, keyword=name)
        col = vcol + (len(raw) - len(raw.lstrip()))
        value = raw.strip()
        if kw.negation and value.startswith("!"):
            ctx.negated = True
            value = value[1:]
            col += 1 + (len(value) - len(value.lstrip()))
            value = value.lstrip()
        if kw.quotes == "mandatory" or (kw.quotes == "optional" and value.startswith('"')):
            trailing = len(value) - 1 - len(value[:-1].rstrip("\\"))   # backslashes before the last quote
            if len(value) < 2 or value[0] != '"' or value[-1] != '"' or trailing % 2:
                raise RuleError(f"the value of '{name}' must be in double quotes", column=col, keyword=name)
            value = value[1:-1]
            col += 1
        if not value and kw.value == REQUIRED:
            raise RuleError(f"'{name}' needs a value", column=col, keyword=name)
        ctx.column = col
        spec = kw.parse(value, ctx)
        ctx.options.append((kname, spec))

    f = ctx.fields
    for name, items in ctx.buffers.items():
        if name != "pkt" and not items and not ctx.transforms.get(name):
            # Suricata refuses a sticky buffer nothing inspects
            raise RuleError(f"sticky buffer '{_base(name)}' has no content or other payload keyword after it",
                            column=paren + 1, keyword=_base(name))
    if "sid" not in f:
        raise RuleError("rule has no sid", column=paren + 1, keyword="sid")
    checks = [fn for _, _, fn in sorted(ctx.checks, key=lambda c: (c[0], c[1]))]
    if proto_l == "ipv4":
        checks.insert(0, lambda p: p.ipver == 4)
    elif proto_l == "ipv6":
        checks.insert(0, lambda p: p.ipver == 6)
    payload = None
    fp = None
    fp_nocase = False
    pkt_items = ctx.buffers.get("pkt", ctx.items if ctx.buffer == "pkt" else [])
    app = _app_spec(ctx, f, paren)
    if app is not None and packet_kw is not None:
        # Suricata 7 refuses it ("combines packet specific matches ... with stream / state
        # matching"): the transaction is inspected on some packet, not on the one the
        # keyword means
        name, col = packet_kw
        raise RuleError(f"'{name}' matches packets and the rule matches app-layer transactions "
                        f"({', '.join(b.name for b in app.bufs) or 'its app-layer conditions'}): Suricata refuses "
                        "the combination too; put the packet condition in a rule of its own (flowbits can chain "
                        "the two)", column=col, keyword=name)
    if ctx.app_proto and app is None:
        checks.append(_on_app_proto(ctx.app_proto))
    subs = [(name, _extractor(name, ctx.transforms.get(name)), PayloadChain(items))
            for name, items in ctx.buffers.items() if name != "pkt" and items and _base(name) not in _app.BUFFERS]
    if pkt_items or subs:
        payload = PayloadChain(pkt_items, subs)
        fp, fp_nocase = _fast_pattern(pkt_items, subs)
    priority = f.get("priority", f.get("_class_priority", 3))
    used = [REGISTRY[name] for name, _ in ctx.options]
    iponly = payload is None and f.get("flow_to_server") is None and all(kw.iponly for kw in used)
    require = _require(proto_l, used, f, pkt_items, payload is not None, paren)
    sets = any(op.cmd in ("set", "unset", "toggle") for op in ctx.flowbits)
    reads = bool(f.get("_flowbits_checks"))
    fb_class = (0 if not reads else 1) if sets else (2 if reads else 3)
    return Rule(
        action=action, proto=proto_l, src=src_set, sport=sport_set, direction=direction, dst=dst_set,
        dport=dport_set, sid=f["sid"], gid=f.get("gid", 1), rev=f.get("rev", 0), msg=f.get("msg", ""),
        classtype=f.get("classtype"), category=f.get("category", ""), priority=priority,
        references=tuple(f.get("references", ())), metadata=tuple(f.get("metadata", ())),
        target=f.get("target"), ip_protos=ctx.ip_protos, checks=checks, payload=payload,
        fast_pattern=fp, fast_pattern_nocase=fp_nocase, flow_to_server=f.get("flow_to_server"),
        tcp_flags=f.get("tcp_flags"),
        flowbits=tuple(ctx.flowbits), flow_state=frozenset(f.get("_flowbits_checks", ())),
        noalert=bool(f.get("noalert", False)), bypass=bool(f.get("bypass", False)),
        threshold=f.get("threshold"), detection_filter=f.get("detection_filter"),
        iponly=iponly, require=require, only_stream=bool(f.get("_only_stream")), flowbits_class=fb_class,
        stream_events=frozenset(f.get("_stream_events", ())), app=app, app_proto=ctx.app_proto,
        app_detect=frozenset(f.get("_detect", ())),
        options=tuple(ctx.options), text=stripped, file=file, line=line,
    )
