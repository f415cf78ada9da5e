"""A small, bounded X.509 (DER) reader: what the TLS buffers need from a certificate.

`parse(der) -> (Certificate | None, event)` reads the subject, the issuer, the serial
number and the validity dates of one DER certificate, and formats them as Suricata
7.0.10 does (it decodes certificates with the Rust crate x509-parser 0.15, whose
formatting is what rules see).  Never raises; every length is checked against its
container, nesting is bounded by the X.509 structure itself.

Formats (checked against Suricata 7.0.10's EVE `tls` records, tests/unit/test_applayer_tls.py):

- subject / issuer: the RDNs in certificate order joined by ", ", the attributes of a
  multi-valued RDN joined by " + ", each `ABBREV=value`: "C=US, O=Let's Encrypt, CN=R3".
  ABBREV is CN, C, L, ST, O, OU, DC or Email, else the OID's short name in x509-parser's
  registry (serialNumber, businessCategory, msJurisdictionCountry, uid, streetAddress, ...),
  else `OID(1.2.3.4)`.  Values of the string types (UTF8String, PrintableString,
  IA5String, T61String, ...) are their bytes read as UTF-8; a BMPString is UTF-16BE;
  any other type is its content in uppercase hex.  A string value that is not valid
  UTF-8 (or UTF-16) turns the whole name into "<X509Error: Invalid X.509 name>".
- serial: the INTEGER's content bytes as they are (a leading 00 kept), uppercase hex
  joined by ":": "00:9A:12:34".
- not_before / not_after: seconds since the epoch (UTC).

What makes a certificate undecodable, and the TLS event Suricata raises then, follows
x509-parser 0.15 on asn1-rs 0.5 (41 hand-made cases recorded from Suricata,
tests/unit/test_applayer_tls.py X509_SURICATA; about 700 randomly mutated handshakes agree but
for a few event names):
- tags are compared by number only, whatever their class; any primitive element is taken as
  an OID (an AlgorithmIdentifier or attribute with an OCTET STRING for OID passes);
- a header not all there (an empty certificate, "30 82 01"): certificate_invalid_length; an
  element whose content runs past its container, the certificate's own SEQUENCE past the
  certificate included: invalid_certificate, but certificate_invalid_length for an
  AlgorithmIdentifier or its OID; a SEQUENCE-typed field (TBS, Name,
  Validity, SubjectPublicKeyInfo, AlgorithmIdentifier) with another tag, an indefinite
  length: certificate_invalid_der;
- version [0]: not an INTEGER that fits a u32, certificate_invalid_version (a [0] that does
  not fit counts as absent); serial: anything but an INTEGER (which may be empty or
  negative), certificate_invalid_serial; a Time that does not parse (seconds 60, no zone in
  a GeneralizedTime, February 30), certificate_invalid_date; the key or signature not a
  BIT STRING, invalid_certificate;
- a Name keeps the RDNs that parse and ignores the rest of its SEQUENCE (an RDN needs one
  attribute that parses);
- unique ids [1]/[2] are explicit tags around a BIT STRING: a primitive one is
  invalid_certificate, one around something else counts as absent; what follows must be
  [3] (any class; else certificate_invalid_extensions) with a SEQUENCE of extensions (OID,
  optional BOOLEAN, OCTET STRING) that ends the TBSCertificate (else invalid_certificate).
Limits: the contents of known extensions are not parsed (a malformed one does not fail the
certificate in x509-parser either); lengths need not be minimal (asn1-rs accepts that too).
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import NamedTuple

EV_INVALID_CERTIFICATE = "tls.invalid_certificate"
EV_INVALID_LENGTH = "tls.certificate_invalid_length"
EV_INVALID_VERSION = "tls.certificate_invalid_version"
EV_INVALID_SERIAL = "tls.certificate_invalid_serial"
EV_INVALID_ALGORITHM = "tls.certificate_invalid_algorithmidentifier"
EV_INVALID_X509NAME = "tls.certificate_invalid_x509name"
EV_INVALID_DATE = "tls.certificate_invalid_date"
EV_INVALID_EXTENSIONS = "tls.certificate_invalid_extensions"
EV_INVALID_DER = "tls.certificate_invalid_der"

INVALID_NAME = "<X509Error: Invalid X.509 name>"   # x509-parser's rendering of a name it cannot print

# universal tags
T_BOOLEAN, T_INTEGER, T_BIT_STRING, T_OCTET_STRING, T_OID = 1, 2, 3, 4, 6
T_UTC_TIME, T_GENERALIZED_TIME, T_SEQUENCE, T_SET = 23, 24, 16, 17
T_BMP_STRING = 30
# read as UTF-8 by x509-parser: Numeric, Printable, T61, Videotex, IA5, Graphic, Visible,
# General, ObjectDescriptor and UTF8 strings
UTF8_TAGS = frozenset({18, 19, 20, 21, 22, 25, 26, 27, 7, 12})

ABBREV = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
          "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "Email"}
# x509-parser's OID registry (oid-registry 0.6: the x509 and crypto groups): OID -> short name,
# used for attribute types without an abbreviation
OID_NAMES = {
    "0.9.2342.19200300.100.1.1": "uid", "0.9.2342.19200300.100.1.25": "domainComponent",
    "1.2.643.2.2.3": "id-GostR3411-94-with-GostR3410-2001", "1.2.643.2.2.19": "gostR3410-2001",
    "1.2.643.7.1.1.1.1": "gost3410-2012-256", "1.2.643.7.1.1.1.2": "gost3410-2012-512",
    "1.2.643.7.1.1.3.2": "id-tc26-signwithdigest-gost3410-12-256",
    "1.2.643.7.1.1.3.3": "id-tc26-signwithdigest-gost3410-12-512", "1.2.840.10040.4.1": "id-dsa",
    "1.2.840.10040.4.3": "dsa-with-sha1", "1.2.840.10045.2.1": "id-ecPublicKey", "1.2.840.10045.3.1.7": "prime256v1",
    "1.2.840.10045.4.3.1": "ecdsa-with-SHA224", "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
    "1.2.840.10045.4.3.3": "ecdsa-with-SHA384", "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
    "1.2.840.113549.1.1.1": "rsaEncryption", "1.2.840.113549.1.1.2": "md2WithRSAEncryption",
    "1.2.840.113549.1.1.3": "md4WithRSAEncryption", "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
    "1.2.840.113549.1.1.5": "sha1WithRSAEncryption", "1.2.840.113549.1.1.10": "rsassa-pss",
    "1.2.840.113549.1.1.11": "sha256WithRSAEncryption", "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
    "1.2.840.113549.1.1.13": "sha512WithRSAEncryption", "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
    "1.2.840.113549.1.7.1": "pkcs7-data", "1.2.840.113549.1.7.2": "pkcs7-signedData",
    "1.2.840.113549.1.7.3": "pkcs7-envelopedData", "1.2.840.113549.1.7.4": "pkcs7-signedAndEnvelopedData",
    "1.2.840.113549.1.7.5": "pkcs7-digestedData", "1.2.840.113549.1.7.6": "pkcs7-encryptedData",
    "1.2.840.113549.1.9.1": "emailAddress", "1.2.840.113549.1.9.2": "unstructuredName",
    "1.2.840.113549.1.9.3": "contentType", "1.2.840.113549.1.9.4": "id-messageDigest",
    "1.2.840.113549.1.9.5": "signing-time", "1.2.840.113549.1.9.7": "challengePassword",
    "1.2.840.113549.1.9.14": "extensionRequest", "1.2.840.113549.1.9.15": "smimeCapabilities",
    "1.2.840.113549.1.9.20": "friendlyName", "1.2.840.113549.1.12": "pkcs-12",
    "1.2.840.113549.1.12.1": "pkcs-12PbeIds", "1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
    "1.2.840.113549.1.12.1.2": "pbeWithSHAAnd40BitRC4", "1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.4": "pbeWithSHAAnd2-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.5": "pbeWithSHAAnd128BitRC2-CBC", "1.2.840.113549.1.12.1.6": "pbeWithSHAAnd40BitRC2-CBC",
    "1.3.6.1.4.1.311.60.2.1.1": "msJurisdictionLocality",
    "1.3.6.1.4.1.311.60.2.1.2": "msJurisdictionStateOrProvince", "1.3.6.1.4.1.311.60.2.1.3": "msJurisdictionCountry",
    "1.3.6.1.4.1.11129.2.4.2": "ctSCTList", "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
    "1.3.6.1.5.5.7.48.1": "id-ad-ocsp", "1.3.6.1.5.5.7.48.2": "id-ad-caIssuers",
    "1.3.6.1.5.5.7.48.3": "id-ad-timestamping", "1.3.6.1.5.5.7.48.4": "id-ad-dvcs",
    "1.3.6.1.5.5.7.48.5": "id-ad-caRepository", "1.3.6.1.5.5.7.48.6": "id-ad-http-certs",
    "1.3.6.1.5.5.7.48.7": "id-ad-http-crls", "1.3.6.1.5.5.7.48.10": "id-ad-rpki-manifest",
    "1.3.6.1.5.5.7.48.11": "id-ad-signed-object", "1.3.6.1.5.5.7.48.12": "id-ad-cmc",
    "1.3.6.1.5.5.7.48.13": "id-ad-rpki-notify", "1.3.6.1.5.5.7.48.14": "id-ad-stirTNList",
    "1.3.14.3.2.25": "md5WithRSASignature", "1.3.14.3.2.26": "id-SHA1", "1.3.14.3.2.29": "sha1WithRSAEncryption",
    "1.3.36.3.3.1.2": "rsaSignatureWithripemd160", "1.3.101.112": "ed25519", "1.3.101.113": "ed448",
    "1.3.132.0.34": "secp384r1", "1.3.132.0.35": "secp521r1",
    "1.3.133.16.840.63.0.2": "dhSinglePass-stdDH-sha1kdf-scheme", "2.5.4": "x509", "2.5.4.0": "objectClass",
    "2.5.4.1": "aliasedEntryName", "2.5.4.2": "knowledgeInformation", "2.5.4.3": "commonName", "2.5.4.4": "surname",
    "2.5.4.5": "serialNumber", "2.5.4.6": "countryName", "2.5.4.7": "localityName", "2.5.4.8": "stateOrProvinceName",
    "2.5.4.9": "streetAddress", "2.5.4.10": "organizationName", "2.5.4.11": "organizationalUnit",
    "2.5.4.12": "title", "2.5.4.13": "description", "2.5.4.14": "searchGuide", "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress", "2.5.4.17": "postalCode", "2.5.4.41": "name", "2.5.4.42": "givenName",
    "2.5.4.43": "initials", "2.5.4.44": "generationQualifier", "2.5.4.45": "uniqueIdentifier",
    "2.5.4.46": "dnQualifier", "2.5.29.1": "oldAuthorityKeyIdentifier", "2.5.29.2": "oldKeyAttributes",
    "2.5.29.3": "oldCertificatePolicies", "2.5.29.4": "oldKeyUsage", "2.5.29.5": "oldPolicyMapping",
    "2.5.29.6": "oldSubtreesConstraint", "2.5.29.7": "oldSubjectAltNAme", "2.5.29.8": "oldIssuerAltNAme",
    "2.5.29.14": "subjectKeyIdentifier", "2.5.29.15": "keyUsage", "2.5.29.16": "privateKeyUsagePeriod",
    "2.5.29.17": "subjectAltName", "2.5.29.18": "issuerAltName", "2.5.29.19": "basicConstraints",
    "2.5.29.20": "crlNumber", "2.5.29.21": "reasonCode", "2.5.29.23": "holdInstructionCode",
    "2.5.29.24": "invalidityDate", "2.5.29.27": "deltaCRLIndicator", "2.5.29.28": "issuerDistributionPoint",
    "2.5.29.29": "issuer", "2.5.29.30": "nameConstraints", "2.5.29.31": "crlDistributionPoints",
    "2.5.29.32": "certificatePolicies", "2.5.29.33": "policyMappings", "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.36": "policyConstraints", "2.5.29.37": "extendedKeyUsage", "2.5.29.46": "freshestCRL",
    "2.5.29.54": "inhibitantAnyPolicy", "2.16.840.1.101.3.4.1.42": "aes-256-cbc", "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512", "2.16.840.1.113730.1.1": "nsCertType",
    "2.16.840.1.113730.1.2": "nsBaseURL", "2.16.840.1.113730.1.3": "nsRevocationURL",
    "2.16.840.1.113730.1.4": "nsCARevocationURL", "2.16.840.1.113730.1.5": "nsCACRLURL",
    "2.16.840.1.113730.1.6": "nsCACertURL", "2.16.840.1.113730.1.7": "nsRenewalURL",
    "2.16.840.1.113730.1.8": "nsCAPolicyURL", "2.16.840.1.113730.1.9": "nsHomepageURL",
    "2.16.840.1.113730.1.10": "nsEntityLogo", "2.16.840.1.113730.1.11": "nsUserPicture",
    "2.16.840.1.113730.1.12": "nsSSLServerName", "2.16.840.1.113730.1.13": "nsComment",
}


@dataclass(frozen=True, slots=True)
class Certificate:
    subject: str
    issuer: str
    serial: str
    not_before: int
    not_after: int


class _Bad(Exception):
    """Internal: the certificate is undecodable; args[0] is the event."""


class _Tlv(NamedTuple):         # a tuple: made for every element, cheaper than a dataclass
    cls: int            # 0 universal, 1 application, 2 context, 3 private
    constructed: bool
    tag: int
    start: int          # content
    end: int


def _tlv(b: bytes, pos: int, end: int, short: str = EV_INVALID_CERTIFICATE,
         over: str = EV_INVALID_CERTIFICATE) -> _Tlv:
    """The element at b[pos:end]: _Bad(short) when its header is not all there, _Bad(over)
    when its content runs past `end` (der-parser's SEQUENCE parsers make that
    invalid_certificate, asn1-rs's own an Incomplete, certificate_invalid_length),
    invalid_der when its length is indefinite or has more than 8 bytes."""
    if pos >= end:
        raise _Bad(short)
    first = b[pos]
    pos += 1
    tag = first & 0x1F
    if tag == 0x1F:                       # high tag number form, at most 4 bytes of it
        tag = 0
        for _ in range(4):
            if pos >= end:
                raise _Bad(short)
            c = b[pos]
            pos += 1
            tag = (tag << 7) | (c & 0x7F)
            if not c & 0x80:
                break
        else:
            raise _Bad(EV_INVALID_DER)
    if pos >= end:
        raise _Bad(short)
    ln = b[pos]
    pos += 1
    if ln & 0x80:
        k = ln & 0x7F
        if k == 0:                        # indefinite: BER only
            raise _Bad(EV_INVALID_DER)
        if pos + k > end:                 # the length bytes are not all there
            raise _Bad(short)
        if k > 8:                         # more than asn1-rs reads
            raise _Bad(EV_INVALID_DER)
        ln = int.from_bytes(b[pos:pos + k], "big")
        pos += k
    if pos + ln > end:
        raise _Bad(over)                        # a header that is all there, its content not
    return _Tlv(first >> 6, bool(first & 0x20), tag, pos, pos + ln)


def _expect(b: bytes, pos: int, end: int, tag: int, ev: str) -> _Tlv:
    """An element of that tag number (asn1-rs 0.5 compares tag numbers only, whatever the
    class); _Bad(ev) for anything else (x509-parser maps every error of such a field to one
    event)."""
    try:
        t = _tlv(b, pos, end, ev)
    except _Bad:
        raise _Bad(ev) from None
    if t.tag != tag:
        raise _Bad(ev)
    return t


def _seq(b: bytes, pos: int, end: int, short: str = EV_INVALID_CERTIFICATE) -> _Tlv:
    """A SEQUENCE: not all there is `short` (invalid_certificate inside the certificate),
    another tag a DER error (certificate_invalid_der)."""
    t = _tlv(b, pos, end, short)
    if t.tag != T_SEQUENCE:
        raise _Bad(EV_INVALID_DER)
    return t


def oid_text(body: bytes) -> str:
    """An OID's content as x509-parser (asn1-rs 0.5) prints it: the first byte as X.Y (its value
    divided by 40 and the rest, whatever the byte), then base-128 arcs (an unfinished last arc
    counts as it is); an arc over 64 bits prints the whole content as spaced lowercase hex."""
    if not body:
        return ""
    arcs = [body[0] // 40, body[0] % 40]
    v = 0
    pending = False
    for c in body[1:]:
        v = (v << 7) | (c & 0x7F)
        pending = True
        if not c & 0x80:
            arcs.append(v)
            v, pending = 0, False
    if pending:
        arcs.append(v)
    if any(x >> 64 for x in arcs):
        return " ".join(f"{c:02x}" for c in body)
    return ".".join(map(str, arcs))


def oid_der(dotted: str) -> bytes:
    """The DER content of a dotted OID (for the tables above)."""
    arcs = [int(x) for x in dotted.split(".")]
    out = bytearray([arcs[0] * 40 + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


# attribute type labels by the OID's DER bytes: x509-parser compares OIDs by their encoding,
# so an OID spelled with padding bytes is not the attribute it would decode to
LABELS = {oid_der(o): n for o, n in OID_NAMES.items()} | {oid_der(o): n for o, n in ABBREV.items()}


def _value_text(t: _Tlv, b: bytes) -> str | None:
    data = b[t.start:t.end]
    if t.tag in UTF8_TAGS:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if t.tag == T_BMP_STRING:
        units = [(data[i] << 8) | data[i + 1] for i in range(0, len(data) - 1, 2)]
        if len(data) % 2:
            units.append(data[-1])            # an odd last byte is a code unit of its own
        try:
            return b"".join(u.to_bytes(2, "big") for u in units).decode("utf-16-be")
        except UnicodeDecodeError:
            return None
    return data.hex().upper()


def _name(b: bytes, pos: int, end: int) -> tuple[str, int]:
    """Name ::= SEQUENCE OF RDN: (text, next pos).  As x509-parser, the RDNs are read while
    they parse and the rest of the SEQUENCE is left unread (not an error)."""
    seq = _seq(b, pos, end)
    rdns = []
    p = seq.start
    while p < seq.end:
        rdn = _rdn(b, p, seq.end)
        if rdn is None:
            break
        attrs, p = rdn
        texts = []
        for oid, val in attrs:
            text = _value_text(val, b)
            if text is None:
                return INVALID_NAME, seq.end
            texts.append(f"{LABELS.get(oid) or f'OID({oid_text(oid)})'}={text}")
        rdns.append(" + ".join(texts))
    return ", ".join(rdns), seq.end


def _rdn(b: bytes, p: int, end: int):
    """RDN ::= SET OF SEQUENCE {type OID, value ANY}: ([(oid bytes, value)], next pos), or
    None when not even one attribute parses (its later attributes are left unread too)."""
    try:
        st = _expect(b, p, end, T_SET, EV_INVALID_X509NAME)
    except _Bad:
        return None
    attrs = []
    q = st.start
    while q < st.end:
        try:
            av = _expect(b, q, st.end, T_SEQUENCE, EV_INVALID_X509NAME)
            o = _tlv(b, av.start, av.end)       # asn1-rs 0.5 takes any primitive element as an OID
            val = _tlv(b, o.end, av.end)
        except _Bad:
            break
        if o.constructed:
            break
        attrs.append((b[o.start:o.end], val))
        q = av.end
    return (attrs, st.end) if attrs else None


def _algorithm(b: bytes, pos: int, end: int) -> int:
    """AlgorithmIdentifier (asn1-rs's derived parser: running past the end is
    certificate_invalid_length): a SEQUENCE starting with a primitive element, which asn1-rs
    0.5 takes as the OID whatever its tag (an OCTET STRING does)."""
    seq = _tlv(b, pos, end, EV_INVALID_LENGTH, EV_INVALID_LENGTH)
    if seq.tag != T_SEQUENCE:
        raise _Bad(EV_INVALID_DER)
    oid = _tlv(b, seq.start, seq.end, EV_INVALID_LENGTH, EV_INVALID_LENGTH)
    if oid.constructed:
        raise _Bad(EV_INVALID_ALGORITHM)
    return seq.end


def _digits(s: bytes) -> bool:
    return s.isascii() and s.isdigit()


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _time(b: bytes, pos: int, end: int) -> tuple[int, int]:
    """UTCTime YYMMDDhhmm[ss](Z|+hhmm|-hhmm) (YY < 50 is 20YY) or GeneralizedTime
    YYYYMMDDhhmmss[.fff](Z|+hhmm|-hhmm): (seconds since the epoch, next pos)."""
    t = _expect(b, pos, end, T_GENERALIZED_TIME, EV_INVALID_DATE) if b[pos:pos + 1] and b[pos] & 0x1F == 0x18 \
        else _expect(b, pos, end, T_UTC_TIME, EV_INVALID_DATE)
    s = b[t.start:t.end]
    if t.tag == T_UTC_TIME:
        if not _digits(s[:10]) or len(s) < 11:
            raise _Bad(EV_INVALID_DATE)
        yy = int(s[:2])
        year, rest = (2000 + yy if yy < 50 else 1900 + yy), s[2:]
    else:
        if not _digits(s[:14]) or len(s) < 15:
            raise _Bad(EV_INVALID_DATE)
        year, rest = int(s[:4]), s[4:]
    mo, d, h, mi = int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8])
    tail = rest[8:]
    sec = 0
    if _digits(tail[:2]) and len(tail) >= 2:
        sec, tail = int(tail[:2]), tail[2:]
    if t.tag == T_GENERALIZED_TIME and tail[:1] == b".":
        frac = tail[1:]
        n = len(frac) - len(frac.lstrip(b"0123456789"))
        if n == 0:
            raise _Bad(EV_INVALID_DATE)
        tail = frac[n:]
    off = 0
    if len(tail) == 5 and tail[:1] in (b"+", b"-") and _digits(tail[1:]):
        oh, om = int(tail[1:3]), int(tail[3:5])
        if oh > 23 or om > 59:
            raise _Bad(EV_INVALID_DATE)
        off = (oh * 3600 + om * 60) * (1 if tail[:1] == b"+" else -1)
    elif tail != b"Z":
        raise _Bad(EV_INVALID_DATE)
    if not 1 <= mo <= 12 or not 1 <= d <= _days_in_month(year, mo) or h > 23 or mi > 59 or sec > 59:
        raise _Bad(EV_INVALID_DATE)
    if year < 1:                          # outside what Python's calendar counts
        raise _Bad(EV_INVALID_DATE)
    return calendar.timegm((year, mo, d, h, mi, sec, 0, 0, 0)) - off, t.end


def _certificate(b: bytes) -> Certificate:
    outer = _seq(b, 0, len(b), EV_INVALID_LENGTH)      # not all there: nom's Incomplete
    tbs = _seq(b, outer.start, outer.end)
    p, e = tbs.start, tbs.end
    # version [0] EXPLICIT INTEGER (a u32) DEFAULT v1; a [0] that does not fit counts as absent
    if p < e and b[p] == 0xA0:
        try:
            v = _tlv(b, p, e)
        except _Bad:
            v = None
        if v is not None:
            n = _expect(b, v.start, v.end, T_INTEGER, EV_INVALID_VERSION)
            digits = b[n.start:n.end]
            if not digits or digits[0] & 0x80 or len(digits.lstrip(b"\x00")) > 4:
                raise _Bad(EV_INVALID_VERSION)
            p = v.end
    sn = _expect(b, p, e, T_INTEGER, EV_INVALID_SERIAL)        # any INTEGER, even empty or negative
    serial = ":".join(f"{c:02X}" for c in b[sn.start:sn.end])
    p = _algorithm(b, sn.end, e)
    issuer, p = _name(b, p, e)
    val = _seq(b, p, e)
    not_before, q = _time(b, val.start, val.end)
    not_after, _ = _time(b, q, val.end)
    subject, p = _name(b, val.end, e)
    spki = _seq(b, p, e)
    q = _algorithm(b, spki.start, spki.end)
    _expect(b, q, spki.end, T_BIT_STRING, EV_INVALID_CERTIFICATE)
    p = spki.end
    # issuerUniqueID [1], subjectUniqueID [2]: explicit tags around a BIT STRING; one holding
    # something else counts as absent, a primitive one is an error
    for uid in (1, 2):
        if p < e and b[p] & 0xC0 == 0x80 and b[p] & 0x1F == uid:
            t = _tlv(b, p, e)
            if not t.constructed:
                raise _Bad(EV_INVALID_CERTIFICATE)
            try:
                inner = _tlv(b, t.start, t.end)
            except _Bad:
                inner = None
            if inner is not None and inner.tag == T_BIT_STRING:
                p = t.end
    if p < e:
        _extensions(b, p, e)
    q = _algorithm(b, tbs.end, outer.end)
    _expect(b, q, outer.end, T_BIT_STRING, EV_INVALID_CERTIFICATE)
    return Certificate(subject, issuer, serial, not_before, not_after)


def _extensions(b: bytes, p: int, e: int) -> None:
    """[3] (any class; only its header is read) then a SEQUENCE OF Extension that must end the
    TBSCertificate: the header unreadable or another tag number is
    certificate_invalid_extensions; anything else wrong (an extension without its OCTET
    STRING, bytes after the list) is invalid_certificate (x509-parser's all_consuming)."""
    first = b[p]
    if first & 0x1F == 0x1F:
        raise _Bad(EV_INVALID_EXTENSIONS)
    if p + 1 >= e:
        raise _Bad(EV_INVALID_EXTENSIONS)
    ln = b[p + 1]
    q = p + 2
    if ln & 0x80:
        k = ln & 0x7F
        if k == 0 or k > 4 or q + k > e:
            raise _Bad(EV_INVALID_EXTENSIONS)
        q += k
    if first & 0x1F != 3:
        raise _Bad(EV_INVALID_EXTENSIONS)
    seq = _seq(b, q, e)
    if seq.end != e:
        raise _Bad(EV_INVALID_CERTIFICATE)
    q = seq.start
    while q < seq.end:
        ext = _seq(b, q, seq.end)
        oid = _tlv(b, ext.start, ext.end)       # any primitive element (asn1-rs 0.5)
        if oid.constructed:
            raise _Bad(EV_INVALID_CERTIFICATE)
        r = oid.end
        if r < ext.end and b[r] == T_BOOLEAN:
            r = _tlv(b, r, ext.end).end
        _expect(b, r, ext.end, T_OCTET_STRING, EV_INVALID_CERTIFICATE)
        q = ext.end


def parse(der: bytes) -> tuple[Certificate | None, str]:
    """(the certificate, "") or (None, the TLS event Suricata raises for it).  Never raises."""
    try:
        return _certificate(der), ""
    except _Bad as bad:
        return None, bad.args[0]
    except (ValueError, IndexError, OverflowError):
        return None, EV_INVALID_CERTIFICATE
