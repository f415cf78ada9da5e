"""TLS / SSL: the handshake of a flow as one transaction, and the tls.* / ja3* buffers.

Facts below are Suricata 7.0.10's (app-layer-ssl.c, detect-tls-*.c), checked against
the installed binary where a format or a decision is visible (tests/unit/test_applayer_tls.py
records its answers).

Transaction.  One per flow, for its whole life (Suricata's TLS state is its own single
transaction).  Its progress is Suricata's, the same number on both sides except one step:

    IN_PROGRESS 0     until one of the below
    CERT_READY  1     to-server side only: the server's first certificate was decoded
    HANDSHAKE_DONE 2  the certificate the handshake waits for was decoded (the server's; the
                      client's after a CertificateRequest) -- judged at the end of a feed that
                      does not end inside a record's body --, or application data was seen
                      (not 0-RTT early data before the ServerHello)
    base.DONE         a direction ended (`end`): the session is finished

Buffers are inspectable from the progress Suricata registers them at: tls.sni, ja3.* and
ja3s.* from 0 (whenever present), the certificate buffers from CERT_READY -- which the
to-client side only reaches at HANDSHAKE_DONE.  Certificate buffers exist on both sides:
to client they are the server's certificate, to server the client's (BOTH_SIDES).
Absent data is None: no SNI extension, no decodable certificate, JA3 disabled.

Record layer (per direction, bytes in any split).  A record is parsed once it is complete
(Suricata's "incomplete" API), except application data, which is skipped as it streams.
The header's checks come as soon as its 5 bytes are there, and a failure gives up the
flow (`failed`, as Suricata's parser error disables the app layer of the flow):
unknown content type (tls.invalid_record_type; after a TLS 1.0/1.1 version the rest of
the segment is skipped instead), length 0 or over 2^14+1024 (tls.invalid_record_length),
a version that is not SSLv3..TLS 1.3 or a TLS 1.3 draft (tls.invalid_record_version).  The
version checked and kept is the record header's until the direction's hello set it, taken
byte by byte as the header arrives (after its second byte the side's version is 0x0300: a
packet carrying only "16 03 03" already makes tls.version:1.2 match).  A
record whose first byte has one of the two top bits set is SSLv2 (2- or 3-byte header):
its client hello sets the client's version from the hello, its messages set the SSLv2
flags ssl_state reads; a zero length is tls.invalid_sslv2_header.  An SSLv2 record that a
feed left incomplete is read only once a byte follows it, or at the end of the direction
(Suricata asks the stream for its length after the header, one byte more than it has).  More records in one
feed than a sixth of its bytes: tls.too_many_records_in_packet, given up.

Handshake messages may share a record or span records (buffered up to
`Settings.max_handshake_message`; a larger one is skipped unparsed, where Suricata would
buffer up to 16 MiB); a message header split across records is tls.invalid_ssl_record and
gives up, as in Suricata.  Unknown message types are skipped (tls.invalid_handshake_message
unless that direction sent ChangeCipherSpec).  After a ChangeCipherSpec in either direction
handshake records are not parsed (encrypted), except the TLS 1.3 middlebox case (client
offered > TLS 1.2, no ServerHello yet).

Hellos: version, random, session id (the ServerHello's equal to the ClientHello's: resumed),
ciphers, compression, extensions.  SNI (the first host_name, truncated at a NUL byte as
Suricata's C string is; a second SNI extension: tls.multiple_sni_extensions; a type other
than host_name: tls.invalid_sni_type; length 0 or > 255: tls.invalid_sni_length),
supported_groups and ec_point_formats (JA3), supported_versions (the client's first valid
version, the server's selected one, become the side's version), early_data, session_ticket.
A length that does not fit raises tls.handshake_invalid_length and ends the hello's parsing
(not the flow's).  Suricata quirks kept: after an SNI, groups, point-format,
signature-algorithm or supported-versions extension the next extension is read where that
extension's own parse ended, not at its declared end; an extension list may run past its
declared length as long as the hello holds it.

JA3 (client) / JA3S (server): "version,ciphers,extensions,groups,point_formats" /
"version,cipher,extensions", decimal values joined by "-", GREASE values (0x?a?a) left out;
the hash is the MD5 of the string, lowercase hex.  Only the first hello of a side counts.
An extension list that does not fit leaves the string without its extension fields and no
hash; an SNI/group/... extension that fails ends the list where it failed.  Suricata 7
computes JA3 only when `app-layer.protocols.tls.ja3-fingerprints` is yes, or "auto"/unset
and a loaded rule uses a ja3 keyword (the keyword turns it on); with "no" a ja3 rule fails
to load.  Here it is computed unless the setting is "no".

Certificates: the first Certificate message of each side.  Each certificate's DER is kept
(tls.certs); the first that decodes gives subject, issuer, serial, not-before/after and the
SHA-1 fingerprint (rules.applayer.x509 has the formats).  A certificate that does not decode
before that one raises its event (tls.certificate_invalid_*) and is left out of tls.certs
(Suricata does the same); the ones after it are kept without decoding.  A certificate length
that does not fit: tls.invalid_certificate, the rest of the chain is dropped.

Heartbeat records: a request whose payload does not fit its record
(tls.overflow_heartbeat_message, heartbleed), a padding under 16 bytes, an unknown type or
a second request in flight (tls.invalid_heartbeat_message), an encrypted response larger
than the request (tls.dataleak_heartbeat_mismatch) give up the flow.

Encryption handling (Settings.encryption_handling, Suricata's default "default"): once
application data is seen the flow's payload is no longer inspected
(`no_inspect_payload`); "bypass" also sets `bypass_ready`; "full" inspects everything.

Bounds: per direction one record (at most 5 + 2^14 + 1024 bytes, SSLv2 32 KiB) and one
handshake message (max_handshake_message) are held; SNI <= 255 bytes; certificate data
is what the Certificate message carried.  The parser never raises: an internal error would
give up the flow and is kept in `error` (the tests check it stays None).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rules.applayer import x509
from rules.applayer.base import DONE, BufferDef, Tx
from rules.applayer.base import Parser as _Base

PROTO = "tls"
IPPROTOS = (6,)
HEADER_NAMES = ("tls",)          # Suricata 7 refuses "ssl" in a rule header

# -- progress (see the module docstring)
IN_PROGRESS, CERT_READY, HANDSHAKE_DONE = 0, 1, 2

# -- record content types
CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA, CT_HEARTBEAT = 20, 21, 22, 23, 24
CONTENT_TYPES = frozenset({20, 21, 22, 23, 24})
RECORD_HDR = 5
RECORD_MAX = (1 << 14) + 1024        # Suricata's limit on a record's length (RFC 5246 6.2.2)

# -- handshake message types
HS_HELLO_REQUEST, HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_NEW_SESSION_TICKET = 0, 1, 2, 4
HS_CERTIFICATE, HS_SERVER_KEY_EXCHANGE, HS_CERTIFICATE_REQUEST, HS_SERVER_HELLO_DONE = 11, 12, 13, 14
HS_CERTIFICATE_VERIFY, HS_CLIENT_KEY_EXCHANGE, HS_FINISHED = 15, 16, 20
HS_CERTIFICATE_URL, HS_CERTIFICATE_STATUS = 21, 22
HS_SUPPORTED = frozenset({0, 1, 2, 4, 11, 12, 13, 14, 15, 16, 20, 21, 22})

# -- SSLv2 message types
V2_ERROR, V2_CLIENT_HELLO, V2_CLIENT_MASTER_KEY, V2_CLIENT_FINISHED = 0, 1, 2, 3
V2_SERVER_HELLO, V2_SERVER_VERIFY, V2_SERVER_FINISHED = 4, 5, 6
V2_REQUEST_CERTIFICATE, V2_CLIENT_CERTIFICATE = 7, 8

# -- extensions
EXT_SNI, EXT_GROUPS, EXT_EC_POINT_FORMATS, EXT_SIG_ALGS, EXT_ALPN = 0x0000, 0x000A, 0x000B, 0x000D, 0x0010
EXT_SESSION_TICKET, EXT_EARLY_DATA, EXT_SUPPORTED_VERSIONS = 0x0023, 0x002A, 0x002B

# -- versions (major << 8 | minor)
VERSION_UNKNOWN, SSL_2, SSL_3 = 0x0000, 0x0200, 0x0300
TLS_10, TLS_11, TLS_12, TLS_13 = 0x0301, 0x0302, 0x0303, 0x0304
TLS_13_PRE_DRAFT16 = 0x7F01
# what Suricata accepts as a record / supported_versions version: SSLv3..TLS 1.3 and the
# TLS 1.3 drafts 16..28 (0x7f10..0x7f1c), pre-16 (0x7f01) and Facebook's (0xfb..)
VALID_VERSIONS = frozenset({SSL_3, TLS_10, TLS_11, TLS_12, TLS_13, TLS_13_PRE_DRAFT16,
                            *range(0x7F10, 0x7F1D), 0xFB14, 0xFB15, 0xFB16, 0xFB17, 0xFB1A})

# -- the flow's state flags (Suricata's SSL_AL_FLAG_*; ssl_state reads the ST_ ones)
F_SERVER_CCS = 1 << 0
F_CLIENT_CCS = 1 << 1
F_CCS = 1 << 2
F_V2_CLIENT_HS = 1 << 3
F_V2_SERVER_HS = 1 << 4
F_V2_CLIENT_MASTER_KEY = 1 << 5
F_V2_CLIENT_ENCRYPTED = 1 << 6
F_V2_SERVER_ENCRYPTED = 1 << 7
F_V2_NO_SESSION_ID = 1 << 8
ST_CLIENT_HELLO = 1 << 9
ST_SERVER_HELLO = 1 << 10
ST_CLIENT_KEYX = 1 << 11
ST_SERVER_KEYX = 1 << 12
ST_UNKNOWN = 1 << 13
F_FINISHED = 1 << 14
F_HB_INFLIGHT = 1 << 15
F_HB_CLIENT_INIT = 1 << 16
F_HB_SERVER_INIT = 1 << 17
F_HANDSHAKE_DONE = 1 << 18
F_SESSION_RESUMED = 1 << 20
F_CH_VERSION_EXTENSION = 1 << 21
F_LOG_WITHOUT_CERT = 1 << 22
F_EARLY_DATA = 1 << 23
F_NEED_CLIENT_CERT = 1 << 26

# -- events (Suricata's names, rules/tls-events.rules)
EV_INVALID_SSLV2_HEADER = "tls.invalid_sslv2_header"
EV_INVALID_RECORD_VERSION = "tls.invalid_record_version"
EV_INVALID_RECORD_TYPE = "tls.invalid_record_type"
EV_INVALID_RECORD_LENGTH = "tls.invalid_record_length"
EV_INVALID_HANDSHAKE_MESSAGE = "tls.invalid_handshake_message"
EV_INVALID_HEARTBEAT = "tls.invalid_heartbeat_message"
EV_OVERFLOW_HEARTBEAT = "tls.overflow_heartbeat_message"
EV_DATALEAK_HEARTBEAT = "tls.dataleak_heartbeat_mismatch"
EV_HANDSHAKE_INVALID_LENGTH = "tls.handshake_invalid_length"
EV_MULTIPLE_SNI = "tls.multiple_sni_extensions"
EV_INVALID_SNI_TYPE = "tls.invalid_sni_type"
EV_INVALID_SNI_LENGTH = "tls.invalid_sni_length"
EV_TOO_MANY_RECORDS = "tls.too_many_records_in_packet"
EV_INVALID_CERTIFICATE = "tls.invalid_certificate"
EV_CERT_INVALID_SUBJECT = "tls.certificate_invalid_subject"
EV_CERT_INVALID_ISSUER = "tls.certificate_invalid_issuer"
EV_ERROR_MESSAGE = "tls.error_message_encountered"
EV_INVALID_SSL_RECORD = "tls.invalid_ssl_record"

GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))


@dataclass(frozen=True, slots=True)
class Settings:
    """app-layer.protocols.tls (Suricata's defaults)."""
    ja3_fingerprints: str = "auto"           # "yes" / "no" / "auto": computed unless "no" (see above)
    encryption_handling: str = "default"     # "default" / "bypass" / "full"
    max_handshake_message: int = 256 * 1024  # ours: a longer handshake message is skipped unparsed
    detection_ports: tuple = (443,)          # detection-ports dp: where an SSLv2 hello of any version is TLS


_DEFAULTS = Settings()


class Conn:
    """What one side (client or server) sent: Suricata's SSLStateConnp."""

    __slots__ = ("version", "sni", "session_id", "random", "certs", "certs_seen", "subject", "issuer",
                 "serial", "fingerprint", "not_before", "not_after", "ja3", "ja3_hash")

    def __init__(self) -> None:
        self.version = VERSION_UNKNOWN
        self.sni: bytes | None = None
        self.session_id: bytes | None = None
        self.random: bytes | None = None
        self.certs: list[bytes] = []             # DER, in chain order (undecodable leading ones left out)
        self.certs_seen = False                  # a Certificate message was read (only the first counts)
        self.subject: str | None = None          # of the first decodable certificate
        self.issuer: str | None = None
        self.serial: str | None = None
        self.fingerprint: str | None = None      # SHA-1 of its DER, lowercase hex joined by ":"
        self.not_before: int | None = None
        self.not_after: int | None = None
        self.ja3: list[str] | None = None        # the JA3 string's fields
        self.ja3_hash: str | None = None


class TlsTx(Tx):
    """The flow's one transaction."""

    __slots__ = ("client", "server", "flags", "current_flags", "hb_record_len")

    def __init__(self, tx_id: int = 0) -> None:
        Tx.__init__(self, tx_id)
        self.client = Conn()
        self.server = Conn()
        self.flags = 0               # F_* / ST_*: everything seen on the flow
        self.current_flags = 0       # ST_* of the last message (cleared when a new record starts)
        self.hb_record_len = 0

    def conn(self, to_server: bool) -> Conn:
        """The side that sends in that direction."""
        return self.client if to_server else self.server


# ---------------------------------------------------------------------------- buffers
def _text(v: str | None) -> bytes | None:
    return None if v is None else v.encode("utf-8")


def _ja3(c: Conn) -> bytes | None:
    return None if c.ja3 is None else ",".join(c.ja3).encode()


def _cert_getters(side: str) -> dict:
    def conn(tx: TlsTx) -> Conn:
        return getattr(tx, side)
    return {
        "tls.certs": lambda tx: list(conn(tx).certs) or None,
        "tls.cert_subject": lambda tx: _text(conn(tx).subject),
        "tls.cert_issuer": lambda tx: _text(conn(tx).issuer),
        "tls.cert_serial": lambda tx: _text(conn(tx).serial),
        "tls.cert_fingerprint": lambda tx: _text(conn(tx).fingerprint),
    }


_SERVER_CERT = _cert_getters("server")
_CLIENT_CERT = _cert_getters("client")

BUFFERS = [
    BufferDef("tls.sni", PROTO, True, IN_PROGRESS, lambda tx: tx.client.sni),
    BufferDef("ja3.hash", PROTO, True, IN_PROGRESS, lambda tx: _text(tx.client.ja3_hash)),
    BufferDef("ja3.string", PROTO, True, IN_PROGRESS, lambda tx: _ja3(tx.client)),
    BufferDef("ja3s.hash", PROTO, False, IN_PROGRESS, lambda tx: _text(tx.server.ja3_hash)),
    BufferDef("ja3s.string", PROTO, False, IN_PROGRESS, lambda tx: _ja3(tx.server)),
    *(BufferDef(name, PROTO, False, CERT_READY, get, multi=name == "tls.certs")
      for name, get in _SERVER_CERT.items()),
]
# the certificate buffers to server: the client's certificate (Suricata registers them both ways)
BOTH_SIDES = {name: (get, CERT_READY) for name, get in _CLIENT_CERT.items()}
ALIASES = {
    "tls_sni": "tls.sni", "tls_cert_subject": "tls.cert_subject", "tls_cert_issuer": "tls.cert_issuer",
    "tls_cert_serial": "tls.cert_serial", "tls_cert_fingerprint": "tls.cert_fingerprint",
    "ja3_hash": "ja3.hash", "ja3_string": "ja3.string",
}


# Suricata's setup / validate callbacks on a rule's contents in some of these buffers: the
# contents are folded to the buffer's case (so `tls.cert_serial; content:"0a:ff";` matches
# "0A:FF"), and a content that can never match refuses the rule.
CONTENT_CASE = {"tls.cert_serial": "upper", "tls.cert_fingerprint": "lower", "ja3.hash": "lower",
                "ja3s.hash": "lower"}


def content_problem(buffer: str, patterns: list[bytes]) -> str | None:
    """Why Suricata 7 refuses a rule with these contents (in rule order) in `buffer`, or
    None: a ja3(s).hash content that is not 32 characters, a tls.cert_serial content of more
    than 2 bytes without ':' (both judged on the first content only), a tls.cert_fingerprint
    content that is not 59 characters with ':' (every content)."""
    if not patterns:
        return None
    first = patterns[0]
    if buffer in ("ja3.hash", "ja3s.hash") and len(first) != 32:
        return f"{buffer}: a JA3 hash is 32 hex characters, the content has {len(first)}; it would never match"
    if buffer == "tls.cert_serial" and len(first) > 2 and b":" not in first:
        return "tls.cert_serial: no ':' in the content; the serial is written 00:9A:...; it would never match"
    if buffer == "tls.cert_fingerprint":
        for pat in patterns:
            if len(pat) != 59 or b":" not in pat:
                return ("tls.cert_fingerprint: a SHA-1 fingerprint is 59 characters (hex pairs joined by ':'); "
                        "it would never match")
    return None


# ---------------------------------------------------------------------------- detection
_TO_SERVER_STARTS = frozenset({b"\x16\x03\x00", b"\x16\x03\x01", b"\x16\x03\x02", b"\x16\x03\x03",
                               b"\x01\x03\x00", b"\x01\x03\x01", b"\x01\x03\x02", b"\x01\x03\x03"})
_TO_CLIENT_STARTS = frozenset(bytes((t, 3, v)) for t in (0x15, 0x16, 0x17) for v in range(4))


def probe(data: bytes, to_server: bool, sport: int, dport: int, ipproto: int = 6,
          settings: Settings | None = None) -> bool | None:
    """Suricata's TLS detection: the first three bytes are a handshake record header of
    SSLv3..TLS 1.2 (to server; 01 03 0x too), or an alert / handshake / application data
    record header (to client).  An SSLv2 hello (first byte's top bit set, message type 1)
    is TLS when it offers version 0.2 or, on a detection port (Settings.detection_ports,
    443), any version."""
    if len(data) < 3:
        return None
    head = data[:3]
    if to_server:
        if head in _TO_SERVER_STARTS:
            return True
        if data[0] & 0x80 and data[2] == V2_CLIENT_HELLO:
            if dport in (settings or _DEFAULTS).detection_ports:
                return True
            if len(data) < 5:
                return None
            return data[3:5] == b"\x00\x02"
        return False
    return head in _TO_CLIENT_STARTS


# ---------------------------------------------------------------------------- the parser
class _Stream:
    """One direction's record-layer state."""

    __slots__ = ("pend", "v2", "hdr", "ctype", "rlen", "rll", "stream_left", "hs_type", "hs_size", "hs_buf",
                 "hs_skip", "v2_late")

    def __init__(self) -> None:
        self.pend = bytearray()     # header bytes, then body bytes, of the record being collected
        self.v2 = False             # the record being collected is SSLv2
        self.hdr = False            # its header is complete and checked
        self.ctype = 0
        self.rlen = 0
        self.rll = 0                # SSLv2 header length (2 or 3)
        self.stream_left = 0        # application data bytes of the current record still to come
        self.hs_type = 0            # a handshake message spanning records
        self.hs_size = 0
        self.hs_buf: bytearray | None = None
        self.hs_skip = 0            # bytes of an oversized handshake message still to skip
        self.v2_late = False        # an SSLv2 record left incomplete by a feed (see _v2_step)

    def fresh(self) -> bool:
        return not self.pend and not self.hdr and not self.stream_left

    def reset_record(self) -> None:
        self.pend.clear()
        self.hdr = False
        self.stream_left = 0
        self.v2_late = False


class _GiveUp(Exception):
    """Internal: the flow is not TLS any more (Suricata's parser error)."""


class Parser(_Base):
    proto = PROTO

    def __init__(self, settings: Settings | None = None, ipproto: int = 6) -> None:
        super().__init__()
        self.s = settings or Settings()
        self.ja3_on = self.s.ja3_fingerprints != "no"
        self.tx = TlsTx(0)
        self.txs = [self.tx]
        self.streams = (_Stream(), _Stream())      # [to_client, to_server]
        self.no_inspect_payload = False            # encrypted: payload (stream) inspection stops
        self.bypass_ready = False
        self.error: str | None = None              # an internal error gave up the flow (never expected)

    # -- public
    def feed(self, data: bytes, to_server: bool) -> None:
        if self.failed or not data:
            return
        try:
            self._feed(bytes(data), bool(to_server))
        except _GiveUp:
            self.failed = True
        except Exception as exc:    # noqa: BLE001 - never raise out of the parser; kept for tests
            self.error = f"{type(exc).__name__}: {exc}"
            self.failed = True
        self._progress()

    def end(self, to_server: bool) -> None:
        """The direction ended: an SSLv2 record held for the byte Suricata waits for after it
        is read now (Suricata hands the stream's rest to the parser at its end), then the
        session is finished."""
        st = self.streams[to_server]
        if not self.failed and st.v2 and st.hdr and st.rlen >= 1 and len(st.pend) == st.rlen - 1:
            body, ctype = bytes(st.pend), st.ctype
            st.reset_record()
            try:
                self._v2_message(ctype, body, to_server)
            except _GiveUp:
                self.failed = True
        self.tx.flags |= F_FINISHED
        self._progress()

    # -- record layer
    def _feed(self, data: bytes, to_server: bool) -> None:
        st = self.streams[to_server]
        tx = self.tx
        if st.fresh():
            tx.current_flags = 0
        max_records = max((len(st.pend) + len(data)) // 6, 1)
        count = 0
        pos, n = 0, len(data)
        while pos < n:
            if count > max_records:
                st.reset_record()
                self.event(EV_TOO_MANY_RECORDS)
                raise _GiveUp
            if st.stream_left:
                pos = self._skip_application_data(st, n, pos)
            else:
                if st.fresh():
                    c = tx.conn(to_server)
                    if data[pos] & 0xC0:
                        c.version = SSL_2
                        st.v2 = True
                    else:
                        if c.version == SSL_2:
                            c.version = VERSION_UNKNOWN
                        st.v2 = False
                pos = self._v2_step(st, data, pos, to_server) if st.v2 else self._tls_step(st, data, pos, to_server)
            count += 1
        if st.hdr:
            st.v2_late = st.v2
            return      # a record waits for its body: Suricata returns "incomplete" before the check below
        # the certificate the handshake waits for is there
        f = tx.flags
        if f & F_NEED_CLIENT_CERT:
            if tx.client.subject is not None and tx.client.issuer is not None:
                tx.flags |= F_HANDSHAKE_DONE
        elif tx.server.subject is not None and tx.server.issuer is not None:
            tx.flags |= F_HANDSHAKE_DONE

    def _tls_step(self, st: _Stream, data: bytes, pos: int, to_server: bool) -> int:
        n = len(data)
        if not st.hdr:
            c = self.tx.conn(to_server)
            prev = c.version
            have = len(st.pend)
            take = min(RECORD_HDR - have, n - pos)
            st.pend += data[pos:pos + take]
            pos += take
            # the version bytes count as they arrive, as in Suricata's streaming header parse:
            # after the first only its high byte (tls.version can match a partial header)
            hello = ST_CLIENT_HELLO if to_server else ST_SERVER_HELLO
            if not (self.tx.flags & hello and c.version != VERSION_UNKNOWN):
                if have < 2 <= len(st.pend):
                    c.version = st.pend[1] << 8
                if have < 3 <= len(st.pend):
                    c.version |= st.pend[2]
            if len(st.pend) < RECORD_HDR:
                return pos
            if self._tls_header(st, c, prev):
                return n                       # an unknown record after TLS 1.0/1.1: the rest is skipped
            if st.ctype == CT_APPLICATION_DATA:    # not held: skipped as it streams
                st.hdr = False
                st.stream_left = st.rlen
                return self._skip_application_data(st, n, pos)
        take = min(st.rlen - len(st.pend), n - pos)
        st.pend += data[pos:pos + take]
        pos += take
        if len(st.pend) == st.rlen:
            body = bytes(st.pend)
            st.reset_record()
            self._tls_record(st, body, to_server)
        return pos

    def _tls_header(self, st: _Stream, c: Conn, prev: int) -> bool:
        """Checks a complete record header (`prev`: the side's version before this feed's
        header bytes); True when the rest of the feed is to be skipped."""
        h = st.pend
        st.ctype = h[0]
        st.rlen = (h[3] << 8) | h[4]
        st.pend.clear()
        st.hdr = True
        if st.ctype not in CONTENT_TYPES:
            self.event(EV_INVALID_RECORD_TYPE)
            if prev in (TLS_10, TLS_11):
                st.reset_record()
                c.version = prev
                return True
            raise _GiveUp
        if st.rlen == 0:
            self.event(EV_INVALID_RECORD_LENGTH)
            raise _GiveUp
        if c.version not in VALID_VERSIONS:
            self.event(EV_INVALID_RECORD_VERSION)
            raise _GiveUp
        if st.rlen > RECORD_MAX:
            self.event(EV_INVALID_RECORD_LENGTH)
            raise _GiveUp
        return False

    def _skip_application_data(self, st: _Stream, n: int, pos: int) -> int:
        k = min(st.stream_left, n - pos)
        if k:
            st.stream_left -= k
            tx = self.tx
            if not (tx.flags & F_EARLY_DATA and not tx.flags & ST_SERVER_HELLO):   # 0-RTT data: not yet
                tx.flags |= F_HANDSHAKE_DONE
                self._encrypted()
        return pos + k

    def _encrypted(self) -> None:
        if self.s.encryption_handling != "full":
            self.no_inspect_payload = True
        if self.s.encryption_handling == "bypass":
            self.bypass_ready = True

    def _tls_record(self, st: _Stream, body: bytes, to_server: bool) -> None:
        tx = self.tx
        ct = st.ctype
        if ct == CT_CHANGE_CIPHER_SPEC:
            tx.flags |= F_CCS | (F_CLIENT_CCS if to_server else F_SERVER_CCS)
        elif ct == CT_HANDSHAKE:
            if tx.flags & F_CCS and not (tx.flags & ST_CLIENT_HELLO and tx.client.version > TLS_12
                                         and not tx.flags & ST_SERVER_HELLO):
                return                          # encrypted handshake (TLS 1.3 middlebox CCS aside)
            if len(body) < 4:
                self.event(EV_INVALID_SSL_RECORD)
                raise _GiveUp
            if not self._handshake(st, body, to_server):
                self.event(EV_INVALID_HANDSHAKE_MESSAGE)
                raise _GiveUp
        elif ct == CT_HEARTBEAT:
            self._heartbeat(body, to_server)

    # -- handshake messages
    def _handshake(self, st: _Stream, body: bytes, to_server: bool) -> bool:
        i, n = 0, len(body)
        tx = self.tx
        while i < n:
            if st.hs_skip:
                k = min(st.hs_skip, n - i)
                st.hs_skip -= k
                i += k
                continue
            if st.hs_buf is not None:
                add = min(st.hs_size - len(st.hs_buf), n - i)
                st.hs_buf += body[i:i + add]
                i += add
                if len(st.hs_buf) >= st.hs_size:
                    msg = bytes(st.hs_buf)
                    st.hs_buf = None
                    if not self._message(st.hs_type, msg, to_server):
                        return False
                continue
            if n - i < 4:
                self.event(EV_INVALID_SSL_RECORD)
                return False
            typ = body[i]
            size = int.from_bytes(body[i + 1:i + 4], "big")
            i += 4
            if typ not in HS_SUPPORTED:
                i += min(n - i, size)
                if not tx.flags & (F_CLIENT_CCS if to_server else F_SERVER_CCS):
                    self.event(EV_INVALID_HANDSHAKE_MESSAGE)
                continue
            if size > n - i:                    # continues in the next record(s)
                if size > self.s.max_handshake_message:
                    st.hs_skip = size - (n - i)
                else:
                    st.hs_type, st.hs_size = typ, size
                    st.hs_buf = bytearray(body[i:])
                return True
            if not self._message(typ, body[i:i + size], to_server):
                return False
            i += size
        return True

    def _message(self, typ: int, msg: bytes, to_server: bool) -> bool:
        if not msg:
            return True
        tx = self.tx
        if typ == HS_CLIENT_HELLO:
            tx.current_flags = ST_CLIENT_HELLO
            _Hello(self, msg, to_server, True).parse()
        elif typ == HS_SERVER_HELLO:
            tx.current_flags = ST_SERVER_HELLO
            _Hello(self, msg, to_server, False).parse()
        elif typ == HS_SERVER_KEY_EXCHANGE:
            tx.current_flags = ST_SERVER_KEYX
        elif typ == HS_CLIENT_KEY_EXCHANGE:
            tx.current_flags = ST_CLIENT_KEYX
        elif typ == HS_CERTIFICATE:
            self._certificates(msg, tx.conn(to_server))
        elif typ == HS_CERTIFICATE_REQUEST and not to_server:
            tx.current_flags = F_NEED_CLIENT_CERT
        tx.flags |= tx.current_flags
        return True

    def _certificates(self, msg: bytes, c: Conn) -> None:
        if len(msg) < 3:
            return
        size = int.from_bytes(msg[:3], "big")
        if len(msg) - 3 < size or c.certs_seen:
            return
        c.certs_seen = True
        chain = msg[3:3 + size]
        p = 0
        while p < size:
            if size - p < 3:
                self.event(EV_INVALID_CERTIFICATE)
                return
            clen = int.from_bytes(chain[p:p + 3], "big")
            if size - p - 3 < clen:
                self.event(EV_INVALID_CERTIFICATE)
                return
            der = chain[p + 3:p + 3 + clen]
            p += 3 + clen
            if c.subject is None and c.issuer is None and c.serial is None:
                cert, ev = x509.parse(der)
                if cert is None:
                    self.event(ev)
                    continue                    # left out of the chain
                if "\x00" in cert.subject:      # not a C string: Suricata cannot keep it
                    self.event(EV_CERT_INVALID_SUBJECT)
                    return
                c.subject = cert.subject
                if "\x00" in cert.issuer:
                    self.event(EV_CERT_INVALID_ISSUER)
                    return
                c.issuer, c.serial = cert.issuer, cert.serial
                c.not_before, c.not_after = cert.not_before, cert.not_after
                c.fingerprint = hashlib.sha1(der).digest().hex(":")
            c.certs.append(der)

    def _heartbeat(self, body: bytes, to_server: bool) -> None:
        tx = self.tx
        n = len(body)
        if n < 3:
            return
        if not tx.flags & F_CCS and body[0] not in (1, 2):
            self.event(EV_INVALID_HEARTBEAT)
            raise _GiveUp
        if not tx.flags & F_HB_INFLIGHT:
            tx.flags |= F_HB_INFLIGHT | (F_HB_CLIENT_INIT if to_server else F_HB_SERVER_INIT)
            if tx.flags & F_CCS:
                tx.hb_record_len = n            # encrypted: only its size is known
                return
            payload = (body[1] << 8) | body[2]
            if payload + 3 > n:
                self.event(EV_OVERFLOW_HEARTBEAT)
                raise _GiveUp
            if n - payload - 3 < 16:
                self.event(EV_INVALID_HEARTBEAT)
                raise _GiveUp
        elif tx.flags & (F_HB_CLIENT_INIT if to_server else F_HB_SERVER_INIT):
            self.event(EV_INVALID_HEARTBEAT)    # a second request in flight from the same side
            raise _GiveUp
        else:                                   # the response
            tx.flags &= ~(F_HB_INFLIGHT | F_HB_SERVER_INIT | F_HB_CLIENT_INIT)
            if tx.flags & F_CCS and 0 < tx.hb_record_len < n:
                tx.hb_record_len = 0
                self.event(EV_DATALEAK_HEARTBEAT)
                raise _GiveUp
            tx.hb_record_len = 0

    # -- SSLv2
    def _v2_step(self, st: _Stream, data: bytes, pos: int, to_server: bool) -> int:
        n = len(data)
        tx = self.tx
        if not st.hdr:
            if not st.pend:
                st.rll = 2 if data[pos] & 0x80 else 3
            need = st.rll + 1                   # the length bytes (and padding), then the message type
            take = min(need - len(st.pend), n - pos)
            st.pend += data[pos:pos + take]
            pos += take
            if len(st.pend) < need:
                return pos
            h = st.pend
            st.rlen = ((h[0] & 0x7F) << 8 | h[1]) if st.rll == 2 else ((h[0] & 0x3F) << 8 | h[1])
            st.ctype = h[st.rll]
            tx.conn(to_server).version = SSL_2
            st.pend.clear()
            st.hdr = True
        if st.rlen <= 1 and pos >= n:           # judged once a byte follows the header, as Suricata
            return pos
        if st.rlen == 0:
            self.event(EV_INVALID_SSLV2_HEADER)
            self.event(EV_INVALID_SSL_RECORD)
            raise _GiveUp
        take = min(st.rlen - 1 - len(st.pend), n - pos)
        st.pend += data[pos:pos + take]
        pos += take
        if len(st.pend) < st.rlen - 1:
            return pos
        if st.v2_late and pos >= n:
            # left incomplete by an earlier feed, Suricata asks for `length` more bytes after
            # the header, one more than the record has: it is read once a byte follows it
            return pos
        body = bytes(st.pend) + data[pos:pos + 6]   # the client hello check may read past the record
        ctype = st.ctype
        st.reset_record()
        self._v2_message(ctype, body, to_server)
        return pos

    def _v2_message(self, ctype: int, body: bytes, to_server: bool) -> None:
        tx = self.tx
        if ctype == V2_ERROR:
            self.event(EV_ERROR_MESSAGE)
        elif ctype == V2_CLIENT_HELLO:
            if len(body) < 6:
                self.event(EV_INVALID_SSL_RECORD)
                raise _GiveUp
            tx.current_flags = ST_CLIENT_HELLO | F_V2_CLIENT_HS
            tx.conn(to_server).version = (body[0] << 8) | body[1]
            if (body[4] << 8) | body[5] == 0:
                tx.current_flags |= F_V2_NO_SESSION_ID
        elif ctype == V2_CLIENT_MASTER_KEY:
            tx.current_flags = F_V2_CLIENT_MASTER_KEY
        elif ctype in (V2_CLIENT_CERTIFICATE, V2_SERVER_VERIFY, V2_SERVER_FINISHED, V2_CLIENT_FINISHED,
                       V2_REQUEST_CERTIFICATE):
            if ctype == V2_CLIENT_CERTIFICATE and to_server:
                tx.current_flags = ST_CLIENT_KEYX
            if tx.flags & F_V2_CLIENT_HS and tx.flags & F_V2_SERVER_HS:
                if to_server:
                    if tx.flags & F_V2_NO_SESSION_ID:
                        tx.current_flags |= F_V2_CLIENT_ENCRYPTED
                    elif tx.flags & F_V2_CLIENT_MASTER_KEY:
                        tx.current_flags = F_V2_CLIENT_ENCRYPTED
                else:
                    tx.current_flags = F_V2_SERVER_ENCRYPTED
                if tx.flags & F_V2_CLIENT_ENCRYPTED and tx.flags & F_V2_SERVER_ENCRYPTED:
                    self._encrypted()
        elif ctype == V2_SERVER_HELLO:
            tx.current_flags = ST_SERVER_HELLO | F_V2_SERVER_HS
        tx.flags |= tx.current_flags

    # -- progress
    def _progress(self) -> None:
        tx = self.tx
        f = tx.flags
        if f & F_FINISHED:
            tx.progress[0] = tx.progress[1] = DONE
        elif f & F_HANDSHAKE_DONE:
            tx.progress[0] = tx.progress[1] = HANDSHAKE_DONE
        elif tx.server.subject is not None or tx.server.issuer is not None:
            tx.progress[1] = CERT_READY



class _Hello:
    """One ClientHello / ServerHello message (Suricata's TLSDecodeHandshakeHello): fills the
    sending side's Conn and the flow flags.  A length that does not fit raises
    tls.handshake_invalid_length and ends the hello (not the flow)."""

    __slots__ = ("p", "tx", "c", "m", "client", "ja3")

    def __init__(self, parser: Parser, msg: bytes, to_server: bool, client: bool) -> None:
        self.p = parser
        self.tx = parser.tx
        self.c = parser.tx.conn(to_server)
        self.m = msg
        self.client = client
        self.ja3 = parser.ja3_on

    def bad_length(self) -> None:
        self.p.event(EV_HANDSHAKE_INVALID_LENGTH)

    def parse(self) -> None:
        m, c, tx = self.m, self.c, self.tx
        n = len(m)
        if n < 2:
            return self.bad_length()
        version = (m[0] << 8) | m[1]
        c.version = version
        if not self.client and (version == TLS_13 or version >> 8 == 0x7F):
            tx.flags |= F_LOG_WITHOUT_CERT
        if 0x7F01 <= version < 0x7F10 or version == TLS_13:
            c.version = TLS_13_PRE_DRAFT16      # TLS 1.3 drafts before 16 cannot be told apart
        if self.ja3 and c.ja3 is None:
            c.ja3 = [str(version)]
        p = 2
        if n - p < 32:
            return self.bad_length()
        (tx.client if self.client else tx.server).random = m[p:p + 32]
        p += 32
        short_hello = not self.client and tx.flags & F_LOG_WITHOUT_CERT   # early TLS 1.3 drafts
        if not short_hello:
            if n - p < 1:
                return self.bad_length()
            sid_len = m[p]
            p += 1
            if n - p < sid_len:
                return self.bad_length()
            if sid_len and c.session_id is None:
                c.session_id = m[p:p + sid_len]
                if not self.client and tx.client.session_id == c.session_id:
                    tx.flags |= F_SESSION_RESUMED
            p += sid_len
        if n - p < 2:
            return self.bad_length()
        if self.client:
            clen = (m[p] << 8) | m[p + 1]
            p += 2
        else:
            clen = 2                            # the selected cipher
        if n - p < clen or clen % 2:
            return self.bad_length()
        if self.ja3 and c.ja3_hash is None:
            c.ja3.append("-".join(str(v) for v in _u16s(m, p, clen) if v not in GREASE))
        p += clen
        if not short_hello:
            if n - p < 1:
                return self.bad_length()
            if self.client:
                k = m[p]
                p += 1
                if n - p < k:
                    return self.bad_length()
                p += k
            else:
                p += 1
        if not self._extensions(p):
            return None
        if self.ja3 and c.ja3_hash is None:
            c.ja3_hash = hashlib.md5(",".join(c.ja3).encode()).hexdigest()
        return None

    def _extensions(self, p: int) -> bool:
        """False when the list does not fit (no JA3 hash then)."""
        m, c, tx = self.m, self.c, self.tx
        n = len(m)
        ja3 = self.ja3 and c.ja3_hash is None
        exts: list[int] = []
        groups: list[int] | None = [] if ja3 and self.client else None
        formats: list[int] | None = [] if ja3 and self.client else None
        if n - p >= 2:
            total = (m[p] << 8) | m[p + 1]
            p += 2
            if n - p < total:
                self.bad_length()
                return False
            done = 0
            while done < total:
                if n - p < 4:
                    self.bad_length()
                    return False
                etype = (m[p] << 8) | m[p + 1]
                elen = (m[p + 2] << 8) | m[p + 3]
                p += 4
                if n - p < elen:
                    self.bad_length()
                    return False
                data = m[p:p + elen]
                if etype == EXT_SNI:
                    used = self._sni(data)
                elif etype == EXT_GROUPS:
                    used = self._groups(data, groups)
                elif etype == EXT_EC_POINT_FORMATS:
                    used = self._point_formats(data, formats)
                elif etype == EXT_SIG_ALGS:
                    used = self._sig_algs(data)
                elif etype == EXT_ALPN:
                    used = elen if self._alpn(data) >= 0 else -1
                elif etype == EXT_SUPPORTED_VERSIONS:
                    used = self._supported_versions(data)
                else:
                    if etype == EXT_EARLY_DATA and self.client:
                        tx.flags |= F_EARLY_DATA
                    elif etype == EXT_SESSION_TICKET and self.client:
                        tx.flags |= F_SESSION_RESUMED
                    used = elen
                if used < 0:
                    break                       # ends the list; what was read so far counts
                p += used
                if ja3 and etype not in GREASE:
                    exts.append(etype)
                done = (done + elen + 4) & 0xFFFF
        if ja3:
            c.ja3.append("-".join(map(str, exts)))
            if self.client:
                c.ja3.append("-".join(map(str, groups)))
                c.ja3.append("-".join(map(str, formats)))
        return True

    # extension bodies: bytes used, or -1 (an event raised) -- lengths are checked against
    # the extension's own data
    def _sni(self, d: bytes) -> int:
        n = len(d)
        if n == 0:
            return 0
        if n < 3:
            self.bad_length()
            return -1
        if d[2] != 0:                           # host_name is the only type (RFC 6066 3)
            self.p.event(EV_INVALID_SNI_TYPE)
            return -1
        if n < 5:
            self.bad_length()
            return -1
        size = (d[3] << 8) | d[4]
        if n - 5 < size or size > 255 or size == 0:
            self.p.event(EV_INVALID_SNI_LENGTH)
            return -1
        if self.c.sni is not None:
            self.p.event(EV_MULTIPLE_SNI)
        else:
            self.c.sni = d[5:5 + size].split(b"\x00", 1)[0]
        return 5 + size

    def _groups(self, d: bytes, out: list[int] | None) -> int:
        n = len(d)
        if n == 0:
            return 0
        if n < 2:
            self.bad_length()
            return -1
        size = (d[0] << 8) | d[1]
        if n - 2 < size:
            self.bad_length()
            return -1
        if out is None:
            return 2 + size
        q, done = 2, 0
        while done < size:                      # an odd size reads one value past it, as Suricata
            if n - q < 2:
                self.bad_length()
                return -1
            v = (d[q] << 8) | d[q + 1]
            q += 2
            if v not in GREASE:
                out.append(v)
            done += 2
        return q

    def _point_formats(self, d: bytes, out: list[int] | None) -> int:
        n = len(d)
        if n == 0:
            return 0
        size = d[0]
        if n - 1 < size:
            self.bad_length()
            return -1
        if out is not None:
            out.extend(d[1:1 + size])
        return 1 + size

    def _sig_algs(self, d: bytes) -> int:
        n = len(d)
        if n == 0:
            return 0
        if n < 2:
            self.bad_length()
            return -1
        size = (d[0] << 8) | d[1]
        if size % 2 or n - 2 < size:
            self.bad_length()
            return -1
        return 2 + size

    def _alpn(self, d: bytes) -> int:
        n = len(d)
        if n == 0:
            return 0
        if n < 2 or n - 2 < ((d[0] << 8) | d[1]):
            self.bad_length()
            return -1
        return 2 + ((d[0] << 8) | d[1])

    def _supported_versions(self, d: bytes) -> int:
        n = len(d)
        if n == 0:
            return 0
        c, tx = self.c, self.tx
        if self.client:
            size = d[0]
            if size < 2 or n - 1 < size:
                self.bad_length()
                return -1
            for i in range(0, size - 1, 2):     # the first valid one (GREASE and noise skipped)
                v = (d[1 + i] << 8) | d[2 + i]
                if v in VALID_VERSIONS:
                    c.version = v
                    break
            tx.flags |= F_CH_VERSION_EXTENSION
            return 1 + size
        if n < 2:
            self.bad_length()
            return -1
        v = (d[0] << 8) | d[1]
        if tx.flags & F_CH_VERSION_EXTENSION and v > TLS_12:
            tx.flags |= F_LOG_WITHOUT_CERT
        c.version = v
        return 2


def _u16s(m: bytes, p: int, size: int):
    for i in range(p, p + size - 1, 2):
        yield (m[i] << 8) | m[i + 1]
