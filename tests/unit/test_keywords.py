"""Every keyword in the table: what it accepts, what it refuses (with the
column), and how its check behaves on hand-built Packet/Flow objects."""
import pytest

from rules.errors import RuleError
from rules.keywords import REGISTRY
from rules.packet import Flow, Packet
from rules.parser import parse_rule
from rules.rule import FlowbitOp, Threshold

CLS = {"trojan-activity": ("A Network Trojan was detected", 1), "misc-activity": ("Misc activity", 3)}


def rule(opts, header="alert ip any any -> any any"):
    return parse_rule(f"{header} ({opts} sid:1;)", classification=CLS, file="t.rules", line=7)


def pkt(**kw):
    p = Packet()
    p.ipver = 4
    p.proto = 6
    for k, v in kw.items():
        if k == "payload":
            v = memoryview(v)
        setattr(p, k, v)
    return p


def flow(state="established", bits=()):
    f = Flow(("k",), 1, 0.0)
    f.state = state
    f.flowbits = set(bits)
    return f


def passes(r, p):
    return all(c(p) for c in r.checks)


def err(opts, header="alert ip any any -> any any"):
    text = f"{header} ({opts} sid:1;)"
    with pytest.raises(RuleError) as ei:
        parse_rule(text, classification=CLS, file="t.rules", line=7)
    return ei.value, text


def test_registry_entries_are_named_consistently():
    for name, kw in REGISTRY.items():
        assert kw.name == name


# ---------------------------------------------------------------- meta
def test_meta_keywords():
    r = rule('msg:"hello \\"world\\" \\; ok"; rev:4; gid:3; classtype:trojan-activity; '
             'reference:cve,2021-44228; reference:url,example.org/a,b; metadata:former_category X, created_at 2020; '
             'target:dest_ip;')
    assert r.msg == 'hello "world" ; ok'
    assert (r.sid, r.rev, r.gid) == (1, 4, 3)
    assert r.classtype == "trojan-activity" and r.category == "A Network Trojan was detected"
    assert r.priority == 1
    assert r.references == ("cve,2021-44228", "url,example.org/a,b")
    assert r.metadata == ("former_category X", "created_at 2020")
    assert r.target == "dest_ip"


def test_priority_overrides_classtype_in_any_order():
    assert rule("priority:2; classtype:trojan-activity;").priority == 2
    assert rule("classtype:trojan-activity; priority:2;").priority == 2
    assert rule("").priority == 3
    assert rule("classtype:misc-activity;").priority == 3


def test_unquoted_msg_is_refused_as_by_suricata():
    e, text = err("msg:plain words;")
    assert "the value of 'msg' must be in double quotes" in e.message and e.column == text.index("plain") + 1


@pytest.mark.parametrize("opts,msg,needle", [
    ("classtype:nope;", "unknown classtype 'nope'", "nope"),
    ("sid:abc;", "sid 'abc' is not a number", "abc"),
    ("sid:0;", "sid 0 out of range", "0;"),
    ("rev:-1;", "rev -1 out of range", "-1"),
    ("priority:256;", "priority 256 out of range", "256"),
    ("target:both;", "target must be src_ip or dest_ip", "both"),
    ("reference:cve;", "reference must be 'type,value'", "cve;"),
    ("msg:\"a\"; msg:\"b\";", "'msg' can only be used once", '"b"'),
], ids=["classtype-unknown", "sid-nan", "sid-zero", "rev-negative", "priority-zero", "target-bad",
        "reference-no-value", "msg-twice"])
def test_meta_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.column == text.index(needle, text.index("(")) + 1 + (1 if needle.startswith('"') else 0)
    assert (e.file, e.line) == ("t.rules", 7)


def test_missing_sid():
    with pytest.raises(RuleError, match="rule has no sid"):
        parse_rule('alert ip any any -> any any (msg:"x";)', classification=CLS)


# ---------------------------------------------------------------- dsize / ttl / itype / icode (uint forms)
UINT = [
    ("dsize:10;", "payload", [(b"x" * 10, True), (b"x" * 9, False)]),
    ("dsize:>10;", "payload", [(b"x" * 11, True), (b"x" * 10, False)]),
    ("dsize:<3;", "payload", [(b"xx", True), (b"xxx", False)]),
    ("dsize:>=3;", "payload", [(b"xxx", True), (b"xx", False)]),
    ("dsize:<=3;", "payload", [(b"xxx", True), (b"xxxx", False)]),
    ("dsize:!3;", "payload", [(b"xx", True), (b"xxx", False)]),
    ("dsize:2<>5;", "payload", [(b"xxx", True), (b"xx", False), (b"xxxxx", False)]),
    ("dsize:2-5;", "payload", [(b"xxxx", True), (b"xxxxx", False)]),
    ("ttl:64;", "ttl", [(64, True), (63, False)]),
    ("ttl:<5;", "ttl", [(4, True), (5, False)]),
    ("ttl:>200;", "ttl", [(201, True), (200, False)]),
    ("ttl:1-3;", "ttl", [(2, True), (1, False), (3, False)]),
    ("itype:8;", "icmp_type", [(8, True), (0, False), (-1, False)]),
    ("itype:>30;", "icmp_type", [(31, True), (30, False)]),
    ("itype:3<>6;", "icmp_type", [(4, True), (6, False)]),
    ("icode:0;", "icmp_code", [(0, True), (1, False), (-1, False)]),
    ("icmp_id:1234;", "icmp_id", [(1234, True), (1, False)]),
    ("icmp_seq:7;", "icmp_seq", [(7, True), (8, False)]),
]


@pytest.mark.parametrize("opts,field,cases", UINT, ids=[u[0] for u in UINT])
def test_integer_keywords(opts, field, cases):
    r = rule(opts)
    for value, expected in cases:
        assert passes(r, pkt(**{field: value})) is expected, (opts, value)


def test_ttl_needs_ip():
    r = rule("ttl:0;")
    assert not passes(r, pkt(ipver=0, ttl=0))


@pytest.mark.parametrize("opts,msg,needle", [
    ("dsize:abc;", "dsize 'abc' is not a number", "abc"),
    ("dsize:70000;", "dsize 70000 out of range", "70000"),
    ("dsize:5<>5;", "range 5<>5 is empty", "5<>5"),
    ("ttl:256;", "ttl 256 out of range", "256"),
    ("ttl:<x;", "ttl 'x' is not a number", "x;"),
    ("itype:300;", "itype 300 out of range", "300"),
    ("icmp_id:-1;", "icmp_id -1 out of range", "-1"),
    ("dsize:1; dsize:2;", "'dsize' can only be used once", "2;"),
], ids=["dsize-nan", "dsize-big", "dsize-empty-range", "ttl-big", "ttl-nan", "itype-big", "icmp_id-neg",
        "dsize-twice"])
def test_integer_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.column == text.index(needle, text.index("(")) + 1


# ---------------------------------------------------------------- flags
FLAGS = [
    ("flags:S;", [(0x02, True), (0x12, False), (0x00, False)]),
    ("flags:SA;", [(0x12, True), (0x02, False)]),
    ("flags:S+;", [(0x02, True), (0x12, True), (0x10, False)]),
    ("flags:+S;", [(0x12, True)]),
    ("flags:*SF;", [(0x01, True), (0x02, True), (0x10, False)]),
    ("flags:!SF;", [(0x02, True), (0x03, False), (0x00, True)]),
    ("flags:0;", [(0x00, True), (0x10, False)]),
    ("flags:S,CE;", [(0x02, True), (0xC2, True), (0x12, False)]),
    ("flags:S,12;", [(0xC2, True)]),
    ("flags:A+,U;", [(0x30, True), (0x10, True)]),
    ("flags:FPU;", [(0x29, True), (0x28, False)]),
    ("flags:CE;", [(0xC0, True), (0x40, False)]),
    ("flags:R;", [(0x04, True)]),
    ("flags:SS;", [(0x02, True), (0x12, False)]),      # a repeated flag is accepted, as Suricata does
]


@pytest.mark.parametrize("opts,cases", FLAGS, ids=[f[0] for f in FLAGS])
def test_flags(opts, cases):
    r = rule(opts, header="alert tcp any any -> any any")
    for bits, expected in cases:
        assert passes(r, pkt(tcp_flags=bits)) is expected, (opts, hex(bits))


@pytest.mark.parametrize("opts", [f[0] for f in FLAGS])
def test_the_flags_table_is_the_check_s_answer_for_every_flags_byte(opts):
    """The detect stage's flags prefilter reads `Rule.tcp_flags` instead of running the
    check: for each of the 256 flags bytes, the two must agree."""
    r = rule(opts, header="alert tcp any any -> any any")
    assert 0 <= r.tcp_flags < 1 << 256
    assert [bool(r.tcp_flags >> f & 1) for f in range(256)] == [passes(r, pkt(tcp_flags=f)) for f in range(256)]
    assert rule("content:\"x\";", header="alert tcp any any -> any any").tcp_flags is None


def test_flags_only_match_tcp():
    r = rule("flags:S;")
    assert not passes(r, pkt(proto=17, tcp_flags=0x02))


@pytest.mark.parametrize("opts,msg,needle", [
    ("flags:SX;", "unknown TCP flag 'X'", "X;"),
    ("flags:+*S;", "only one of the modifiers", "*S"),
    ("flags:0S;", "cannot be combined", "0S"),
    ("flags:,C;", "needs at least one flag", ",C"),
], ids=["unknown", "two-modifiers", "zero-and-flag", "empty"])
def test_flags_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.column == text.index(needle, text.index("(")) + 1


# ---------------------------------------------------------------- flow
def test_flow_direction_sets_the_rule_field():
    assert rule("flow:to_server;").flow_to_server is True
    assert rule("flow:from_client;").flow_to_server is True
    assert rule("flow:to_client;").flow_to_server is False
    assert rule("flow:from_server;").flow_to_server is False
    assert rule("flow:established;").flow_to_server is None


@pytest.mark.parametrize("opts,state,expected", [
    ("flow:established,to_server;", "established", True),
    ("flow:established,to_server;", "syn_sent", False),
    ("flow:established;", None, False),
    ("flow:not_established;", "new", True),
    ("flow:not_established;", "established", False),
    ("flow:not_established;", None, True),
    ("flow:stateless;", None, True),
    ("flow:to_client,no_stream;", "new", True),
], ids=["est-yes", "est-no", "est-noflow", "notest-new", "notest-est", "notest-noflow", "stateless",
        "no_stream"])
def test_flow_state(opts, state, expected):
    p = pkt(flow=None if state is None else flow(state))
    assert passes(rule(opts), p) is expected


@pytest.mark.parametrize("opts,msg,needle,unsupported", [
    ("flow:to_server,to_client;", "contradicts", "to_client", None),
    ("flow:established,not_established;", "contradicts", "not_established", None),
    ("flow:established,stateless;", "contradicts", "stateless", None),
    ("flow:sideways;", "unknown flow option 'sideways'", "sideways", None),
    ("flow:only_frag;", "unsupported flow option 'only_frag'", "only_frag", "flow:only_frag"),
    ("flow:to_server,,established;", "empty flow option", ",established", None),
], ids=["dir-contradiction", "state-contradiction", "stateless-contradiction", "unknown", "only_frag",
        "empty"])
def test_flow_errors(opts, msg, needle, unsupported):
    e, text = err(opts)
    assert msg in e.message
    assert e.unsupported == unsupported
    assert e.column == text.index(needle, text.index("(")) + 1


# ---------------------------------------------------------------- ip_proto / sameip / header protos
@pytest.mark.parametrize("opts,proto,expected", [
    ("ip_proto:47;", 47, True), ("ip_proto:47;", 6, False), ("ip_proto:gre;", 47, True),
    ("ip_proto:!6;", 17, True), ("ip_proto:!tcp;", 6, False), ("ip_proto:<10;", 6, True),
    ("ip_proto:>10;", 6, False), ("ip_proto:ipv6-icmp;", 58, True),
], ids=["num", "num-miss", "name", "not", "not-name", "lt", "gt", "icmpv6-name"])
def test_ip_proto(opts, proto, expected):
    assert passes(rule(opts), pkt(proto=proto)) is expected


def test_ip_proto_narrows_ip_protos():
    assert rule("ip_proto:47;").ip_protos == frozenset({47})
    assert rule("ip_proto:!47;").ip_protos is None
    e, _ = err("ip_proto:17;", header="alert tcp any any -> any any")
    assert "contradicts" in e.message


def test_ip_proto_errors():
    e, text = err("ip_proto:bogus;")
    assert "unknown ip_proto 'bogus'" in e.message and e.column == text.index("bogus") + 1
    e, text = err("ip_proto:300;")
    assert "out of range" in e.message and e.column == text.index("300") + 1


def test_sameip():
    r = rule("sameip;")
    assert passes(r, pkt(src=5, dst=5))
    assert not passes(r, pkt(src=5, dst=6))
    assert not passes(r, pkt(ipver=0))


@pytest.mark.parametrize("proto,protos", [
    ("ip", None), ("tcp", {6}), ("udp", {17}), ("icmp", {1, 58}), ("icmpv4", {1}), ("icmpv6", {58}),
    ("sctp", {132}), ("ipv4", None), ("ipv6", None), ("TCP", {6}),
])
def test_header_protocols(proto, protos):
    r = rule("", header=f"alert {proto} any any -> any any")
    assert r.ip_protos == (None if protos is None else frozenset(protos))


def test_ipv4_ipv6_protocols_check_the_version():
    assert passes(rule("", header="alert ipv6 any any -> any any"), pkt(ipver=6))
    assert not passes(rule("", header="alert ipv6 any any -> any any"), pkt(ipver=4))
    assert passes(rule("", header="alert ipv4 any any -> any any"), pkt(ipver=4))


# ---------------------------------------------------------------- threshold / detection_filter
@pytest.mark.parametrize("opts,field,expected", [
    ("threshold:type limit, track by_src, count 1, seconds 60;", "threshold", Threshold("limit", "by_src", 1, 60)),
    ("threshold: count 5, seconds 10, type both, track by_dst;", "threshold", Threshold("both", "by_dst", 5, 10)),
    ("threshold:type threshold,track by_rule,count 3,seconds 1;", "threshold",
     Threshold("threshold", "by_rule", 3, 1)),
    ("threshold:type limit, track by_both, count 1, seconds 5;", "threshold", Threshold("limit", "by_both", 1, 5)),
    ("detection_filter:track by_src, count 10, seconds 60;", "detection_filter", Threshold("df", "by_src", 10, 60)),
], ids=["limit", "any-order", "by_rule", "by_both", "detection_filter"])
def test_threshold(opts, field, expected):
    assert getattr(rule(opts), field) == expected


@pytest.mark.parametrize("opts,msg,needle", [
    ("threshold:type limit, track by_src, count 1;", "missing seconds", "type"),
    ("threshold:type sometimes, track by_src, count 1, seconds 1;", "threshold type must be", "sometimes"),
    ("threshold:type limit, track by_src, count -1, seconds 1;", "count -1 out of range", "-1"),
    ("threshold:type limit, track by_src, count 1, seconds 1; detection_filter:track by_src, count 1, seconds 1;",
     "threshold and detection_filter cannot be used in the same rule", "track by_src, count 1, seconds 1; sid"),
    ("threshold:type limit, track by_src, count 1, seconds 1, color red;", "unknown threshold option 'color'",
     "color"),
    ("threshold:type limit, type both, track by_src, count 1, seconds 1;", "'type' given twice", "type both"),
    ("detection_filter:track by_rule, count 1, seconds 1;", "track must be by_src, by_dst", "by_rule"),
    ("detection_filter:type limit, track by_src, count 1, seconds 1;", "unknown detection_filter option 'type'",
     "type"),
], ids=["missing", "bad-type", "negative-count", "with-detection_filter", "unknown-option", "twice", "df-by_rule",
        "df-type"])
def test_threshold_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.column == text.index(needle, text.index("(")) + 1


# ---------------------------------------------------------------- flowbits / noalert
def test_flowbits_post_match_ops():
    r = rule("flowbits:set,a; flowbits:unset,b; flowbits:toggle,c; flowbits:noalert;")
    assert r.flowbits == (FlowbitOp("set", ("a",)), FlowbitOp("unset", ("b",)), FlowbitOp("toggle", ("c",)),
                          FlowbitOp("noalert"))
    assert r.noalert and r.checks == []


@pytest.mark.parametrize("opts,bits,expected", [
    ("flowbits:isset,a;", {"a"}, True),
    ("flowbits:isset,a;", set(), False),
    ("flowbits:isset,a;", None, False),
    ("flowbits:isnotset,a;", {"b"}, True),
    ("flowbits:isnotset,a;", {"a"}, False),
    ("flowbits:isnotset,a;", None, True),
    ("flowbits:isset,a|b;", {"b"}, True),
    ("flowbits:isset,a|b;", {"c"}, False),
    ("flowbits:isset,a&b;", {"a"}, False),
    ("flowbits:isset,a&b;", {"a", "b"}, True),
    ("flowbits:isnotset,a|b;", {"a"}, True),
    ("flowbits:isnotset,a&b;", {"a"}, False),
], ids=["isset", "isset-no", "isset-noflow", "isnotset", "isnotset-no", "isnotset-noflow", "any-of",
        "any-of-no", "all-of-no", "all-of", "isnotset-any", "isnotset-all"])
def test_flowbits_checks(opts, bits, expected):
    r = rule(opts)
    assert r.flowbits == ()
    p = pkt(flow=None if bits is None else flow(bits=bits))
    assert passes(r, p) is expected


@pytest.mark.parametrize("opts,msg,needle", [
    ("flowbits:sett,a;", "unknown flowbits command 'sett'", "sett"),
    ("flowbits:set;", "flowbits set needs a name", "set"),
    ("flowbits:isset,a b;", "bad flowbit name 'a b'", "a b"),
    ("flowbits:isset,a|b&c;", "cannot mix", "a|b"),
    ("flowbits:noalert,x;", "takes no name", "noalert"),
], ids=["unknown-cmd", "no-name", "bad-name", "mixed", "noalert-name"])
def test_flowbits_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.column == text.index(needle, text.index("(")) + 1


def test_flowbits_set_list_sets_each_name():
    assert rule("flowbits:set,a|b;").flowbits == (FlowbitOp("set", ("a", "b"), True),)


def test_noalert_keyword():
    assert rule("noalert;").noalert is True


# ---------------------------------------------------------------- content & friends (parse side)
@pytest.mark.parametrize("opts,msg,needle", [
    ('content:"";', "'content' needs a value", '"";'),
    ('content:"a|4|";', "odd number of hex digits", "4|"),
    ('content:"a|41 4|";', "odd number of hex digits", "4|\""),
    ('content:"a|4g|";', "invalid character 'g' in hex", "g|"),
    ('content:"a|41";', "unterminated hex part", "|41"),
    ('content:"a\\x41";', "invalid escape '\\x'", "\\x"),
    ('content:"a"b";', "unescaped '\"' inside content", '"b"'),
    ("content:abc;", "must be in double quotes", "abc"),
    ('nocase;', "'nocase' needs a preceding content", "nocase"),
    ('pcre:"/a/"; nocase;', "'nocase' needs a preceding content", "nocase"),
    ('content:"a"; nocase; nocase;', "nocase given twice", "nocase; nocase"),
    ('content:"abcd"; depth:3;', "depth 3 is smaller than the content length 4", "3;"),
    ('content:"abcd"; within:3;', "within 3 is smaller than the content length 4", "3;"),
    ('content:"a"; depth:5; distance:1;', "(relative) cannot be combined with offset/depth", "1;"),
    ('content:"a"; within:5; offset:1;', "(absolute) cannot be combined with distance/within", "1;"),
    ('content:"a"; depth:5; depth:6;', "depth given twice", "6"),
    ('content:"a"; offset:x;', "offset 'x' is not a number", "x;"),
    ('content:"a"; offset:1; startswith;', "startswith cannot be combined", "startswith"),
    ('content:"a"; fast_pattern; content:"b"; fast_pattern;', "fast_pattern can only be set on one content",
     "fast_pattern;", ),
    ('content:"abc"; fast_pattern:2,5;', "goes past the end", "2,5"),
    ('content:"abc"; fast_pattern:x;', "fast_pattern takes no value, 'only', or 'offset,length'", "x;"),
    ('content:"a"; nocase:1;', "'nocase' takes no value", "1;"),
    ('content;', "'content' needs a value", "content;"),
], ids=["empty", "odd-hex", "odd-hex-2", "bad-hex", "unterminated-hex", "bad-escape", "inner-quote",
        "unquoted", "nocase-alone", "nocase-after-pcre", "nocase-twice", "depth-short", "within-short",
        "relative-after-absolute", "absolute-after-relative", "depth-twice", "offset-nan",
        "startswith-with-offset", "fast_pattern-twice", "fast_pattern-chop-range", "fast_pattern-bad",
        "bare-with-value", "value-missing"])
def test_content_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message, e.message
    idx = text.index(needle, text.index("("))
    if needle == "fast_pattern;":
        idx = text.rindex(needle)
    if needle == "nocase; nocase":
        idx += len("nocase; ")
    if needle == '"";':
        idx += 1
    assert e.column == idx + 1


def test_content_negation_and_modifiers_recorded():
    r = rule('content:!"abc"; nocase; offset:1; depth:10; content:"x"; distance:-2; within:4; rawbytes; pkt_data;')
    a, b = r.payload.items
    assert a.negated and a.nocase and (a.offset, a.depth) == (1, 10)
    assert not b.negated and (b.distance, b.within) == (-2, 4) and b.rawbytes


@pytest.mark.parametrize("opts,msg,unsupported,needle", [
    ('http.host; content:"a"; pcre:"/a/U";', "selects http.uri, but the sticky buffer 'http.host'", None, "U\""),
    ('pcre:"/a/UH";', "pcre modifier 'H' after 'U'", None, "H\""),
    ('pcre:"/a/iX";', "unknown pcre modifier 'X'", None, "X\""),
    ('pcre:"a";', "pcre must look like", None, 'a"'),
    ('pcre:"/a";', "missing its closing '/'", None, '/a"'),
    ('pcre:"/(?<=a+)b/";', "invalid pcre: length of lookbehind assertion is not limited", None, "(?<="),
    ('pcre:"/[[:digits:]]/";', "invalid pcre: unknown POSIX class name", None, "]/"),
    ('byte_jump:1,0; pcre:"/^X/R";', "pcre with R (relative) needs a content or pcre before it", None, '/^X'),
], ids=["U-after-other-buffer", "two-http-flags", "unknown", "no-slash", "unclosed", "pcre2-refuses",
        "unknown-posix-class", "R-without-match"])
def test_pcre_errors(opts, msg, unsupported, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.unsupported == unsupported
    assert e.column == text.index(needle, text.index("(")) + 1


def test_pcre_accepted_noop_flags():
    r = rule('pcre:"/abc/BO";')
    assert r.payload.match(b"xabc")


@pytest.mark.parametrize("opts,msg,needle", [
    ("isdataat:x;", "isdataat position 'x' is not a number", "x;"),
    ("isdataat:1,sideways;", "unknown isdataat option 'sideways'", "sideways"),
    ("byte_test:1,=,1;", "byte_test needs at least", "1,=,1"),
    ("byte_test:1,~,1,0;", "unknown byte_test operator '~'", "~"),
    ("byte_test:9,=,1,0;", "at most 8 bytes", "9,"),
    ("byte_test:24,=,1,0,string,dec;", "byte count 24 out of range (0..23)", "24,"),
    ("byte_test:1,=,1,0,dec;", "need 'string'", "1,=,1,0,dec"),
    ("byte_test:1,=,1,0,middle;", "unknown byte_test option 'middle'", "middle"),
    ("byte_test:1,=,1,0,big,little;", "endianness given twice", "little"),
    ("byte_test:4,=,1,0,relative,dce;", "unsupported byte_test option 'dce'", "dce"),
    ("byte_jump:1;", "byte_jump needs at least", "1;"),
    ("byte_jump:1,0,from_beginning,from_end;", "exclude each other", "1,0"),
    ("byte_jump:1,0,sideways;", "unknown byte_jump option 'sideways'", "sideways"),
], ids=["isdataat-nan", "isdataat-opt", "bt-short", "bt-op", "bt-9-bytes", "bt-24-string-bytes",
        "bt-dec-without-string",
        "bt-unknown-opt", "bt-endian-twice", "bt-dce", "bj-short", "bj-from-both", "bj-unknown"])
def test_payload_keyword_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.column == text.index(needle, text.index("(")) + 1


def test_byte_test_not_equal_forms():
    assert rule("byte_test:1,!=,5,0;").payload.match(b"\x04")
    assert not rule("byte_test:1,!,5,0;").payload.match(b"\x05")


# ---------------------------------------------------------------- unsupported keywords
@pytest.mark.parametrize("kw", ["ssh.proto", "krb5_cname", "sip.method", "smb.share", "byte_extract:1,0,x",
                                "asn1:double_overflow", "quic.sni", "tag:session,5,packets"])
def test_unsupported_keywords_fail_the_rule_at_their_column(kw):
    e, text = err(f'content:"a"; {kw};')
    name = kw.split(":")[0]
    assert e.message == f"unsupported keyword '{name}'"
    assert e.unsupported == name and e.keyword == name
    assert e.column == text.index(name) + 1
    assert str(e) == f"t.rules:7:{e.column}: unsupported keyword '{name}' (keyword '{name}')"


def test_all_unsupported_keywords_are_listed():
    e, _ = err('sip.method; content:"GET"; ssh.proto; content:"/x"; byte_extract:1,0,v; sip.method;')
    assert e.missing == ("sip.method", "ssh.proto", "byte_extract")


# ---------------------------------------------------------------- decode-event / pkthdr
@pytest.mark.parametrize("opts,events,expected", [
    ("decode-event:ipv4.trunc_pkt;", ("decoder.ipv4.trunc_pkt",), True),
    ("decode-event:ipv4.trunc_pkt;", ("decoder.ipv4.opt_invalid",), False),
    ("decode-event:ipv4.trunc_pkt;", (), False),
    ("decode-event:too_many_layers;", ("decoder.too_many_layers",), True),
    ("decode-event: IPv6.PKT_TOO_SMALL ;", ("decoder.ipv6.pkt_too_small",), True),
], ids=["hit", "other-event", "clean", "single-name", "case-and-space"])
def test_decode_event(opts, events, expected):
    r = rule(opts, header="alert pkthdr any any -> any any")
    assert r.ip_protos is None
    assert passes(r, pkt(events=events)) is expected


def test_decode_event_bad_name():
    e, text = err("decode-event:ipv4..x;")
    assert "bad decoder event name 'ipv4..x'" in e.message and e.column == text.index("ipv4..x") + 1


def test_header_keywords_agree_with_suricata(tmp_path):
    """Differential check: packet-level keywords on scapy-built frames, decided
    by our checks (frames decoded by rules.decode) and by the real Suricata
    7.0.10 (`suricata -r`).  Each case has its own destination address so an
    alert identifies its packet."""
    import json
    import shutil
    import subprocess

    from scapy.all import (GRE, ICMP, IP, TCP, UDP, Ether, ICMPv6EchoRequest, IPOption_NOP, IPOption_RR, IPv6, Raw,
                           wrpcap)

    from rules.api import FrameMeta
    from rules.decode import decode

    exe = shutil.which("suricata")
    assert exe, "suricata (7.0.10) must be installed for the differential keyword test"
    a = "198.51.100.1"

    def udp(n=0, **ip):
        p = Ether() / IP(src=a, **ip) / UDP(sport=1111, dport=2222)
        return p / Raw(b"x" * n) if n else p

    def tcp(flags, **kw):
        kw.setdefault("seq", 1000)
        return Ether() / IP(src=a) / TCP(sport=3333, dport=4444, flags=flags, **kw)

    def frag(off):
        return Ether() / IP(src=a, frag=off, proto=17) / Raw(b"x" * 16)

    def opts(*o):
        return Ether() / IP(src=a, options=list(o)) / UDP()

    v6 = dict(src="2001:db8::1")
    cases = [
        ("dsize-eq", "udp", "dsize:10;", udp(10)), ("dsize-eq-no", "udp", "dsize:10;", udp(9)),
        ("dsize-range", "udp", "dsize:2<>5;", udp(4)), ("dsize-range-edge", "udp", "dsize:2<>5;", udp(5)),
        ("dsize-gt", "udp", "dsize:>3;", udp(4)), ("dsize-not", "udp", "dsize:!3;", udp(3)),
        ("ttl-eq", "ip", "ttl:64;", udp(1, ttl=64)), ("ttl-lt", "ip", "ttl:<10;", udp(1, ttl=9)),
        ("ttl-range-edge", "ip", "ttl:1-3;", udp(1, ttl=3)), ("ttl-range-in", "ip", "ttl:1-3;", udp(1, ttl=2)),
        ("ttl-ge", "ip", "ttl:>=200;", udp(1, ttl=200)),
        ("itype", "icmp", "itype:8;", Ether() / IP(src=a) / ICMP(type=8, id=7, seq=9)),
        ("itype-gt", "icmp", "itype:>5;", Ether() / IP(src=a) / ICMP(type=8)),
        ("icode", "icmp", "icode:3;", Ether() / IP(src=a) / ICMP(type=3, code=3)),
        ("icmp_id", "icmp", "icmp_id:7;", Ether() / IP(src=a) / ICMP(type=8, id=7, seq=9)),
        ("icmp_seq", "icmp", "icmp_seq:9;", Ether() / IP(src=a) / ICMP(type=8, id=7, seq=9)),
        ("icmp-covers-v6", "icmp", "itype:128;", Ether() / IPv6(**v6) / ICMPv6EchoRequest()),
        ("icmpv4-not-v6", "icmpv4", "itype:128;", Ether() / IPv6(**v6) / ICMPv6EchoRequest()),
        ("ip_proto-gre", "ip", "ip_proto:47;", Ether() / IP(src=a) / GRE() / IP(src=a, dst=a) / UDP()),
        ("ip_proto-not", "ip", "ip_proto:!17;", udp(1)),
        ("sameip", "ip", "sameip;", Ether() / IP(src=a) / UDP()),
        ("sameip-no", "ip", "sameip;", udp(1)),
        ("flags-S", "tcp", "flags:S;", tcp("S")), ("flags-S-on-SA", "tcp", "flags:S;", tcp("SA")),
        ("flags-S+", "tcp", "flags:S+;", tcp("SA")), ("flags-any", "tcp", "flags:*FR;", tcp("R")),
        ("flags-not", "tcp", "flags:!SA;", tcp("S")), ("flags-not-all", "tcp", "flags:!SA;", tcp("SA")),
        ("flags-mask", "tcp", "flags:S,CE;", tcp("SEC")), ("flags-0", "tcp", "flags:0;", tcp("")),
        ("flags-FPU", "tcp", "flags:FPU;", tcp("FPU")),
        ("ipv6-proto", "ipv6", "ttl:64;", Ether() / IPv6(hlim=64, **v6) / UDP()),
        ("ipv4-proto-on-v6", "ipv4", "ttl:64;", Ether() / IPv6(hlim=64, **v6) / UDP()),
        ("id", "ip", "id:4321;", udp(1, id=4321)), ("id-no", "ip", "id:4321;", udp(1, id=4320)),
        ("seq", "tcp", "seq:1000;", tcp("A")), ("seq-no", "tcp", "seq:999;", tcp("A")),
        ("ack", "tcp", "ack:77;", tcp("A", ack=77)), ("window", "tcp", "window:512;", tcp("A", window=512)),
        ("window-not", "tcp", "window:!512;", tcp("A", window=513)),
        ("window-not-eq", "tcp", "window:!512;", tcp("A", window=512)),
        ("fragbits-D", "ip", "fragbits:D;", udp(1, flags="DF")), ("fragbits-D-none", "ip", "fragbits:D;", udp(1)),
        ("fragbits-M+", "ip", "fragbits:M+;", udp(1, flags="MF")),
        ("fragbits-anyMD", "ip", "fragbits:*MD;", udp(1, flags="DF")),
        ("fragbits-notD", "ip", "fragbits:!D;", udp(1)), ("fragbits-notD-set", "ip", "fragbits:!D;", udp(1, flags="DF")),
        ("fragbits-R", "ip", "fragbits:R;", udp(1, flags="evil")),
        ("fragoffset-0-first", "ip", "fragoffset:0;", udp(8, flags="MF")),
        ("fragoffset-units", "ip", "fragoffset:185;", frag(185)), ("fragoffset-not-bytes", "ip", "fragoffset:1480;", frag(185)),
        ("fragoffset-gt", "ip", "fragoffset:>0;", frag(185)), ("fragoffset-lt", "ip", "fragoffset:<186;", frag(185)),
        ("ipopts-rr", "ip", "ipopts:rr;", opts(IPOption_RR())),
        ("ipopts-nop", "ip", "ipopts:nop;", opts(IPOption_NOP(), IPOption_RR())),
        ("ipopts-rr-after-nop", "ip", "ipopts:rr;", opts(IPOption_NOP(), IPOption_RR())),
        ("ipopts-eol-padding", "ip", "ipopts:eol;", opts(IPOption_RR())),
        ("ipopts-lsrr-absent", "ip", "ipopts:lsrr;", opts(IPOption_RR())),
    ]
    texts, frames, ours = [], [], set()
    for i, (cid, proto, opts, p) in enumerate(cases):
        if IP in p:
            dst = f"198.51.100.{i + 10}"
            if cid == "sameip":
                p[IP].src = dst
            p[IP].dst = dst
        else:
            dst = f"2001:db8::{i + 10:x}"
            p[IPv6].dst = dst
        text = f'alert {proto} any any -> {dst} any (msg:"{cid}"; {opts} sid:{i + 1};)'
        texts.append(text)
        frames.append(p)
        r = parse_rule(text, classification={})
        for pk in decode(bytes(p), FrameMeta(ts=0.0, iface="")):
            if pk.ipver and r.dst.contains(pk.ipver, pk.dst) and (r.ip_protos is None or pk.proto in r.ip_protos) \
                    and all(c(pk) for c in r.checks):
                ours.add(i + 1)
    (tmp_path / "r.rules").write_text("\n".join(texts) + "\n")
    wrpcap(str(tmp_path / "p.pcap"), frames)
    out = subprocess.run([exe, "-c", "/etc/suricata/suricata.yaml", "-S", str(tmp_path / "r.rules"),
                          "-r", str(tmp_path / "p.pcap"), "-l", str(tmp_path), "-k", "none", "--runmode", "single"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "error parsing signature" not in out.stderr + out.stdout, out.stderr[-3000:]
    theirs = {json.loads(x)["alert"]["signature_id"] for x in (tmp_path / "eve.json").read_text().splitlines()
              if '"event_type":"alert"' in x}
    diffs = [(cid, (i + 1) in theirs, (i + 1) in ours) for i, (cid, *_) in enumerate(cases)
             if ((i + 1) in theirs) != ((i + 1) in ours)]
    assert diffs == [], "case, suricata, ours"
    assert len(ours) >= 20


# ---------------------------------------------------------------- id / seq / ack / window / frag* / ipopts (parse side)
@pytest.mark.parametrize("opts,msg,needle", [
    ("id:70000;", "id 70000 out of range", "70000"),
    ("seq:x;", "seq 'x' is not a number", "x;"),
    ("window:!x;", "window 'x' is not a number", "x;"),
    ("fragbits:MX;", "unknown fragbit 'X'", "X;"),
    ("fragbits:+;", "needs at least one", "+;"),
    ("fragoffset:<x;", "fragoffset 'x' is not a number", "x;"),
    ("ipopts:bogus;", "unknown ipopts 'bogus'", "bogus"),
], ids=["id-range", "seq-nan", "window-nan", "fragbits-unknown", "fragbits-empty",
        "fragoffset-nan", "ipopts-unknown"])
def test_ipfields_errors(opts, msg, needle):
    e, text = err(opts)
    assert msg in e.message
    assert e.column == text.index(needle, text.index("(")) + 1


def test_ipopts_any_matches_any_option_and_survives_truncation():
    r = rule("ipopts:any;")
    hdr = bytes([0x46, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0]) + bytes(8)
    assert passes(r, pkt(frame=hdr + bytes([7, 3, 4, 0]), l3_off=0))
    assert not passes(r, pkt(frame=hdr[:20], l3_off=0))
    assert passes(rule("ipopts:lsrr;"), pkt(frame=hdr + bytes([7, 40]), l3_off=0)) is False   # bad length: stop


def test_ip_proto_contradicting_the_header_protocol():
    for opts in ("ip_proto:!6;", "ip_proto:>6;", "ip_proto:17;"):
        e, text = err(opts, header="alert tcp any any -> any any")
        assert "contradicts the rule's protocol 'tcp'" in e.message
    assert rule("ip_proto:!1;", header="alert icmp any any -> any any").ip_protos == frozenset({58})


def test_flow_may_repeat_and_adds_up():
    r = rule("flow:to_server; flow:established;")
    assert r.flow_to_server is True
    assert passes(r, pkt(flow=flow("established"))) and not passes(r, pkt(flow=flow("new")))
    e, text = err("flow:to_server; flow:to_client;")
    assert "'to_client' contradicts an earlier direction" in e.message and e.column == text.index("to_client") + 1
    e, _ = err("flow:established; flow:not_established;")
    assert "contradicts 'established'" in e.message


def test_repeated_ttl_all_must_hold():
    r = rule("ttl:>5; ttl:<10;")
    assert passes(r, pkt(ttl=7)) and not passes(r, pkt(ttl=11)) and not passes(r, pkt(ttl=3))


# ---------------------------------------------------------------- dns.query / dns_query / bsize / dotprefix
def dns_msg(*names, qr=0, qtype=1):
    import struct
    out = struct.pack("!HHHHHH", 0x1234, 0x0100 | (0x8000 if qr else 0), len(names), 0, 0, 0)
    for n in names:
        out += b"".join(bytes([len(lab)]) + lab for lab in n.split(b".") if lab) + b"\0" + struct.pack("!HH", qtype, 1)
    return out


def test_dns_names_extractor():
    from rules.applayer.dns import dns_names
    assert dns_names(dns_msg(b"www.example.com")) == [b"www.example.com"]
    assert dns_names(dns_msg(b"a.b", b"c.d")) == [b"a.b", b"c.d"]
    assert dns_names(dns_msg(b"www.example.com", qr=1)) == []           # responses are not queries
    assert dns_names(dns_msg(b"www.example.com")[:-3]) == []            # truncated question
    assert dns_names(b"\x00" * 11) == []
    ptr = dns_msg(b"www.example.com") + b"\xc0\x0c\x00\x01\x00\x01"  # second question points at the first
    ptr = ptr[:4] + b"\x00\x02" + ptr[6:]
    assert dns_names(ptr) == [b"www.example.com", b"www.example.com"]
    loop = bytearray(dns_msg(b"a"))
    loop[12:14] = b"\xc0\x0c"                                           # a pointer to itself
    assert dns_names(bytes(loop)) == []


def dns_match(r, names, qr=0) -> bool:
    """Does rule r match the transaction of a DNS message over UDP (rules.applayer.dns),
    as the transaction detector evaluates it?"""
    from types import SimpleNamespace

    from rules.applayer import dns as D
    from rules.detect_tx import _MATCH, TxDetector

    msg = dns_msg(*names, qr=qr)
    parser = D.Parser()
    parser.feed(msg, not qr)
    p = pkt(proto=17, payload=msg)
    return any(TxDetector._match(SimpleNamespace(rule=r), r.app, tx, p, msg, None) == _MATCH for tx in parser.txs)


DNS_CASES = [
    ("endswith-nocase", 'dns.query; content:"evil.example"; nocase; endswith;', [b"WWW.EVIL.example"], True),
    ("endswith-miss", 'dns.query; content:"evil.example"; endswith;', [b"evil.example.org"], False),
    ("startswith", 'dns.query; content:"www."; startswith;', [b"www.a.b"], True),
    ("bsize", 'dns.query; content:"ab.cd"; bsize:5;', [b"ab.cd"], True),
    ("bsize-miss", 'dns.query; content:"ab.cd"; bsize:5;', [b"xab.cd"], False),
    ("bsize-between", 'dns.query; content:"ab.cd"; bsize:>3; nocase;', [b"AB.CD"], True),
    ("isdataat-end", 'dns.query; content:"ab.cd"; isdataat:!1,relative;', [b"x.ab.cd"], True),
    ("isdataat-end-miss", 'dns.query; content:"ab.cd"; isdataat:!1,relative;', [b"ab.cde"], False),
    ("dotprefix", 'dns.query; dotprefix; content:".ex.com"; endswith;', [b"ex.com"], True),
    ("dotprefix-sub", 'dns.query; dotprefix; content:".ex.com"; endswith;', [b"a.ex.com"], True),
    ("dotprefix-not-suffix", 'dns.query; dotprefix; content:".ex.com"; endswith;', [b"badex.com"], False),
    ("dotprefix-after-content", 'dns.query; content:"rs-"; startswith; dotprefix; content:".rd.com"; endswith;',
     [b"rs-1.rd.com"], True),
    ("dotprefix-then-startswith", 'dns.query; dotprefix; content:"rs-"; startswith;', [b"rs-1.rd.com"], False),
    ("any-question", 'dns.query; content:"two";', [b"one.x", b"two.x"], True),
    ("legacy-name", 'dns_query; content:"a.b"; endswith;', [b"x.a.b"], True),
    ("pkt_data-back", 'dns.query; content:"ab"; pkt_data; content:"|12 34|"; depth:2;', [b"ab"], True),
    ("pcre-in-buffer", 'dns.query; pcre:"/^[a-z]{5}\\.com$/";', [b"abcde.com"], True),
    ("pcre-in-buffer-miss", 'dns.query; pcre:"/^[a-z]{5}\\.com$/";', [b"abcdef.com"], False),
]


@pytest.mark.parametrize("opts,names,expected", [c[1:] for c in DNS_CASES], ids=[c[0] for c in DNS_CASES])
def test_dns_query(opts, names, expected):
    r = rule(opts, header="alert dns any any -> any any")
    assert r.ip_protos == frozenset({6, 17}) and r.app_proto == "dns"     # DNS over UDP and TCP
    assert dns_match(r, names) is expected
    assert dns_match(r, names, qr=1) is False       # never on responses


def test_dns_fast_pattern_is_the_dotted_content():
    # the prefilter scans the names themselves (rules.detect_tx), dots and all
    r = rule('dns.query; content:".drp.su"; nocase; endswith;', header="alert dns any any -> any any")
    assert r.app.fp == (0, b".drp.su", True) and r.fast_pattern is None
    r = rule('dns.query; content:"a.longestlabel.b"; content:"zz"; fast_pattern;', header="alert dns any any -> any any")
    assert r.app.fp == (0, b"zz", False)
    r = rule('content:"xyz"; dns.query; content:"ab.cd";', header="alert udp any any -> any any")
    assert r.app.fp == (0, b"ab.cd", False)


def test_dns_protocol_rule_needs_a_dns_flow():
    from types import SimpleNamespace

    r = rule("dsize:>0;", header="alert dns any any -> any any")
    f = flow()
    p = pkt(proto=17, payload=dns_msg(b"a.b"), flow=f)
    f.app = SimpleNamespace(proto="dns")
    assert passes(r, p)
    f.app = SimpleNamespace(proto="http")
    assert not passes(r, p)
    f.app = None
    assert not passes(r, p)


@pytest.mark.parametrize("header,ip_protos", [
    ("alert tcp any any -> any any", {6}), ("alert udp any any -> any any", {17}),
    ("alert icmp any any -> any any", {1, 58}),
], ids=["tcp", "udp", "icmp"])
def test_dns_query_loads_on_any_transport(header, ip_protos):
    # Suricata 7.0.10 loads these (suricata -T); on ICMP the rule never sees a DNS flow
    r = rule('dns.query; content:"a";', header=header)
    assert r.ip_protos == frozenset(ip_protos) and r.app_proto == "dns"


@pytest.mark.parametrize("opts,header,msg,unsupported,needle", [
    ("bsize:5;", "alert udp any any -> any any", "bsize needs a sticky buffer", None, "5;"),
    ("dotprefix;", "alert udp any any -> any any", "dotprefix needs a sticky buffer", None, "dotprefix"),
    ("dns.query; bsize:x;", "alert udp any any -> any any", "bsize 'x' is not a number", None, "x;"),
    ("dns.query; content:\"a\";", "alert http any any -> any any", "is a dns keyword", None, "dns.query"),
], ids=["bsize-pkt", "dotprefix-pkt", "bsize-nan", "http-rule"])
def test_dns_errors(opts, header, msg, unsupported, needle):
    e, text = err(opts, header=header)
    assert msg in e.message and e.unsupported == unsupported
    assert e.column == text.index(needle, text.index("(")) + 1


def test_dns_rules_agree_with_suricata(tmp_path):
    """Differential check of the DNS cases on real DNS-over-UDP packets with
    Suricata 7.0.10 (`suricata -r`); requests and responses both sent."""
    import json
    import shutil
    import subprocess

    from scapy.all import IP, UDP, Ether, Raw, wrpcap

    exe = shutil.which("suricata")
    assert exe, "suricata (7.0.10) must be installed for the differential dns test"
    texts, frames, ours = [], [], set()
    for i, (cid, opts, names, _) in enumerate(DNS_CASES):
        dst = f"198.51.100.{i + 10}"
        text = f'alert dns any any -> {dst} any (msg:"{cid}"; {opts} sid:{i + 1};)'
        texts.append(text)
        req = Ether() / IP(src="198.51.100.1", dst=dst) / UDP(sport=40000 + i, dport=53) / Raw(dns_msg(*names))
        rsp = Ether() / IP(src=dst, dst="198.51.100.1") / UDP(sport=53, dport=40000 + i) / Raw(dns_msg(*names, qr=1))
        frames += [req, rsp]
        r = parse_rule(text, classification={})
        if dns_match(r, names) or dns_match(r, names, qr=1):
            ours.add(i + 1)
    (tmp_path / "r.rules").write_text("\n".join(texts) + "\n")
    wrpcap(str(tmp_path / "p.pcap"), frames)
    out = subprocess.run([exe, "-c", "/etc/suricata/suricata.yaml", "-S", str(tmp_path / "r.rules"),
                          "-r", str(tmp_path / "p.pcap"), "-l", str(tmp_path), "-k", "none", "--runmode", "single"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "error parsing signature" not in out.stderr + out.stdout, out.stderr[-3000:]
    theirs = {json.loads(x)["alert"]["signature_id"] for x in (tmp_path / "eve.json").read_text().splitlines()
              if '"event_type":"alert"' in x}
    diffs = [(cid, (i + 1) in theirs, (i + 1) in ours) for i, (cid, *_) in enumerate(DNS_CASES)
             if ((i + 1) in theirs) != ((i + 1) in ours)]
    assert diffs == [], "case, suricata, ours"
    assert {i + 1 for i, c in enumerate(DNS_CASES) if c[3]} == ours
