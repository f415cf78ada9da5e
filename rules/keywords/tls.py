"""TLS conditions that are not buffers: tls.version, ssl_version, ssl_state, tls.cert_chain_len.

Each is a condition on the flow's TLS transaction (rules.applayer.tls), registered with
`Ctx.app_check`; the sticky buffers (tls.sni, tls.cert_subject, ja3.hash, ...) come from
rules.applayer.tls.BUFFERS through rules.keywords.app.  Facts are Suricata 7.0.10's
(detect-tls-version.c, detect-ssl-version.c, detect-ssl-state.c, detect-tls-certs.c),
checked with the installed binary (tests/unit/tls_suricata.json, sids 1-25):

- tls.version:1.0|1.1|1.2|1.3 (quotes optional; only the first three characters are
  compared, as Suricata's strncmp does) or a raw 0xNNNN: compares the version of the side
  the packet comes from -- to server the client's, to client the server's.  That version is
  the record header's until the side's hello, then the hello's, then its supported_versions
  extension's (a TLS 1.3 client says 1.3 there, a TLS 1.3 server says 1.3 in its
  ServerHello).  Every TLS 1.3 draft version (0x7fNN) counts as 1.3, except with a raw value.
- ssl_version:sslv2,sslv3,tls1.0,tls1.1,tls1.2,tls1.3 (commas or spaces, any case, each
  at most once): the same side's version is one of them.  `!v` negates that version only
  and cannot be mixed with plain values; Suricata's quirk kept: a negated list matches only
  when the version is one the list names and is not negated, i.e. `ssl_version:!tls1.0`
  never matches (checked: no alert on TLS 1.2 flows).
- ssl_state:client_hello|server_hello|client_keyx|server_keyx|unknown, `!` per name,
  joined by `|` or `,`: one of the named states is (or a negated one is not) the state of
  the last handshake message parsed on the flow, in either direction -- Suricata's
  current_flags, cleared when a record starts.
- tls.cert_chain_len: the number of certificates the server sent (rules.keywords._base
  `parse_uint_cmp` forms), once its certificate was decoded; to client only.

Suricata inspects these conditions on packets of both directions when the rule has no
`flow:` direction, each with that direction's side.  The rule's direction here is the one
`flow:` gave before the keyword; without one, tls.version and ssl_version match when
either side's version does (evaluated on the side the rest of the rule picks).
"""
from __future__ import annotations

import re

from rules.applayer import tls as _tls
from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_uint_cmp

PROTO = _tls.PROTO


def _check(ctx: Ctx, progress: int, make) -> None:
    """Register `make(to_server)` -> fn(tx) for the rule's direction (see the docstring)."""
    side = ctx.fields.get("flow_to_server")
    if side is None:
        ts, tc = make(True), make(False)
        ctx.app_check(PROTO, True, progress, lambda tx: ts(tx) or tc(tx))
    else:
        ctx.app_check(PROTO, side, progress, make(side))


# ---------------------------------------------------------------------------- tls.version
_TLS_VERSION_RE = re.compile(r'^\s*([A-z0-9.]+|"[A-z0-9.]+")\s*$')
_TLS_VERSION_NAMES = {"1.0": _tls.TLS_10, "1.1": _tls.TLS_11, "1.2": _tls.TLS_12, "1.3": _tls.TLS_13}


def tls_version_matches(version: int, wanted: int, raw: bool) -> bool:
    if not raw and version >> 8 == 0x7F:
        version = _tls.TLS_13
    return version == wanted


def _tls_version(value: str, ctx: Ctx):
    m = _TLS_VERSION_RE.match(value)
    if not m:
        raise ctx.error(f"tls.version: invalid value '{value}' (1.0, 1.1, 1.2, 1.3 or 0xNNNN)")
    v = m.group(1).strip('"')
    raw = False
    if v[:3] in _TLS_VERSION_NAMES:
        wanted = _TLS_VERSION_NAMES[v[:3]]
    elif v.startswith("0x") and len(value) == 6:
        try:
            wanted = int(v, 16)
        except ValueError:
            raise ctx.error(f"tls.version: invalid value '{value}'") from None
        raw = True
    else:
        raise ctx.error(f"tls.version: invalid value '{value}' (1.0, 1.1, 1.2, 1.3 or 0xNNNN)")

    def make(to_server: bool):
        return lambda tx: tls_version_matches(tx.conn(to_server).version, wanted, raw)
    _check(ctx, _tls.IN_PROGRESS, make)
    return (wanted, raw)


# ---------------------------------------------------------------------------- ssl_version
SSL_VERSION_WORDS = {"sslv2": _tls.SSL_2, "sslv3": _tls.SSL_3, "tls1.0": _tls.TLS_10, "tls1.1": _tls.TLS_11,
                     "tls1.2": _tls.TLS_12, "tls1.3": _tls.TLS_13}


def ssl_version_matches(version: int, spec: dict[int, bool]) -> bool:
    """spec: version -> negated.  Only a version the spec names can match (Suricata)."""
    if version >> 8 == 0x7F and version in _tls.VALID_VERSIONS and version < 0x7F1D:
        version = _tls.TLS_13              # the TLS 1.3 drafts (not Facebook's 0xfbNN)
    if version not in SSL_VERSION_WORDS.values():
        return False
    if version not in spec:
        return False
    return not spec[version]


def _ssl_version(value: str, ctx: Ctx):
    words = [w for w in re.split(r"[\s,]+", value.strip()) if w]
    if not words:
        raise ctx.error("ssl_version: empty value")
    spec: dict[int, bool] = {}
    kinds = set()
    for w in words:
        neg = w.startswith("!")
        name = w[1:].lower() if neg else w.lower()
        if name not in SSL_VERSION_WORDS:
            raise ctx.error(f"ssl_version: unknown version '{w}' (sslv2, sslv3, tls1.0, tls1.1, tls1.2, tls1.3)")
        ver = SSL_VERSION_WORDS[name]
        if ver in spec:
            raise ctx.error(f"ssl_version: '{name}' given twice")
        kinds.add(neg)
        if len(kinds) > 1:
            raise ctx.error("ssl_version: negated and plain versions cannot be mixed")
        spec[ver] = neg

    def make(to_server: bool):
        return lambda tx: ssl_version_matches(tx.conn(to_server).version, spec)
    _check(ctx, _tls.IN_PROGRESS, make)
    return tuple(sorted(spec.items()))


# ---------------------------------------------------------------------------- ssl_state
SSL_STATES = {"client_hello": _tls.ST_CLIENT_HELLO, "server_hello": _tls.ST_SERVER_HELLO,
              "client_keyx": _tls.ST_CLIENT_KEYX, "server_keyx": _tls.ST_SERVER_KEYX, "unknown": _tls.ST_UNKNOWN}
_STATE_FIRST = re.compile(r"^(!?)([_a-zA-Z0-9]+)(.*)$")
_STATE_NEXT = re.compile(r"^(?:\s*[|,]\s*(!?)([_a-zA-Z0-9]+))(.*)$")


def ssl_state_matches(current_flags: int, flags: int, mask: int) -> bool:
    return bool((flags & current_flags) ^ mask)


def _ssl_state(value: str, ctx: Ctx):
    flags = mask = 0
    m = _STATE_FIRST.match(value)
    while True:
        if not m:
            raise ctx.error(f"ssl_state: invalid value '{value}' (client_hello, server_hello, client_keyx, "
                            "server_keyx, unknown; joined by '|')")
        neg, name, rest = m.groups()
        if name not in SSL_STATES:
            raise ctx.error(f"ssl_state: unknown state '{name}'")
        flags |= SSL_STATES[name]
        if neg:
            mask |= SSL_STATES[name]
        if not rest:
            break
        m = _STATE_NEXT.match(rest)

    def make(to_server: bool):
        return lambda tx: ssl_state_matches(tx.current_flags, flags, mask)
    side = ctx.fields.get("flow_to_server")
    ctx.app_check(PROTO, True if side is None else side, _tls.IN_PROGRESS, make(True))
    return (flags, mask)


# ---------------------------------------------------------------------------- tls.cert_chain_len
def _cert_chain_len(value: str, ctx: Ctx):
    text, pred = parse_uint_cmp(value, ctx, hi=0xFFFFFFFF, what="tls.cert_chain_len")
    ctx.app_check(PROTO, False, _tls.CERT_READY, lambda tx: pred(len(tx.server.certs)))
    return text


tls_version = Keyword("tls.version", _tls_version, REQUIRED, quotes="optional")
ssl_version = Keyword("ssl_version", _ssl_version, REQUIRED)
ssl_state = Keyword("ssl_state", _ssl_state, REQUIRED)
cert_chain_len = Keyword("tls.cert_chain_len", _cert_chain_len, REQUIRED)
