"""base64_decode / base64_data: the decoder (Suricata 7.0.10's util-base64 RFC 4648 mode,
answers recorded with suricata -r), what the parser accepts (recorded with suricata -T),
and the matching: relative / offset / bytes, the decoded buffer's own chain, the quirks
(base64_decode is terminal, no retry of the content before it)."""
from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import given, settings, strategies as st

from rules.errors import RuleError
from rules.keywords.base64 import B64Decode, decode, decode_reference
from rules.parser import parse_rule

HELLO = b"aGVsbG8gd29ybGQ="          # "hello world"


# (encoded, decoded) as Suricata 7.0.10 decodes it (each pinned by an exact rule with suricata -r)
DECODE_CASES = [
    (b"aGVsbG8=", b"hello"),
    (b"aGVsbG8", b"hello"),              # end of data: 3 characters give 2 bytes
    (b"aGVsbA", b"hell"),
    (b"aGVsb", b"hel"),                  # 1 character at the end gives nothing
    (b"Zg==", b"f"),
    (b"Zg=", b"f\x00"),                  # a partial block at the end: characters less one, '=' or not
    (b"Zg==Zm8=", b"ffo"),               # padding in the middle
    (b"Z=g=", b"d"),
    (b"====", b""),
    (b"aGVs bG8=", b"hel"),              # stops at the first byte outside the alphabet
    (b"aG!", b"h"),                      # ... a partial block before it: 2 characters 1 byte
    (b"aGV!", b"he"),                    # 3 characters 2 bytes
    (b"a!", b"h"),                       # 1 character 1 byte (as if 2)
    (b"aGVsbG8\r\nd29y", b"hello"),
    (b"A===", b""),
    (b"AB==CD", b"\x00\x08"),
    (b"QUJD\x80", b"ABC"),
    (b"=QUJD", b"\x01\x05"),               # '=' first: a block with one padding byte
    (b"-_-_", b""),                      # no URL-safe alphabet
    (b"", b""),
]


@pytest.mark.parametrize("enc,dec", DECODE_CASES, ids=[repr(c[0]) for c in DECODE_CASES])
def test_decode_as_suricata(enc, dec):
    assert decode(enc) == dec
    assert decode_reference(enc) == dec


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=64) | st.text(alphabet="ABCxyz019+/= !\n-", max_size=64).map(str.encode))
def test_decode_never_raises_and_agrees_with_the_reference(data):
    out = decode(data)
    assert isinstance(out, bytes)
    assert out == decode_reference(data)
    assert len(out) <= (len(data) // 4 + 1) * 3


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_valid_base64_round_trips(raw):
    assert decode(base64.b64encode(raw)) == raw
    assert decode(binascii.b2a_base64(raw, newline=False)) == raw


def rule(opts: str, header="alert udp any any -> any any"):
    return parse_rule(f'{header} (msg:"m"; {opts} sid:1;)', file="t.rules", line=9)


def b64(r) -> B64Decode:
    return next(sp for kw, sp in r.options if kw == "base64_decode")


# (option value or None, accepted by suricata -T 7.0.10, (bytes, offset, relative))
PARSE_CASES = [
    (None, True, (65535, 0, False)),
    ("bytes 0", True, (65535, 0, False)),
    ("bytes 65536", False, None),
    ("offset 4294967295", True, (65535, 4294967295, False)),
    ("relative", True, (65535, 0, True)),
    ("relative,bytes 4", True, (65535, 0, True)),         # the word ends what is read
    ("bytes 4 offset 3", True, (4, 3, False)),
    ("foo", False, None),
    ("offset 3,bytes 4", False, None),                     # "bytes" read as the word: not relative
    ("bytes 4,offset 3,relative,junk", True, (4, 3, True)),
    ("bytes 4,offset 3 relative", True, (4, 3, True)),
    ("  bytes   4 , offset 3, relative", True, (4, 0, False)),   # stops at " ,": the rest ignored
    ("bytes -1", False, None),
    ("bytes 10, bytes 20", False, None),
    ("bytes 300, offset 0, relative", True, (300, 0, True)),
]


@pytest.mark.parametrize("value,ok,fields", PARSE_CASES, ids=[str(c[0]) for c in PARSE_CASES])
def test_parse_as_suricata(value, ok, fields):
    opt = "base64_decode;" if value is None else f"base64_decode:{value};"
    text = f'{opt} base64_data; content:"x";'
    if not ok:
        with pytest.raises(RuleError) as ei:
            rule(text)
        assert ei.value.keyword == "base64_decode" and (ei.value.file, ei.value.line) == ("t.rules", 9)
        return
    item = b64(rule(text))
    assert (item.nbytes, item.offset, item.rel) == fields


@pytest.mark.parametrize("opts,message,unsupported", [
    ('base64_data; content:"x";', "needs a base64_decode before it", None),
    ('base64_decode; base64_data; content:"x"; http.uri; content:"u";', "after base64_data", None),
    ('base64_decode; base64_data; content:"x"; base64_decode; base64_data; content:"y";', "second base64_decode",
     "base64_decode:second"),
], ids=["data-first", "buffer-after", "second-decode"])
def test_refusals(opts, message, unsupported):
    with pytest.raises(RuleError) as ei:
        rule(opts, header="alert tcp any any -> any any")
    assert message in ei.value.message and ei.value.unsupported == unsupported


def test_the_error_column_points_at_the_bad_word():
    text = 'alert udp any any -> any any (msg:"m"; base64_decode:bytes 4,offset 3,sideways; base64_data; content:"x"; sid:1;)'
    with pytest.raises(RuleError) as ei:
        parse_rule(text, file="t.rules", line=2)
    assert ei.value.column == text.index("sideways") + 1


def match(opts: str, payload: bytes) -> bool:
    return rule(opts).payload.match(payload)


@pytest.mark.parametrize("opts,payload,expected", [
    ('content:"K"; base64_decode:relative; base64_data; content:"hello world"; startswith; endswith;', b"K" + HELLO, True),
    ('content:"K"; base64_decode:relative;', b"K" + HELLO, False),                       # no base64_data
    ('content:"K"; base64_decode:relative; base64_data;', b"K" + HELLO, False),          # nothing after it
    ('content:"K"; base64_decode:relative; base64_data; content:"hello";', b"K!!!!K" + HELLO, False),   # no retry
    ('content:"KKKK"; base64_decode:relative; isdataat:500; base64_data; content:"hello";', b"KKKK" + HELLO, True),
    ('base64_decode:offset 2; base64_data; content:"hello"; startswith;', b"xx" + HELLO, True),
    ('base64_decode:offset 16; base64_data; content:"|00|";', HELLO, False),            # nothing left
    ('content:"K"; base64_decode:bytes 8,relative; base64_data; content:"hello |00|"; endswith;', b"K" + HELLO,
     False),
    ('content:"K"; base64_decode:bytes 8,relative; base64_data; content:"hello "; endswith;', b"K" + HELLO, True),
    ('base64_decode; base64_data; content:"hel"; content:"wor"; distance:3; within:3;', HELLO, True),
    ('base64_decode; base64_data; content:"HELLO"; nocase; pkt_data; content:"aGVs";', HELLO, True),
    ('base64_decode; base64_data; byte_test:1,=,104,0;', HELLO, True),
    ('base64_decode; base64_data; content:!"bye";', HELLO, True),
    ('pcre:"/K+/"; base64_decode:relative; base64_data; content:"hello";', b"KKK" + HELLO, True),
], ids=["exact", "no-data", "empty-data", "no-retry", "terminal", "offset", "offset-past", "bytes-cut",
        "bytes-cut-2", "relative-in-data", "pkt-data-after", "byte-test", "negated", "after-pcre"])
def test_matching(opts, payload, expected):
    assert match(opts, payload) is expected


def test_contents_inside_base64_data_are_not_the_fast_pattern():
    r = rule('content:"<data>"; base64_decode:relative; base64_data; content:"a much longer pattern";')
    assert r.fast_pattern == b"<data>"


def test_http_body_rule_loads_as_a_transaction_rule():
    r = parse_rule('alert http any any -> any any (msg:"m"; flow:to_server; http.request_body; content:"<d>"; '
                   'base64_decode:relative; base64_data; content:"hello"; sid:1;)')
    (buf,) = r.app.bufs
    assert buf.name == "http.request_body"
    assert buf.chain.match_buffer(b"<d>" + HELLO) and not buf.chain.match_buffer(b"<d>Ynll")
